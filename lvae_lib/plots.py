"""Plot helpers shared by the notebooks: one colour per model variant across every figure."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory
import numpy as np
import pandas as pd

from .distributions import precision_weighted_merge

from . import paper
from .config import VARIANTS as _TABLE
from .experiments import BUDGET_ORDER, describe_budget
from .frames import seed_mean

VARIANTS = tuple(_TABLE)  # in the table's order: the order of every legend
COLORS = {n: v.color for n, v in _TABLE.items()}
MARKERS = {n: v.marker for n, v in _TABLE.items()}


# The book's text column is 768 px wide at 1400 px (sphinx-book-theme): a figure of at most WIDTH inches at
# DPI is shown unscaled, so FONT_PT is what the reader sees: 12 pt = 16.7 px, the body text's 16 px or more.
WIDTH, DPI, FONT_PT = 7.6, 100, 12
STAR_SHIFT = 0.2  # layers_figure: another budget's stars beside, not over, the paper's circles


def style():
    """A clean, paper-like matplotlib style sized for the book's column (every text at ``FONT_PT``);
    tables show every character of a cell (pandas cuts at 50)."""
    plt.rcParams.update({"figure.dpi": DPI, "axes.spines.top": False, "axes.spines.right": False,
                         "axes.grid": True, "grid.alpha": 0.3, "font.size": FONT_PT, "axes.titlesize": FONT_PT,
                         "axes.labelsize": FONT_PT, "xtick.labelsize": FONT_PT, "ytick.labelsize": FONT_PT,
                         "legend.fontsize": FONT_PT, "legend.title_fontsize": FONT_PT, "legend.frameon": False})
    pd.set_option("display.max_colwidth", None)


def plot_merge(ratios=(0.25, 1.0, 4.0), mu_p=0.0, var_p=1.0, mu_hat=2.0):
    """1-D illustration of eqs. (17)-(18): prior, bottom-up estimate and their precision-weighted merge.

    ``ratios`` are precision ratios var_p / var_hat (how much the data speak relative to the prior).
    """
    fig, axes = plt.subplots(1, len(ratios), figsize=(WIDTH, 3.4), sharey=True)
    for ax, r in zip(np.atleast_1d(axes), ratios):
        _merge_panel(ax, r, mu_p, var_p, mu_hat)
    np.atleast_1d(axes)[0].set_ylabel("density")
    handles, labels = np.atleast_1d(axes)[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels))  # below the panels, clear of the curves
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def merge_slider(ratios=tuple(2.0 ** np.arange(-4, 5)), mu_p=0.0, var_p=1.0, mu_hat=2.0) -> str:
    """:func:`plot_merge` with a slider over the precision ratio var_p / var_hat: matplotlib's JavaScript
    player (``to_jshtml``), every frame drawn here and embedded, so it works in the offline book."""
    from matplotlib.animation import FuncAnimation

    fig, ax = plt.subplots(figsize=(WIDTH * 0.75, 3.6))
    top = 1.05 / np.sqrt(2 * np.pi * var_p / (1 + max(ratios)))  # the sharpest posterior's peak: one y axis for all

    def frame(i):
        ax.clear()
        _merge_panel(ax, ratios[i], mu_p, var_p, mu_hat)
        ax.set_ylim(0, top)
        ax.set_ylabel("density")
        ax.legend(loc="upper left", fontsize="small")
        return ax.lines

    anim = FuncAnimation(fig, frame, frames=len(ratios), interval=500)
    html = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return html


def _pdf(z, m, v):
    return np.exp(-0.5 * (z - m) ** 2 / v) / np.sqrt(2 * np.pi * v)


def _merge_panel(ax, r, mu_p, var_p, mu_hat):
    """One panel of :func:`plot_merge`: prior, bottom-up estimate and their merge at precision ratio ``r``."""
    import torch

    z = np.linspace(-3, 5, 400)
    var_hat = var_p / r
    mq, vq = (t.item() for t in precision_weighted_merge(*(torch.tensor(v) for v in (mu_hat, var_hat, mu_p, var_p))))
    ax.plot(z, _pdf(z, mu_p, var_p), color="#1f77b4", label=r"prior $p(z_i|z_{i+1})$")
    ax.plot(z, _pdf(z, mu_hat, var_hat), color="#2ca02c", ls="--", label=r"bottom-up $\mathcal{N}(\hat\mu, \hat\sigma^2)$")
    ax.plot(z, _pdf(z, mq, vq), color="#d62728", lw=2, label=r"posterior $q(z_i|\cdot)$")
    # two lines: the three panels' titles stay apart at the book's width
    ax.set_title(rf"$\sigma_p^2/\hat\sigma^2 = {r:g}$" + "\n" + rf"$\mu_q={mq:.2f}$, $\sigma_q^2={vq:.2f}$")
    ax.set_xlabel("$z_i$")
    return mq, vq


def warmup_kl(curves: dict, budget: str, dataset: str = "mnist"):
    """The paper's Sec. 2.3 mechanism, from training records: each layer's KL[q_i|p_i] on the test set
    during training (solid, left axis) and the warm-up weight beta (dashed, right axis), one panel per
    model (``curves``: variant -> its per-epoch metrics); the warm-up epochs are shaded."""
    fig, axes = plt.subplots(1, len(curves), figsize=(WIDTH, 3.6), sharey=True, squeeze=False)
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, 5))
    for ax, (variant, m) in zip(axes[0], curves.items()):
        e = m[m["kl_1"].notna()]
        layers = [c for c in ("kl_1", "kl_2", "kl_3", "kl_4", "kl_5") if c in e]
        for i, c in enumerate(layers):
            ax.plot(e["epoch"], e[c], color=colors[i], label=f"layer {i + 1}")
        warm = m.loc[m["beta"] < 1, "epoch"]
        if len(warm):
            ax.axvspan(0, warm.max(), color="0.9", zorder=0)
        tw = ax.twinx()
        tw.plot(m["epoch"], m["beta"], color="k", ls="--", lw=1)
        tw.set_ylim(0, 1.05)
        tw.set_yticks([0, 0.5, 1]) if ax is axes[0][-1] else tw.set_yticks([])
        if ax is axes[0][-1]:
            tw.set_ylabel(r"$\beta$ (dashed)")
        ax.set_xscale("log")
        ax.set_yscale("log")  # the top layers carry hundredths to units of a nat, the bottom one tens
        ax.set_xlabel("epoch")
        ax.set_title(f"{variant}, {describe_budget(budget, dataset, short=True)}")
    axes[0][0].set_ylabel("KL per layer (nats, log)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels))
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def inference_models():
    """The paper's Figure 1, drawn for two layers: the inference model (left of each panel) and the
    generative model (right) of a) the VAE and b) the LVAE. Circles are stochastic variables, diamonds
    deterministic ones; the LVAE's top-down step z2 -> z1 is one network, shared by both models."""
    from matplotlib.patches import Circle, RegularPolygon

    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 3.6))
    stochastic, deterministic = "#fde0dd", "#deebf7"

    def node(ax, xy, name, kind="z"):
        p = (Circle(xy, 0.22, fc=stochastic, ec="k") if kind == "z"
             else RegularPolygon(xy, 4, radius=0.28, fc=deterministic, ec="k"))
        ax.add_patch(p)
        ax.text(*xy, name, ha="center", va="center")
        return p

    def arrow(ax, a, b, color="k"):  # from node a to node b, ending at their outlines
        where = lambda p: p.center if hasattr(p, "center") else p.xy  # noqa: E731 (circle / polygon)
        ax.annotate("", xy=where(b), xytext=where(a), arrowprops=dict(arrowstyle="-|>", color=color, lw=1.3,
                                                                       patchA=a, patchB=b, shrinkA=1, shrinkB=1))

    def generative(ax, x0):
        z2, z1, x = node(ax, (x0, 2), "$z_2$"), node(ax, (x0, 1), "$z_1$"), node(ax, (x0, 0), "$x$")
        arrow(ax, z2, z1)
        arrow(ax, z1, x)
        return z2, z1

    a, b = axes
    # a) VAE: bottom-up inference, then the generative model
    x, z1, z2 = node(a, (0, 0), "$x$"), node(a, (0, 1), "$z_1$"), node(a, (0, 2), "$z_2$")
    arrow(a, x, z1)
    arrow(a, z1, z2)
    generative(a, 1.3)
    a.set_title("a) VAE")
    # b) LVAE: deterministic upward pass, then a stochastic downward pass that shares the generative step
    x, d1, d2 = node(b, (-0.45, 0), "$x$"), node(b, (-0.45, 1), "$d_1$", "d"), node(b, (-0.45, 2), "$d_2$", "d")
    z2, z1 = node(b, (0.35, 2), "$z_2$"), node(b, (0.35, 1), "$z_1$")
    arrow(b, x, d1)
    arrow(b, d1, d2)
    arrow(b, d2, z2)
    arrow(b, d1, z1)
    arrow(b, z2, z1, color="#d62728")
    gz2, gz1 = generative(b, 1.3)
    arrow(b, gz2, gz1, color="#d62728")
    b.annotate("shared", xy=(0.82, 1.5), ha="center", va="center", color="#d62728")
    b.set_title("b) LVAE")
    for ax, lo in ((a, -0.5), (b, -0.9)):
        ax.text(lo + 0.5 if ax is a else 0.0, -0.62, "inference", ha="center")
        ax.text(1.3, -0.62, "generative", ha="center")
        ax.set_xlim(lo, 1.8)
        ax.set_ylim(-0.85, 2.4)
        ax.set_aspect("equal")
        ax.axis("off")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- paper figures
