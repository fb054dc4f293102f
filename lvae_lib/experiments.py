"""Budgets, the experiment registry, and the runner that fills the results store.

A **budget** fixes the protocol in one place:

* ``smoke``: seconds. 1,000 training and 500 test images, 2 epochs, K = 10. Proves the code path.
* ``cpu``: what a 2-core machine does in hours. Full data, MNIST 200 epochs (OMNIGLOT 150), warm-up
  20 epochs (10% of training, the paper's ratio), test L_1000; fine-tuning 20 epochs with lr x 0.75
  every 2 (the paper's ten decays). Fine-tuning with 10 MC x 10 IW samples costs 100 samples per image:
  measured 1.0 s per batch of 256 on 2 threads (1.9 s on one), so the longest run (Table 1, IW = 10)
  takes about 1.3 h on 2 cores, 2.4 h as one of two one-thread jobs.
* ``paper``: the paper's protocol. MNIST and NORB 2000 epochs, OMNIGLOT 1500, warm-up 200, test L_5000;
  fine-tuning 2000 more epochs with lr x 0.75 every 200 and 10 MC / 10 IW samples.

The **registry** (:data:`FIGURES`) names the runs each figure or table needs; a run needed by
several figures is one record, keyed by the hash of its full configuration.
"""
from __future__ import annotations

import functools
import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from .config import VARIANTS, TrainConfig, config_hash, preset, to_dict

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "results"
DEFAULT_WORK = ROOT / "runs"  # checkpoints (git-ignored)
# What the notebooks show by default: "auto" is, per figure, the largest budget whose records for that
# figure are all committed (paper, then cpu), else smoke. See resolve_budget.
DEFAULT_BUDGET = "auto"


@dataclass(frozen=True)
class Budget:
    name: str
    epochs: dict  # dataset -> epochs
    warmup_fraction: float  # N_t as a fraction of the epochs (paper: 200 / 2000)
    eval_k: int
    train_subset: int = 0
    test_subset: int = 0
    eval_every: int = 10
    finetune_epochs: int = 0
    finetune_decay_every: int = 0
    kl_snapshots: tuple = ()  # fractions of training at which per-unit KL is stored (Fig. 4)
    analysis_images: int = 2000  # test images for active units, PCA


BUDGETS = {
    "smoke": Budget("smoke", {"mnist": 2, "omniglot": 2, "omniglot28": 2, "norb": 2}, 0.5, eval_k=10,
                    train_subset=1000, test_subset=500, eval_every=1, finetune_epochs=2, finetune_decay_every=1,
                    kl_snapshots=(0.5, 1.0), analysis_images=500),
    "cpu": Budget("cpu", {"mnist": 200, "omniglot": 150, "omniglot28": 150, "norb": 200}, 0.1, eval_k=1000,
                  eval_every=10, finetune_epochs=20, finetune_decay_every=2, kl_snapshots=(0.05, 0.1, 0.25, 0.5, 1.0)),
    "paper": Budget("paper", {"mnist": 2000, "omniglot": 1500, "omniglot28": 1500, "norb": 2000}, 0.1, eval_k=5000,
                    eval_every=20, finetune_epochs=2000, finetune_decay_every=200,
                    kl_snapshots=(0.05, 0.1, 0.25, 0.5, 1.0)),
}


def get_budget(name: str) -> Budget:
    """A budget by name (``smoke``, ``cpu``, ``paper``); for ``default``/``auto`` see :func:`resolve_budget`."""
    if name in ("default", "auto"):
        raise KeyError(f"budget {name!r} depends on the figure: use resolve_budget(target, {name!r})")
    if name not in BUDGETS:
        raise KeyError(f"unknown budget {name!r}; choose one of {', '.join(BUDGETS)}")
    return BUDGETS[name]


