import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def mnist_root() -> str:
    """The data folder holding MNIST ($LVAE_DATA_DIR, else ../shared/data beside the clone), exported as
    LVAE_DATA_DIR for the code and the subprocesses under test; the test is skipped where there is none."""
    root = os.environ.get("LVAE_DATA_DIR") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    if not Path(root, "mnist").exists():
        pytest.skip("needs MNIST: set LVAE_DATA_DIR")
    os.environ["LVAE_DATA_DIR"] = root = str(Path(root).resolve())
    return root


def pytest_collection_modifyitems(items):
    """The test files that hold slow or browser tests first, each file's tests kept together and in order: with
    `-n 2 --dist loadfile` the longest files start at once and the many short ones fill in beside them (longest
    first), instead of the longest file starting last and running on alone."""
    heavy = {item.path for item in items if item.get_closest_marker("slow") or item.get_closest_marker("browser")}
    items.sort(key=lambda item: item.path not in heavy)  # a stable sort: the order within each group is kept