METRIC_TITLES = {"train_L1": r"a) $\mathcal{L}^{train}_1$", "test_L1": r"b) $\mathcal{L}^{test}_1$",
                 "test_LK": r"c) $\mathcal{L}^{test}_{K}$"}


def caption(df, extra: str = "", also=None) -> str:
    """The plain-text line of a figure's caption that says which budget and data its numbers come from
    (and, with ``also``, which models are drawn as stars from another budget)."""
    budgets = ", ".join(_trained(g) for _, g in df.groupby("budget", sort=False)) if len(df) else "none"
    datasets = ", ".join(sorted(df["dataset_name"].unique())) if len(df) else "none"
    more = ""
    if also is not None and len(also) and len(o := also[~also["budget"].isin(set(df["budget"]))]):
        more = " Stars: " + "; ".join(f"{_trained(g)}: {', '.join(sorted(g['label'].unique()))}"
                                      for b, g in o.groupby("budget")) + "."
    return f"Ours: {budgets}, data {datasets}.{more} {extra}".strip()


def _trained(g) -> str:
    """How the records ``g`` (of one budget) were trained, in words: ``"2000 epochs (the paper's protocol)"``."""
    return describe_budget(g["budget"].iloc[0], g["dataset"].iloc[0])


def _row_label(model: str, narrow: bool = False) -> str:
    """A figure row's label: a model's budget (:func:`lvae_lib.report.shown_as`) on a line of its own and,
    ``narrow``, a long variant name broken after its first ``+``."""
    v, _, budget = model.partition(" (")
    if narrow and len(v) > 8:
        v = v.replace("+", "+\n", 1)
    return v + (f"\n({budget}" if budget else "")


