"""Budgets and the experiment registry: plain data. The runner that makes a record is
:mod:`lvae_lib.runner`; the notebooks' queries of the store are in :mod:`lvae_lib.notebooks`.

A **budget** fixes the protocol in one place:

* ``smoke``: seconds. 1,000 training and 500 test images, 2 epochs, K = 10. Proves the code path.
* ``cpu``: what a 2-core machine does in hours. Full data, MNIST 200 epochs (OMNIGLOT 150), warm-up
  20 epochs (10% of training, the paper's ratio), test L_1000; fine-tuning 20 epochs with lr x 0.75
  every 2 (the paper's ten decays). Fine-tuning with 10 MC x 10 IW samples costs 100 samples per image,
  so Table 1's IW = 10 run is the longest (each record's ``provenance`` has its measured seconds).
* ``paper``: the paper's protocol. MNIST and NORB 2000 epochs, OMNIGLOT 1500 (each dataset's
  ``paper_epochs`` in :data:`lvae_lib.config.DATASETS`), warm-up 200, test L_5000; fine-tuning 2000 more
  epochs with lr x 0.75 every 200 and 10 MC / 10 IW samples.

The **registry** (:data:`FIGURES`) names the runs each figure or table needs; a run needed by
several figures is one record, keyed by the hash of its full configuration.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

from .config import AUTHORS_ABLATIONS, AUTHORS_LADDER_ABLATIONS, DATASETS, VARIANTS, TrainConfig, config_hash, preset

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "results"
DEFAULT_WORK = ROOT / "runs"  # checkpoints (git-ignored)
# What the notebooks show by default: "auto" is, per figure, the largest budget whose records for that
# figure are all committed (paper, then cpu), else smoke. See :func:`lvae_lib.query.resolve_budget`.
DEFAULT_BUDGET = "auto"


@dataclass(frozen=True)
class Budget:
    name: str
    epoch_fraction: float  # of each dataset's paper_epochs (config.DATASETS) ...
    fixed_epochs: int  # ... or, when > 0, this many for every dataset
    warmup_fraction: float  # N_t as a fraction of the epochs (paper: 200 / 2000)
    eval_k: int
    train_subset: int = 0
    test_subset: int = 0
    eval_every: int = 10
    finetune_epochs: int = 0
    finetune_decay_every: int = 0
    kl_snapshots: tuple = ()  # fractions of training at which per-unit KL is stored (Fig. 4)
    analysis_images: int = 2000  # test images for active units, PCA
    keep_weights: bool = False  # the record keeps its model (results.WEIGHTS, about 7 MB): the paper's budget
    protocol: str = ""  # what the length is, for a reader ("the paper's protocol"): see describe

    def epochs(self, dataset: str) -> int:
        """Training epochs of a ``dataset`` run at this budget."""
        return self.fixed_epochs or round(DATASETS[dataset].paper_epochs * self.epoch_fraction)

    def describe(self, dataset: str | None = None, short: bool = False) -> str:
        """The budget as a reader sees it, never its bare name ("paper" is also the source of the published
        numbers): ``"2000 epochs (the paper's protocol)"``, ``"200 epochs"``; ``short`` drops the bracket;
        without a ``dataset``, ``"the paper's protocol"`` or ``"1/10 of the paper's epochs"``."""
        if dataset is None:
            return self.protocol or f"1/{round(1 / self.epoch_fraction)} of the paper's epochs"
        n = f"{self.epochs(dataset)} epochs"
        return n if short or not self.protocol else f"{n} ({self.protocol})"


BUDGETS = {
    "smoke": Budget("smoke", epoch_fraction=0.0, fixed_epochs=2, warmup_fraction=0.5, eval_k=10,
                    train_subset=1000, test_subset=500, eval_every=1, finetune_epochs=2, finetune_decay_every=1,
                    kl_snapshots=(0.5, 1.0), analysis_images=500, protocol="smoke test"),
    "cpu": Budget("cpu", epoch_fraction=0.1, fixed_epochs=0, warmup_fraction=0.1, eval_k=1000,
                  eval_every=10, finetune_epochs=20, finetune_decay_every=2, kl_snapshots=(0.05, 0.1, 0.25, 0.5, 1.0)),
    "paper": Budget("paper", epoch_fraction=1.0, fixed_epochs=0, warmup_fraction=0.1, eval_k=5000,
                    eval_every=20, finetune_epochs=2000, finetune_decay_every=200,
                    kl_snapshots=(0.05, 0.1, 0.25, 0.5, 1.0), keep_weights=True, protocol="the paper's protocol"),
}


# the budgets from the largest down: the order in which a record is preferred where several budgets have one
BUDGET_ORDER = ("paper", "cpu", "smoke")
assert set(BUDGET_ORDER) == set(BUDGETS)

# records whose K is larger also keep L_K of the first NESTED_K of their samples (the cpu budget's K), so
# that the K gap between a cpu and a paper record is measured on the same model, per test image
NESTED_K = BUDGETS["cpu"].eval_k


def run_dir(work_dir, budget: Budget, run: "Run") -> Path:
    """The folder of ``run``'s checkpoint at ``budget`` under ``work_dir``: the one owner of that layout
    (the checkpoint's own name is :func:`lvae_lib.train.checkpoint_path`'s)."""
    return Path(work_dir) / budget.name / run.key(budget)


def describe_budget(name: str, dataset: str | None = None, short: bool = False) -> str:
    """:meth:`Budget.describe` of the budget called ``name``, for tables and figures holding names."""
    return get_budget(name).describe(dataset, short)


def get_budget(name: str) -> Budget:
    """A budget by name (``smoke``, ``cpu``, ``paper``); for ``default``/``auto`` see :func:`lvae_lib.query.resolve_budget`."""
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
    precision: str = "fp32"  # of the training step (config.PRECISIONS); in the key and, unless fp32, the label

    @property
    def label(self) -> str:
        return (f"{self.variant}-L{self.layers}" + (f"-{self.finetune}" if self.finetune else "")
                + (f"-{self.precision}" if self.precision != "fp32" else ""))

    def configs(self, budget: Budget):
        mcfg, warm = preset(self.variant, self.layers, self.dataset)
        e = budget.epochs(self.dataset)
        tc = TrainConfig(epochs=e, warmup_epochs=round(e * budget.warmup_fraction) if warm else 0,
                         eval_every=budget.eval_every, eval_k=budget.eval_k, seed=self.seed, precision=self.precision,
                         train_subset=budget.train_subset, test_subset=budget.test_subset,
                         checkpoint_every=max(1, budget.eval_every),
                         kl_snapshot_epochs=tuple(sorted({max(1, round(f * e)) for f in budget.kl_snapshots})),
                         **dict(VARIANTS[self.variant].train))
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
        """The run's key at ``budget``: the hash of everything that makes its record (computed once)."""
        return _key(self, budget)


