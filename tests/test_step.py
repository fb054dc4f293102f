"""The training step's precision policy and its compiled form: the compiled step is the eager one up to
rounding, the precision is in the record and its key, and bf16 stays out of the log-probabilities."""
import copy
import sys
from pathlib import Path

import pytest
import torch

from lvae_lib import distributions as D
from lvae_lib import experiments as E
from lvae_lib.config import TrainConfig, preset, to_dict
from lvae_lib.model import LadderVAE
from lvae_lib.step import SingleStep, noise_shapes, precision
from lvae_lib.train import make_optimizer, train

sys.path.insert(0, str(Path(__file__).parent))
from test_train import SMALL, synthetic  # noqa: E402


def _batches(cfg, steps=3, m=1, rows=64):
    g = torch.Generator().manual_seed(1)
    return [(torch.bernoulli(torch.rand(m, rows, cfg.x_dim, generator=g)),
             [torch.randn(m, *s, generator=g) for s in noise_shapes(cfg, rows)]) for _ in range(steps)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["VAE+BN", "LVAE+WU"])  # bottom-up with batch norm, ladder without
def test_the_compiled_step_is_the_eager_one(name):
    cfg, _ = preset(name, n_layers=2, **SMALL)
    tc = TrainConfig(batch_size=64)
    a = LadderVAE(cfg)
    b = copy.deepcopy(a)
    eager = SingleStep(a, make_optimizer(a, 1e-3), tc, "cpu", compiled=False)
    comp = SingleStep(b, make_optimizer(b, 1e-3), tc, "cpu", compiled=True)
    for i, (x, eps) in enumerate(_batches(cfg)):
        beta = [0.5]
        la, ea, _ = eager(x, eps, beta)
        lb, eb, _ = comp(x, eps, beta)
        assert comp.loss.ok, "the compiled step fell back to eager"
        torch.testing.assert_close(lb, la, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(eb, ea, rtol=1e-5, atol=1e-3)
        if i == 0:  # the gradients of the first step (same weights before it)
            for (k, pa), pb in zip(a.named_parameters(), b.parameters()):
                torch.testing.assert_close(pb.grad, pa.grad, rtol=1e-3, atol=1e-5, msg=k)
    _assert_same_weights(b.state_dict(), a.state_dict(), cfg.batch_norm)


def _assert_same_weights(got: dict, want: dict, batch_norm: bool):
    """Weights agree to rounding, but for the biases right before a batch norm (and their running means):
    batch norm removes them from the loss, so their gradients are rounding noise that Adam turns into
    full-size steps (as in test_stacked). The tolerance, 5e-5, is 1/60 of what three Adam steps of lr 1e-3 move a
    weight: a wrong gradient moves it by ~1e-3; rounding through Adam's 1/sqrt(v) reached 1.1e-5 on one weight
    element of 50,176 under torch 2.13 (inductor's fused kernels sum in another order)."""
    before_bn = {k for k in want if batch_norm and k.endswith((".0.bias", ".3.bias", "1.running_mean", "4.running_mean"))}
    torch.testing.assert_close({k: v for k, v in got.items() if k not in before_bn},
                               {k: v for k, v in want.items() if k not in before_bn}, rtol=1e-4, atol=5e-5)


@pytest.mark.slow
def test_the_compiled_stacked_step_is_the_eager_one():
    from lvae_lib.stacked import StackedStep

    cfg, _ = preset("LVAE+BN+WU", n_layers=2, **SMALL)
    tc = TrainConfig(batch_size=64)
    models = [LadderVAE(cfg) for _ in range(2)]
    eager = StackedStep(copy.deepcopy(models), tc, "cpu", compiled=False)
    comp = StackedStep(copy.deepcopy(models), tc, "cpu", compiled=True)
    for x, eps in _batches(cfg, m=2):
        la, ea, _ = eager(x, eps, [0.5, 1.0])
        lb, eb, _ = comp(x, eps, [0.5, 1.0])
        assert comp._grads.ok
        torch.testing.assert_close(lb, la, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(eb, ea, rtol=1e-5, atol=1e-3)
    for m in range(2):
        _assert_same_weights(comp.model_at(m).state_dict(), eager.model_at(m).state_dict(), cfg.batch_norm)


@pytest.mark.slow
def test_a_compiled_run_resumed_equals_one_uninterrupted(tmp_path):
    cfg, _ = preset("VAE+BN+WU", n_layers=2, **SMALL)
    tc = TrainConfig(epochs=3, batch_size=64, warmup_epochs=2, checkpoint_every=1, precision="bf16")
    full, st_full = train(cfg, tc, synthetic(), tmp_path / "a", progress=False, compile=True)
    train(cfg, tc, synthetic(), tmp_path / "b", progress=False, compile=True, stop_after=2)
    res, st_res = train(cfg, tc, synthetic(), tmp_path / "b", progress=False, compile=True)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(st_full["history"]) == strip(st_res["history"])
    assert {r["step"] for r in st_full["history"]} == {"compiled"}
    torch.testing.assert_close(res.state_dict(), full.state_dict(), rtol=0, atol=0)


def test_a_short_run_trains_eagerly_and_says_why(tmp_path):
    cfg, _ = preset("VAE", n_layers=1, **SMALL)
    said = []
    from lvae_lib.train import fit

    _, st = fit(cfg, [TrainConfig(epochs=1, batch_size=64)], synthetic(), [None], compile=None, progress=False,
                log=said.append)[0]
    assert st["history"][0]["step"] == "eager" and "fewer than the 20,000" in said[0]


def test_precision_is_in_the_key_and_the_record_but_fp32_keys_are_unchanged():
    b = E.get_budget("cpu")
    run = E.Run("mnist", "LVAE+BN+WU", 5)
    bf = E.Run("mnist", "LVAE+BN+WU", 5, precision="bf16")
    assert bf.key(b) != run.key(b) and bf.label == "LVAE+BN+WU-L5-bf16" and run.label == "LVAE+BN+WU-L5"
    assert "precision" not in to_dict(run.configs(b)[1]) and to_dict(bf.configs(b)[1])["precision"] == "bf16"
    # every committed record still has the key its run computes (so nothing is retrained for precision)
    import dataclasses

    from lvae_lib.config import PRECISIONS

    every = [dataclasses.replace(r, seed=s, precision=p) for r in E.runs_for(list(E.FIGURES)) for s in E.SEEDS for p in PRECISIONS]
    for rec_json in sorted(E.DEFAULT_RESULTS.glob("*/*/*/record.json")):
        label, key = rec_json.parent.name.rsplit("-", 1)
        budget = E.get_budget(rec_json.parts[-4])
        assert any(r.label == label and r.key(budget) == key for r in every), rec_json
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(precision="fp16")


def test_bf16_runs_only_the_mlp_matmuls_in_bf16_and_keeps_the_elbo():
    torch.manual_seed(0)
    cfg, _ = preset("LVAE+BN+WU", 5)
    model = LadderVAE(cfg)
    x = torch.bernoulli(torch.rand(256, 784))
    eps = [torch.randn(s) for s in noise_shapes(cfg, 256)]
    with D.given_noise(eps):
        ref = model(x)["elbo"]
    seen = []
    orig = {n: getattr(D, n) for n in ("gaussian_log_prob", "gaussian_kl", "standard_normal_kl",
                                       "precision_weighted_merge", "bernoulli_log_prob", "reparameterize")}

    def spy(name):
        def f(*args):
            seen.append((name, {a.dtype for a in args if torch.is_tensor(a)}))
            return orig[name](*args)
        return f

    linear = torch.nn.functional.linear
    dtypes = []

    def spy_linear(x, w, b=None):
        dtypes.append(w.dtype)
        return linear(x, w, b)

    try:
        for n in orig:
            setattr(D, n, spy(n))
        torch.nn.functional.linear = spy_linear
        with precision([model], "bf16"), D.given_noise(eps):
            out = model(x)
    finally:
        for n, f in orig.items():
            setattr(D, n, f)
        torch.nn.functional.linear = linear
    assert seen and all(d == {torch.float32} for _, d in seen), [s for s in seen if s[1] != {torch.float32}]
    n_mlp = sum(isinstance(m, __import__("lvae_lib.model", fromlist=["Linear"]).Linear) for m in model.modules())
    assert dtypes.count(torch.bfloat16) == n_mlp and dtypes.count(torch.float32) > 0  # the heads stay fp32
    assert out["elbo"].dtype == torch.float32
    # the ELBO of a fixed model and batch: bf16 matmuls move it by a small fraction of a nat per image
    diff = (out["elbo"] - ref).abs()
    assert float(diff.mean()) < 0.5 and float(diff.mean()) > 0, float(diff.mean())
    # and the model is back in fp32 afterwards
    with D.given_noise(eps):
        torch.testing.assert_close(model(x)["elbo"], ref, rtol=0, atol=0)


def test_a_step_that_fails_to_compile_trains_eagerly_says_why_and_loses_nothing(monkeypatch):
    """The fallback: batch-norm statistics touched by the failed first call are put back, the eager step runs."""
    from lvae_lib import step as S

    cfg, _ = preset("VAE+BN", n_layers=2, **SMALL)
    a = LadderVAE(cfg)
    b = copy.deepcopy(a)

    def broken(fn, **kw):
        def call(*args):
            with torch.no_grad():
                for v in b.buffers():
                    v.add_(1.0 if v.is_floating_point() else 1)  # what a half-run forward might leave behind
            raise RuntimeError("no C++ compiler found")
        return call

    monkeypatch.setattr(S.torch, "compile", broken)
    said = []
    eager = SingleStep(a, make_optimizer(a, 1e-3), TrainConfig(batch_size=64), "cpu", compiled=False)
    comp = SingleStep(b, make_optimizer(b, 1e-3), TrainConfig(batch_size=64), "cpu", compiled=True, log=said.append)
    (x, eps), = _batches(cfg, steps=1)
    la, _, _ = eager(x, eps, [1.0])
    lb, _, _ = comp(x, eps, [1.0])
    assert comp.loss.ok is False and "no C++ compiler found" in said[0] and "eager step instead" in said[0]
    torch.testing.assert_close(lb, la)
    torch.testing.assert_close(b.state_dict(), a.state_dict())


def test_the_graphed_branch_returns_what_the_eager_one_returns():
    """On a GPU a full batch goes through the CUDA graph, which hands back the model's whole dict (lists of
    per-layer tensors among its values); the step must return the eager branch's three things all the same
    (a first GPU run failed here: the test stands in a CPU double for the graph)."""
    cfg, _ = preset("LVAE+BN+WU", n_layers=2, **SMALL)
    torch.manual_seed(0)
    model = LadderVAE(cfg)
    eager = SingleStep(copy.deepcopy(model), make_optimizer(copy.deepcopy(model), 1e-3), TrainConfig(batch_size=64),
                       "cpu", False)
    graphed = SingleStep(copy.deepcopy(model), make_optimizer(copy.deepcopy(model), 1e-3), TrainConfig(batch_size=64),
                         "cpu", False)

    def stand_in(xb, eps, beta):  # the graph's contract: (loss, the model's dict) of a training step
        from lvae_lib.objectives import training_loss

        with D.given_noise(eps):
            loss, out = training_loss(graphed.model, xb, beta)
        graphed.opt.zero_grad(set_to_none=True)
        loss.backward()
        graphed.opt.step()
        return loss, out

    graphed.graphed = stand_in
    x, eps = _batches(cfg, steps=1)[0]
    a, b = eager(x, eps, [1.0]), graphed(x, eps, [1.0])
    assert set(b[2]) == set(a[2]) == {"log_px", "kl"}
    for u, v in zip(a, b):
        torch.testing.assert_close(u, v)
