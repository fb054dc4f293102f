"""`figures` (execute_notebook in place) never destroys a notebook and never keeps one-off parameters."""
import nbformat
import pytest

from lvae_lib.notebooks import execute_notebook, typed_parameters

pytestmark = pytest.mark.slow  # each case starts a kernel


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell('budget = "auto"\nfail = 0')
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell('import os\nassert not fail, "asked to fail"\n'
                                             'print("ran with", budget, "threads", os.environ["OMP_NUM_THREADS"])')]
    nbformat.write(nb, path)
    return path.read_bytes()


def test_a_failed_run_leaves_the_notebook_as_it_was(tmp_path):
    path = tmp_path / "nb.ipynb"
    before = _notebook(path)
    with pytest.raises(Exception, match="asked to fail"):
        execute_notebook(path, parameters={"fail": 1})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["nb.ipynb"]  # no temporary file left


def test_one_off_parameters_are_in_the_metadata_not_in_the_notebook(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the kernel then runs on one thread, as CI's nbval
    path = tmp_path / "nb.ipynb"
    _notebook(path)
    execute_notebook(path, parameters={"budget": "smoke"})
    nb = nbformat.read(path, as_version=4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert nb.cells[0].source.startswith('budget = "auto"')  # the parameters cell stays the default
    assert "ran with smoke threads 1" in nb.cells[1].outputs[0]["text"]
    assert nb.metadata["lvae"]["parameters"]["budget"] == "'smoke'"


@pytest.mark.parametrize("raw, message", [({"budget": "smok"}, "budget='smok'.*choose one of smoke, cpu, paper"),
                                          ({"device": "bogus"}, "device='bogus'.*not a torch device")])
def test_bad_values_are_refused_before_anything_runs(tmp_path, raw, message):
    path = tmp_path / "nb.ipynb"
    nb = nbformat.read(nbformat.reads(_notebook(path).decode(), as_version=4) and path, as_version=4)
    nb.cells[0].source += '\ndevice = "cpu"'
    nbformat.write(nb, path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=message):
        typed_parameters(path, raw)
    with pytest.raises(ValueError, match=message):
        execute_notebook(path, parameters=raw)
    assert path.read_bytes() == before