@functools.lru_cache(maxsize=None)
def _key(run: Run, budget: Budget) -> str:
    mcfg, tc = run.configs(budget)
    parts = [mcfg, tc, {"dataset": run.dataset, "eval_k": budget.eval_k}]
    if run.finetune:
        parts.append(run.finetune_config(budget))
    return config_hash(*parts)


def keyed(runs, budget: Budget) -> list[tuple[Run, str]]:
    """``(run, key)`` of each run at ``budget``: what the store is asked about (it never computes a key)."""
    return [(r, r.key(budget)) for r in runs]


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
    "fig9_10": [Run(d, v, 5) for d in ("mnist", "omniglot28") for v in ("LVAE+BN+WU", "VAE+BN+WU")],
    "table1": [Run("mnist", "LVAE+BN+WU", 5), Run("mnist", "LVAE+BN+WU", 5, "ft"), Run("mnist", "LVAE+BN+WU", 5, "ft-iw10"),
               Run("mnist", "LVAE+BN+WU", 5, "ft-control")],
    "table2": grid("omniglot28") + grid("norb"),
    # not the paper's: its models with the authors' released settings (config.AUTHORS_*), and one at a time
    "authors": [Run("mnist", v, 5) for v in ("VAE+BN+WU+authors", "LVAE+BN+WU+authors", "VAE+BN+WU", "LVAE+BN+WU")],
    "authors-ablations": [Run("mnist", f"VAE+BN+WU+{k}", 5) for k in AUTHORS_ABLATIONS] + [Run("mnist", "VAE+BN+WU", 5)]
    + [Run("mnist", f"LVAE+BN+WU+{k}", 5) for k in AUTHORS_LADDER_ABLATIONS] + [Run("mnist", "LVAE+BN+WU", 5)],
}


STUDIES = ("authors", "authors-ablations")  # targets of FIGURES that are not the paper's; "all" leaves them out

# the training seeds the store is searched for: seed 0 is every figure's, seeds 1-2 repeat the models
# whose comparisons need the seed-to-seed spread (``run fig2 --seed 1 2``)
SEEDS = (0, 1, 2)


def runs_for(target) -> list[Run]:
    """The runs of a figure/table name, of ``all``, or of several names in that order (each run once)."""
    if not isinstance(target, str):
        return list(dict.fromkeys(r for t in target for r in runs_for(t)))
    if target == "all":  # the paper's figures and tables (not the studies of this reproduction)
        return list(dict.fromkeys(r for t, rs in FIGURES.items() if t not in STUDIES for r in rs))
    if target not in FIGURES:
        raise KeyError(f"unknown figure {target!r}; choose one of {', '.join(FIGURES)} or 'all'")
    return FIGURES[target]
