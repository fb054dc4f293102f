"""Executing the figure notebooks: papermill in place, volatile metadata stripped, jupytext pair synced."""
from __future__ import annotations

from pathlib import Path

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
