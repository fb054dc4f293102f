"""The VAE / LVAE against models whose marginal likelihood is known exactly."""
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal

from lvae_lib import distributions as D
from lvae_lib.config import ModelConfig, preset
from lvae_lib.model import LadderVAE, count_parameters
from lvae_lib.objectives import iw_bound, training_loss


class LinearGaussian(nn.Module):
    """y -> (w * y + b, var) with a fixed diagonal variance: a linear-Gaussian conditional."""

    def __init__(self, w, b, var):
        super().__init__()
        self.w, self.b, self.v = w, b, var

    def forward(self, y):
        mean = y @ self.w.T + self.b
        return mean, self.v.expand_as(mean)


def linear_gaussian_lvae(x_dim=3, seed=0):
    """A 2-layer LVAE turned into p(z2)=N(0,1), p(z1|z2)=N(W1 z2 + b1, s1), p(x|z1)=N(diag(w0) z1 + b0, s0).

    z1 has x_dim units and z2 one, so the exact posterior p(z2|x) p(z1|z2,x) is in the ladder family:
    p(x|z1), seen as a function of z1, is the Gaussian N((x-b0)/w0, s0/w0^2) (the "bottom-up estimate"),
    and p(z1|z2,x) is its precision-weighted merge with p(z1|z2).
    """
    g = torch.Generator().manual_seed(seed)
    cfg = ModelConfig(inference="ladder", n_layers=2, latent_sizes=(x_dim, 1), hidden_sizes=(8, 8), x_dim=x_dim,
                      likelihood="gaussian", batch_norm=False, min_var=0.0)
    m = LadderVAE(cfg).eval()
    w0 = torch.rand(x_dim, generator=g) + 0.5
    b0, s0 = torch.randn(x_dim, generator=g), torch.rand(x_dim, generator=g) + 0.2
    W1, b1, s1 = torch.randn(x_dim, 1, generator=g), torch.randn(x_dim, generator=g), torch.rand(x_dim, generator=g) + 0.2
    m.decoder_mlp = nn.Identity()
    m.decoder_head = LinearGaussian(torch.diag(w0), b0, s0)
    m.prior[0] = LinearGaussian(W1, b1, s1)
    c = w0**2 * s1 + s0  # x | z2 ~ N(w0 (W1 z2 + b1) + b0, diag(c))
    a = (w0[:, None] * W1)[:, 0]

    def exact_upward(x):
        var2 = 1.0 / (1.0 + (a**2 / c).sum())
        mu2 = var2 * ((a * (x - w0 * b1 - b0)) / c).sum(-1, keepdim=True)
        return [((x - b0) / w0, (s0 / w0**2).expand_as(x)), (mu2, var2.expand(len(x), 1))]

    marginal = MultivariateNormal(w0 * b1 + b0, torch.diag(c) + a[:, None] * a[None, :])
    return m, exact_upward, marginal


def test_ladder_with_the_exact_posterior_gives_log_w_equal_to_log_px():
    """Every importance weight equals p(x) when q is the true posterior: pins eqs. (17)-(19) and all densities."""
    torch.set_default_dtype(torch.float64)
    try:
        m, up, marginal = linear_gaussian_lvae()
        m.upward = up
        x = marginal.sample((5,))
        out = m(x, n_samples=200)
        exact = marginal.log_prob(x)
        torch.testing.assert_close(out["log_w"], exact.expand(200, 5), atol=1e-9, rtol=0)
        # the ELBO with analytic KL is unbiased for the same value (zero gap), within 4 standard errors
        se = out["elbo"].std(0) / math.sqrt(200)
        assert torch.all((out["elbo"].mean(0) - exact).abs() < 4 * se), (out["elbo"].mean(0), exact, se)
        torch.testing.assert_close(iw_bound(m, x, k=7, progress=False), exact, atol=1e-9, rtol=0)
    finally:
        torch.set_default_dtype(torch.float32)


def test_a_wrong_merge_breaks_the_exact_posterior_test(monkeypatch):
    """Guard that the previous test can fail: merging with standard deviations instead of variances."""
    torch.set_default_dtype(torch.float64)
    try:
        m, up, marginal = linear_gaussian_lvae()
        m.upward = up
        x = marginal.sample((5,))

        merge = D.precision_weighted_merge

        def std_merge(mu_hat, var_hat, mu_p, var_p):
            return merge(mu_hat, var_hat.sqrt(), mu_p, var_p.sqrt())

        monkeypatch.setattr(D, "precision_weighted_merge", std_merge)
        out = m(x, n_samples=50)
        assert (out["log_w"] - marginal.log_prob(x)).abs().max() > 1e-3
    finally:
        torch.set_default_dtype(torch.float32)


