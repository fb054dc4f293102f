"""The stacked engine: M models in one step equal M models trained alone from the same seeds."""
import sys
from pathlib import Path

import pytest
import torch

from lvae_lib.config import TrainConfig, preset
from lvae_lib.stacked import train_stacked
from lvae_lib.train import cpu_model, load_checkpoint, train

sys.path.insert(0, str(Path(__file__).parent))
from test_train import SMALL, synthetic  # noqa: E402

# three models: other seeds, and warm-up lengths 0, 2 and 1 (VAE+BN and VAE+BN+WU stack)
CFGS = [TrainConfig(epochs=3, batch_size=64, eval_every=2, warmup_epochs=w, seed=s, kl_snapshot_epochs=(1, 3))
        for s, w in ((0, 0), (1, 2), (2, 1))]


@pytest.mark.parametrize("name", ["VAE", "VAE+BN+WU", "LVAE+BN+WU", "LVAE+WU"])
def test_one_stacked_step_gives_each_models_own_loss_and_gradients(name):
    import copy

    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    from lvae_lib import distributions as D
    from lvae_lib.model import LadderVAE
    from lvae_lib.objectives import loss_of, training_loss
    from lvae_lib.step import noise_shapes as _noise_shapes

    cfg, _ = preset(name, n_layers=2, **SMALL)
    torch.manual_seed(0)
    models = [LadderVAE(cfg) for _ in range(3)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.bernoulli(torch.rand(3, 64, 784))
    betas = torch.tensor([0.0, 0.5, 1.0])  # mixed warm-up
    eps = [torch.randn(3, *shape) for shape in _noise_shapes(cfg, 64)]

    def one(p, b, xb, e, beta):
        with D.given_noise(e):
            out = functional_call(base, (p, b), (xb,), {"n_samples": 1, "log_w": False})
        return loss_of(out, beta)

    grads, losses = vmap(grad_and_value(one))(params, buffers, x, eps, betas)
    for m, model in enumerate(models):
        with D.given_noise([e[m] for e in eps]):
            loss, _ = training_loss(model, x[m], float(betas[m]))
        loss.backward()
        assert float(losses[m].detach()) == pytest.approx(float(loss.detach()), rel=1e-6)
        for k, p in model.named_parameters():
            torch.testing.assert_close(grads[k][m], p.grad, rtol=1e-4, atol=1e-5, msg=k)
        for k, v in model.named_buffers():  # batch norm: statistics of this model's batch only
            torch.testing.assert_close(buffers[k][m], v, rtol=1e-5, atol=1e-6, msg=k)


@pytest.mark.parametrize("name", ["VAE", "VAE+BN+WU", "LVAE+BN+WU", "LVAE+WU"])
def test_a_stack_trains_as_its_models_would_alone(name):
    """Over whole epochs (each model's own data order, binarisation, noise and evaluations). Without
    batch norm, every epoch's training ELBO and loss and the weights agree to rounding. With it,
    directions that batch norm makes irrelevant (a bias before it; while beta = 0, the latent means
    before a normalised decoder) get gradients of pure rounding noise, which Adam turns into
    full-size steps: the two trainings then drift apart as two equally valid ones would (as one
    thread against two does), and agree to a fraction of a nat."""
    cfg, _ = preset(name, n_layers=2, **SMALL)
    data = synthetic()
    alone = [train(cfg, tc, data, progress=False) for tc in CFGS]
    stacked = train_stacked(cfg, CFGS, data, progress=False)
    for (m1, st1), (m2, st2) in zip(alone, stacked):
        close = dict(abs=0.5) if cfg.batch_norm else dict(rel=1e-5)
        for r1, r2 in zip(st1["history"], st2["history"]):
            assert r1["beta"] == r2["beta"]
            assert r2["train_elbo"] == pytest.approx(r1["train_elbo"], **close)
            assert r2["train_loss"] == pytest.approx(r1["train_loss"], **close)
        assert st2["history"][-1]["test_elbo"] == pytest.approx(st1["history"][-1]["test_elbo"], abs=0.5)
        assert st2["history"][0]["train_elbo"] == pytest.approx(st1["history"][0]["train_elbo"], rel=1e-4)  # epoch 1
        assert st1["kl_snapshots"].keys() == st2["kl_snapshots"].keys() == {1, 3}
        if not cfg.batch_norm:
            torch.testing.assert_close(m2.state_dict(), m1.state_dict(), rtol=1e-3, atol=1e-4)


def test_a_stacked_run_resumes_exactly_and_writes_ordinary_checkpoints(tmp_path):
    cfg, _ = preset("LVAE+BN+WU", n_layers=2, **SMALL)
    data = synthetic()
    full = train_stacked(cfg, CFGS, data, [tmp_path / f"a{i}" for i in range(3)], progress=False)
    dirs = [tmp_path / f"b{i}" for i in range(3)]
    train_stacked(cfg, CFGS, data, dirs, progress=False, stop_after=1)  # interrupted after epoch 1
    assert [load_checkpoint(d / "checkpoint.pt")["epoch"] for d in dirs] == [1, 1, 1]
    resumed = train_stacked(cfg, CFGS, data, dirs, progress=False)
    for (m1, st1), (m2, st2) in zip(full, resumed):
        torch.testing.assert_close(m2.state_dict(), m1.state_dict(), rtol=0, atol=0)
        strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
        assert strip(st1["history"]) == strip(st2["history"])
    # a stacked checkpoint is an ordinary one: a single run finds it complete and returns the same model
    alone, st = train(cfg, CFGS[1], data, dirs[1], progress=False)
    torch.testing.assert_close(alone.state_dict(), resumed[1][0].state_dict(), rtol=0, atol=0)
    assert st["history"][-1]["device"] == f"cpu ({cpu_model()}) (stack of 3)"


def test_only_models_that_differ_in_seed_and_warmup_stack():
    cfg, _ = preset("VAE", n_layers=1, **SMALL)
    with pytest.raises(ValueError, match="share every config value but seed and warmup_epochs"):
        train_stacked(cfg, [TrainConfig(epochs=1), TrainConfig(epochs=2)], synthetic(), progress=False)
