"""How one training step runs: in which precision, and eager or compiled.

* **Precision** (``TrainConfig.precision``, :data:`lvae_lib.config.PRECISIONS`): ``fp32``; ``bf16``, the
  matmuls inside the MLPs in bfloat16 (:class:`lvae_lib.model.Linear`), everything else fp32 (casting the
  whole loss to bf16, with the heads, the merge and the log-probabilities, diverged); ``tf32`` on GPUs.
  It enters the record's key, so a bf16 record is never taken for an fp32 one. Evaluation is fp32.
* **Execution**: ``eager``; ``compiled``, the loss and its gradient through ``torch.compile`` (inductor),
  worth its compile time (a minute on a CPU) only in long runs (:func:`choose`); on a GPU an eager step of
  one model is replayed as a CUDA graph (:class:`lvae_lib.train.GraphedStep`) and a compiled one uses
  inductor's CUDA graphs. In every mode the posterior noise is drawn eagerly, from each model's own
  random stream, and handed to the model (:func:`lvae_lib.distributions.given_noise`): the modes draw
  the same numbers, so they differ by floating-point rounding only.

:class:`SingleStep` (one model) and :class:`lvae_lib.stacked.StackedStep` (M models of one shape) take
the same call, ``step(x [M, B, D], eps, betas) -> (loss [M], elbo_sum [M], out)`` (``betas``: M floats), for the one
training loop of :func:`lvae_lib.train.fit`.
"""
from __future__ import annotations

import contextlib
import functools

import torch

from . import distributions as D
from .config import ModelConfig, TrainConfig
from .model import LadderVAE, Linear
from .objectives import training_loss

# a run of fewer steps than this trains eagerly: compiling costs about a minute on a CPU (seconds when
# inductor's cache already holds the graphs), which a 2-epoch smoke run or a test would never repay
COMPILE_MIN_STEPS = 20_000


def noise_shapes(cfg: ModelConfig, rows: int) -> list[tuple[int, int]]:
    """The shapes of a step's posterior draws, in the order the model draws them."""
    order = range(cfg.n_layers) if cfg.inference == "bottom_up" else reversed(range(cfg.n_layers))
    return [(rows, cfg.latents[i]) for i in order]


def check_precision(precision: str, device) -> None:
    """Refuse a precision this device cannot run, naming both."""
    if precision == "tf32" and torch.device(device).type != "cuda":
        raise ValueError(f"precision 'tf32' needs a CUDA device (TF32 is a GPU tensor-core format), not {device!r}; "
                         f"use 'fp32' or 'bf16'")


@contextlib.contextmanager
def precision(models, name: str):
    """Inside, the training step of ``models`` computes in precision ``name``; restored on the way out."""
    if name == "fp32":
        yield
        return
    if name == "tf32":
        old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
        return
    layers = [m for model in models for m in model.modules() if isinstance(m, Linear)]
    for m in layers:
        m.matmul_dtype = torch.bfloat16
    try:
        yield
    finally:
        for m in layers:
            del m.matmul_dtype  # back to the class's None: fp32


