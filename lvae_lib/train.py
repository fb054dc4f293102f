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
import subprocess
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from . import analysis
from . import distributions as D
from .config import ModelConfig, TrainConfig, to_dict
from .data import TrainData
from .model import LadderVAE
from .objectives import iw_bound, training_loss


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite, or exploded past :data:`EXPLODED`."""


# a loss (nats per image) no model of these data reaches while learning: training has diverged
EXPLODED = 1e8


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """Adam (lr 1e-3 in the paper) over a model's parameters, or over a list of tensors (the stacked
    models' of :mod:`lvae_lib.stacked`); the fused kernel where this torch build has it.

    On a GPU it is made ``capturable`` (its step count lives on the device), so that
    :class:`GraphedStep` can capture it in a CUDA graph.
    """
    params = list(params.parameters() if isinstance(params, torch.nn.Module) else params)
    cuda = params[0].device.type == "cuda"
    try:
        return torch.optim.Adam(params, lr=lr, fused=True, capturable=cuda)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, capturable=cuda)


def train_step(model: LadderVAE, opt: torch.optim.Optimizer, xb: torch.Tensor, beta: float = 1.0,
               mc_samples: int = 1, iw_samples: int = 1) -> tuple[torch.Tensor, dict]:
    """One optimisation step on the batch ``xb``; returns the (detached) loss and the model's dict.

    This is the step :func:`train` runs and ``python -m lvae_lib bench`` times against
    the plain :mod:`lvae_lib.reference` step.
    """
    loss, out = training_loss(model, xb, beta, mc_samples, iw_samples)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach(), out


def device_label(device) -> str:
    """How records name a device: the GPU's model (``NVIDIA H100 80GB HBM3``), else the device string."""
    return torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else str(device)


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the code this process runs: read once per process, when its first run starts (a
    sweep's workers keep the code they imported), with ``+dirty`` if ``lvae_lib/`` differs from it.
    A copy of the code without its ``.git`` (a cluster node, say) reads ``$LVAE_GIT_COMMIT``."""
    repo = Path(__file__).resolve().parents[1]

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
    The random draws of a replay come from the CUDA generator's state at that moment, as
    those of an eager step would.
    """

    def __init__(self, model: LadderVAE, opt: torch.optim.Optimizer, batch_size: int,
                 mc_samples: int = 1, iw_samples: int = 1):
        p0 = next(model.parameters())
        if p0.device.type != "cuda":
            raise ValueError(f"GraphedStep needs a model on a CUDA device, not {p0.device}")
        self.model, self.opt, self.mc, self.iw = model, opt, mc_samples, iw_samples
        self.x = torch.zeros(batch_size, model.cfg.x_dim, device=p0.device)
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
                train_step(model, opt, self.x, self.beta, self.mc, self.iw)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        opt.zero_grad(set_to_none=True)  # the graph writes the gradients afresh on every replay
        with torch.cuda.graph(graph):
            self.loss, self.out = training_loss(model, self.x, self.beta, self.mc, self.iw)
            self.loss.backward()
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

    def __call__(self, xb: torch.Tensor, beta: float) -> tuple[torch.Tensor, dict]:
        """One step on the full batch ``xb``; returns ``(loss, out)`` as :func:`train_step` does
        (tensors the next replay overwrites)."""
        lr = self.opt.param_groups[0]["lr"]
        if self.graph is None or lr != self.lr:
            self.capture()
        self.x.copy_(xb)
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
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(e, (OSError, RuntimeError)):
            raise CheckpointError(f"cannot write {path}: {e}") from e
        raise


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


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data: TrainData,
    run_dir: str | Path | None = None,
    device: str = "cpu",
    progress: bool = True,
    stop_after: int | None = None,
    init_from: str | Path | None = None,
) -> tuple[LadderVAE, dict]:
    """Train a model; returns ``(model, state)`` with ``state['history']`` the per-epoch records
    and ``state['kl_snapshots']`` {epoch: per-unit KL list} for Fig. 4.

    ``run_dir`` holds ``checkpoint.pt``; when it already holds one for the same
    configs, training resumes there.  ``stop_after`` ends the call after that
    many epochs in total (to split a run across sessions; the next call resumes).
    ``init_from``: a checkpoint (of the same model) to start from when ``run_dir`` has none yet, with a
    fresh optimizer: fine-tuning. One trainer at a time holds ``run_dir`` (:func:`run_dir_lock`).
    """
    if run_dir is None:
        return _train(model_cfg, train_cfg, data, None, device, progress, stop_after, init_from)
    with run_dir_lock(run_dir):
        return _train(model_cfg, train_cfg, data, Path(run_dir) / "checkpoint.pt", device, progress, stop_after,
                      init_from)


