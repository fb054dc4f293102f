"""The library's fast training step computes what the plain reference computes; the benchmark runs."""
import re

import pandas as pd
import pytest
import torch

from lvae_lib.bench import run_benchmark, sgemm_peak, step_flops
from lvae_lib.config import preset
from lvae_lib.model import LadderVAE
from lvae_lib.objectives import training_loss
from lvae_lib.reference import ReferenceVAE, reference_epoch, reference_loader
from lvae_lib.train import make_optimizer, train_step


def small(variant, layers=3, **kw):
    cfg, _ = preset(variant, layers, latent_sizes=(8, 6, 4), hidden_sizes=(32, 24, 16), x_dim=20, **kw)
    return cfg


def pair(cfg, seed=0):
    torch.manual_seed(seed)
    lib = LadderVAE(cfg)
    ref = ReferenceVAE(cfg)
    ref.load_state_dict(lib.state_dict())  # same names, same shapes
    return lib, ref


@pytest.mark.parametrize("variant", ["VAE", "VAE+BN+WU", "LVAE+BN+WU", "LVAE+WU"])
def test_fast_step_matches_reference(variant):
    """Same seed -> same noise -> same loss and gradients; after 3 Adam steps, the same weights."""
    cfg = small(variant)
    lib, ref = pair(cfg)
    opt_lib = make_optimizer(lib, 1e-3)  # fused Adam
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-3)  # the default
    x = torch.bernoulli(torch.rand(64, 20, generator=torch.Generator().manual_seed(1)))
    for step, beta in enumerate((0.3, 0.6, 1.0)):
        torch.manual_seed(100 + step)
        loss_ref = -ref.elbo(x, beta).mean()
        opt_ref.zero_grad()
        loss_ref.backward()
        grads_ref = {n: p.grad.clone() for n, p in ref.named_parameters()}
        opt_ref.step()
        # a bias right before batch norm has zero gradient in exact arithmetic; Adam turns its
        # rounding noise into +-lr steps, so such parameters (which do not change the model's output)
        # are left out of the weight comparison
        idle = {n for n, g in grads_ref.items() if g.abs().max() < 1e-6}
        torch.manual_seed(100 + step)
        loss_lib, _ = training_loss(lib, x, beta)
        opt_lib.zero_grad()
        loss_lib.backward()
        for n, p in lib.named_parameters():
            torch.testing.assert_close(p.grad, grads_ref[n], rtol=1e-4, atol=1e-5, msg=f"gradient of {n}, step {step}")
        opt_lib.step()
        torch.testing.assert_close(loss_lib, loss_ref, rtol=1e-5, atol=1e-5)
    assert all(re.search(r"mlp(\.\d)?\.[03]\.bias$", n) for n in idle) and (cfg.batch_norm or not idle)
    for (n, a), b in zip(lib.state_dict().items(), ref.state_dict().values()):
        if n in idle or n.endswith("running_mean"):  # running means follow those biases
            continue
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"{n} after 3 steps")


def test_reference_differs_with_other_noise():
    """Guard: the comparison above can fail -- different noise gives a different loss."""
    lib, ref = pair(small("LVAE+BN+WU"))
    x = torch.bernoulli(torch.full((64, 20), 0.5))
    torch.manual_seed(0)
    a = training_loss(lib, x)[0].detach()
    torch.manual_seed(1)
    b = -ref.elbo(x).mean().detach()
    assert abs((a - b).item()) > 1e-3


def test_train_step_and_reference_epoch_learn():
    cfg = small("LVAE+BN+WU")
    lib, ref = pair(cfg)
    x = torch.bernoulli(torch.rand(256, 20).pow(3))
    opt = make_optimizer(lib, 3e-3)
    first = float(train_step(lib, opt, x)[0])
    for _ in range(60):
        last = float(train_step(lib, opt, x)[0])
    assert last < first - 1.0
    opt_ref = torch.optim.Adam(ref.parameters(), lr=3e-3)
    assert reference_epoch(ref, opt_ref, reference_loader(x, 64)) == 4