LK_TABLE = {}


@pytest.mark.parametrize("inference", ["bottom_up", "ladder"])
def test_iw_bound_converges_to_exact_log_px_and_tightens_with_k(inference):
    """One linear-Gaussian latent layer with Gaussian output: p(x) is Gaussian, q an untrained encoder."""
    torch.set_default_dtype(torch.float64)
    try:
        cfg = ModelConfig(inference=inference, n_layers=1, latent_sizes=(2,), hidden_sizes=(16,), x_dim=3,
                          likelihood="gaussian", batch_norm=False)
        m = LadderVAE(cfg)
        W, b, s = torch.randn(3, 2), torch.randn(3), torch.rand(3) + 0.5
        m.decoder_mlp = nn.Identity()
        m.decoder_head = LinearGaussian(W, b, s)
        marginal = MultivariateNormal(b, W @ W.T + torch.diag(s))
        x = marginal.sample((200,))
        # fit the encoder briefly on the ELBO (decoder fixed): a decent but diagonal, hence inexact, q
        opt = torch.optim.Adam([p for n, p in m.named_parameters() if not n.startswith("decoder")], lr=1e-2)
        for _ in range(300):
            opt.zero_grad()
            training_loss(m, x)[0].backward()
            opt.step()
        exact = marginal.log_prob(x).mean().item()
        lk = {k: iw_bound(m, x, k=k, batch_size=50, progress=False).mean().item() for k in (1, 10, 100, 5000)}
        LK_TABLE[inference] = (exact, lk)
        print(f"{inference}: exact log p(x) = {exact:.4f}; " + ", ".join(f"L_{k} = {v:.4f}" for k, v in lk.items()))
        assert lk[1] < lk[10] < lk[100] <= lk[5000] <= exact + 0.01
        assert exact - lk[5000] < 0.02, (exact, lk)
        assert exact - lk[1] > 0.05  # a diagonal q misses the correlated posterior: the test is not vacuous
        # the ELBO of forward() and L_1 estimate the same quantity
        elbo = m(x, n_samples=200)["elbo"].mean().item()
        assert abs(elbo - lk[1]) < 0.5
        # the nested L_100 of an L_5000 run is the L_100 of its first 100 samples: the same number as a run
        # of K = 100 from the same random state (one batch of images, so both draw those samples first),
        # and the outer L_5000 is the one it always was
        torch.manual_seed(3)
        outer, inner = iw_bound(m, x, k=5000, batch_size=len(x), progress=False, nested=(100,))
        torch.manual_seed(3)
        torch.testing.assert_close(inner[100], iw_bound(m, x, k=100, batch_size=len(x), progress=False), atol=0, rtol=0)
        torch.manual_seed(3)
        torch.testing.assert_close(outer, iw_bound(m, x, k=5000, batch_size=len(x), progress=False), atol=0, rtol=0)
        assert abs(inner[100].mean().item() - lk[100]) < 0.02 and outer.mean().item() <= exact + 0.01
        # a nested count that does not divide into chunks splits one: still the bound of that many samples
        _, odd = iw_bound(m, x, k=5000, batch_size=50, progress=False, nested=(7, 130))
        assert abs(odd[130].mean().item() - lk[100]) < 0.05 and odd[7].mean().item() < odd[130].mean().item()
        with pytest.raises(ValueError, match="nested"):
            iw_bound(m, x, k=100, nested=(100,))
    finally:
        torch.set_default_dtype(torch.float32)