def start(model_cfg: ModelConfig, tc: TrainConfig, ckpt_path: Path | None, device="cpu", init_from=None):
    """A model, its optimizer and its training state as :func:`train` starts: resumed from ``ckpt_path``
    when it exists, else fresh from the seed, with (fine-tuning) the weights and RNG state of the
    checkpoint ``init_from``. Returns ``(model, opt, state, resumed)``."""
    torch.manual_seed(tc.seed)
    model = LadderVAE(model_cfg).to(device)
    opt = make_optimizer(model, tc.lr)
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


def _train(model_cfg, tc, data, ckpt_path, device, progress, stop_after, init_from):
    model, opt, state, resumed = start(model_cfg, tc, ckpt_path, device, init_from)
    data = data.subset(tc.train_subset, tc.test_subset).to(device)
    x_train = data.x_train
    saved = [state["epoch"] if resumed else None]  # the epoch of the checkpoint on disk

    def save():
        if ckpt_path is not None:
            save_checkpoint({**state, "model": model.state_dict(), "optimizer": opt.state_dict(),
                             "rng": _rng_state(device)}, ckpt_path)
            saved[0] = state["epoch"]

    if init_from is not None and not resumed:
        save()  # epoch 0 of the fine-tuning run, written atomically

    where = device_label(device)
    graphed = GraphedStep(model, opt, tc.batch_size, tc.mc_samples, tc.iw_samples) if use_cuda_graphs(device) else None
    n = len(x_train)
    last = tc.epochs if stop_after is None else min(tc.epochs, stop_after)
    bar = tqdm(range(state["epoch"], last), desc=f"{model_cfg.inference} L={model_cfg.n_layers}",
               unit="epoch", disable=not progress, initial=state["epoch"], total=last)
    for epoch in bar:
        t0 = time.perf_counter()
        beta, lr = tc.beta(epoch), tc.lr_at(epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        elbo_sum = torch.zeros((), device=device)
        loss_sum = torch.zeros((), device=device)
        for s, xb in epoch_batches(x_train, tc.batch_size, data.binarize):
            if len(xb) < 2 and model_cfg.batch_norm:
                continue  # batch norm needs two rows
            if graphed is not None and len(xb) == tc.batch_size:
                loss, out = graphed(xb, beta)
            else:  # on a CPU, and the last, shorter batch of an epoch
                loss, out = train_step(model, opt, xb, beta, tc.mc_samples, tc.iw_samples)
            value = float(loss)
            if not math.isfinite(value) or value > EXPLODED:  # the in-memory model is discarded
                what = "non-finite loss" if not math.isfinite(value) else f"exploding loss ({value:.3g} nats per image)"
                raise DivergenceError(
                    f"{what} at epoch {epoch + 1} (batch starting at {s}) in {_diagnose(out)}; "
                    + (f"the last checkpoint, of epoch {saved[0]}, is kept at {ckpt_path}" if saved[0] is not None
                       else "no checkpoint was written")
                )
            elbo_sum += out["elbo"].detach().sum() / out["elbo"].shape[0]
            loss_sum += loss.detach() * len(xb)
        rec = {"epoch": epoch + 1, "beta": beta, "lr": lr, "train_elbo": float(elbo_sum) / n,
               "train_loss": float(loss_sum) / n}
        if (epoch + 1) % tc.eval_every == 0 or epoch + 1 == tc.epochs:
            rec.update(evaluate_epoch(model, data))
        if epoch + 1 in tc.kl_snapshot_epochs:
            state["kl_snapshots"][epoch + 1] = [u.tolist() for u in analysis.unit_kl(model, data.x_test)]
        rec["seconds"] = time.perf_counter() - t0
        rec["device"] = where  # a run resumed elsewhere says which epochs ran where ...
        rec["commit"] = git_commit()  # ... and a run resumed after a commit, under which code
        state["history"].append(rec)
        state["epoch"] = epoch + 1
        bar.set_postfix(elbo=f"{rec['train_elbo']:.2f}", beta=f"{beta:.2f}")
        if (epoch + 1) % tc.checkpoint_every == 0 or epoch + 1 == last:
            save()
    bar.close()
    return model, state
