"""The project's plumbing: environment files agree, notebooks and their .py pairs agree, `make test` uses the cores."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_names_the_same_packages_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert any(str(d).startswith("python=3.11") for d in env["dependencies"] if isinstance(d, str))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    env_names = {_name(r) for r in pip if not r.startswith("-")}
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in proj["dependencies"]}
    for extra in proj["optional-dependencies"].values():
        names |= {_name(r) for r in extra}
    assert env_names == names, f"only in environment.yml: {env_names - names}; only in pyproject: {names - env_names}"


def test_lock_pins_every_dependency_exactly():
    lock = {_name(l): l.split("==")[1].strip() for l in (ROOT / "requirements/lock.txt").read_text().splitlines()
            if "==" in l and not l.startswith("#")}
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = proj["dependencies"] + [r for e in proj["optional-dependencies"].values() for r in e]
    missing = [r for r in reqs if _name(r) not in lock]
    assert not missing, f"not pinned in requirements/lock.txt: {missing}"
    assert lock["torch"] == "2.13.0"


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_pair_in_sync(nb):
    """Each .ipynb has a .py:percent twin with the same cells (papermill metadata never reaches the .py)."""
    import jupytext

    py = nb.with_suffix(".py")
    assert py.exists(), f"{nb.name} has no paired {py.name}"
    a = jupytext.read(nb)
    b = jupytext.read(py)
    src = lambda n: [(c.cell_type, c.source.strip()) for c in n.cells]  # noqa: E731
    assert src(a) == src(b), f"{nb.name} and {py.name} differ: run `jupytext --sync {nb}`"
    text = py.read_text()
    # papermill's run metadata would show as a header key or as cell-marker options
    assert not re.search(r"^#\s+(papermill|execution):|^# %%.*\b(papermill|execution)=", text, re.M)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_parameters_cell_and_outputs(nb):
    import nbformat

    n = nbformat.read(nb, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in n.cells), f"{nb.name}: no 'parameters' cell"
    code = [c for c in n.cells if c.cell_type == "code"]
    assert any(c.outputs for c in code), f"{nb.name} is committed without outputs: run `make figures`"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_names_its_kernel(nb):
    """papermill and nbval need the kernel in the metadata (jupytext --to ipynb leaves it out)."""
    import nbformat

    assert nbformat.read(nb, as_version=4).metadata.get("kernelspec", {}).get("name") == "python3"


def test_make_test_uses_every_core_even_where_omp_num_threads_is_1():
    """CI exports OMP_NUM_THREADS=1 (one torch thread per test), and GNU nproc reports that number as the
    machine's cores: the test workers must be counted without it (up to 4)."""
    if not shutil.which("make"):
        pytest.skip("needs make")
    out = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "OMP_THREAD_LIMIT": "1"}).stdout
    workers = re.search(r"pytest .* -n (\d+)", out)
    assert workers, f"no pytest -n in `make -n test`:\n{out}"
    assert int(workers.group(1)) == min(len(os.sched_getaffinity(0)), 4)