def _nothing():
    """The figure of a target with no records (its data could not be found): a line saying so."""
    fig, ax = plt.subplots(figsize=(WIDTH, 1.2))
    ax.axis("off")
    ax.text(0.5, 0.5, "no records to plot (see the message above)", ha="center", va="center")
    return fig


def paper_points(dataset: str) -> dict:
    """metric -> [(variant, layers, value)]: the numbers the paper prints that a panel of Figs. 3, 7, 8
    can show (MNIST: its text on Fig. 3; OMNIGLOT: Table 2, all at L_5000)."""
    if dataset == "mnist":
        out = {}
        for p in paper.MNIST_TEXT:
            if p["drawn_as"] is not None:
                out.setdefault("test_L1" if p["metric"] == "test L_1" else "test_LK", []).append((p["drawn_as"], p["layers"], p["value"]))
        return out

    table = {ours: name for name, ours in paper.TABLE2_OURS.items()}.get(dataset)  # the Table 2 column ours fills
    if table is None:
        return {}
    return {"test_LK": [(v, L, x) for v, per_layer in paper.TABLE2[table].items()
                        for L, x in enumerate(per_layer, start=1) if x is not None]}


def _figure_legend(fig, axes, ncol=None) -> int:
    """One legend below the panels with each label of ``axes`` once (``ncol``: default one row); returns
    the number of entries."""
    by_label = {}
    for ax in np.ravel(axes):
        for h, lab in zip(*ax.get_legend_handles_labels()):
            by_label.setdefault(lab, h)
    fig.legend(by_label.values(), by_label.keys(), loc="lower center", ncol=ncol or len(by_label),
               bbox_to_anchor=(0.5, 0.0))
    return len(by_label)


