"""The store's one query: every record of a target, of every budget and seed, read once (:func:`select`),
after training what a figure misses (:func:`ensure`); the :class:`RecordSet` hands its readers (the report,
the claims, the plots) plain frames, one row per record, with no store inside.

* :meth:`RecordSet.shown`: the figure's budget, the notebook's seed first (and, ``beside_paper``, the
  paper budget's records of the same models); :meth:`RecordSet.first_of`: each run's record of the first
  budget that has one (the report); :meth:`RecordSet.evidence`: every record, for the claims.
* :func:`resolve_budget`: the budget a notebook shows; :func:`trained_models`: models from kept weights.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from . import results, runner
from .data import DataError, train_data
from .experiments import (BUDGET_ORDER, BUDGETS, DEFAULT_BUDGET, DEFAULT_RESULTS, DEFAULT_WORK, SEEDS, get_budget,
                          keyed, runs_for)
from .notebooks import _check_value, _note_used


@dataclass(frozen=True)
class RecordSet:
    """An immutable selection of committed records: ``rows`` holds one row per record (the columns of
    :meth:`lvae_lib.results.Store.table`, each with the ``path`` of its record), by budget (largest first),
    then seed, then the target's runs in their order. ``budget``: the one a figure shows (set by
    :func:`ensure`); ``seed``: the notebook's, first in :meth:`shown`; ``unavailable``: (dataset, why) of
    data that could not be had; ``bad``: records that cannot be used. Every frame it hands out is a fresh copy, and is noted for the book's
    execution page as shown or as weighed in the claims."""

    rows: pd.DataFrame = field(repr=False, compare=False)
    target: str = "all"
    budget: str = ""
    seed: int = 0
    unavailable: tuple = ()
    bad: tuple = ()  # (budget, run, why) of records that are here but cannot be used (:func:`select`)

    def __len__(self) -> int:
        return len(self.rows)

    def _at(self, budget: str) -> pd.DataFrame:
        return self.rows[self.rows["budget"] == budget]

    def _out(self, rows: pd.DataFrame, use: str) -> pd.DataFrame:
        out = rows.reset_index(drop=True).copy()
        out.attrs = {}
        _note_used(out, use)
        return out

    def _first_rows(self, budgets) -> pd.DataFrame:
        seen, parts = set(), []
        for b in dict.fromkeys(budgets):  # each once: ("paper", "paper") is a paper figure's own
            d = self._at(b)
            ident = list(zip(d["dataset"], d["label"], d["seed"]))  # a run, by its identity in the table
            parts.append(d[[i not in seen for i in ident]])
            seen |= set(ident)
        return pd.concat(parts) if parts else self.rows.iloc[:0]

    def shown(self, beside_paper: bool = False) -> pd.DataFrame:
        """The records at the figure's budget, ``seed``'s rows first; ``beside_paper``: then the paper
        budget's records of the same figure, where some exist and the figure's budget is another (the
        figures draw those beside their own budget's, until the whole figure exists at the paper budget)."""
        d = self._at(self.budget)
        parts = [d[d["seed"] == self.seed], d[d["seed"] != self.seed]]
        if beside_paper and self.budget != "paper":
            parts.append(self._first_rows(("paper",)))
        return self._out(pd.concat(parts), "shown")

    def at(self, *budgets: str) -> pd.DataFrame:
        """Every record of these budgets, in the order given."""
        return self._out(pd.concat([self._at(b) for b in budgets]), "shown")

    def first_of(self, budgets=BUDGET_ORDER) -> pd.DataFrame:
        """For every run and seed, the record of the first budget in ``budgets`` that has one (the book
        shows ``paper`` records where they exist)."""
        return self._out(self._first_rows(budgets), "shown")

    def evidence(self) -> pd.DataFrame:
        """Every record, of every budget and seed: what the claims are decided on
        (:func:`lvae_lib.claims.decide`), the smallest budget first."""
        return self._out(pd.concat([self._at(b) for b in BUDGETS]), "claims")


def select(target: str = "all", results_dir=None, budgets=BUDGET_ORDER, seeds=SEEDS, seed: int = 0) -> RecordSet:
    """The complete records of ``target`` of every budget in ``budgets`` and every seed in ``seeds`` (and
    ``seed``), each read once. Trains nothing; records that cannot be used are left out with a warning naming
    them, and listed in :attr:`RecordSet.bad`."""
    root = results_dir or DEFAULT_RESULTS
    runs = [replace(r, seed=s) for s in dict.fromkeys((*seeds, seed)) for r in runs_for(target)]
    recs, bad = [], []
    for name in budgets:
        got, why = results.Store(root, name).records(keyed(runs, get_budget(name)))
        recs += got
        bad += [(name, r, w) for r, w in why.items()]
    return RecordSet(results.frame(recs), target=target, seed=seed, bad=tuple(bad))


def resolve_budget(target: str, budget: str = "default", results_dir=None, seed: int = 0) -> str:
    """The budget name a notebook uses for ``target``.

    ``default`` means :data:`DEFAULT_BUDGET`. ``auto`` picks the largest budget (``paper``, then ``cpu``)
    in which every run of ``target`` has a complete record, ignoring datasets that have no record in
    any budget (NORB where it cannot be downloaded); if none does, ``smoke``. So a figure shows one
    budget throughout, the best one committed, and says which in its caption.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r} ({type(seed).__name__}); "
                         f"with papermill: -p seed 1, with `figures`: -p seed=1")
    if budget == "default":
        budget = DEFAULT_BUDGET
    if budget != "auto":
        return get_budget(budget).name
    root = results_dir or DEFAULT_RESULTS
    runs = [replace(r, seed=seed) for r in runs_for(target)]
    done = {name: {r for r, k in keyed(runs, BUDGETS[name]) if results.Store(root, name).complete(r, k)}
            for name in BUDGETS}
    seen = {r.dataset for rs in done.values() for r in rs}
    needed = [r for r in runs if r.dataset in seen]
    for name in BUDGET_ORDER[:-1]:  # never smoke: that is the fallback
        if needed and all(r in done[name] for r in needed):
            return name
    return "smoke"


# a notebook refuses to train for longer than this on a CPU (it says how to train the runs instead)
MAX_NOTEBOOK_HOURS = 1.0


def eta_hours(runs, budget, device="cpu") -> float:
    """Projected training hours of ``runs`` at ``budget`` on ``device``, from the committed benchmark's
    library step (``results/bench/cpu.csv`` or ``gpu.csv``; 45 ms a step on a CPU, 3 ms on a GPU without one)."""
    gpu = str(device).startswith("cuda")
    step_s = 0.003 if gpu else 0.045
    f = DEFAULT_RESULTS / "bench" / ("gpu.csv" if gpu else "cpu.csv")
    if f.exists():
        bench = pd.read_csv(f)
        rows = bench[(bench["what"] == "train step") & bench["impl"].isin(["library", "library, CUDA graph"])]
        if len(rows):  # the slower model's step, in the faster of the two (a GPU replays a CUDA graph)
            step_s = float(rows.groupby("impl")["ms_per_step"].max().min()) / 1e3
    steps = 0
    for r in runs:
        mcfg, tc = r.configs(budget)
        per_epoch = -(-(tc.train_subset or 60000) // tc.batch_size)
        steps += tc.epochs * per_epoch
        if r.finetune:
            ft = r.finetune_config(budget)
            steps += ft.epochs * per_epoch * ft.mc_samples * ft.iw_samples
    return steps * step_s / 3600


def trained_models(variants, results_dir=None, budget: str = "paper", layers: int = 5, dataset: str = "mnist",
                   device: str = "cpu"):
    """The trained models of ``variants`` (seed 0) from their records' weights, in evaluation mode:
    ``({variant: model}, {variant: record}, the record's test images as uint8)``. No training, no data."""
    import numpy as np

    from .experiments import Run

    b = get_budget(budget)
    store = results.Store(results_dir or DEFAULT_RESULTS, b.name)
    recs = {v: store.load(r, r.key(b)) for v in variants for r in [Run(dataset, v, layers)]}
    with np.load(Path(recs[variants[0]].path) / "arrays.npz") as f:
        data = f["data"]
    return {v: rec.load_model(device) for v, rec in recs.items()}, recs, data


def ensure(target: str, budget: str = "default", device: str = "cpu", results_dir=None, work_dir=None,
           progress: bool = True, data_root=None, seed: int = 0) -> RecordSet:
    """Make sure every record of ``target`` exists at the budget a notebook shows (:func:`resolve_budget`;
    training what is missing) and return :func:`select` of the target, with that budget: its
    :meth:`RecordSet.shown` are the rows of ``seed``, then those of the other seeds in :data:`SEEDS` that the
    store holds (tables and figures show their mean and spread; a per-record plot uses the first row of a
    model, ``seed``'s).

    ``results_dir`` / ``work_dir`` default to the repository's ``results/`` and ``runs/``.
    Datasets whose files cannot be found or downloaded are skipped with a message.
    """
    results_dir = results_dir or DEFAULT_RESULTS
    work_dir = work_dir or DEFAULT_WORK
    _check_value("budget", budget, f"ensure({target!r})")
    _check_value("device", device, f"ensure({target!r})")
    b = get_budget(resolve_budget(target, budget, results_dir, seed))
    runs = [replace(r, seed=seed) for r in runs_for(target)]
    found = select(target, results_dir, seed=seed)  # every record read once; again only if some were trained
    stale = [why for name, r, why in found.bad if name == b.name and r in runs]
    if stale:  # records that are here but cannot be used: named, never drawn as an empty figure
        raise RuntimeError(f"{len(stale)} record(s) of {target} at the {b.name} budget cannot be used: "
                           + "; ".join(why.split("; not used")[0] for why in stale)
                           + f". Retrain them with `python -m lvae_lib run {target} --budget {b.name} --refresh`")
    store = results.Store(results_dir, b.name)
    missing = store.missing(keyed(runs, b))
    unavailable: dict[str, str] = {}
    for ds in dict.fromkeys(r.dataset for r in missing):  # e.g. NORB offline: report it, plan the rest
        try:
            train_data(ds, data_root)
        except DataError as e:
            unavailable[ds] = str(e).splitlines()[0]
    missing = [r for r in missing if r.dataset not in unavailable]
    if missing:
        store.check_writable()  # before hours of training, not after
        hours = eta_hours(missing, b, device)
        print(f"{target}: {len(missing)} run(s) missing at the {b.name} budget, about {hours:.1f} h on {device}: "
              + ", ".join(f"{r.label} (seed {r.seed})" for r in missing))
        if hours > MAX_NOTEBOOK_HOURS and not str(device).startswith("cuda"):
            raise RuntimeError(
                f"{target} would train {len(missing)} run(s) for about {hours:.0f} h on this CPU before it can draw: "
                f"train them first with `python -m lvae_lib run {target} --budget {b.name}` (resumable, in the "
                f"background), or run the notebook with -p device cuda")
        # on a GPU each run replays its step as a CUDA graph, one after another: on an H200 that beat every
        # stack per model (results/bench/gpu.csv), so a notebook does not stack (`run --stack` still can)
    for r in tqdm(missing, desc=f"{target}: training {len(missing)} missing run(s) [{budget}]", disable=not progress or not missing):
        if r.dataset in unavailable:
            continue
        try:
            runner.run_one(r, b, results_dir, work_dir, device, progress=progress, data_root=data_root)
        except DataError as e:  # e.g. NORB offline: report it, run the rest
            unavailable[r.dataset] = str(e).splitlines()[0]
    for ds, why in unavailable.items():
        print(f"skipped every {ds} run: {why}")
    if missing:
        found = select(target, results_dir, seed=seed)
    return replace(found, budget=b.name, unavailable=tuple(unavailable.items()))
