"""Executing the notebooks and showing what they draw (the records they read come from :mod:`lvae_lib.query`).

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
from pathlib import Path
from unittest import mock

import pandas as pd

from .config import DATASETS
from .experiments import BUDGETS, describe_budget
from .files import atomic

VOLATILE = ("papermill", "execution")
# set by execute_notebook for its kernel: the file where a RecordSet (lvae_lib.query) notes the records it hands out
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
    with atomic(out, suffix=".ipynb") as tmp, tempfile.NamedTemporaryFile("r", suffix=".jsonl") as used:
        # the kernel inherits the environment: where to list the records it reads, and one torch thread
        # unless OMP_NUM_THREADS says otherwise, as in CI's nbval (sampled pictures depend on the thread count)
        kernel_env = {USED_ENV: used.name, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        with mock.patch.dict(os.environ, kernel_env):
            pm.execute_notebook(str(path), str(tmp), parameters=parameters or {}, kernel_name="python3",
                                cwd=str(cwd or path.parent), progress_bar=False)
        records = list({line: None for line in used.read().splitlines()})  # each once, in order
        nb = nbformat.read(tmp, as_version=4)
        nb.metadata["lvae"] = execution_info(nb.metadata.get("papermill", {}), declared, parameters or {},
                                             [json.loads(r) for r in records])
        strip_volatile(nb)
        if out == path:  # the reviewed notebook keeps its own parameters cell; the metadata says what ran
            nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
        nbformat.write(nb, tmp)
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