def test_step_flops_counts_every_linear():
    cfg = small("LVAE+BN+WU")
    lib = LadderVAE(cfg)
    x = torch.bernoulli(torch.rand(16, 20))
    macs = sum(m.in_features * m.out_features for m in lib.modules() if isinstance(m, torch.nn.Linear))
    flops = step_flops(lib, x)
    # forward 2*B*macs, backward about twice that (the first layer needs no input gradient)
    assert 4 * 16 * macs < flops <= 6 * 16 * macs


def test_sgemm_peak_is_plausible():
    g = sgemm_peak(n=256, repeats=2)
    assert 0.1 < g < 1e5


def test_benchmark_writes_its_table(tmp_path):
    # eager modes only: the compiled ones are the same code path with a minute of compiling (test_step)
    df = run_benchmark(steps=2, repeats=1, k=20, images=2, processes=0, out=tmp_path / "b.csv",
                       variants=("LVAE+BN+WU",), which=[("fp32", False), ("bf16", False)], sizes=(1, 2))
    back = pd.read_csv(tmp_path / "b.csv")
    assert list(back["impl"]) == ["matmul 2048^3", "reference", "library", "eager fp32", "eager bf16",
                                  "eager fp32, stack of 2", "eager bf16, stack of 2", "library"]
    assert (back["gflops"] > 0).all() and (back["pct_peak"] > 0).all()
    assert df.loc[df.impl == "reference", "speedup_vs_reference"].item() == pytest.approx(1.0)
    steps = back[back["impl"].str.startswith("eager")]
    assert steps.loc[steps.impl == "eager fp32", "speedup_vs_fp32_step"].item() == pytest.approx(1.0)
    # a paper-budget model's hours follow from the step time: 470,000 steps
    ratio = steps["paper_model_hours"] * 3600 / (steps["ms_per_step"] / 1e3)
    assert ratio.between(470_000 * 0.999, 470_000 * 1.001).all(), ratio  # the CSV keeps 4 digits


def test_folded_batchnorm_gives_the_same_bound():
    """L_K with batch norm folded into the linear layers equals L_K of the unfolded model (same noise)."""
    from lvae_lib.model import fold_batchnorm
    from lvae_lib.objectives import iw_bound

    cfg = small("LVAE+BN+WU")
    torch.manual_seed(0)
    model = LadderVAE(cfg)
    x = torch.bernoulli(torch.rand(512, 20))
    model.train()
    for _ in range(5):  # give the running statistics values far from their initial ones
        model(x * 3 + 1)
    folded = fold_batchnorm(model)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    assert model.training  # the original is untouched
    xs = x[:40]
    torch.manual_seed(1)
    a = iw_bound(model, xs, k=50, progress=False, fold_bn=False)
    torch.manual_seed(1)
    b = iw_bound(model, xs, k=50, progress=False, fold_bn=True)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    assert model.training
    torch.manual_seed(2)
    c = iw_bound(model, xs, k=50, progress=False)
    assert (a - c).abs().max() > 1e-4  # guard: other noise does change the estimate


def test_profile_names_the_matmuls():
    from lvae_lib.bench import profile_step

    df = profile_step(steps=2, top=30)
    assert df["pct"].between(0, 100).all() and any("addmm" in op or "mm" in op for op in df["op"])


def test_many_sample_log_px_equals_the_repeated_form():
    """The L_K fast path (x . logits - softplus, no copy of x per sample) is the Bernoulli log-likelihood."""
    from lvae_lib.distributions import bernoulli_log_prob

    cfg = small("LVAE+BN+WU")
    model = LadderVAE(cfg).eval()
    x = torch.bernoulli(torch.rand(7, 20))
    z1 = torch.randn(5 * 7, cfg.latents[0])
    expected = bernoulli_log_prob(x.repeat(5, 1), model.decode(z1)).sum(-1)
    torch.testing.assert_close(model.log_px(x, z1), expected, rtol=1e-5, atol=1e-4)


def test_training_forward_without_log_w_gives_the_same_loss():
    cfg = small("VAE+BN+WU")
    model = LadderVAE(cfg)
    x = torch.bernoulli(torch.rand(32, 20))
    torch.manual_seed(3)
    a = model(x)
    torch.manual_seed(3)
    b = model(x, log_w=False)
    assert "log_w" in a and "log_w" not in b
    torch.testing.assert_close(a["elbo"], b["elbo"])
