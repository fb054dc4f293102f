"""What the figure notebooks call: the store's queries, and executing the notebooks.

* :func:`ensure` (train what a figure misses, then its records as a DataFrame), :func:`records` (every
  committed record of a figure, for the claims), :func:`collect` (the best budget of each run, for the
  report) and :func:`resolve_budget` (the budget a notebook shows).
* :func:`show`: hand a figure and the line naming its budget to the book's numbered caption;
  :func:`table`: a table as the book shows it.
* :func:`execute_notebook`: papermill in place, volatile metadata stripped, the jupytext pair synced,
  and how it ran kept in the notebook's metadata (``lvae``: date, seconds, parameters, the records it
  read, commit, versions), which :func:`execution_table` shows on the book's execution page.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
from dataclasses import replace
from pathlib import Path
from unittest import mock

import pandas as pd
from tqdm import tqdm

from . import results, runner
from .config import DATASETS
from .data import DataError, train_data
from .experiments import (BUDGET_ORDER, BUDGETS, DEFAULT_BUDGET, DEFAULT_RESULTS, DEFAULT_WORK, SEEDS, describe_budget,
                          get_budget, runs_for)

VOLATILE = ("papermill", "execution")
# set by execute_notebook for its kernel: the file where ensure/collect/records note the records they read
USED_ENV = "LVAE_RECORDS_USED"


def _note_used(df, use: str) -> None:
    """Append ``df``'s records (budget, label, seed, key) and what they were read for (``use``: ``shown``
    in a figure or table, or weighed in the ``claims``) to the file named by ``$LVAE_RECORDS_USED``, if set."""
    where = os.environ.get(USED_ENV)
    if not where or not len(df):
        return
    with open(where, "a") as f:
        for r in df[["budget", "label", "seed", "key"]].itertuples(index=False):
            f.write(json.dumps({"use": use, "budget": r.budget, "label": r.label, "seed": int(r.seed), "key": r.key}) + "\n")


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
    for name, value in out.items():
        _check_value(name, value, Path(path).name)
    return out


def _check_value(name: str, value, where: str) -> None:
    """The values a parameter may take, beyond its type: budget and device names (a ``ValueError`` naming them)."""
    if name == "budget" and value not in (*BUDGETS, "auto", "default"):
        raise ValueError(f"parameter budget={value!r} of {where}: choose one of {', '.join(BUDGETS)}, auto")
    if name == "device":
        import torch

        try:
            d = torch.device(value)
        except RuntimeError:
            raise ValueError(f"parameter device={value!r} of {where}: not a torch device (e.g. cpu, cuda)") from None
        if d.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"parameter device={value!r} of {where}: no CUDA device is visible here; use cpu")


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
    try:  # the parameters cell's defaults, as written (papermill needs the notebook to name its kernel)
        declared = {n: p["default"] for n, p in pm.inspect_notebook(str(path)).items()}
    except ValueError:
        declared = {}
    for name, value in (parameters or {}).items():
        _check_value(name, value, path.name)
    # into a temporary file beside the target: a failed or interrupted run leaves the target as it was
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".ipynb", dir=out.parent)
    os.close(fd)
    try:
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as used:
            # the kernel inherits the environment: where to list the records it reads, and one torch thread
            # unless OMP_NUM_THREADS says otherwise, as in CI's nbval (sampled pictures depend on the thread count)
            kernel_env = {USED_ENV: used.name, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
            with mock.patch.dict(os.environ, kernel_env):
                pm.execute_notebook(str(path), tmp, parameters=parameters or {}, kernel_name="python3",
                                    cwd=str(cwd or path.parent), progress_bar=False)
            records = list({line: None for line in used.read().splitlines()})  # each once, in order
        nb = nbformat.read(tmp, as_version=4)
        nb.metadata["lvae"] = execution_info(nb.metadata.get("papermill", {}), declared, parameters or {},
                                             [json.loads(r) for r in records])
        strip_volatile(nb)
        if out == path:  # the reviewed notebook keeps its own parameters cell; the metadata says what ran
            nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        nbformat.write(nb, tmp)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    if paired:
        _sync(path)
    return out


def execution_info(pm_meta: dict, declared: dict, parameters: dict, records: list) -> dict:
    """What the execution page shows of one run of a notebook: when it ended (UTC) and how long it took
    (papermill's metadata), its parameters (the notebook's defaults, as written, with the ones given
    over them), the records it read, the commit of ``lvae_lib`` and the versions that ran it."""
    import matplotlib
    import numpy
    import pandas
    import papermill
    import torch

    from .train import git_commit

    return {"executed": (pm_meta.get("end_time") or "")[:19].replace("T", " "),
            "seconds": round(float(pm_meta.get("duration") or 0.0), 1),
            "parameters": {**declared, **{k: repr(v) for k, v in parameters.items()}},
            "records": records, "commit": git_commit(),
            "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
                         "pandas": pandas.__version__, "matplotlib": matplotlib.__version__,
                         "papermill": papermill.__version__},
            "machine": f"{platform.machine()}, {os.cpu_count()} cores"}


def execution_table(folder=None) -> pd.DataFrame:
    """One row per notebook of ``folder`` (default: the repository's ``notebooks/``): when and how it was
    last executed by :func:`execute_notebook`, from its ``lvae`` metadata ("never" for one that was not)."""
    import nbformat

    from .experiments import ROOT

    def runs(used: pd.DataFrame) -> str:  # "cpu: VAE-L5 (seeds 0, 1, 2), ..."
        return "; ".join(f"{b}: " + ", ".join(f"{lab} ({'seeds' if g['seed'].nunique() > 1 else 'seed'} "
                                            f"{', '.join(map(str, sorted(set(g['seed']))))})"
                                            for lab, g in u.groupby("label", sort=False))
                         for b, u in used.groupby("budget", sort=False))

    rows = []
    for f in sorted(Path(folder or ROOT / "notebooks").glob("[!.]*.ipynb")):  # not a run's temporary copy
        m = nbformat.read(f, as_version=4).metadata.get("lvae")
        if not m:
            rows.append({"notebook": f.stem, "executed (UTC)": "never"})
            continue
        used = pd.DataFrame(m["records"], columns=["use", "budget", "label", "seed", "key"]).drop_duplicates()
        shown, weighed = used[used["use"] == "shown"], used[used["use"] == "claims"]
        rows.append({"notebook": f.stem, "executed (UTC)": m["executed"][:16], "seconds": m["seconds"],
                     "parameters": ", ".join(f"{k}={v.strip(chr(34) + chr(39))}" for k, v in m["parameters"].items()
                                             if k not in ("progress", "results_dir", "notebooks_dir")),
                     "budget shown": ", ".join(shown["budget"].unique()) or "-",
                     "records shown": len(shown), "models shown": runs(shown) or "-",
                     "claims read": (f"{len(weighed)} ({', '.join(f'{b}: {n}' for b, n in weighed['budget'].value_counts(sort=False).items())})"
                                                       if len(weighed) else "-"),
                     "commit": m["commit"], "machine": m.get("machine", ""),
                     "versions": ", ".join(f"{k} {v}" for k, v in m["versions"].items())})
    return pd.DataFrame(rows)


def _sync(path: Path) -> None:
    """``jupytext --sync``: the newer of the pair gives the inputs, the .ipynb keeps its outputs."""
    from jupytext.cli import jupytext as jupytext_cli

    jupytext_cli(["--quiet", "--sync", str(path)])  # uses jupytext.toml's pairing and filters


def table(df, drop=()):
    """``df`` as the book shows a table: no index, empty cells for missing values, ``drop`` columns left out
    (e.g. a claims table's ``figure`` column on that figure's own page), and a ``budget`` column as what it
    is, "trained for" ``"2000 epochs (the paper's protocol)"`` (:meth:`~lvae_lib.experiments.Budget.describe`),
    never the bare name "paper", which the tables also use for the published numbers."""
    from IPython.display import HTML

    df = df.drop(columns=list(drop))
    if "budget" in df:
        key = {**{d.display_name: d.name for d in DATASETS.values()}, **{k: k for k in DATASETS}}  # else: no dataset
        ds = df["dataset"] if "dataset" in df else df["dataset_name"] if "dataset_name" in df else [None] * len(df)
        df = df.assign(budget=[describe_budget(b, key.get(d)) if isinstance(b, str) and b else ""
                               for b, d in zip(df["budget"], ds)]).rename(columns={"budget": "trained for"})
    for c in df.columns[[isinstance(t, pd.Int64Dtype) for t in df.dtypes]]:  # na_rep does not reach pd.NA
        df[c] = df[c].astype(object).where(df[c].notna(), "")
    return HTML(df.to_html(index=False, na_rep=""))


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
           progress: bool = True, data_root=None, seed: int = 0):
    """Make sure every record of ``target`` exists (training what is missing) and return them as a DataFrame:
    the rows of ``seed``, then those of the other seeds in :data:`SEEDS` that the store holds (tables and
    figures show their mean and spread; a per-record plot uses the first row of a model, ``seed``'s).

    ``results_dir`` / ``work_dir`` default to the repository's ``results/`` and ``runs/``.
    Datasets whose files cannot be found or downloaded are skipped with a message.
    """
    results_dir = results_dir or DEFAULT_RESULTS
    work_dir = work_dir or DEFAULT_WORK
    _check_value("budget", budget, f"ensure({target!r})")
    _check_value("device", device, f"ensure({target!r})")
    b = get_budget(resolve_budget(target, budget, results_dir, seed))
    runs = [replace(r, seed=seed) for r in runs_for(target)]
    store = results.Store(results_dir, b.name)
    stale = store.stale(runs, b)
    if stale:  # records that are here but cannot be used: named, never drawn as an empty figure
        raise RuntimeError(f"{len(stale)} record(s) of {target} at the {b.name} budget cannot be used: "
                           + "; ".join(why.split("; not used")[0] for why in stale.values())
                           + f". Retrain them with `python -m lvae_lib run {target} --budget {b.name} --refresh`")
    missing = store.missing(runs, b)
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
    others = [replace(r, seed=s) for s in SEEDS if s != seed for r in runs_for(target)]
    df = pd.concat([store.table(runs, b), store.table(others, b)], ignore_index=True)  # this seed's rows first
    df.attrs.update(results_dir=str(results_dir), budget=b.name, target=target, unavailable=unavailable, seed=seed)
    _note_used(df, "shown")
    return df


def records(target: str = "all", results_dir=None, budgets=tuple(BUDGETS), seeds=SEEDS):
    """Every committed record of ``target``, of every budget and seed in ``budgets`` and ``seeds``: the
    evidence the claims are decided on (:func:`lvae_lib.claims.decide`). Trains nothing."""
    results_dir = results_dir or DEFAULT_RESULTS
    runs = [replace(r, seed=s) for s in seeds for r in runs_for(target)]
    frames = [df for name in budgets if len(df := results.Store(results_dir, name).table(runs, BUDGETS[name]))]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df.attrs.update(results_dir=str(results_dir), target=target)
    _note_used(df, "claims")
    return df


def beside_paper(df):
    """A figure's records ``df`` (from :func:`ensure`, of one budget) and, after them, the ``paper``-budget
    records of the same figure's models where some exist: the figures draw those beside their own budget's,
    named by :func:`lvae_lib.report.shown_as`, until the whole figure exists at the paper budget."""
    extra = (collect(df.attrs["target"], ("paper",), df.attrs["results_dir"]) if df.attrs["budget"] != "paper"
             else df.iloc[:0])
    if not len(extra):
        return df
    out = pd.concat([df, extra], ignore_index=True)
    out.attrs.update(df.attrs)
    return out


def collect(target: str = "all", budgets=BUDGET_ORDER, results_dir=None, seeds=SEEDS):
    """The complete records of ``target`` without training anything: for every run and seed, the record
    of the first budget in ``budgets`` that has one (the book shows ``paper`` records where they exist)."""
    results_dir = results_dir or DEFAULT_RESULTS
    todo = [replace(r, seed=s) for s in seeds for r in runs_for(target)]
    frames = []
    for name in dict.fromkeys(budgets):  # each once: ("paper", "paper") is a paper figure's own
        b = get_budget(name)
        df = results.Store(results_dir, b.name).table(todo, b)
        if len(df):
            frames.append(df)
            done = set(zip(df["dataset"], df["label"], df["seed"]))  # a run, by its identity in the table
            todo = [r for r in todo if (r.dataset, r.label, r.seed) not in done]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    df.attrs.update(results_dir=str(results_dir), budget="+".join(sorted(set(df["budget"]))) if len(df) else "none",
                    target=target)
    _note_used(df, "shown")
    return df