def layers_figure(df, variants=None, also=None):
    """Figs. 3, 7, 8: train L_1, test L_1 and test L_K against the number of stochastic layers; where a
    model has several seeds, its mean with an error bar of +-1 sd over the seeds. ``also``: records of
    a larger budget for some of these models (the paper budget's), drawn over the lines as stars. The
    paper's printed values for these panels (:func:`paper_points`) are drawn as open circles."""

    variants = variants or [v for v in VARIANTS if v in set(df["variant"])]
    if not len(df):
        return _nothing()
    df = seed_mean(df)
    extra = None
    if also is not None and len(also):
        extra = seed_mean(also[~also["budget"].isin(set(df["budget"]))])
        extra = extra if len(extra) else None
    fig, axes = plt.subplots(1, 3, figsize=(WIDTH, 4.6))
    k = int(df["K"].iloc[0]) if len(df) else 0
    points = paper_points(df["dataset"].iloc[0])
    for ax, metric in zip(axes, ("train_L1", "test_L1", "test_LK")):
        for v in variants:
            d = df[(df["variant"] == v) & (df["finetune"] == "")].sort_values("layers")
            ax.errorbar(d["layers"], d[metric], yerr=d[f"{metric}_sd"].fillna(0), marker=MARKERS[v], color=COLORS[v],
                        label=v, capsize=3)
        for v, L, value in points.get(metric, []):
            if v in variants:
                ax.scatter([L], [value], s=70, facecolor="none", edgecolor=COLORS[v], lw=1.5, zorder=4,
                           label="paper (open circles; c: L_5000)")
        if extra is not None:
            for v in variants:
                e = extra[(extra["variant"] == v) & (extra["finetune"] == "")]
                # a little to the right of the paper's open circle at the same depth, so neither hides the other
                ax.scatter(e["layers"] + STAR_SHIFT, e[metric], marker="*", s=140, color=COLORS[v], edgecolor="k", zorder=5,
                           label=f"{v}, {describe_budget(e['budget'].iloc[0], e['dataset'].iloc[0], short=True)}"
                                 f" (c: K = {int(e['K'].iloc[0])})" if len(e) else None)
        ax.set_title(METRIC_TITLES[metric].replace("{K}", "{%d}" % k))
        ax.set_xlabel("layers")
        ax.set_xticks(range(1, 6))
    axes[0].set_ylabel("log-likelihood bound (nats)")
    ncol = 2 if extra is not None else 3  # the budget labels are long: three a row would widen the figure
    n = _figure_legend(fig, axes, ncol=ncol)
    fig.tight_layout(rect=(0, 0.08 * (1 + (n - 1) // ncol), 1, 1))
    return fig


def training_curves(panels: dict, dataset: str = "mnist"):
    """Fig. 2: train (full) and test (dashed) L_1 during training, one colour per variant, one panel per
    budget (a budget's epochs set its x axis: the cpu budget's 200 beside the paper's 2000).

    ``panels`` maps budget -> {variant -> [metrics DataFrame (columns epoch, train_elbo, test_elbo), one
    per seed]} (:func:`lvae_lib.report.curves`): the mean over the seeds is drawn, and a band from their
    lowest to their highest value.
    """
    panels = {b: c for b, c in panels.items() if c}
    if not panels:
        return _nothing()
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 4.4), sharey=True, squeeze=False)
    lows, highs = [], []
    for ax, (budget, curves) in zip(axes[0], panels.items()):
        for v, runs in curves.items():
            m = pd.concat(runs).groupby("epoch")[["train_elbo", "test_elbo"]].agg(["mean", "min", "max"]).reset_index()
            ax.plot(m["epoch"], m[("train_elbo", "mean")], color=COLORS[v], label=v + (f" ({len(runs)} seeds)" if len(runs) > 1 else ""))
            t = m.dropna(subset=[("test_elbo", "mean")])
            ax.plot(t["epoch"], t[("test_elbo", "mean")], color=COLORS[v], ls="--")
            if len(runs) > 1:
                ax.fill_between(m["epoch"], m[("train_elbo", "min")], m[("train_elbo", "max")], color=COLORS[v], alpha=0.25, lw=0)
                ax.fill_between(t["epoch"], t[("test_elbo", "min")], t[("test_elbo", "max")], color=COLORS[v], alpha=0.15, lw=0)
            lows.append(m[("train_elbo", "mean")].iloc[len(m) // 10:].min())
            highs.append(m[("train_elbo", "mean")].max())
        ax.set_xlabel("Epoch")
        if len(panels) > 1:
            ax.set_title(describe_budget(budget, dataset))
        ax.legend(title="full: train, dashed: test", fontsize="small")
    axes[0][0].set_ylabel(r"$\mathcal{L}_1$ (nats)")
    lo, hi = min(lows), max(highs)
    axes[0][0].set_ylim(lo - 0.05 * (hi - lo), hi + 0.1 * (hi - lo))
    fig.tight_layout()
    return fig


def unit_kl_figure(snapshots: dict):
    """Fig. 4: log KL(q|p) of every latent unit (columns) at several epochs (rows), one panel per layer,
    all layers drawn the same width (so layer 5's 4 units read as well as layer 1's 64).

    ``snapshots`` maps variant -> {epoch: [per-unit KL array per layer]}.  Units are sorted within each
    layer by their final KL; white is an inactive unit.
    """
    n = len(snapshots)
    if not n:
        return _nothing()
    n_layers = max(len(next(iter(snaps.values()))) for snaps in snapshots.values())
    top = max(float(np.max(u)) for snaps in snapshots.values() for units in snaps.values() for u in units)
    vmax = max(1.0, np.log(max(top, 1e-3)))  # one scale for every panel, as the one colour bar says
    fig, axes = plt.subplots(n, n_layers, figsize=(WIDTH, 1.4 + 1.7 * n), squeeze=False,
                             gridspec_kw={"hspace": 0.25, "wspace": 0.08})
    for r, (v, snaps) in enumerate(snapshots.items()):
        epochs = sorted(snaps)
        final = snaps[epochs[-1]]
        for i in range(n_layers):
            ax = axes[r, i]
            ax.set_xticks([])
            ax.grid(False)
            if i >= len(final):
                ax.axis("off")
                continue
            order = np.argsort(-np.asarray(final[i]))
            img = np.log(np.maximum(np.array([np.asarray(snaps[e][i])[order] for e in epochs]), 1e-3))
            im = ax.imshow(img, aspect="auto", cmap="Greys", vmin=np.log(1e-3), vmax=vmax, interpolation="nearest")
            ax.set_yticks(range(len(epochs)), [str(e) for e in epochs] if i == 0 else [])
            if r == 0:
                ax.set_title(f"layer {i + 1}")
            if r == n - 1:
                ax.set_xlabel(f"{len(final[i])} units")
        axes[r, 0].set_ylabel(f"{_row_label(v)}\nepoch")
    fig.colorbar(im, ax=axes, label="log KL (nats)", shrink=0.8)
    return fig


def layer_bars(df, column: str, ylabel: str, chance: float | None = None):
    """Bars of a per-layer ``column`` (a list per record), grouped by layer, one colour per variant; where
    a variant has several seeds, the mean bar with an error bar of +-1 sd over the seeds. A second budget's
    models (the paper's beside a cpu grid) are hatched bars after the first's. ``chance`` draws a dashed
    line at that level."""
    if not len(df):
        return _nothing()
    fig, ax = plt.subplots(figsize=(WIDTH, 4.0))
    d = df[df["finetune"] == ""]
    budgets = list(dict.fromkeys(d["budget"]))
    models = [(v, b) for b in budgets for v in VARIANTS if ((d["variant"] == v) & (d["budget"] == b)).any()]
    w = 0.8 / max(1, len(models))
    for j, (v, b) in enumerate(models):
        vals = np.array([np.asarray(k, float) for k in d[(d["variant"] == v) & (d["budget"] == b)][column]])
        sd = vals.std(0, ddof=1) if len(vals) > 1 else None
        ax.bar(np.arange(1, vals.shape[1] + 1) + (j - (len(models) - 1) / 2) * w, vals.mean(0), w, yerr=sd,
               capsize=2, color=COLORS[v], hatch="///" if b != budgets[0] else None, edgecolor="white", lw=0,
               label=", ".join([v] + ([describe_budget(b, d["dataset"].iloc[0], short=True)] if len(budgets) > 1 else [])
                               + ([f"{len(vals)} seeds"] if len(vals) > 1 else [])))
    if chance is not None:
        ax.axhline(chance, color="0.3", ls="--", lw=1, label="chance")
    ax.set_xticks(range(1, 6), [f"i={i}" for i in range(1, 6)])
    ax.set_ylabel(ylabel)
    ax.legend(ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.0),  # above the bars, never over them
              fontsize="small" if len(budgets) > 1 else None)  # the budgets' names make it wider than the axes
    fig.tight_layout()
    return fig


def layer_kl_figure(df):
    """Fig. 5: KL[q_i|p_i] per layer i (:func:`layer_bars`)."""
    return layer_bars(df, "layer_kl", r"KL$[q_i|p_i]$ (nats)")


def pca_figure(projections: dict, labels):
    """Fig. 6: 2-D PCA of z_i ~ q(z_i|.) for every layer (columns) and variant (rows), coloured by class,
    with the colour legend of the digits."""
    n = len(projections)
    if not n:
        return _nothing()
    fig, axes = plt.subplots(n, 5, figsize=(WIDTH, 1.7 * n + 0.9), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for r, (v, layers) in enumerate(projections.items()):
        for c in range(5):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if c < len(layers):
                p = np.asarray(layers[c], np.float32)
                ax.scatter(p[:, 0], p[:, 1], c=labels, cmap=cmap, vmin=-0.5, vmax=9.5, s=2, alpha=0.6, rasterized=True)
            if r == 0:
                ax.set_title(f"layer {c + 1}")
            if c == 0:
                ax.set_ylabel(_row_label(v, narrow=True))
    handles = [plt.Line2D([], [], ls="", marker="o", color=cmap(d)) for d in range(10)]
    fig.legend(handles, [str(d) for d in range(10)], loc="lower center", ncol=10, title="digit", handletextpad=0.1,
               columnspacing=0.8, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.9 / (1.7 * n + 0.9) + 0.04, 1, 1))
    return fig


def image_grid(panels: dict, shape=(28, 28), ncol=8, nrow=4):
    """Figs. 9-10: one panel per entry (data, reconstructions, each model's samples), two panels to a
    row so that a digit is about 45 px wide in the book; each panel shows ``nrow`` x ``ncol`` images."""
    rows = int(np.ceil(len(panels) / 2))
    fig, axes = plt.subplots(rows, 2, figsize=(WIDTH, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, imgs) in zip(axes.flat, panels.items()):
        imgs = np.asarray(imgs)[: ncol * nrow]
        canvas = np.ones((nrow * shape[0], ncol * shape[1]))
        for i, im in enumerate(imgs):
            rr, cc = divmod(i, ncol)
            canvas[rr * shape[0]:(rr + 1) * shape[0], cc * shape[1]:(cc + 1) * shape[1]] = im.reshape(shape) / 255.0
        ax.imshow(canvas, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title)
    fig.tight_layout()
    return fig


BUDGET_COLORS = dict(zip(BUDGET_ORDER, ("#d62728", "#1f77b4", "#7f7f7f")))  # the largest budget in red


def _dot_label(r) -> str:
    """``model: metric``, and ``ours: <model>`` below it where our model is not the one the paper names."""
    label, ours = f"{r['model']}: {r['our metric'].replace('test ', '')}", str(r["our model"]).split(" (")[0]
    return label if not ours or ours.startswith(r["model"].split(" (")[0]) else f"{label}\nours: {ours}"


def paper_vs_ours(table):
    """The result at a glance: every number the paper prints that we have (rows of
    :func:`lvae_lib.report.reproduction_table`), the paper's as an open circle and ours as a dot coloured
    by its budget with +-1 sd over seeds; one panel per dataset, whose scales differ, its key above it.
    A row whose model of ours is not the one the paper names (its best VAE) names ours on a second line."""
    t = table[table["ours"].notna()]
    if not len(t):
        return _nothing()
    groups = list(t.groupby("dataset", sort=False))
    heights = [len(g) + 1.5 for _, g in groups]  # the key above each panel
    fig, axes = plt.subplots(len(groups), 1, figsize=(WIDTH, 0.42 * sum(heights) + 0.9 * len(groups)),
                             squeeze=False, gridspec_kw={"height_ratios": heights})
    for ax, (dataset, g) in zip(axes[:, 0], groups):
        y = np.arange(len(g))[::-1]
        sd = g["our sd"].astype(float).fillna(0)  # NaN for one seed: no bar
        ax.scatter(g["paper"].astype(float), y, s=60, facecolor="none", edgecolor="k", zorder=4, label="the paper")
        for b in BUDGET_ORDER:
            m = (g["budget"] == b).values
            if m.any():
                ax.errorbar(g["ours"].astype(float)[m], y[m], xerr=sd[m], fmt="o", color=BUDGET_COLORS[b], capsize=3,
                            label=f"ours, {describe_budget(b)}")
        ax.set_yticks(y, [_dot_label(r) for _, r in g.iterrows()])
        ax.legend(title=dataset, loc="lower left", ncol=3, frameon=False, alignment="left", borderaxespad=0.2,
                  handletextpad=0.3, columnspacing=1.0,  # from the figure's left edge, just above the panel
                  bbox_to_anchor=(0.01, 1.0), bbox_transform=blended_transform_factory(fig.transFigure, ax.transAxes))
        ax.set_xlabel("test log-likelihood (nats)")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))  # tick labels that never touch
    fig.tight_layout()
    return fig
