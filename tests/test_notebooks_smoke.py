"""A notebook runs from nothing at budget=smoke through papermill: train, store, plot.

Every notebook is executed once in CI: `pytest --nbval` re-executes each committed notebook against its
outputs; here only Fig. 2's runs from an empty store, the one path nbval cannot take (training the records a
figure misses, storing them, then drawing them). Other notebooks share that path (lvae_lib.query.ensure)."""
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COLD = ROOT / "notebooks" / "fig2_training_curves.ipynb"


@pytest.mark.slow
def test_a_notebook_regenerates_from_an_empty_store_at_smoke_budget(tmp_path, mnist_root):
    import nbformat
    import papermill as pm

    from lvae_lib import experiments as E

    results, out = tmp_path / "results", tmp_path / COLD.name
    pm.execute_notebook(str(COLD), str(out), parameters={"budget": "smoke", "results_dir": str(results)},
                        kernel_name="python3", cwd=str(COLD.parent), progress_bar=False)
    cells = nbformat.read(out, as_version=4).cells
    outputs = [o for c in cells for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    # what it trained is in the store, one record per run of the figure ...
    assert len(list((results / "smoke").rglob("record.json"))) == len(E.runs_for("fig2"))
    # ... and on the page: the figure, the table of final values and the claims decided on those records
    assert any("image/png" in o.get("data", {}) or "application/papermill.record/image/png" in o.get("data", {})
               for o in outputs)
    html = " ".join(o.get("data", {}).get("text/html", "") for o in outputs)
    assert "LVAE+BN+WU" in html and "smoke test" in html and "verdict" in html


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


def test_executing_keeps_how_it_ran_for_the_execution_page(tmp_path):
    """execute_notebook records in the notebook when it ran, its parameters and the records its kernel
    read; execution_table shows them; a notebook never run that way says so."""
    import nbformat
    from jupytext.cli import jupytext as jupytext_cli

    from lvae_lib.notebooks import USED_ENV, execute_notebook, execution_table

    (tmp_path / "jupytext.toml").write_text((ROOT / "jupytext.toml").read_text())
    (tmp_path / "demo.py").write_text(
        '# %% tags=["parameters"]\nbudget = "cpu"\nseed = 0\n\n'
        "# %%\nimport pandas as pd\nfrom lvae_lib.notebooks import _note_used\n"
        "_note_used(pd.DataFrame([{'budget': budget, 'label': 'VAE-L5', 'seed': s, 'key': f'k{s}'} for s in (seed, 2)]), 'shown')\n"
        "_note_used(pd.DataFrame([{'budget': 'smoke', 'label': 'VAE-L5', 'seed': 0, 'key': 'k'}]), 'claims')\n")
    jupytext_cli(["--quiet", "--sync", str(tmp_path / "demo.py")])
    jupytext_cli(["--quiet", "--set-kernel", "python3", str(tmp_path / "demo.ipynb")])
    (tmp_path / "never.ipynb").write_text(nbformat.writes(nbformat.v4.new_notebook()))
    execute_notebook(tmp_path / "demo.ipynb", parameters={"seed": 1})
    assert USED_ENV not in os.environ  # the parent's environment is left as it was
    nb = nbformat.read(tmp_path / "demo.ipynb", as_version=4)
    assert "papermill" not in nb.metadata and nb.metadata["lvae"]["seconds"] > 0
    t = execution_table(tmp_path).set_index("notebook")
    demo = t.loc["demo"]
    assert demo["parameters"] == "budget=cpu, seed=1"  # the notebook's default, the given value over it
    assert demo["records shown"] == 2 and demo["models shown"] == "cpu: VAE-L5 (seeds 1, 2)"
    assert demo["claims read"] == "1 (smoke: 1)"
    assert demo["executed (UTC)"].startswith("20") and "torch" in demo["versions"]
    assert t.loc["never", "executed (UTC)"] == "never"
    assert "executed" not in (tmp_path / "demo.py").read_text()  # the reviewed source stays free of it
