"""Plot helpers shared by the notebooks: one colour per model variant across every figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from .distributions import precision_weighted_merge

VARIANTS = ("VAE", "VAE+BN", "VAE+BN+WU", "LVAE+BN+WU", "LVAE+WU")
COLORS = dict(zip(VARIANTS, ("#7f7f7f", "#1f77b4", "#2ca02c", "#d62728", "#ff7f0e")))
MARKERS = dict(zip(VARIANTS, ("o", "s", "^", "D", "v")))


def style():
    """A clean, paper-like matplotlib style."""
    plt.rcParams.update({"figure.dpi": 100, "axes.spines.top": False, "axes.spines.right": False,
                         "axes.grid": True, "grid.alpha": 0.3, "font.size": 10, "legend.frameon": False})


def plot_merge(ratios=(0.25, 1.0, 4.0), mu_p=0.0, var_p=1.0, mu_hat=2.0):
    """1-D illustration of eqs. (17)-(18): prior, bottom-up estimate and their precision-weighted merge.

    ``ratios`` are precision ratios var_p / var_hat (how much the data speak relative to the prior).
    """
    import torch

    z = np.linspace(-3, 5, 400)

    def pdf(m, v):
        return np.exp(-0.5 * (z - m) ** 2 / v) / np.sqrt(2 * np.pi * v)

    fig, axes = plt.subplots(1, len(ratios), figsize=(3.3 * len(ratios), 2.8), sharey=True)
    for ax, r in zip(np.atleast_1d(axes), ratios):
        var_hat = var_p / r
        mq, vq = (t.item() for t in precision_weighted_merge(*(torch.tensor(v) for v in (mu_hat, var_hat, mu_p, var_p))))
        ax.plot(z, pdf(mu_p, var_p), color="#1f77b4", label=r"prior $p(z_i|z_{i+1})$")
        ax.plot(z, pdf(mu_hat, var_hat), color="#2ca02c", ls="--", label=r"bottom-up $\mathcal{N}(\hat\mu, \hat\sigma^2)$")
        ax.plot(z, pdf(mq, vq), color="#d62728", lw=2, label=r"posterior $q(z_i|\cdot)$")
        ax.set_title(rf"$\sigma_p^2/\hat\sigma^2 = {r:g}$: $\mu_q={mq:.2f}$, $\sigma_q^2={vq:.2f}$", fontsize=9)
        ax.set_xlabel("$z_i$")
    np.atleast_1d(axes)[0].set_ylabel("density")
    np.atleast_1d(axes)[0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return fig
