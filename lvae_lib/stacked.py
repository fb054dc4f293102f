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
import math
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.func import functional_call, grad_and_value, stack_module_state, vmap
from tqdm import tqdm

from . import analysis
from . import distributions as D
from .config import ModelConfig, TrainConfig, to_dict
from .data import TrainData
from .model import LadderVAE
from .objectives import loss_of
from .train import (EXPLODED, DivergenceError, _rng_state, _set_rng_state, device_label, evaluate_epoch,
                    git_commit, make_optimizer, run_dir_lock, save_checkpoint, start)


def stack_key(model_cfg: ModelConfig, train_cfg: TrainConfig) -> str:
    """Runs stack when everything but their seed and warm-up length agrees (VAE+BN and VAE+BN+WU do)."""
    return repr((to_dict(model_cfg), to_dict(replace(train_cfg, seed=0, warmup_epochs=0))))


@contextlib.contextmanager
def _rng(states: list, m: int, device):
    """The global generator in model ``m``'s state for the draws inside; its new state kept afterwards."""
    _set_rng_state(states[m], device)
    try:
        yield
    finally:
        states[m] = _rng_state(device)


def _start(cfg: ModelConfig, tc: TrainConfig, ckpt: Path | None, device):
    """One model as :func:`lvae_lib.train.train` starts it, and its RNG state then."""
    model, opt, state, _ = start(cfg, tc, ckpt, device)
    return model, opt, state, _rng_state(device)


def _noise_shapes(cfg: ModelConfig, rows: int) -> list[tuple[int, int]]:
    """The shapes of a step's posterior draws, in the order the model draws them."""
    order = range(cfg.n_layers) if cfg.inference == "bottom_up" else reversed(range(cfg.n_layers))
    return [(rows, cfg.latents[i]) for i in order]


def train_stacked(model_cfg: ModelConfig, train_cfgs: list[TrainConfig], data: TrainData, run_dirs=None,
                  device: str = "cpu", progress: bool = True, stop_after: int | None = None):
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
        return _train_stacked(model_cfg, train_cfgs, data, run_dirs, device, progress, stop_after)


def _train_stacked(cfg, tcs, data, run_dirs, device, progress, stop_after):
    tc0, M = tcs[0], len(tcs)
    ckpts = [Path(d) / "checkpoint.pt" if d is not None else None for d in run_dirs]
    started = [_start(cfg, tc, ck, device) for tc, ck in zip(tcs, ckpts)]
    models, states, rngs = [s[0] for s in started], [s[2] for s in started], [s[3] for s in started]
    if len({s["epoch"] for s in states}) != 1:
        raise ValueError(f"stacked models must resume from the same epoch, not {[s['epoch'] for s in states]}")
    data = data.subset(tc0.train_subset, tc0.test_subset).to(device)
    stacked = StackedStep(models, tc0, device)
    params, buffers, opt, S = stacked.params, stacked.buffers, stacked.opt, stacked.samples
    _load_stacked_optimizer(opt, [s[1] for s in started], params)

    def model_at(m: int) -> LadderVAE:
        """Model ``m`` of the stack as an ordinary module (a copy)."""
        one = LadderVAE(cfg).to(device)
        one.load_state_dict({k: (params[k] if k in params else buffers[k])[m].detach() for k in one.state_dict()})
        return one

    def save():
        for m, ck in enumerate(ckpts):
            if ck is not None:
                save_checkpoint({**states[m], "model": model_at(m).state_dict(), "optimizer": _optimizer_slice(opt, m),
                                 "rng": rngs[m]}, ck)

    where = device_label(device)
    x_train, n = data.x_train, len(data.x_train)
    first = states[0]["epoch"]
    last = tc0.epochs if stop_after is None else min(tc0.epochs, stop_after)
    bar = tqdm(range(first, last), desc=f"{M} x {cfg.inference} L={cfg.n_layers}", unit="epoch", disable=not progress,
               initial=first, total=last)
    for epoch in bar:
        t0 = time.perf_counter()
        betas = torch.tensor([tc.beta(epoch) for tc in tcs], device=device)
        for g in opt.param_groups:
            g["lr"] = tc0.lr_at(epoch)
        batches = []
        for m in range(M):  # each model's epoch: its binarisation and permutation, from its own stream
            with _rng(rngs, m, device):
                xb_all = D.binarize(x_train) if data.binarize else x_train
                batches.append((xb_all, torch.randperm(n, device=device)))
        elbo_sum = torch.zeros(M, device=device)
        loss_sum = torch.zeros(M, device=device)
        for s in range(0, n, tc0.batch_size):
            xb = torch.stack([xa[perm[s: s + tc0.batch_size]] for xa, perm in batches])
            if xb.shape[1] < 2 and cfg.batch_norm:
                continue  # batch norm needs two rows
            eps = []
            for m in range(M):
                with _rng(rngs, m, device):
                    eps.append([torch.randn(shape, device=device) for shape in _noise_shapes(cfg, S * xb.shape[1])])
            eps = [torch.stack([e[i] for e in eps]) for i in range(len(eps[0]))]
            loss, elbo = stacked(xb, eps, betas)
            values = loss.tolist()
            for m, v in enumerate(values):
                if not math.isfinite(v) or v > EXPLODED:
                    raise DivergenceError(f"model {m} of the stack (seed {tcs[m].seed}): loss {v:.3g} at epoch {epoch + 1} "
                                          f"(batch starting at {s}); its last checkpoint is kept")
            elbo_sum += elbo.detach()
            loss_sum += loss.detach() * xb.shape[1]
        for m in range(M):
            rec = {"epoch": epoch + 1, "beta": tcs[m].beta(epoch), "lr": tc0.lr_at(epoch),
                   "train_elbo": float(elbo_sum[m]) / n, "train_loss": float(loss_sum[m]) / n}
            evaluate = (epoch + 1) % tc0.eval_every == 0 or epoch + 1 == tc0.epochs
            if evaluate or epoch + 1 in tc0.kl_snapshot_epochs:
                one = model_at(m)
                with _rng(rngs, m, device):
                    if evaluate:
                        rec.update(evaluate_epoch(one, data))
                    if epoch + 1 in tc0.kl_snapshot_epochs:
                        states[m]["kl_snapshots"][epoch + 1] = [u.tolist() for u in analysis.unit_kl(one, data.x_test)]
            rec["seconds"] = (time.perf_counter() - t0) / M  # each model's share of the stacked epoch
            rec["device"] = f"{where} (stack of {M})"
            rec["commit"] = git_commit()
            states[m]["history"].append(rec)
            states[m]["epoch"] = epoch + 1
        bar.set_postfix(elbo=f"{float(elbo_sum.mean()) / n:.2f}")
        if (epoch + 1) % tc0.checkpoint_every == 0 or epoch + 1 == last:
            save()
    bar.close()
    return [(model_at(m), states[m]) for m in range(M)]


