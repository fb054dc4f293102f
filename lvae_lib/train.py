"""Training loop: the same function serves a seconds-long CPU smoke run and a paper-length GPU run.

* Data live on the device as one tensor; each epoch draws a fresh Bernoulli
  binarization (dynamic binarization) and a fresh permutation, no DataLoader.
* Warm-up (eq. 20): beta rises linearly 0 -> 1 over ``warmup_epochs``.
* Checkpoints hold model, optimizer, RNG state and the metric history; a run
  started again with the same configs resumes from its last checkpoint and
  gives the same result on CPU as an uninterrupted run.
* A non-finite or exploding loss stops the run with :class:`DivergenceError`, naming the
  epoch, the layer and the checkpoint that is kept. Checkpoints are written atomically, read
  without unpickling code, and a run dir is held by one trainer at a time.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import math
import os
import platform
import subprocess
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import analysis
from . import distributions as D
from .config import ModelConfig, TrainConfig, to_dict
from .files import atomic
from .data import TrainData
from .model import LadderVAE
from .objectives import iw_bound, training_loss


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite, or exploded past :data:`EXPLODED`."""


# a loss (nats per image) no model of these data reaches while learning: training has diverged
EXPLODED = 1e8


def make_optimizer(params, lr: float, eps: float = 1e-8) -> torch.optim.Optimizer:
    """Adam (lr 1e-3 in the paper) over a model's parameters, or over a list of tensors (the stacked
    models' of :mod:`lvae_lib.stacked`); the fused kernel where this torch build has it.

    On a GPU it is made ``capturable`` (its step count lives on the device), so that
    :class:`GraphedStep` can capture it in a CUDA graph.
    """
    params = list(params.parameters() if isinstance(params, torch.nn.Module) else params)
    cuda = params[0].device.type == "cuda"
    try:
        return torch.optim.Adam(params, lr=lr, eps=eps, fused=True, capturable=cuda)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, eps=eps, capturable=cuda)


def clip_(grads: list, clip_norm: float = 0.0, clip_value: float = 0.0, stacked: bool = False) -> None:
    """The authors' gradient clipping, in place: scale the gradient to a total norm of at most ``clip_norm``
    (as ``torch.nn.utils.clip_grad_norm_``: by ``clip_norm / (norm + 1e-6)`` where that is below 1), then
    clip each element to ``+- clip_value``; 0 turns either off. ``stacked``: the tensors hold M models along
    their first axis, and each model's norm is its own. No host sync (it runs inside CUDA graphs)."""
    grads = [g for g in grads if g is not None]
    if clip_norm > 0 and grads:
        sq = torch.stack([g.detach().pow(2).flatten(1).sum(1) if stacked else g.detach().pow(2).sum() for g in grads])
        scale = (clip_norm / (sq.sum(0).sqrt() + 1e-6)).clamp(max=1.0)  # [M], or a scalar
        for g in grads:
            g.mul_(scale.view(-1, *[1] * (g.dim() - 1)) if stacked else scale)
    if clip_value > 0:
        for g in grads:
            g.clamp_(-clip_value, clip_value)


