"""Plot helpers shared by the notebooks: one colour per model variant across every figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .distributions import precision_weighted_merge

from .config import VARIANTS as _TABLE

VARIANTS = tuple(_TABLE)  # in the table's order: the order of every legend
COLORS = {n: v.color for n, v in _TABLE.items()}
MARKERS = {n: v.marker for n, v in _TABLE.items()}


def style():
    """A clean, paper-like matplotlib style; tables show every character of a cell (pandas cuts at 50)."""
    plt.rcParams.update({"figure.dpi": 100, "axes.spines.top": False, "axes.spines.right": False,
                         "axes.grid": True, "grid.alpha": 0.3, "font.size": 10, "legend.frameon": False})
    pd.set_option("display.max_colwidth", None)


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


# ----------------------------------------------------------------------------- paper figures
METRIC_TITLES = {"train_L1": r"a) $\mathcal{L}^{train}_1$", "test_L1": r"b) $\mathcal{L}^{test}_1$",
                 "test_LK": r"c) $\mathcal{L}^{test}_{K}$"}


def caption(df, extra: str = "", also=None) -> str:
    """A caption-like line: which budget and data the plotted numbers come from (and, with ``also``,
    which models are drawn as stars from another budget)."""
    budgets = ", ".join(sorted(df["budget"].unique())) if len(df) else "none"
    datasets = ", ".join(sorted(df["dataset_name"].unique())) if len(df) else "none"
    more = ""
    if also is not None and len(also) and len(o := also[~also["budget"].isin(set(df["budget"]))]):
        more = " Stars: " + "; ".join(f"budget `{b}`: {', '.join(sorted(g['label'].unique()))}"
                                      for b, g in o.groupby("budget")) + "."
    return f"Ours: budget `{budgets}`, data {datasets}.{more} {extra}".strip()


def _nothing():
    """The figure of a target with no records (its data could not be found): a line saying so."""
    fig, ax = plt.subplots(figsize=(6, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, "no records to plot (see the message above)", ha="center", va="center")
    return fig


def layers_figure(df, variants=None, also=None):
    """Figs. 3, 7, 8: train L_1, test L_1 and test L_K against the number of stochastic layers; where a
    model has several seeds, its mean with an error bar of +-1 sd over the seeds. ``also``: records of
    a larger budget for some of these models (the paper budget's), drawn over the lines as stars."""
    from .report import seed_mean

    variants = variants or [v for v in VARIANTS if v in set(df["variant"])]
    if not len(df):
        return _nothing()
    df = seed_mean(df)
    extra = None
    if also is not None and len(also):
        extra = seed_mean(also[~also["budget"].isin(set(df["budget"]))])
        extra = extra if len(extra) else None
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    k = int(df["K"].iloc[0]) if len(df) else 0
    for ax, metric in zip(axes, ("train_L1", "test_L1", "test_LK")):
        for v in variants:
            d = df[(df["variant"] == v) & (df["finetune"] == "")].sort_values("layers")
            ax.errorbar(d["layers"], d[metric], yerr=d[f"{metric}_sd"].fillna(0), marker=MARKERS[v], color=COLORS[v],
                        label=v, capsize=3)
        if extra is not None:
            for v in variants:
                e = extra[(extra["variant"] == v) & (extra["finetune"] == "")]
                ax.scatter(e["layers"], e[metric], marker="*", s=140, color=COLORS[v], edgecolor="k", zorder=5,
                           label=f"{v}, budget {e['budget'].iloc[0]} (c: K = {int(e['K'].iloc[0])})" if len(e) else None)
        ax.set_title(METRIC_TITLES[metric].replace("{K}", "{%d}" % k))
        ax.set_xlabel("Number of layers")
        ax.set_xticks(range(1, 6))
    axes[0].set_ylabel("log-likelihood bound (nats)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, bbox_to_anchor=(0.5, -0.02))
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig


def training_curves(curves: dict):
    """Fig. 2: train (full) and test (dashed) L_1 during training, one colour per variant.

    ``curves`` maps variant -> [metrics DataFrame (columns epoch, train_elbo, test_elbo), one per seed]:
    the mean over the seeds is drawn, and a band from their lowest to their highest value.
    """
    if not curves:
        return _nothing()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    means = {}
    for v, runs in curves.items():
        m = pd.concat(runs).groupby("epoch")[["train_elbo", "test_elbo"]].agg(["mean", "min", "max"]).reset_index()
        means[v] = m
        ax.plot(m["epoch"], m[("train_elbo", "mean")], color=COLORS[v], label=v + (f" ({len(runs)} seeds)" if len(runs) > 1 else ""))
        t = m.dropna(subset=[("test_elbo", "mean")])
        ax.plot(t["epoch"], t[("test_elbo", "mean")], color=COLORS[v], ls="--")
        if len(runs) > 1:
            ax.fill_between(m["epoch"], m[("train_elbo", "min")], m[("train_elbo", "max")], color=COLORS[v], alpha=0.25, lw=0)
            ax.fill_between(t["epoch"], t[("test_elbo", "min")], t[("test_elbo", "max")], color=COLORS[v], alpha=0.15, lw=0)
    ax.set_xlabel("Epoch")
    ax.set_ylabel(r"$\mathcal{L}_1$ (nats)")
    lo = min(m[("train_elbo", "mean")].iloc[len(m) // 10:].min() for m in means.values())
    hi = max(m[("train_elbo", "mean")].max() for m in means.values())
    ax.set_ylim(lo - 0.05 * (hi - lo), hi + 0.1 * (hi - lo))
    ax.legend(fontsize=8, title="full: train, dashed: test", title_fontsize=8)
    fig.tight_layout()
    return fig


def unit_kl_figure(snapshots: dict):
    """Fig. 4: log KL(q|p) of every latent unit (columns, grouped by layer) at several epochs (rows).

    ``snapshots`` maps variant -> {epoch: [per-unit KL array per layer]}.  Units are sorted within each
    layer by their final KL; white is an inactive unit.
    """
    n = len(snapshots)
    if not n:
        return _nothing()
    fig, axes = plt.subplots(n, 1, figsize=(10, 1.2 + 1.3 * n), squeeze=False, gridspec_kw={"hspace": 0.6})
    for ax, (v, snaps) in zip(axes[:, 0], snapshots.items()):
        epochs = sorted(snaps)
        final = snaps[epochs[-1]]
        orders = [np.argsort(-np.asarray(u)) for u in final]
        rows = [np.concatenate([np.asarray(snaps[e][i])[o] for i, o in enumerate(orders)]) for e in epochs]
        img = np.log(np.maximum(np.array(rows), 1e-3))
        im = ax.imshow(img, aspect="auto", cmap="Greys", vmin=np.log(1e-3), vmax=max(1.0, img.max()),
                       interpolation="nearest")
        edges = np.cumsum([len(u) for u in final])[:-1]
        for e in edges:
            ax.axvline(e - 0.5, color="#d62728", lw=0.8)
        ax.set_yticks(range(len(epochs)), [str(e) for e in epochs], fontsize=7)
        ax.set_ylabel("epoch", fontsize=8)
        ax.set_title(v, fontsize=9, loc="left")
        ax.set_xticks([])
        ax.grid(False)
    axes[-1, 0].set_xlabel("latent units, layer 1 (left) to layer 5 (right), sorted by final KL")
    fig.colorbar(im, ax=axes[:, 0], label="log KL (nats)", shrink=0.8)
    return fig


def layer_kl_figure(df):
    """Fig. 5: KL[q_i|p_i] per layer i, bars grouped by layer, one colour per variant; where a variant
    has several seeds, the mean bar with an error bar of +-1 sd over the seeds."""
    if not len(df):
        return _nothing()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    variants = [v for v in VARIANTS if v in set(df["variant"])]
    w = 0.8 / max(1, len(variants))
    for j, v in enumerate(variants):
        kls = np.array([np.asarray(k, float) for k in df[(df["variant"] == v) & (df["finetune"] == "")]["layer_kl"]])
        sd = kls.std(0, ddof=1) if len(kls) > 1 else None
        ax.bar(np.arange(1, kls.shape[1] + 1) + (j - (len(variants) - 1) / 2) * w, kls.mean(0), w, yerr=sd,
               capsize=2, color=COLORS[v], label=v + (f" ({len(kls)} seeds)" if len(kls) > 1 else ""))
    ax.set_xticks(range(1, 6), [f"i={i}" for i in range(1, 6)])
    ax.set_ylabel(r"KL$[q_i|p_i]$ (nats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def pca_figure(projections: dict, labels):
    """Fig. 6: 2-D PCA of z_i ~ q(z_i|.) for every layer (columns) and variant (rows), coloured by class."""
    n = len(projections)
    if not n:
        return _nothing()
    fig, axes = plt.subplots(n, 5, figsize=(11, 2.2 * n), squeeze=False)
    for r, (v, layers) in enumerate(projections.items()):
        for c in range(5):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if c < len(layers):
                p = np.asarray(layers[c], np.float32)
                ax.scatter(p[:, 0], p[:, 1], c=labels, cmap="tab10", s=2, alpha=0.6, rasterized=True)
            if r == 0:
                ax.set_title(f"layer {c + 1}", fontsize=9)
            if c == 0:
                ax.set_ylabel(v, fontsize=9)
    fig.tight_layout()
    return fig


def image_grid(rows: dict, shape=(28, 28), ncol=16):
    """Figs. 9-10: one panel per entry (e.g. data, reconstructions, samples), images in a grid."""
    fig, axes = plt.subplots(1, len(rows), figsize=(4.2 * len(rows), 2.4))
    for ax, (title, imgs) in zip(np.atleast_1d(axes), rows.items()):
        imgs = np.asarray(imgs)[: (len(imgs) // ncol) * ncol or len(imgs)]
        nrow = int(np.ceil(len(imgs) / ncol))
        canvas = np.ones((nrow * shape[0], ncol * shape[1]))
        for i, im in enumerate(imgs):
            rr, cc = divmod(i, ncol)
            canvas[rr * shape[0]:(rr + 1) * shape[0], cc * shape[1]:(cc + 1) * shape[1]] = im.reshape(shape) / 255.0
        ax.imshow(canvas, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return fig
