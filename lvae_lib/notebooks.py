"""What the figure notebooks call: the store's queries, and executing the notebooks.

* :func:`ensure` (train what a figure misses, then its records as a DataFrame), :func:`records` (every
  committed record of a figure, for the claims), :func:`collect` (the best budget of each run, for the
  report) and :func:`resolve_budget` (the budget a notebook shows).
* :func:`show`: hand a figure and the line naming its budget to the book's numbered caption.
* :func:`execute_notebook`: papermill in place, volatile metadata stripped, the jupytext pair synced.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from . import results, runner
from .data import DataError
from .experiments import BUDGETS, DEFAULT_BUDGET, DEFAULT_RESULTS, DEFAULT_WORK, SEEDS, get_budget, runs_for

VOLATILE = ("papermill", "execution")


def strip_volatile(nb) -> None:
    """Remove run-specific metadata (timestamps, durations) so re-runs give small diffs."""
    for key in VOLATILE:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in VOLATILE:
            cell.metadata.pop(key, None)
        if cell.metadata.get("tags") == []:
            del cell.metadata["tags"]  # papermill adds empty tag lists
        if cell.cell_type == "code":
            for out in cell.get("outputs", []):
                out.get("metadata", {}).pop("execution", None)


def typed_parameters(path: str | Path, raw: dict) -> dict:
    """The ``NAME=VALUE`` texts of ``figures -p`` as the types of the notebook's own defaults (``seed=1``
    is the integer 1, ``progress=true`` a bool); a name the notebook lacks, or a value its type cannot
    take (``seed=1.5``), is a ``ValueError`` naming both."""
    import ast

    import papermill as pm

    declared = {n: ast.literal_eval(p["default"]) for n, p in pm.inspect_notebook(str(path)).items()}
    out = {}
    for name, text in raw.items():
        if name not in declared:
            raise ValueError(f"{Path(path).name} has no parameter {name!r}; its parameters: {', '.join(declared)}")
        kind = type(declared[name])
        try:
            if kind is bool:
                if text.lower() not in ("true", "false", "1", "0"):
                    raise ValueError
                out[name] = text.lower() in ("true", "1")
            else:
                out[name] = kind(text)
        except ValueError:
            raise ValueError(f"parameter {name}={text!r} of {Path(path).name}: expected {kind.__name__}, "
                             f"like its default {declared[name]!r}") from None
    return out


def execute_notebook(path: str | Path, out: str | Path | None = None, parameters: dict | None = None,
                     cwd: str | Path | None = None) -> Path:
    """Run ``path`` with papermill (into ``out``, default: in place), strip metadata, sync the .py pair."""
    import nbformat
    import papermill as pm

    path = Path(path)
    out = Path(out) if out is not None else path
    paired = out == path and path.with_suffix(".py").exists()
    if paired:  # the .py is the reviewed source: take its edits into the .ipynb before running it
        _sync(path)
    pm.execute_notebook(str(path), str(out), parameters=parameters or {}, kernel_name="python3",
                        cwd=str(cwd or path.parent), progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    strip_volatile(nb)
    nbformat.write(nb, out)
    if paired:
        _sync(path)
    return out


def _sync(path: Path) -> None:
    """``jupytext --sync``: the newer of the pair gives the inputs, the .ipynb keeps its outputs."""
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--quiet", "--sync", str(path)])  # uses jupytext.toml's pairing and filters


def show(key: str, fig, caption: str) -> None:
    """Give ``fig`` and ``caption`` (the plain-text line naming its budget, :func:`lvae_lib.plots.caption`)
    to the book under ``key`` and ``key_caption``: the markdown cell below pastes them as a figure with its
    caption (``{glue:figure}``). Jupyter draws the figure as usual; the book drops that copy (the cell's
    ``remove-output`` tag)."""
    from myst_nb import glue

    glue(key, fig, display=False)
    glue(f"{key}_caption", caption, display=False)


# ----------------------------------------------------------------------------- the store's queries
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
            runner.run_one(r, b, results_dir, work_dir, device, progress=progress, data_root=data_root)
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
    results_dir = results_dir or DEFAULT_RESULTS
    runs = [replace(r, seed=s) for s in seeds for r in runs_for(target)]
    frames = [df for name in budgets if len(df := results.Store(results_dir, name).table(runs, BUDGETS[name]))]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df.attrs.update(results_dir=str(results_dir), target=target)
    return df


def collect(target: str = "all", budgets=("paper", "cpu", "smoke"), results_dir=None, seeds=SEEDS):
    """The complete records of ``target`` without training anything: for every run and seed, the record
    of the first budget in ``budgets`` that has one (the book shows ``paper`` records where they exist)."""
    results_dir = results_dir or DEFAULT_RESULTS
    todo = [replace(r, seed=s) for s in seeds for r in runs_for(target)]
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
