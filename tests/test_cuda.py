"""The GPU path: the CUDA-graph training step against the eager one. Skipped without a GPU."""
import copy

import pytest
import torch

from lvae_lib.config import TrainConfig, preset
from lvae_lib.model import LadderVAE
from lvae_lib.train import GraphedStep, make_optimizer, train, train_step

from test_train import SMALL, synthetic

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _pair(name, layers=2):
    cfg, _ = preset(name, n_layers=layers, **SMALL)
    torch.manual_seed(0)
    a = LadderVAE(cfg).cuda().train()
    b = copy.deepcopy(a)
    return a, make_optimizer(a, 1e-3), b, make_optimizer(b, 1e-3)


@pytest.mark.parametrize("name,mc,iw", [("LVAE+BN+WU", 1, 1), ("VAE+BN+WU", 1, 1), ("LVAE+WU", 2, 5)])
def test_graph_replay_equals_the_eager_step(name, mc, iw):
    """Same generator state, same batch: the replayed step gives the eager step's loss and parameters."""
    a, opt_a, b, opt_b = _pair(name)
    g = GraphedStep(b, opt_b, 64, mc, iw)
    g.capture()
    for i, beta in enumerate((0.0, 0.5, 1.0)):
        xb = torch.bernoulli(torch.full((64, 784), 0.3, device="cuda"))
        torch.cuda.manual_seed(100 + i)
        loss_a, _ = train_step(a, opt_a, xb, beta, mc, iw)
        torch.cuda.manual_seed(100 + i)
        loss_b, _ = g(xb, beta)
        torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=1e-4)
    for (k, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(pb, pa, rtol=1e-4, atol=1e-5, msg=k)


def test_capture_leaves_model_and_optimizer_as_they_were():
    _, _, b, opt_b = _pair("LVAE+BN+WU")
    xb = torch.bernoulli(torch.full((64, 784), 0.3, device="cuda"))
    for _ in range(2):
        train_step(b, opt_b, xb)
    before = copy.deepcopy(b.state_dict()), copy.deepcopy(opt_b.state_dict()["state"])
    GraphedStep(b, opt_b, 64).capture()
    torch.testing.assert_close(b.state_dict(), before[0], rtol=0, atol=0)
    torch.testing.assert_close(opt_b.state_dict()["state"], before[1], rtol=0, atol=0)


def test_train_on_cuda_learns_and_resumes_a_cpu_checkpoint(tmp_path):
    cfg, _ = preset("LVAE+BN+WU", n_layers=2, **SMALL)
    tc = TrainConfig(epochs=6, warmup_epochs=2, batch_size=64, eval_every=1, checkpoint_every=1)
    train(cfg, tc, synthetic(), tmp_path, progress=False, stop_after=2)  # two epochs on the CPU
    model, st = train(cfg, tc, synthetic(), tmp_path, device="cuda", progress=False)  # four on the GPU
    h = st["history"]
    assert len(h) == 6 and next(model.parameters()).is_cuda
    assert h[-1]["test_elbo"] > h[1]["test_elbo"] + 2, [r["test_elbo"] for r in h]
