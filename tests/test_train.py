"""Training: the ELBO rises, resume equals uninterrupted, divergence is caught, the CLI works."""
import subprocess
import sys

import pytest
import torch

from lvae_lib import analysis
from lvae_lib.config import TrainConfig, preset
from lvae_lib.train import DivergenceError, TrainData, train


def synthetic(n=512, d=784, seed=0):
    """Binary-ish data with structure: 4 prototypes plus pixel noise."""
    g = torch.Generator().manual_seed(seed)
    protos = (torch.rand(4, d, generator=g) < 0.3).float()
    idx = torch.randint(0, 4, (n,), generator=g)
    x = (protos[idx] * 0.9 + 0.05).clamp(0, 1)
    return TrainData(x[: n - 128], torch.bernoulli(x[n - 128 :], generator=g), True, idx[n - 128 :])


SMALL = dict(latent_sizes=(16, 8), hidden_sizes=(64, 32))


@pytest.mark.parametrize("name", ["VAE+BN+WU", "LVAE+BN+WU", "VAE", "LVAE+WU"])
def test_a_few_epochs_raise_the_elbo(name):
    cfg, warm = preset(name, n_layers=2, **SMALL)
    tc = TrainConfig(epochs=6, warmup_epochs=0, batch_size=64, eval_every=1)
    model, st = train(cfg, tc, synthetic(), progress=False)
    h = st["history"]
    assert h[-1]["test_elbo"] > h[0]["test_elbo"] + 5, [r["test_elbo"] for r in h]
    x = synthetic().x_test
    loss = model(x)["elbo"].mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert {"train_elbo", "kl_1", "kl_2", "active_1", "active_2", "seconds"} <= h[-1].keys()


def test_warmup_schedule_and_lr_decay():
    tc = TrainConfig(epochs=10, warmup_epochs=4, lr_decay=0.75, lr_decay_every=3)
    assert [tc.beta(e) for e in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert tc.lr_at(0) == tc.lr_at(2) == 1e-3 and tc.lr_at(3) == 0.75e-3 and tc.lr_at(6) == pytest.approx(0.5625e-3)
    assert TrainConfig().beta(0) == 1.0
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    cfg, _ = preset("LVAE+BN+WU", n_layers=2, **SMALL)
    tc = TrainConfig(epochs=4, warmup_epochs=2, batch_size=64, eval_every=2, checkpoint_every=1,
                     kl_snapshot_epochs=(1, 4))
    data = synthetic()
    full, st_full = train(cfg, tc, data, tmp_path / "a", progress=False)
    train(cfg, tc, data, tmp_path / "b", progress=False, stop_after=2)  # "interrupted" after epoch 2
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert ck["epoch"] == 2
    resumed, st_res = train(cfg, tc, data, tmp_path / "b", progress=False)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(st_full["history"]) == strip(st_res["history"])
    assert st_full["kl_snapshots"].keys() == {1, 4} and st_full["kl_snapshots"] == st_res["kl_snapshots"]
    # checkpoint round trip: a finished run loads and does nothing more
    again, st3 = train(cfg, tc, data, tmp_path / "a", progress=False)
    torch.testing.assert_close(again.state_dict(), full.state_dict())
    # a checkpoint for other configs is refused, not silently mixed
    with pytest.raises(ValueError, match="other configs"):
        train(cfg, TrainConfig(epochs=5, batch_size=64), data, tmp_path / "a", progress=False)


def test_a_run_resumed_under_other_code_says_which_epochs_ran_under_which(tmp_path, monkeypatch):
    import lvae_lib.train as T
    cfg, _ = preset("VAE", n_layers=1, **SMALL)
    tc = TrainConfig(epochs=3, batch_size=64, checkpoint_every=1)
    monkeypatch.setattr(T, "git_commit", lambda: "aaa1111")
    train(cfg, tc, synthetic(), tmp_path, progress=False, stop_after=2)
    monkeypatch.setattr(T, "git_commit", lambda: "15e4311")  # the next commit; a hash pandas would read as a float
    _, st = train(cfg, tc, synthetic(), tmp_path, progress=False)
    assert [r["commit"] for r in st["history"]] == ["aaa1111", "aaa1111", "15e4311"]


def test_a_nan_stops_training_naming_epoch_and_layer_and_keeps_the_checkpoint(tmp_path):
    cfg, _ = preset("VAE", n_layers=2, dataset="norb", **SMALL)
    d = synthetic(d=1024)
    tc = TrainConfig(epochs=5, batch_size=64, checkpoint_every=1)
    d = TrainData(d.x_train, d.x_test, binarize=False)
    train(cfg, tc, d, tmp_path, progress=False, stop_after=2)
    bad = d.x_train.clone()
    bad[5, 3] = float("nan")
    with pytest.raises(DivergenceError, match=r"epoch 3 .*log p\(x\|z_1\).*epoch 2"):
        train(cfg, tc, TrainData(bad, d.x_test, binarize=False), tmp_path, progress=False)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["epoch"] == 2


def test_recompute_batchnorm_uses_the_data_statistics():
    cfg, _ = preset("LVAE+BN+WU", n_layers=1, **SMALL)
    from lvae_lib.model import LadderVAE

    m = LadderVAE(cfg)
    x = torch.rand(300, 784) * 3 + 1
    analysis.recompute_batchnorm(m, x, batch_size=100)
    bn = m.up_mlp[0][1]
    h = m.up_mlp[0][0](x)
    torch.testing.assert_close(bn.running_mean, h.mean(0), atol=1e-4, rtol=1e-4)
    assert bn.momentum == 0.1


def test_cli_help_and_train_evaluate(tmp_path, monkeypatch):
    out = subprocess.run([sys.executable, "-m", "lvae_lib", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--warmup" in out.stdout and "resumes" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "lvae_lib", "evaluate", str(tmp_path / "none")], capture_output=True, text=True)
    assert bad.returncode == 2 and "no config.json" in bad.stderr
