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
