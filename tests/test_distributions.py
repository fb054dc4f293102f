"""Closed forms of lvae_lib.distributions against independent references."""
import math

import numpy as np
import torch
from torch.distributions import Normal, kl_divergence

from lvae_lib import distributions as D


def test_gaussian_log_prob_matches_torch_normal():
    z, mu, var = torch.randn(100), torch.randn(100), torch.rand(100) + 0.1
    ref = Normal(mu, var.sqrt()).log_prob(z)
    torch.testing.assert_close(D.gaussian_log_prob(z, mu, var), ref)
    torch.testing.assert_close(D.standard_normal_log_prob(z), Normal(0.0, 1.0).log_prob(z))


def test_gaussian_kl_closed_form_and_monte_carlo():
    mu_q, var_q = torch.tensor([0.3, -1.0, 2.0]), torch.tensor([0.5, 2.0, 0.1])
    mu_p, var_p = torch.tensor([0.0, 0.5, 1.0]), torch.tensor([1.0, 0.3, 4.0])
    kl = D.gaussian_kl(mu_q, var_q, mu_p, var_p)
    torch.testing.assert_close(kl, kl_divergence(Normal(mu_q, var_q.sqrt()), Normal(mu_p, var_p.sqrt())))
    # a Monte Carlo estimate E_q[log q - log p] with 10^6 samples agrees to ~3 standard errors
    z = mu_q + var_q.sqrt() * torch.randn(1_000_000, 3, dtype=torch.float64)
    lr = D.gaussian_log_prob(z, mu_q, var_q) - D.gaussian_log_prob(z, mu_p, var_p)
    se = lr.std(0) / math.sqrt(len(z))
    assert torch.all((lr.mean(0) - kl.double()).abs() < 4 * se + 1e-4), (lr.mean(0), kl)
    torch.testing.assert_close(D.standard_normal_kl(mu_q, var_q), D.gaussian_kl(mu_q, var_q, torch.zeros(3), torch.ones(3)))
    assert torch.all(D.gaussian_kl(mu_q, var_q, mu_q, var_q).abs() < 1e-6)


def test_precision_weighted_merge_is_the_normalised_product_of_the_two_densities():
    grid = np.linspace(-15, 15, 300_001)
    for mu_hat, var_hat, mu_p, var_p in [(2.0, 0.25, 0.0, 1.0), (-1.0, 4.0, 3.0, 4.0), (0.5, 9.0, -2.0, 0.5)]:
        mu_q, var_q = (t.item() for t in D.precision_weighted_merge(*map(torch.tensor, (mu_hat, var_hat, mu_p, var_p))))
        dens = np.exp(-0.5 * (grid - mu_hat) ** 2 / var_hat - 0.5 * (grid - mu_p) ** 2 / var_p)
        dens /= np.trapezoid(dens, grid)
        mean = np.trapezoid(grid * dens, grid)
        var = np.trapezoid((grid - mean) ** 2 * dens, grid)
        assert abs(mu_q - mean) < 1e-5 and abs(var_q - var) < 1e-5, (mu_q, var_q, mean, var)
    # the merged quantity is a variance: equal variances halve (a std-vs-variance mix-up would not)
    _, v = D.precision_weighted_merge(torch.tensor(0.0), torch.tensor(4.0), torch.tensor(0.0), torch.tensor(4.0))
    assert v.item() == 2.0


def test_bernoulli_log_prob_is_stable_and_correct():
    logits = torch.tensor([-200.0, -1.0, 0.0, 3.0, 200.0])
    x = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    p = torch.sigmoid(logits.double())
    ref = (x * torch.log(p) + (1 - x) * torch.log1p(-p)).float()
    ref[0], ref[4] = 0.0, 0.0  # the exact values at the extremes (float64 sigmoid saturates)
    torch.testing.assert_close(D.bernoulli_log_prob(x, logits), ref, atol=1e-6, rtol=1e-5)
    assert torch.isfinite(D.bernoulli_log_prob(1 - x, logits)).all()