@pytest.mark.parametrize("name", ["VAE", "VAE+BN", "LVAE+BN+WU", "LVAE+WU"])
def test_elbo_and_importance_weights_agree_in_the_full_models(name):
    """E_q[elbo] (analytic/MC KL) = E_q[log w] (densities) for the paper's 5-layer models."""
    cfg, _ = preset(name)
    m = LadderVAE(cfg).eval()
    x = torch.bernoulli(torch.rand(4, 784))
    with torch.no_grad():
        out = m(x, n_samples=4000)
    diff = (out["elbo"] - out["log_w"]).mean(0)
    se = (out["elbo"] - out["log_w"]).std(0) / math.sqrt(4000)
    assert torch.all(diff.abs() < 5 * se + 0.05), (diff, se)
    assert out["kl"].shape == (4000, 4, 5) and [k.shape[-1] for k in out["kl_units"]] == [64, 32, 16, 8, 4]
    torch.testing.assert_close(out["rate"], out["kl"].sum(-1))
    torch.testing.assert_close(out["elbo"], -out["distortion"] - out["rate"])


def test_ladder_posterior_is_the_merge_of_upward_pass_and_prior():
    cfg, _ = preset("LVAE+BN+WU", n_layers=3)
    m = LadderVAE(cfg).eval()
    x = torch.bernoulli(torch.rand(6, 784))
    with torch.no_grad():
        up = m.upward(x)
        r = m.infer(up, 1)
        for i in range(2):
            mu_p, var_p = m.prior[i](r["z"][i + 1])
            mu_q, var_q = D.precision_weighted_merge(*up[i], mu_p, var_p)
            torch.testing.assert_close(r["q"][i][0], mu_q)
            torch.testing.assert_close(r["q"][i][1], var_q)
        torch.testing.assert_close(r["q"][2][0], up[2][0])  # top layer: q = bottom-up estimate


def test_unshared_top_down_has_its_own_parameters():
    shared = LadderVAE(preset("LVAE+BN+WU")[0])
    separate = LadderVAE(preset("LVAE+BN+WU", share_top_down=False)[0])
    assert count_parameters(separate) - count_parameters(shared) == sum(p.numel() for p in separate.td.parameters()) > 0


def test_depths_and_gaussian_likelihood():
    for L in range(1, 6):
        for name in ("VAE+BN+WU", "LVAE+BN+WU"):
            cfg, warm = preset(name, n_layers=L, dataset="norb")
            m = LadderVAE(cfg)
            loss, out = training_loss(m, torch.rand(8, 1024), beta=0.3)
            loss.backward()
            assert out["kl"].shape == (1, 8, L) and torch.isfinite(loss) and warm
            assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)
    assert m.sample(5).shape == (5, 1024)


def test_iw_training_objective_is_the_iw_bound_at_beta_one():
    m = LadderVAE(preset("LVAE+WU", n_layers=2)[0])
    x = torch.bernoulli(torch.rand(3, 784))
    torch.manual_seed(1)
    loss, out = training_loss(m, x, beta=1.0, mc_samples=2, iw_samples=5)
    lw = out["log_w"].view(2, 5, 3)
    ref = -(torch.logsumexp(lw, 1) - math.log(5)).mean()
    torch.testing.assert_close(loss, ref)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="inference"):
        ModelConfig(inference="topdown")
    with pytest.raises(ValueError, match="n_layers"):
        ModelConfig(n_layers=6)
    with pytest.raises(KeyError, match="unknown preset"):
        preset("LVAE+BN")
    with pytest.raises(ValueError, match=r"shape \[batch, 784\]"):
        LadderVAE(ModelConfig())(torch.rand(2, 28, 28))


@pytest.mark.parametrize("name", ["VAE+BN+WU", "LVAE+BN+WU"])
def test_per_image_layer_kl_averages_to_the_layer_kl_and_is_the_models_own(name):
    from lvae_lib import analysis

    torch.manual_seed(0)
    model = LadderVAE(preset(name, 3)[0]).eval()
    x = torch.bernoulli(torch.rand(300, 784))
    torch.manual_seed(1)
    per = analysis.layer_kl_per_image(model, x, batch_size=128)
    torch.manual_seed(1)
    mean = analysis.layer_kl(model, x, batch_size=128)
    assert per.shape == (300, 3) and (per[:, -1] >= 0).all()  # the top layer's KL is analytic, >= 0
    assert per.mean(0) == pytest.approx(mean, rel=1e-5)
    torch.manual_seed(1)
    out = model(x[:128])  # the first batch, scored by the model itself
    assert per[:128, 0] == pytest.approx(out["kl_units"][0].sum(-1).mean(0).detach().numpy(), rel=1e-5)