@dataclass(frozen=True)
class Run:
    """One trained model of the registry."""

    dataset: str
    variant: str  # a preset name, e.g. "LVAE+BN+WU"
    layers: int
    # "" | "ft" (10 MC, 1 IW) | "ft-iw10" (10 MC, 10 IW): Table 1 | "ft-control": the same extra epochs
    # and lr schedule with 1 MC, 1 IW sample, so that "fine-tuning helps" compares like with like
    finetune: str = ""
    seed: int = 0

    @property
    def label(self) -> str:
        return f"{self.variant}-L{self.layers}" + (f"-{self.finetune}" if self.finetune else "")

    def configs(self, budget: Budget):
        mcfg, warm = preset(self.variant, self.layers, self.dataset)
        e = budget.epochs[self.dataset]
        tc = TrainConfig(epochs=e, warmup_epochs=round(e * budget.warmup_fraction) if warm else 0,
                         eval_every=budget.eval_every, eval_k=budget.eval_k, seed=self.seed,
                         train_subset=budget.train_subset, test_subset=budget.test_subset,
                         checkpoint_every=max(1, budget.eval_every),
                         kl_snapshot_epochs=tuple(sorted({max(1, round(f * e)) for f in budget.kl_snapshots})))
        return mcfg, tc

    def finetune_config(self, budget: Budget) -> TrainConfig:
        _, tc = self.configs(budget)
        iw = 10 if self.finetune == "ft-iw10" else 1
        mc = 1 if self.finetune == "ft-control" else 10
        # a fine-tuning epoch costs 10-100 base epochs: checkpoint every epoch, evaluate ten times
        return replace(tc, epochs=budget.finetune_epochs, warmup_epochs=0, mc_samples=mc, iw_samples=iw,
                       lr_decay=0.75, lr_decay_every=budget.finetune_decay_every, kl_snapshot_epochs=(),
                       eval_every=max(1, budget.finetune_epochs // 10), checkpoint_every=1)

    def base(self) -> "Run":
        return replace(self, finetune="")

    def key(self, budget: Budget) -> str:
        mcfg, tc = self.configs(budget)
        parts = [mcfg, tc, {"dataset": self.dataset, "eval_k": budget.eval_k}]
        if self.finetune:
            parts.append(self.finetune_config(budget))
        return config_hash(*parts)


VARIANTS4 = ("VAE", "VAE+BN", "VAE+BN+WU", "LVAE+BN+WU")


def grid(dataset: str, variants=VARIANTS4) -> list[Run]:
    """Depths 1-5 for every variant; the LVAE starts at 2 layers (with one layer it is the VAE)."""
    return [Run(dataset, v, L) for v in variants for L in range(1, 6) if not (VARIANTS[v].ladder and L == 1)]


FIVE = [Run("mnist", v, 5) for v in VARIANTS4]
FIGURES: dict[str, list[Run]] = {
    "fig2": FIVE,
    "fig3": grid("mnist"),
    "fig4": FIVE,
    "fig5": FIVE,
    "fig6": FIVE,
    "fig7": grid("mnist", VARIANTS4 + ("LVAE+WU",)),
    "fig8": grid("omniglot28"),
    "fig9_10": [Run("mnist", "LVAE+BN+WU", 5), Run("omniglot28", "LVAE+BN+WU", 5)],
    "table1": [Run("mnist", "LVAE+BN+WU", 5), Run("mnist", "LVAE+BN+WU", 5, "ft"), Run("mnist", "LVAE+BN+WU", 5, "ft-iw10"),
               Run("mnist", "LVAE+BN+WU", 5, "ft-control")],
    "table2": grid("omniglot28") + grid("norb"),
}


# the training seeds the store is searched for: seed 0 is every figure's, seeds 1-2 repeat the models
# whose comparisons need the seed-to-seed spread (``run fig2 --seed 1 2``)
SEEDS = (0, 1, 2)


def runs_for(target) -> list[Run]:
    """The runs of a figure/table name, of ``all``, or of several names in that order (each run once)."""
    if not isinstance(target, str):
        return list(dict.fromkeys(r for t in target for r in runs_for(t)))
    if target == "all":
        return list(dict.fromkeys(r for rs in FIGURES.values() for r in rs))
    if target not in FIGURES:
        raise KeyError(f"unknown figure {target!r}; choose one of {', '.join(FIGURES)} or 'all'")
    return FIGURES[target]


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    """The commit of the code this process runs: read once per process, when its first run starts (a
    sweep's workers keep the code they imported), with ``+dirty`` if ``lvae_lib/`` differs from it.
    A copy of the code without its ``.git`` (a cluster node, say) reads ``$LVAE_GIT_COMMIT``."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        if head:
            return head + ("+dirty" if git("status", "--porcelain", "--", "lvae_lib") else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("LVAE_GIT_COMMIT", "unknown")


# ----------------------------------------------------------------------------- running one record
def _derived(model, run: Run, budget: Budget, data) -> tuple[dict, dict]:
    """Summary numbers and the small arrays the figures need, from a trained model."""
    from . import analysis
    from .data import fixed_binarization
    from .objectives import iw_bound

    x_test = data.x_test
    x_train = data.x_train[:10_000]
    x_train = fixed_binarization(x_train) if data.binarize else x_train
    n_an = budget.analysis_images
    # in this order, as records have always drawn their samples (a record is deterministic for its seed)
    train_l1 = iw_bound(model, x_train, k=1, batch_size=1000, progress=False)
    test_l1 = iw_bound(model, x_test, k=1, batch_size=1000, progress=False)
    test_lk = iw_bound(model, x_test, k=budget.eval_k, batch_size=100, progress=False)
    summary = {
        "train_L1": float(train_l1.mean()),
        "test_L1": float(test_l1.mean()),
        "test_LK": float(test_lk.mean()),
        "K": budget.eval_k,
        "active_units": analysis.active_units(model, x_test[:n_an]),
        "layer_kl": [float(v) for v in analysis.layer_kl(model, x_test)],
    }
    # per test image, in test-set order: two models' estimates on the same images give a paired difference
    arrays = {"test_L1_per_image": test_l1.numpy().astype(np.float32),
              "test_LK_per_image": test_lk.numpy().astype(np.float32)}
    arrays.update({f"unit_kl_l{i + 1}": u for i, u in enumerate(analysis.unit_kl(model, x_test))})
    for i, z in enumerate(analysis.latent_samples(model, x_test[:n_an])):
        arrays[f"pca_l{i + 1}"] = analysis.pca_2d(z).astype(np.float16)
    if data.y_test is not None:
        arrays["pca_labels"] = data.y_test[:n_an].cpu().numpy().astype(np.int16)
    if run.layers == 5:
        torch.manual_seed(0)
        to_u8 = lambda a: (np.clip(a, 0, 1) * 255).round().astype(np.uint8)  # noqa: E731
        arrays["samples"] = to_u8(analysis.prior_samples(model, 64))
        arrays["data"] = to_u8(data.x_test[:32].cpu().numpy())
        arrays["reconstructions"] = to_u8(analysis.reconstructions(model, x_test[:32]))
    # last, so that every number above draws the samples it always drew
    arrays["layer_kl_per_image"] = analysis.layer_kl_per_image(model, x_test).astype(np.float32)
    return summary, arrays


def run_one(run: Run, budget: str | Budget, results_dir=DEFAULT_RESULTS, work_dir=DEFAULT_WORK, device="cpu",
            progress=True, data_root=None) -> dict:
    """Train and evaluate ``run`` unless its record is complete; returns the record."""
    from . import results
    from .data import DISPLAY_NAMES, train_data
    from .train import device_label, train

    b = get_budget(budget) if isinstance(budget, str) else budget
    store = results.Store(results_dir, b.name)
    key = run.key(b)
    if store.complete(run, key):
        return store.load(run, key)
    t0 = time.perf_counter()
    commit = git_commit()  # before training: the code that runs, not the HEAD of hours later
    data = train_data(run.dataset, data_root)
    mcfg, tc = run.configs(b)
    work = Path(work_dir) / b.name
    model, state = train(mcfg, tc, data, work / run.base().key(b), device=device, progress=progress)
    history = state["history"]
    if run.finetune:
        ft = run.finetune_config(b)
        model, st2 = train(mcfg, ft, data, work / key, device=device, progress=progress,
                           init_from=work / run.base().key(b) / "checkpoint.pt")  # starts from the base model
        history = history + [{**r, "epoch": r["epoch"] + tc.epochs, "phase": "finetune"} for r in st2["history"]]
    sub = data.subset(tc.train_subset, tc.test_subset).to(device)
    model.eval()
    summary, arrays = _derived(model, run, b, sub)
    for ep, units in state["kl_snapshots"].items():
        for i, u in enumerate(units):
            arrays[f"kl_snapshot_e{ep}_l{i + 1}"] = np.asarray(u, np.float32)
    record = {
        "run": {"dataset": run.dataset, "dataset_name": DISPLAY_NAMES[run.dataset], "variant": run.variant,
                "layers": run.layers, "finetune": run.finetune, "seed": run.seed, "label": run.label},
        "budget": b.name, "key": key, "model_cfg": to_dict(mcfg), "train_cfg": to_dict(tc),
        "finetune_cfg": to_dict(run.finetune_config(b)) if run.finetune else None,
        "summary": summary,
        "provenance": {"wall_seconds": round(time.perf_counter() - t0, 1),
                       "train_seconds": round(sum(r["seconds"] for r in history), 1),
                       "device": device_label(device),
                       "torch": torch.__version__, "git_commit": commit,
                       "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
                       "epochs_by_device": dict(Counter(r.get("device", "unrecorded") for r in history))},
    }
    store.write(run, key, record, history, arrays)
    return record


def resolve_budget(target: str, budget: str = "default", results_dir=None, seed: int = 0) -> str:
    """The budget name a notebook uses for ``target``.

    ``default`` means :data:`DEFAULT_BUDGET`. ``auto`` picks the largest budget (``paper``, then ``cpu``)
    in which every run of ``target`` has a complete record, ignoring datasets that have no record in
    any budget (NORB where it cannot be downloaded); if none does, ``smoke``. So a figure shows one
    budget throughout, the best one committed, and says which in its caption.
    """
    from . import results

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r} ({type(seed).__name__}); "
                         f"with papermill: -p seed 1, with `figures`: -p seed=1")
    if budget == "default":
        budget = DEFAULT_BUDGET
    if budget != "auto":
        return get_budget(budget).name
    root = results_dir or DEFAULT_RESULTS
    runs = [replace(r, seed=seed) for r in runs_for(target)]
    done = {name: {r for r in runs if results.Store(root, name).complete(r, r.key(BUDGETS[name]))} for name in BUDGETS}
    seen = {r.dataset for rs in done.values() for r in rs}
    needed = [r for r in runs if r.dataset in seen]
    for name in ("paper", "cpu"):
        if needed and all(r in done[name] for r in needed):
            return name
    return "smoke"


def ensure(target: str, budget: str = "default", device: str = "cpu", results_dir=None, work_dir=None,
           progress: bool = True, data_root=None, seed: int = 0):
    """Make sure every record of ``target`` exists (training what is missing) and return them as a DataFrame:
    the rows of ``seed``, then those of the other seeds in :data:`SEEDS` that the store holds (tables and
    figures show their mean and spread; a per-record plot uses the first row of a model, ``seed``'s).

    ``results_dir`` / ``work_dir`` default to the repository's ``results/`` and ``runs/``.
    Datasets whose files cannot be found or downloaded are skipped with a message.
    """
    import pandas as pd
    from tqdm import tqdm

    from . import results
    from .data import DataError

    results_dir = results_dir or DEFAULT_RESULTS
    work_dir = work_dir or DEFAULT_WORK
    b = get_budget(resolve_budget(target, budget, results_dir, seed))
    runs = [replace(r, seed=seed) for r in runs_for(target)]
    store = results.Store(results_dir, b.name)
    missing = store.missing(runs, b)
    unavailable: dict[str, str] = {}
    for r in tqdm(missing, desc=f"{target}: training {len(missing)} missing run(s) [{budget}]", disable=not progress or not missing):
        if r.dataset in unavailable:
            continue
        try:
            run_one(r, b, results_dir, work_dir, device, progress=progress, data_root=data_root)
        except DataError as e:  # e.g. NORB offline: report it, run the rest
            unavailable[r.dataset] = str(e).splitlines()[0]
    for ds, why in unavailable.items():
        print(f"skipped every {ds} run: {why}")
    others = [replace(r, seed=s) for s in SEEDS if s != seed for r in runs_for(target)]
    df = pd.concat([store.table(runs, b), store.table(others, b)], ignore_index=True)  # this seed's rows first
    df.attrs.update(results_dir=str(results_dir), budget=b.name, target=target, unavailable=unavailable, seed=seed)
    return df


def records(target: str = "all", results_dir=None, budgets=tuple(BUDGETS), seeds=SEEDS):
    """Every committed record of ``target``, of every budget and seed in ``budgets`` and ``seeds``: the
    evidence the claims are decided on (:func:`lvae_lib.report.claims`). Trains nothing."""
    import pandas as pd

    from . import results

    results_dir = results_dir or DEFAULT_RESULTS
    runs = [replace(r, seed=s) for s in seeds for r in runs_for(target)]
    frames = [df for name in budgets if len(df := results.Store(results_dir, name).table(runs, BUDGETS[name]))]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df.attrs.update(results_dir=str(results_dir), target=target)
    return df


def collect(target: str = "all", budgets=("paper", "cpu", "smoke"), results_dir=None, seed: int = 0):
    """The complete records of ``target`` without training anything: for every run, the record of the
    first budget in ``budgets`` that has one (the book shows ``paper`` records where they exist)."""
    import pandas as pd

    from . import results

    results_dir = results_dir or DEFAULT_RESULTS
    todo = [replace(r, seed=seed) for r in runs_for(target)]
    frames = []
    for name in budgets:
        b = get_budget(name)
        df = results.Store(results_dir, b.name).table(todo, b)
        if len(df):
            frames.append(df)
            done = set(df["run_obj"])
            todo = [r for r in todo if r not in done]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df.attrs.update(results_dir=str(results_dir), budget="+".join(sorted(set(df["budget"]))) if len(df) else "none",
                    target=target)
    return df
