"""Closed-form pieces of the paper's math: diagonal Gaussians and Bernoullis.

Every function works elementwise (per latent unit / per pixel); callers sum over
the last axis when they need a per-example value.  All variances are
*variances* (sigma^2), never standard deviations or log-variances: the paper's
Softplus heads (eqs. 12 and 15) output variances, and eq. (17), although it is
typeset as ``sigma_q``, defines a variance.
"""
from __future__ import annotations

import contextlib

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log N(z | mu, var), elementwise."""
    return -0.5 * (LOG_2PI + torch.log(var) + (z - mu) ** 2 / var)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z | 0, 1), elementwise: the top prior p(z_L), eq. (2)."""
    return -0.5 * (LOG_2PI + z**2)


def gaussian_kl(mu_q: torch.Tensor, var_q: torch.Tensor, mu_p: torch.Tensor, var_p: torch.Tensor) -> torch.Tensor:
    """KL( N(mu_q, var_q) || N(mu_p, var_p) ), elementwise, in nats."""
    return 0.5 * (torch.log(var_p) - torch.log(var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1.0)


def standard_normal_kl(mu_q: torch.Tensor, var_q: torch.Tensor) -> torch.Tensor:
    """KL( N(mu_q, var_q) || N(0, 1) ), elementwise."""
    return 0.5 * (-torch.log(var_q) + var_q + mu_q**2 - 1.0)


def precision_weighted_merge(
    mu_hat: torch.Tensor, var_hat: torch.Tensor, mu_p: torch.Tensor, var_p: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ladder posterior, eqs. (17)-(18).

    Combines a bottom-up Gaussian "likelihood" N(mu_hat, var_hat) with the
    top-down prior N(mu_p, var_p).  The result is the normalised product of
    the two densities: precisions add, and the mean is the precision-weighted
    average of the two means.
    """
    prec_hat = 1.0 / var_hat
    prec_p = 1.0 / var_p
    var_q = 1.0 / (prec_hat + prec_p)
    mu_q = (mu_hat * prec_hat + mu_p * prec_p) * var_q
    return mu_q, var_q


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log B(x | sigmoid(logits)), elementwise, computed stably from logits."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none")


def binarize(p: torch.Tensor) -> torch.Tensor:
    """A Bernoulli(p) draw as 0/1 floats: ``u < p`` with u uniform (twice as fast as ``torch.bernoulli`` on CPU)."""
    return (torch.rand_like(p) < p).to(p.dtype)


_GIVEN: list = []  # iterators of pre-drawn noise, innermost last (see given_noise)


@contextlib.contextmanager
def given_noise(eps):
    """Inside, :func:`reparameterize` takes its N(0, I) draws from ``eps``, in order, instead of the
    random generator: the stacked engine (:mod:`lvae_lib.stacked`) draws each model's noise from that
    model's own generator state, as the model would have drawn it alone."""
    _GIVEN.append(iter(eps))
    try:
        yield
    finally:
        _GIVEN.pop()


def reparameterize(mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Draw z = mu + sqrt(var) * eps with eps ~ N(0, I) (the reparameterisation trick)."""
    eps = next(_GIVEN[-1]) if _GIVEN else torch.randn_like(mu)
    return mu + torch.sqrt(var) * eps