def test_a_record_with_k_above_the_cpu_budgets_keeps_its_l1000_per_image():
    """A paper record (K = 5000) keeps L_1000 of its first 1000 samples, so the K gap between budgets is
    measured on one model, image by image; a cpu record (K = 1000) has nothing nested."""
    from dataclasses import replace
    from types import SimpleNamespace

    from lvae_lib import experiments as E
    from lvae_lib.runner import derived

    torch.manual_seed(0)
    cfg = ModelConfig(n_layers=2, latent_sizes=(4, 2), hidden_sizes=(16, 8), x_dim=784, batch_norm=False)
    model = LadderVAE(cfg).eval()
    x = (torch.rand(12, 784) < 0.3).float()
    data = SimpleNamespace(x_test=x, x_train=x, y_test=torch.arange(12) % 10, binarize=False)
    run = E.Run("mnist", "LVAE+BN+WU", 2)
    small = replace(E.BUDGETS["smoke"], analysis_images=12)
    _, a = derived(model, run, replace(small, eval_k=E.NESTED_K + 200), data)
    nested = a[f"test_L{E.NESTED_K}_per_image"]
    assert nested.shape == (12,) and np.isfinite(nested).all()
    gap = a["test_LK_per_image"] - nested
    assert (gap > -0.5).all() and abs(gap.mean()) < 1.0  # 200 more samples: a little higher, never much lower
    _, a = derived(model, run, replace(small, eval_k=E.NESTED_K), data)
    assert f"test_L{E.NESTED_K}_per_image" not in a


def test_resampling_below_a_layer_spans_reconstructions_to_prior_samples():
    from lvae_lib import analysis
    from lvae_lib.config import preset
    from lvae_lib.model import LadderVAE

    cfg, _ = preset("LVAE+BN+WU", n_layers=3, latent_sizes=(8, 6, 4), hidden_sizes=(32, 24, 16))
    torch.manual_seed(0)
    model = LadderVAE(cfg)
    x1, x2 = torch.bernoulli(torch.rand(2, 5, 784))
    torch.manual_seed(1)
    rec = analysis.reconstructions(model, x1)
    torch.manual_seed(1)
    k0 = analysis.resample_below(model, x1, 0, n=1)
    np.testing.assert_allclose(k0[:, 0], rec, rtol=1e-6)  # k = 0: the reconstruction itself
    outs = []
    for x in (x1, x2):
        torch.manual_seed(2)
        outs.append(analysis.resample_below(model, x, 3, n=2))
    np.testing.assert_allclose(outs[0], outs[1])  # k = L: prior samples, whatever the image
    torch.manual_seed(2)
    mid = analysis.resample_below(model, x1, 1, n=2)
    assert mid.shape == (5, 2, 784) and not np.allclose(mid, outs[0])
    with pytest.raises(ValueError, match="k must be in 0..3"):
        analysis.resample_below(model, x1, 4)


def test_a_unit_collapsed_onto_its_conditional_prior_is_inactive_by_kl_but_active_by_burda():
    """The paper counts a unit active when it carries KL; Burda's A_u counts it when its posterior mean
    varies with x. A ladder unit whose bottom-up precision is ~0 has q = p(z_1 | z_2): no KL, yet its mean
    follows z_2, which follows x. So the two measures disagree on it, and only the KL measure is the paper's."""
    from lvae_lib import analysis
    from lvae_lib.config import preset
    from lvae_lib.model import LadderVAE

    cfg, _ = preset("LVAE+WU", n_layers=2, latent_sizes=(8, 4), hidden_sizes=(32, 16))
    torch.manual_seed(0)
    model = LadderVAE(cfg).eval()
    with torch.no_grad():
        model.up_head[0].var[0].bias[0] = 1e6  # unit 0 of z_1: the data say nothing about it
        model.prior[0].head.mu.weight.mul_(10.0)  # ... and its prior mean moves with z_2
        model.up_head[1].mu.weight.mul_(100.0)  # z_2 moves with x (far more than at initialisation)
    x = torch.bernoulli(torch.rand(400, 784) * torch.linspace(0, 1, 400)[:, None])
    kl = analysis.unit_kl(model, x)
    activity = analysis.unit_activity(model, x, n_samples=20)
    assert kl[0][0] < analysis.ACTIVE_KL < activity[0][0], (kl[0][0], activity[0][0])
    assert analysis.active_units_kl([kl[0][:1]]) == [0]  # inactive by the paper's measure
