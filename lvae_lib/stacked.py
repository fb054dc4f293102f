"""Many models of one shape trained in one step: the stacked engine.

The 5-layer model is small, so one training step is hundreds of tiny kernels; on a GPU it costs more to
launch than to compute. :func:`train_stacked` trains M models whose configs differ only in seed and
warm-up in one step: their parameters stacked along a leading axis (``torch.func.stack_module_state``),
the loss and gradients of all M computed by one ``vmap`` of the single model's own loss, and one Adam
step over the stacked tensors (Adam is elementwise, so this is M separate Adams). Batch norm keeps
batch statistics per model slice and running statistics per model.

Every model keeps its own random stream. Before each of its draws (the epoch's binarisation and
permutation, each step's posterior noise, the evaluations) the model's generator state is put in
place and taken back afterwards, and the noise is handed to the model
(:func:`lvae_lib.distributions.given_noise`). So a stacked model draws exactly the numbers it would
have drawn trained alone, and its results equal a single run's to floating-point rounding.

The engine reads and writes the ordinary checkpoints of :func:`lvae_lib.train.train`, one per model:
a stacked run resumes from them, a single run resumes from a stacked one's, and the records made from
them (by :func:`lvae_lib.runner.run_one`) are ordinary records.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import replace

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap

from . import distributions as D
from .config import ModelConfig, TrainConfig, to_dict
from .data import TrainData
from .model import LadderVAE
from .objectives import loss_of
from .step import Compiled, precision
from .train import checkpoint_path, clip_, fit, make_optimizer, run_dir_lock


def stack_key(model_cfg: ModelConfig, train_cfg: TrainConfig) -> str:
    """Runs stack when everything but their seed and warm-up length agrees (VAE+BN and VAE+BN+WU do)."""
    return repr((to_dict(model_cfg), to_dict(replace(train_cfg, seed=0, warmup_epochs=0))))


def train_stacked(model_cfg: ModelConfig, train_cfgs: list[TrainConfig], data: TrainData, run_dirs=None,
                  device: str = "cpu", progress: bool = True, stop_after: int | None = None,
                  compile: bool | None = False, deadline: float | None = None):
    """Train one model per entry of ``train_cfgs`` (configs equal but for seed and warm-up, see
    :func:`stack_key`) in stacked steps; ``run_dirs`` (one per model, or None) hold their ordinary
    checkpoints. Returns ``[(model, state)]`` as :func:`lvae_lib.train.train` would for each."""
    if len({stack_key(model_cfg, tc) for tc in train_cfgs}) != 1:
        raise ValueError("stacked models must share every config value but seed and warmup_epochs")
    run_dirs = list(run_dirs) if run_dirs is not None else [None] * len(train_cfgs)
    with contextlib.ExitStack() as locks:
        for d in run_dirs:
            if d is not None:
                locks.enter_context(run_dir_lock(d))
        ckpts = [checkpoint_path(d) if d is not None else None for d in run_dirs]
        return fit(model_cfg, list(train_cfgs), data, ckpts, device, progress, stop_after, compile=compile,
                   deadline=deadline)


class StackedStep:
    """One training step of M models of one shape at once: ``step(x [M, B, D], eps, betas)`` computes
    every model's loss and gradients in one ``vmap`` of the single model's loss (compiled or not), then
    takes one Adam step over the stacked parameters; returns the M losses, the M batch sums of the ELBO
    and the models' ``log_px`` and ``kl`` (detached). ``eps``: the posterior noise, one [M, S*B, units]
    tensor per draw (:func:`lvae_lib.step.noise_shapes`); ``betas``: M floats. ``opts``: the single models'
    optimizers (resumed from checkpoints), whose Adam states are stacked."""

    def __init__(self, models: list[LadderVAE], tc: TrainConfig, device="cpu", compiled: bool = False, opts=None,
                 log=print):
        self.tc, self.device, self.cfg = tc, device, models[0].cfg
        self.params, self.buffers = stack_module_state(models)
        self.opt = make_optimizer(list(self.params.values()), tc.lr, tc.adam_eps)
        if opts is not None:
            _load_stacked_optimizer(self.opt, opts, self.params)
        self.samples = tc.mc_samples * tc.iw_samples
        self.mode = "compiled" if compiled else "eager"
        base = copy.deepcopy(models[0]).to("meta")
        self._base = base

        def one_loss(p, b, x, eps, beta):
            with D.given_noise(eps):
                out = functional_call(base, (p, b), (x,), {"n_samples": self.samples, "log_w": tc.iw_samples > 1})
            return loss_of(out, beta, tc.mc_samples, tc.iw_samples), (out["elbo"].sum() / out["elbo"].shape[0],
                                                                       out["log_px"], out["kl"])

        grads = vmap(grad_and_value(one_loss, has_aux=True), in_dims=(0, 0, 0, 0, 0))
        self._grads = Compiled(grads, device, lambda: self.buffers, log) if compiled else grads

    def __call__(self, x, eps, betas):
        betas = torch.as_tensor(betas, dtype=torch.float32, device=x.device)
        base = [self._base]
        with precision(base, self.tc.precision):
            grads, (loss, (elbo, log_px, kl)) = self._grads(self.params, self.buffers, x, eps, betas)
        for k, p in self.params.items():
            p.grad = grads[k]
        clip_([p.grad for p in self.params.values()], self.tc.clip_norm, self.tc.clip_value, stacked=True)
        self.opt.step()
        return loss.detach(), elbo.detach(), {"log_px": log_px.detach(), "kl": kl.detach()}

    def set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    def model_at(self, m: int) -> LadderVAE:
        """Model ``m`` of the stack as an ordinary module (a copy)."""
        one = LadderVAE(self.cfg).to(self.device)
        one.load_state_dict({k: (self.params[k] if k in self.params else self.buffers[k])[m].detach()
                             for k in one.state_dict()})
        return one

    def optimizer_state(self, m: int) -> dict:
        """Model ``m``'s part of the stacked Adam state, as a single model's optimizer ``state_dict``."""
        full = self.opt.state_dict()
        return {"state": {i: {k: (v.clone() if k == "step" else v[m].clone()) for k, v in st.items()}
                          for i, st in full["state"].items()},
                "param_groups": full["param_groups"]}


def _load_stacked_optimizer(opt, singles: list, params: dict) -> None:
    """Stack the Adam states of the single models (resumed from checkpoints) into ``opt``."""
    states = [o.state_dict()["state"] for o in singles]
    if not states[0]:
        return  # fresh models: Adam makes its state on the first step
    for i, p in enumerate(params.values()):
        st = {k: (torch.stack([s[i][k] for s in states]) if k != "step" else states[0][i][k].clone())
              for k in states[0][i]}
        opt.state[p] = st