class StackedStep:
    """One training step of M models of one shape at once: ``step(x [M, B, D], eps, betas [M])`` computes
    every model's loss and gradients in one ``vmap`` of the single model's loss, then takes one Adam
    step over the stacked parameters; returns the M losses and the M batch sums of the ELBO (detached).
    ``eps``: the posterior noise, one [M, S*B, units] tensor per draw (:func:`_noise_shapes`)."""

    def __init__(self, models: list[LadderVAE], tc: TrainConfig, device="cpu"):
        self.params, self.buffers = stack_module_state(models)
        self.opt = make_optimizer(list(self.params.values()), tc.lr)
        self.samples = tc.mc_samples * tc.iw_samples
        base = copy.deepcopy(models[0]).to("meta")

        def one_loss(p, b, x, eps, beta):
            with D.given_noise(eps):
                out = functional_call(base, (p, b), (x,), {"n_samples": self.samples, "log_w": tc.iw_samples > 1})
            return loss_of(out, beta, tc.mc_samples, tc.iw_samples), out["elbo"].sum() / out["elbo"].shape[0]

        self._grads = vmap(grad_and_value(one_loss, has_aux=True), in_dims=(0, 0, 0, 0, 0))

    def __call__(self, x, eps, betas):
        grads, (loss, elbo) = self._grads(self.params, self.buffers, x, eps, betas)
        for k, p in self.params.items():
            p.grad = grads[k]
        self.opt.step()
        return loss.detach(), elbo.detach()


def _load_stacked_optimizer(opt, singles: list, params: dict) -> None:
    """Stack the Adam states of the single models (resumed from checkpoints) into ``opt``."""
    states = [o.state_dict()["state"] for o in singles]
    if not states[0]:
        return  # fresh models: Adam makes its state on the first step
    for i, p in enumerate(params.values()):
        st = {k: (torch.stack([s[i][k] for s in states]) if k != "step" else states[0][i][k].clone())
              for k in states[0][i]}
        opt.state[p] = st


def _optimizer_slice(opt, m: int) -> dict:
    """Model ``m``'s part of the stacked Adam state, as a single model's optimizer ``state_dict``."""
    full = opt.state_dict()
    return {"state": {i: {k: (v.clone() if k == "step" else v[m].clone()) for k, v in st.items()}
                      for i, st in full["state"].items()},
            "param_groups": full["param_groups"]}