def train_step(model: LadderVAE, opt: torch.optim.Optimizer, xb: torch.Tensor, beta: float = 1.0,
               mc_samples: int = 1, iw_samples: int = 1, clip_norm: float = 0.0,
               clip_value: float = 0.0) -> tuple[torch.Tensor, dict]:
    """One optimisation step on the batch ``xb``; returns the (detached) loss and the model's dict.

    This is the step :func:`train` runs and ``python -m lvae_lib bench`` times against
    the plain :mod:`lvae_lib.reference` step.
    """
    loss, out = training_loss(model, xb, beta, mc_samples, iw_samples)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    clip_([p.grad for p in model.parameters()], clip_norm, clip_value)
    opt.step()
    return loss.detach(), out


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what :mod:`platform` knows of it."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def device_label(device) -> str:
    """How records name a device: the GPU's model (``NVIDIA H100 80GB HBM3``), else the device string with the
    processor's model, ``cpu (Intel(R) Xeon(R) Processor)``: fp32 training is not bit-reproducible from one
    processor model to another (their kernels round differently), so a record says on which it ran."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device} ({cpu_model()})" if kind == "cpu" else str(device)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the code this process runs: read once per process, when its first run starts (a
    sweep's workers keep the code they imported), with ``+dirty`` if ``lvae_lib/`` differs from it.
    ``$LVAE_GIT_COMMIT``, where set, comes first: a copy of the code without its ``.git``, or with a stale one
    (a cluster node, a GPU slot), names its commit so."""
    repo = Path(__file__).resolve().parents[1]
    if os.environ.get("LVAE_GIT_COMMIT"):  # set by whoever copied the code (a GPU slot): it knows the commit
        return os.environ["LVAE_GIT_COMMIT"]

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head:
            return head + ("+dirty" if git("status", "--porcelain", "--", "lvae_lib") else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("LVAE_GIT_COMMIT", "unknown")


def use_cuda_graphs(device) -> bool:
    """Whether :func:`train` replays its step as a CUDA graph: on a GPU, unless ``LVAE_CUDA_GRAPHS=0``."""
    return torch.device(device).type == "cuda" and os.environ.get("LVAE_CUDA_GRAPHS", "1") != "0"


class GraphedStep:
    """:func:`train_step` on a full batch, captured once as a CUDA graph and replayed for each batch.

    On a GPU the 5-layer model's step is some 700 small kernels, and launching them one by one
    from Python costs more than running them; one replay launches them all. The graph reads its
    batch from ``self.x`` and beta from a device scalar, so the warm-up needs no new capture;
    a new learning rate (the fine-tuning decays) is captured anew. Capturing needs a few
    warm-up steps: they are undone, so model and optimizer are exactly as they were.
    The posterior noise is read from ``self.eps`` too, drawn by the caller from the model's random stream.
    """

    def __init__(self, model: LadderVAE, opt: torch.optim.Optimizer, batch_size: int,
                 mc_samples: int = 1, iw_samples: int = 1, clip: tuple[float, float] = (0.0, 0.0)):
        p0 = next(model.parameters())
        if p0.device.type != "cuda":
            raise ValueError(f"GraphedStep needs a model on a CUDA device, not {p0.device}")
        self.model, self.opt, self.mc, self.iw, self.clip = model, opt, mc_samples, iw_samples, clip
        from .step import noise_shapes

        self.x = torch.zeros(batch_size, model.cfg.x_dim, device=p0.device)
        self.eps = [torch.zeros(s, device=p0.device) for s in noise_shapes(model.cfg, mc_samples * iw_samples * batch_size)]
        self.beta = torch.ones((), device=p0.device)
        self.graph, self.lr = None, None
        for g in opt.param_groups:  # a checkpoint of a CPU run loads as not capturable
            g["capturable"] = True
            for p in g["params"]:
                st = opt.state.get(p, {})
                if "step" in st and st["step"].device != p.device:
                    st["step"] = st["step"].to(p.device, torch.float32)

    def capture(self):
        """Capture (again) the step with the current learning rate; called by the first step."""
        model, opt = self.model, self.opt
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        opt_before = {p: {k: v.clone() for k, v in opt.state[p].items()} for p in opt.state}
        self.graph = None  # frees the memory of an earlier capture
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up, as torch.cuda.graph asks (this also creates Adam's state)
            for _ in range(3):
                with D.given_noise(self.eps):
                    train_step(model, opt, self.x, self.beta, self.mc, self.iw, *self.clip)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)  # the graph writes the gradients afresh on every replay
        with torch.cuda.graph(graph), D.given_noise(self.eps):
            self.loss, self.out = training_loss(model, self.x, self.beta, self.mc, self.iw)
            self.loss.backward()
            clip_([p.grad for p in model.parameters()], *self.clip)
            opt.step()
        with torch.no_grad():  # undo the warm-up and capture steps, in place: the graph keeps these tensors
            for k, v in model.state_dict().items():
                v.copy_(before[k])
            for p, st in opt.state.items():
                for k, v in st.items():
                    if p in opt_before:
                        v.copy_(opt_before[p][k])
                    else:  # the state Adam makes on its first step: step 0, zero moments
                        v.zero_()
        self.graph, self.lr = graph, opt.param_groups[0]["lr"]

    def __call__(self, xb: torch.Tensor, eps: list, beta: float) -> tuple[torch.Tensor, dict]:
        """One step on the full batch ``xb`` with the posterior noise ``eps`` (:func:`lvae_lib.step.noise_shapes`);
        returns ``(loss, out)`` as :func:`train_step` does (tensors the next replay overwrites)."""
        lr = self.opt.param_groups[0]["lr"]
        if self.graph is None or lr != self.lr:
            self.capture()
        self.x.copy_(xb)
        for buf, e in zip(self.eps, eps):
            buf.copy_(e)
        self.beta.fill_(beta)
        self.graph.replay()
        return self.loss.detach(), self.out


def epoch_batches(x_train: torch.Tensor, batch_size: int, binarize: bool = True):
    """One epoch of minibatches: a fresh binarization (dynamic binarization) and a fresh permutation.

    Yields ``(start, batch)``; the data stay one tensor on their device, no DataLoader.
    """
    xb_all = D.binarize(x_train) if binarize else x_train
    perm = torch.randperm(len(x_train), device=x_train.device)
    for s in range(0, len(x_train), batch_size):
        yield s, xb_all[perm[s : s + batch_size]]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or a run dir that another trainer holds."""


def save_checkpoint(obj, path: Path) -> None:
    """Write ``obj`` to ``path`` atomically: into a temporary file of this process's own beside it, then
    renamed into place, so a kill at any moment leaves the old checkpoint or the new one, never a torn
    one. A failure to write (read-only folder, full disk) is a :class:`CheckpointError` naming the path."""
    path = Path(path)
    try:
        with atomic(path) as tmp, open(tmp, "wb") as f:
            torch.save(obj, f)
    except (OSError, RuntimeError) as e:
        # torch.save's words for a write cut short by a full disk
        full = getattr(e, "errno", None) == 28 or any(w in str(e) for w in ("unexpected pos", "basic_ios"))
        why = "no space left on the device" if full else str(e.strerror if isinstance(e, OSError) else e)
        why = why.removeprefix(f"cannot write {path}: ")  # files.atomic's words, not said twice
        raise CheckpointError(f"cannot write {path}: {why}; the last checkpoint written is kept") from e


def load_checkpoint(path: Path, device="cpu") -> dict:
    """Read a checkpoint without unpickling code (``weights_only``): tensors, numbers, strings, lists and
    dicts only. A torn, foreign or malicious file is refused with an error that names it."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read: name the file and say what to do
        raise CheckpointError(f"cannot read the checkpoint {path} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                              f"move it away to start this run afresh") from e


@contextlib.contextmanager
def run_dir_lock(run_dir: Path):
    """Hold ``run_dir`` for one trainer: a second trainer on the same folder (a second sweep, an orphaned
    worker) is refused at once instead of racing it for the checkpoint."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise CheckpointError(f"{run_dir} is in use by another trainer ({holder}); wait for it to finish "
                                  f"or stop it") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        for stale in run_dir.glob(".checkpoint.pt.*.tmp"):  # left by a trainer killed mid-write
            stale.unlink(missing_ok=True)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _rng_state(device) -> dict:
    s = {"cpu": torch.get_rng_state()}
    if torch.device(device).type == "cuda":
        s["cuda"] = torch.cuda.get_rng_state(device)
    return s


def _set_rng_state(s: dict, device) -> None:
    # a checkpoint loaded with map_location="cuda" has its states on the GPU; the setters want CPU bytes
    torch.set_rng_state(s["cpu"].cpu())
    if "cuda" in s and torch.device(device).type == "cuda":
        torch.cuda.set_rng_state(s["cuda"].cpu(), device)


def _diagnose(out: dict) -> str:
    """Which part of the objective went non-finite."""
    bad = []
    if not torch.isfinite(out["log_px"]).all():
        bad.append("log p(x|z_1) (the output layer)")
    kl = out["kl"]
    for i in range(kl.shape[-1]):
        if not torch.isfinite(kl[..., i]).all():
            bad.append(f"KL of latent layer {i + 1}")
    return ", ".join(bad) or "the loss (all terms finite: check the learning rate)"


def evaluate_epoch(model: LadderVAE, data: TrainData, au_images: int = 2000) -> dict:
    """Test metrics recorded during training: L_1, KL per layer, active units per layer."""
    x = data.x_test
    rec = {"test_elbo": float(iw_bound(model, x, k=1, batch_size=1000, progress=False).mean())}
    for i, v in enumerate(analysis.layer_kl(model, x)):
        rec[f"kl_{i + 1}"] = float(v)
    for i, v in enumerate(analysis.active_units(model, x[:au_images])):
        rec[f"active_{i + 1}"] = v
    return rec


def checkpoint_path(run_dir) -> Path:
    """Where a run dir keeps its checkpoint: the one owner of that name."""
    return Path(run_dir) / "checkpoint.pt"


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: TrainData,
    run_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
    init_from: str | Path | None = None,
    compile: bool | None = False,
) -> tuple[LadderVAE, dict]:
    """Train a model; returns ``(model, state)`` with ``state['history']`` the per-epoch records
    and ``state['kl_snapshots']`` {epoch: per-unit KL list} for Fig. 4.

    ``run_dir`` holds ``checkpoint.pt``; when it already holds one for the same
    configs, training resumes there.  ``stop_after`` ends the call after that
    many epochs in total (to split a run across sessions; the next call resumes).
    ``init_from``: a checkpoint (of the same model) to start from when ``run_dir`` has none yet, with a
    fresh optimizer: fine-tuning. One trainer at a time holds ``run_dir`` (:func:`run_dir_lock`).
    ``compile``: the step through ``torch.compile`` (None: when the run is long enough, :func:`lvae_lib.step.choose`).
    """
    with contextlib.ExitStack() as lock:
        if run_dir is not None:
            lock.enter_context(run_dir_lock(run_dir))
        ckpt = checkpoint_path(run_dir) if run_dir is not None else None
        return fit(model_cfg, [train_cfg], data, [ckpt], device, progress, stop_after, init_from, compile)[0]


def start(model_cfg: ModelConfig, tc: TrainConfig, ckpt_path: Path | None, device="cpu", init_from=None):
    """A model, its optimizer and its training state as :func:`train` starts: resumed from ``ckpt_path``
    when it exists, else fresh from the seed, with (fine-tuning) the weights and RNG state of the
    checkpoint ``init_from``. Returns ``(model, opt, state, resumed)``."""
    torch.manual_seed(tc.seed)
    model = LadderVAE(model_cfg).to(device)
    opt = make_optimizer(model, tc.lr, tc.adam_eps)
    state = {"epoch": 0, "history": [], "kl_snapshots": {}, "model_cfg": to_dict(model_cfg),
             "train_cfg": to_dict(tc)}
    if ckpt_path is not None and Path(ckpt_path).exists():
        ck = load_checkpoint(ckpt_path, device)
        if ck["model_cfg"] != state["model_cfg"] or ck["train_cfg"] != state["train_cfg"]:
            raise ValueError(f"{ckpt_path} was written for other configs; use a new run_dir or delete it")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        _set_rng_state(ck["rng"], device)
        return model, opt, {k: ck[k] for k in state}, True
    if init_from is not None:  # fine-tuning: the trained model and its RNG state, a fresh optimizer
        ck = load_checkpoint(init_from, device)
        if ck["model_cfg"] != state["model_cfg"]:
            raise ValueError(f"{init_from} holds another model than {model_cfg}")
        model.load_state_dict(ck["model"])
        _set_rng_state(ck["rng"], device)
    return model, opt, state, False


@contextlib.contextmanager
def _rng(states: list, m: int, device):
    """The global generator in model ``m``'s state for the draws inside; its new state kept afterwards.
    With one model nothing is swapped (its stream simply goes on; the hot path of a GPU step): its state
    is read when a checkpoint is written."""
    if len(states) == 1:
        yield
        return
    _set_rng_state(states[m], device)
    try:
        yield
    finally:
        states[m] = _rng_state(device)


# on a GPU the loss is read back (a host sync) every this many steps to check for divergence; on a CPU every step
CHECK_EVERY_CUDA = 50


def fit(cfg: ModelConfig, tcs: list[TrainConfig], data: TrainData, ckpts: list, device="cpu", progress=True,
        stop_after=None, init_from=None, compile: bool | None = False, log=None, deadline: float | None = None):
    """The one training loop: M models of one shape (configs equal but for seed and warm-up), each with
    its checkpoint in ``ckpts`` (or None), trained by one step (:class:`lvae_lib.step.SingleStep` for one,
    :class:`lvae_lib.stacked.StackedStep` for several). Each model keeps its own random stream for its
    data order, binarisation, noise and evaluations. Returns ``[(model, state)]``; callers hold the locks.
    ``deadline`` (a ``time.time()``): stop, with a checkpoint, before an epoch that would end after it."""
    from .step import SingleStep, check_precision, choose, noise_shapes

    tc0, M = tcs[0], len(tcs)
    check_precision(tc0.precision, device)
    log = log or (lambda msg: tqdm.write(msg) if progress else None)
    started, rngs = [], []
    for tc, ck in zip(tcs, ckpts):
        started.append(start(cfg, tc, ck, device, init_from))
        rngs.append(_rng_state(device))
    models, opts, states, resumed = (list(t) for t in zip(*started))
    if len({s["epoch"] for s in states}) != 1:
        raise ValueError(f"stacked models must resume from the same epoch, not {[s['epoch'] for s in states]}")
    data = data.subset(tc0.train_subset, tc0.test_subset).to(device)
    x_train, n = data.x_train, len(data.x_train)
    compiled, why = choose(tc0, n, compile)
    if M == 1:
        engine = SingleStep(models[0], opts[0], tc0, device, compiled, log)
    else:
        from .stacked import StackedStep

        engine = StackedStep(models, tc0, device, compiled, opts, log)
    log(f"{M} x {cfg.inference} L={cfg.n_layers}, precision {tc0.precision}: {why}")
    saved = [s["epoch"] if r else None for s, r in zip(states, resumed)]  # the epoch of each checkpoint on disk

    def save():
        if M == 1:  # one model's stream is the global one (_rng swaps nothing): its state now
            rngs[0] = _rng_state(device)
        for m, ck in enumerate(ckpts):
            if ck is not None:
                save_checkpoint({**states[m], "model": engine.model_at(m).state_dict(),
                                 "optimizer": engine.optimizer_state(m), "rng": rngs[m]}, ck)
                saved[m] = states[m]["epoch"]

    if init_from is not None and not resumed[0]:
        save()  # epoch 0 of the fine-tuning run, written atomically

    where = device_label(device) + (f" (stack of {M})" if M > 1 else "")
    check_every = CHECK_EVERY_CUDA if torch.device(device).type == "cuda" else 1
    S = tc0.mc_samples * tc0.iw_samples
    first = states[0]["epoch"]
    last = tc0.epochs if stop_after is None else min(tc0.epochs, stop_after)
    desc = f"{cfg.inference} L={cfg.n_layers}" if M == 1 else f"{M} x {cfg.inference} L={cfg.n_layers}"
    bar = tqdm(range(first, last), desc=desc, unit="epoch", disable=not progress, initial=first, total=last)
    for epoch in bar:
        t0 = time.perf_counter()
        betas, lr = [tc.beta(epoch) for tc in tcs], tc0.lr_at(epoch)
        engine.set_lr(lr)
        batches = []
        for m in range(M):  # each model's epoch: its binarisation and permutation, from its own stream
            with _rng(rngs, m, device):
                batches.append((D.binarize(x_train) if data.binarize else x_train, torch.randperm(n, device=device)))
        elbo_sum = torch.zeros(M, device=device)
        loss_sum = torch.zeros(M, device=device)
        losses = []
        for step_i, s in enumerate(range(0, n, tc0.batch_size)):
            xb = torch.stack([xa[perm[s: s + tc0.batch_size]] for xa, perm in batches])
            if xb.shape[1] < 2 and cfg.batch_norm:
                continue  # batch norm needs two rows
            eps = []
            for m in range(M):
                with _rng(rngs, m, device):
                    eps.append([torch.randn(shape, device=device) for shape in noise_shapes(cfg, S * xb.shape[1])])
            eps = [torch.stack([e[i] for e in eps]) for i in range(len(eps[0]))]
            loss, elbo, out = engine(xb, eps, betas)
            # the loss, and the full ELBO too: under warm-up (beta = 0) the loss leaves an exploding KL out
            losses.append(torch.maximum(loss, -elbo / xb.shape[1]))
            if len(losses) >= check_every or s + tc0.batch_size >= n:
                _check(torch.stack(losses).max(0).values, out, epoch, s, tcs, saved, ckpts, check_every)
                losses = []
            elbo_sum += elbo
            loss_sum += loss * xb.shape[1]
        for m in range(M):
            rec = {"epoch": epoch + 1, "beta": betas[m], "lr": lr, "train_elbo": float(elbo_sum[m]) / n,
                   "train_loss": float(loss_sum[m]) / n}
            evaluate = (epoch + 1) % tc0.eval_every == 0 or epoch + 1 == tc0.epochs
            if evaluate or epoch + 1 in tc0.kl_snapshot_epochs:
                one = engine.model_at(m)
                with _rng(rngs, m, device):
                    if evaluate:
                        rec.update(evaluate_epoch(one, data))
                    if epoch + 1 in tc0.kl_snapshot_epochs:
                        states[m]["kl_snapshots"][epoch + 1] = [u.tolist() for u in analysis.unit_kl(one, data.x_test)]
            rec["seconds"] = (time.perf_counter() - t0) / M  # each model's share of a stacked epoch
            rec["device"] = where  # a run resumed elsewhere says which epochs ran where ...
            rec["commit"] = git_commit()  # ... and a run resumed after a commit, under which code
            rec["step"] = engine.mode  # eager, compiled or graphed
            states[m]["history"].append(rec)
            states[m]["epoch"] = epoch + 1
        bar.set_postfix(elbo=f"{float(elbo_sum.mean()) / n:.2f}", beta=f"{betas[0]:.2f}")
        out_of_time = deadline is not None and time.time() + (time.perf_counter() - t0) * 1.2 > deadline
        if (epoch + 1) % tc0.checkpoint_every == 0 or epoch + 1 == last or out_of_time:
            save()
        if out_of_time:
            log(f"stopped after epoch {epoch + 1}: the next would end after the deadline")
            break
    bar.close()
    return [(engine.model_at(m) if M > 1 else models[0], states[m]) for m in range(M)]


def _check(worst: torch.Tensor, out: dict, epoch: int, s: int, tcs, saved, ckpts, every: int) -> None:
    """Raise :class:`DivergenceError` if a model's loss (its worst over the last ``every`` steps) is not
    finite or exploded, naming the epoch, the batch, what diverged and the checkpoint that is kept."""
    for m, value in enumerate(worst.tolist()):
        if math.isfinite(value) and value <= EXPLODED:
            continue
        what = "non-finite loss" if not math.isfinite(value) else f"exploding loss ({value:.3g} nats per image)"
        where = f"(batch starting at {s})" if every == 1 else f"(within the {every} steps up to the batch at {s})"
        who = f"model {m} of the stack (seed {tcs[m].seed}): " if len(tcs) > 1 else ""
        part = _diagnose({k: v[m] if len(tcs) > 1 else v for k, v in out.items()}) if every == 1 else "the loss"
        kept = (f"the last checkpoint, of epoch {saved[m]}, is kept at {ckpts[m]}" if saved[m] is not None
                else "no checkpoint was written")
        raise DivergenceError(f"{who}{what} at epoch {epoch + 1} {where} in {part}; {kept}")
