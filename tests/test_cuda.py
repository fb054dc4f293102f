"""The GPU path: the CUDA-graph training step against the eager one. Skipped without a GPU."""
import copy

import pytest
import torch

from lvae_lib import distributions as D
from lvae_lib.config import TrainConfig, preset
from lvae_lib.model import LadderVAE
from lvae_lib.step import SingleStep, noise_shapes
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
    """Same noise, same batch: the replayed step gives the eager step's loss and parameters."""
    a, opt_a, b, opt_b = _pair(name)
    g = GraphedStep(b, opt_b, 64, mc, iw)
    g.capture()
    for i, beta in enumerate((0.0, 0.5, 1.0)):
        xb = torch.bernoulli(torch.full((64, 784), 0.3, device="cuda"))
        eps = [torch.randn(s, device="cuda") for s in noise_shapes(a.cfg, mc * iw * 64)]
        with D.given_noise(eps):
            loss_a, _ = train_step(a, opt_a, xb, beta, mc, iw)
        loss_b, _ = g(xb, eps, beta)
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


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_the_compiled_step_on_the_gpu_is_the_eager_one(precision):
    """Inductor (with its CUDA graphs) against the eager step, same noise and batches; fp32 to rounding,
    tf32 and bf16 to a small fraction of a nat."""
    a, opt_a, b, opt_b = _pair("LVAE+BN+WU")
    tc = TrainConfig(batch_size=64, precision=precision)
    eager = SingleStep(a, opt_a, TrainConfig(batch_size=64), "cuda", compiled=False)
    comp = SingleStep(b, opt_b, tc, "cuda", compiled=True)
    tol = dict(rtol=1e-5, atol=1e-3) if precision == "fp32" else dict(rtol=2e-3, atol=0.5)
    for i in range(3):
        xb = torch.bernoulli(torch.full((1, 64, 784), 0.3, device="cuda"))
        eps = [torch.randn(1, *s, device="cuda") for s in noise_shapes(a.cfg, 64)]
        la, _, _ = eager(xb, eps, [0.5])
        lb, _, _ = comp(xb, eps, [0.5])
        assert comp.loss.ok
        torch.testing.assert_close(lb, la, **tol)


def test_train_on_cuda_learns_and_resumes_a_cpu_checkpoint(tmp_path):
    cfg, _ = preset("LVAE+BN+WU", n_layers=2, **SMALL)
    tc = TrainConfig(epochs=6, warmup_epochs=2, batch_size=64, eval_every=1, checkpoint_every=1)
    train(cfg, tc, synthetic(), tmp_path, progress=False, stop_after=2)  # two epochs on the CPU
    model, st = train(cfg, tc, synthetic(), tmp_path, device="cuda", progress=False)  # four on the GPU
    h = st["history"]
    assert len(h) == 6 and next(model.parameters()).is_cuda
    assert h[-1]["test_elbo"] > h[1]["test_elbo"] + 2, [r["test_elbo"] for r in h]