def choose(tc: TrainConfig, n_train: int, compile: bool | None) -> tuple[bool, str]:
    """Whether to compile the step of a run of ``tc`` over ``n_train`` images, and why (for the log).
    ``compile``: True or False to force it; None (auto) compiles runs of at least :data:`COMPILE_MIN_STEPS`."""
    steps = tc.epochs * -(-n_train // tc.batch_size)
    if compile is False:
        return False, "eager step (compile off)"
    if not hasattr(torch, "compile"):
        return False, f"eager step: torch {torch.__version__} has no torch.compile"
    if compile is None and steps < COMPILE_MIN_STEPS:
        return False, f"eager step: {steps:,} steps are fewer than the {COMPILE_MIN_STEPS:,} that repay compiling"
    return True, f"compiled step (torch.compile, {steps:,} steps)"


class Compiled:
    """``fn`` through ``torch.compile``, falling back to ``fn`` itself (once, with the reason printed) when
    compiling fails: a missing C++ compiler, an unsupported operator. ``buffers()`` (the model's batch-norm
    statistics, a dict of tensors) are put back as they were before a failed first call, then ``fn`` runs."""

    def __init__(self, fn, device, buffers, log=print):
        cuda = torch.device(device).type == "cuda"
        self.fn, self.buffers, self.log = fn, buffers, log
        self.compiled = torch.compile(fn, dynamic=False, mode="reduce-overhead" if cuda else None)
        # each call is a new training step: its CUDA graph may overwrite the last step's outputs, which the
        # loop has used by then (without this, still-live outputs make the graphs re-record)
        self.mark = torch.compiler.cudagraph_mark_step_begin if cuda else (lambda: None)
        self.ok: bool | None = None  # unknown until the first call

    def __call__(self, *args):
        if self.ok is False:
            return self.fn(*args)
        self.mark()
        if self.ok:
            return self.compiled(*args)
        saved = {k: v.clone() for k, v in self.buffers().items()}
        try:
            out = self.compiled(*args)
        except Exception as e:  # noqa: BLE001 - any failure to compile: train eagerly, and say why
            with torch.no_grad():
                for k, v in self.buffers().items():
                    v.copy_(saved[k])
            self.ok = False
            self.log(f"compiling the step failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                     f"training with the eager step instead")
            return self.fn(*args)
        self.ok = True
        return out


class SingleStep:
    """The training step of one model: ``step(x [1, B, D], eps, betas [1])``, as :class:`lvae_lib.stacked.StackedStep`
    takes it for M models; returns the loss [1], the batch sum of the ELBO [1] and the model's dict
    (``log_px`` and ``kl``, for naming what diverged), all detached. Adam (fused) steps eagerly."""

    def __init__(self, model: LadderVAE, opt: torch.optim.Optimizer, tc: TrainConfig, device, compiled: bool,
                 log=print):
        from .train import GraphedStep, clip_, use_cuda_graphs

        self.model, self.opt, self.tc = model, opt, tc
        self.clip = functools.partial(clip_, clip_norm=tc.clip_norm, clip_value=tc.clip_value)
        self.mode = "compiled" if compiled else "eager"
        self.graphed = None
        if not compiled and use_cuda_graphs(device):
            self.graphed, self.mode = GraphedStep(model, opt, tc.batch_size, tc.mc_samples, tc.iw_samples,
                                                  (tc.clip_norm, tc.clip_value)), "graphed"
        self.loss = (Compiled(self._loss, device, lambda: dict(self.model.named_buffers()), log) if compiled
                     else self._loss)

    def _loss(self, x, eps, beta):
        with D.given_noise(eps):
            loss, out = training_loss(self.model, x, beta, self.tc.mc_samples, self.tc.iw_samples)
        return loss, out["elbo"].sum() / out["elbo"].shape[0], out["log_px"], out["kl"]

    def __call__(self, x, eps, betas):
        xb, eps = x[0], [e[0] for e in eps]
        self.model.train()
        with precision([self.model], self.tc.precision):
            if self.graphed is not None and len(xb) == self.tc.batch_size:
                loss, full = self.graphed(xb, eps, betas[0])
                elbo = full["elbo"].detach().sum() / full["elbo"].shape[0]
                out = {"log_px": full["log_px"], "kl": full["kl"]}  # what the other branch returns
            else:  # beta as a tensor when compiled (a float would be compiled anew for each warm-up value)
                beta = torch.tensor(betas[0], device=xb.device) if self.mode == "compiled" else betas[0]
                loss, elbo, log_px, kl = self.loss(xb, eps, beta)
                out = {"log_px": log_px, "kl": kl}
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                self.clip([p.grad for p in self.model.parameters()])
                self.opt.step()
        return loss.detach().reshape(1), elbo.detach().reshape(1), {k: v.detach() for k, v in out.items()}

    def set_lr(self, lr: float) -> None:
        for g in self.opt.param_groups:
            g["lr"] = lr

    def model_at(self, m: int) -> LadderVAE:
        return self.model

    def optimizer_state(self, m: int) -> dict:
        return self.opt.state_dict()
