"""Every notebook runs from nothing at budget=smoke through papermill: train, store, plot."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    if not os.environ.get("LVAE_DATA_DIR") and not (ROOT.parent / "shared" / "data").exists():
        pytest.skip("needs MNIST and Omniglot: set LVAE_DATA_DIR")
    os.environ.setdefault("LVAE_DATA_DIR", str(ROOT.parent / "shared" / "data"))
    return tmp_path_factory.mktemp("results")


@pytest.mark.slow
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_regenerates_at_smoke_budget(nb, results, tmp_path):
    import nbformat
    import papermill as pm

    params = pm.inspect_notebook(str(nb))
    if "budget" not in params:
        pytest.skip(f"{nb.name} has no budget parameter (an explanatory notebook)")
    out = tmp_path / nb.name
    pm.execute_notebook(str(nb), str(out), parameters={"budget": "smoke", "results_dir": str(results)},
                        kernel_name="python3", cwd=str(nb.parent), progress_bar=False)
    executed = nbformat.read(out, as_version=4)
    errors = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert any("image/png" in o.get("data", {}) or "text/html" in o.get("data", {})
               for c in executed.cells for o in c.get("outputs", []))
    assert any((results / "smoke").rglob("record.json"))


def test_executing_in_place_keeps_an_edit_of_the_py_source(tmp_path):
    """The .py is the reviewed source: an edit there is what runs, and survives the run."""
    import os
    import time

    import nbformat
    from jupytext.cli import jupytext as jupytext_cli

    from lvae_lib.notebooks import execute_notebook

    (tmp_path / "jupytext.toml").write_text((ROOT / "jupytext.toml").read_text())
    py, nb = tmp_path / "demo.py", tmp_path / "demo.ipynb"
    py.write_text("# %%\nprint('old')\n")
    jupytext_cli(["--quiet", "--sync", str(py)])
    py.write_text("# %%\nprint('edited')\n")
    later = time.time() + 5
    os.utime(py, (later, later))  # the edit is newer than the .ipynb
    execute_notebook(nb)
    outputs = [o.get("text", "") for c in nbformat.read(nb, as_version=4).cells for o in c.get("outputs", [])]
    assert outputs == ["edited\n"]
    assert "print('edited')" in py.read_text()
