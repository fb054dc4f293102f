"""The claims engine: each claim of the paper as a comparison of records, decided by intervals.

A metric is a function of a record's table row (its value) and of its arrays (its per-test-image values,
where kept); :func:`compare` forms the intervals of a difference (paired over test images, over seeds,
or over images with the seed noise of another budget) and :func:`lvae_lib.evidence.verdict` decides;
:func:`decide` is the table every page shows, :func:`result_in_words` its summary (:func:`study_in_words`
the authors'-settings study's)."""
from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np
import pandas as pd
from scipy import stats

from . import analysis, evidence as ev
from . import paper
from .config import AUTHORS_LEFT_OUT, VARIANTS, bottom_up
from .experiments import BUDGET_ORDER, NESTED_K, describe_budget
from .frames import MODEL_KEYS, arrays_at, curves_at, fmt, knn, knn_of

def _gap(r):
    return r["test_LK"] - r["test_L1"]


# metric -> (value of a record's table row, its per-test-image values from the record's arrays, or None)
METRICS = {
    "test_LK": (lambda r: r["test_LK"], lambda a: a.get("test_LK_per_image")),
    "test_L1": (lambda r: r["test_L1"], lambda a: a.get("test_L1_per_image")),
    # L_1 of 10,000 training images (one fixed binarization), evaluation mode; per image in records made
    # since f78ec17 (older records: the summary only)
    "train_L1": (lambda r: r["train_L1"], lambda a: a.get("train_L1_per_image")),
    # L_K - L_1: how much importance sampling still adds, i.e. how loose the bound L_1 is
    "bound_gap": (_gap, lambda a: a["test_LK_per_image"] - a["test_L1_per_image"] if "test_LK_per_image" in a else None),
    # KL[q|p] summed over layers 3-5 (Fig. 5)
    # (one Monte Carlo pass: the per-image KL where the record keeps it, so the value and its interval agree)
    "kl_upper": (lambda r: _kl_upper(arrays_at(r["path"])) if isinstance(r.get("path"), str)
                 and "layer_kl_per_image" in arrays_at(r["path"]) else float(np.asarray(r["layer_kl"])[2:].sum()),
                 lambda a: a["layer_kl_per_image"][:, 2:].sum(1) if "layer_kl_per_image" in a else None),
    # units whose test-set KL is above analysis.ACTIVE_KL, the paper's measure (Fig. 4); Burda's A_u is "active_total_au"
    "active_total": (lambda r: float(sum(_active_kl(r))), lambda a: None),
    "active_total_au": (lambda r: float(sum(r["active_units"])), lambda a: None),
}


def _kl_upper(a: dict) -> float:
    return float(a["layer_kl_per_image"][:, 2:].sum(1).mean())


def _active_kl(r) -> list[int]:
    """Active units per layer of a record's row by the paper's measure (per-unit KL, :func:`analysis.active_units_kl`)."""
    a = arrays_at(r["path"]) if isinstance(r.get("path"), str) else {}
    layers = [a[f"unit_kl_l{i}"] for i in range(1, int(r["layers"]) + 1) if f"unit_kl_l{i}" in a]
    if len(layers) != int(r["layers"]):
        raise KeyError(f"{r.get('path')}: no per-unit KL of every layer")
    return analysis.active_units_kl(layers)
# L_1000 of the first 1000 samples of a record with K > 1000 (experiments.NESTED_K)
METRICS[f"test_L{NESTED_K}"] = (lambda r: float(arrays_at(r["path"])[f"test_L{NESTED_K}_per_image"].mean()),
                                lambda a: a.get(f"test_L{NESTED_K}_per_image"))
# k-NN accuracy in Fig. 6's PCA plane of layer i (analysis.knn_correct): how well the layer separates the classes
METRICS.update({f"knn_l{i}": (lambda r, i=i: float(knn(r["path"], i).mean()), lambda a, i=i: knn_of(a, i))
                for i in range(1, 6)})


def k_gap(df) -> pd.DataFrame:
    """How much a record's L_K exceeds the L_1000 of the first 1000 of its samples (records with K > 1000
    keep that, ``experiments.NESTED_K``): the mean over test images with its 95% interval, per model over
    its seeds (the paired interval of :func:`compare`). This is the amount by which a cpu budget's L_1000
    leans below an L_5000 of the same model."""
    col = f"L_K - L_{NESTED_K} (nats, 95% over test images)"
    out = []
    rows = _with(df, f"test_L{NESTED_K}_per_image")
    for (b, ds, v, layers, ft), g in (rows.groupby(MODEL_KEYS, sort=False) if len(rows) else []):
        iv = compare(g, g, "test_LK", metric_b=f"test_L{NESTED_K}")[1][0]  # the paired interval comes first
        out.append({"budget": b, "model": f"{g['dataset_name'].iloc[0]} {v}, {layers} layers" + (f" {ft}" if ft else ""),
                    "seeds": len(g), "K": int(g["K"].iloc[0]), col: f"{iv.mean:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]"})
    return pd.DataFrame(out, columns=["budget", "model", "seeds", "K", col])


def _model(df, dataset, variant, layers, finetune=""):
    """The rows of one model in ``df``, one per seed."""
    return df[(df["dataset"] == dataset) & (df["variant"] == variant) & (df["layers"] == layers)
              & (df["finetune"] == finetune)]


def _vaes(df, dataset, layers):
    """The rows of the bottom-up variants at this depth."""
    return df[(df["dataset"] == dataset) & df["variant"].map(bottom_up).astype(bool) & (df["layers"] == layers)
              & (df["finetune"] == "")]


def _best_vae(df, dataset, layers, metric):
    """The rows of the bottom-up variant with the highest mean ``metric`` at this depth (chosen on the
    same records it is then compared on, as the paper's "best VAE" is)."""
    d = _vaes(df, dataset, layers)
    if not len(d):
        return d
    value = METRICS[metric][0]
    best = d.assign(_v=[value(r) for _, r in d.iterrows()]).groupby("variant")["_v"].mean().idxmax()
    return d[d["variant"] == best]


def _values(rows, metric) -> str:
    v = np.array([METRICS[metric][0](r) for _, r in rows.iterrows()], np.float64)
    return fmt(v.mean(), v.std(ddof=1) if len(v) > 1 else float("nan"), len(v))


def compare(a, b, metric: str, side: int = 1, metric_b: str | None = None, noise: dict | None = None):
    """The evidence on "model ``a`` - model ``b`` lies on ``side``" for ``metric``: ``(text, intervals,
    verdict)``. ``a`` and ``b`` are the rows (one per seed) of two models of one budget; the intervals
    are those of :mod:`lvae_lib.evidence` that the records allow (per test image, over seeds).
    ``metric_b`` (default ``metric``) is what is read from ``b``: one model's layer i+1 against its
    layer i is ``compare(rows, rows, "knn_l2", metric_b="knn_l1")`` (its seed interval is then Welch's,
    which ignores the pairing by seed and so errs on the wide side). ``noise``: for a model with one seed
    here, the rows of its seeds at another budget (:func:`_noise_pool`), whose spread widens the interval
    over images."""
    metric_b = metric_b or metric
    (value, per_image), (value_b, per_image_b) = METRICS[metric], METRICS[metric_b]
    text = f"{_values(a, metric)} vs {_values(b, metric_b)}"
    pa = {r["seed"]: per_image(arrays_at(r["path"])) for _, r in a.iterrows() if isinstance(r.get("path"), str)}
    pb = {r["seed"]: per_image_b(arrays_at(r["path"])) for _, r in b.iterrows() if isinstance(r.get("path"), str)}
    pa, pb = ({s: v for s, v in p.items() if v is not None} for p in (pa, pb))
    # per image, paired by seed over the seeds both stored (e.g. fine-tuning against its control, which share
    # each seed's base model); where they share none (a record made before per-image values were kept), each
    # model's own seeds
    common = sorted(s for s in set(pa) & set(pb) if pa[s].shape == pb[s].shape)
    sa, sb = (common, common) if common else (sorted(pa), sorted(pb))
    if sa and sb and {pa[s].shape for s in sa} != {pb[s].shape for s in sb}:
        sa = sb = []
    intervals = []
    if sa and sb:
        iv = ev.paired(np.mean([pa[s] for s in sa], 0), np.mean([pb[s] for s in sb], 0))
        if len(sa) < len(pa) or len(sb) < len(pb):  # seeds left out: say which the images' mean is over
            iv = replace(iv, what=f"{iv.what} of seed{'s' if len(sa) > 1 else ''} {', '.join(map(str, sa))}")
        intervals.append(iv)
    seeds = ev.over_seeds([value(r) for _, r in a.iterrows()], [value_b(r) for _, r in b.iterrows()])
    intervals.append(seeds)
    if sa and sb and seeds is None and set(a.get("path", ())) != set(b.get("path", ())):  # one model against itself: no noise
        found = [_seed_noise(rows, m, len(ss), noise) for rows, m, ss in ((a, metric, sa), (b, metric_b, sb))]
        if all(found):
            src = sorted({n[3] for n in found})  # "200 epochs" goes without saying beside "200 epochs on X's seeds"
            intervals.append(ev.with_seed_noise(intervals[0], [n[:3] for n in found],
                                                ", ".join(s for s in src if not any(o != s and o.startswith(s) for o in src))))
    intervals = [iv for iv in intervals if iv is not None]
    return text, intervals, ev.verdict(intervals, side)


def _seed_noise(rows, metric: str, n: int, noise: dict | None = None):
    """(sd over seeds, its degrees of freedom, n, where it was measured, e.g. "200 epochs") of ``metric`` for
    the model of ``rows``: from its own seeds where it has two or more, else from the rows ``noise`` gives for it
    (:func:`_noise_pool`: the same model at another budget; :func:`_study_noise`: the model a study's variant
    changes); None where neither exists or the metric cannot be read there."""
    own = rows if len(rows) >= 2 else (noise or {}).get(_key(rows.iloc[0])) if len(rows) else None
    if own is None or len(own) < 2:
        return None
    try:
        v = np.array([METRICS[metric][0](r) for _, r in own.iterrows()], np.float64)
    except (KeyError, TypeError):  # e.g. a nested L_1000 that records of that budget do not keep
        return None
    where = describe_budget(own["budget"].iloc[0], own["dataset"].iloc[0], short=True)
    if own["variant"].iloc[0] != rows["variant"].iloc[0]:  # a study's model, with the seeds of the one it changes
        where = f"{where} on {own['variant'].iloc[0]}'s seeds"
    return float(v.std(ddof=1)), len(v) - 1, n, where


def _key(r) -> tuple:
    """A model, across budgets and seeds: (dataset, variant, layers, fine-tuning)."""
    return r["dataset"], r["variant"], r["layers"], r["finetune"]


def _noise_pool(sub, df) -> dict:
    """For each model with fewer than two seeds in ``sub`` (one budget's rows of ``df``): its rows at the
    largest other budget (never smoke) that has two or more seeds of it."""
    out = {}
    for _, r in sub.drop_duplicates(["dataset", "variant", "layers", "finetune"]).iterrows():
        if len(_model(sub, *_key(r))) >= 2:
            continue
        same = _model(df, *_key(r))
        for b in BUDGET_ORDER:
            if b not in (r["budget"], "smoke") and ((g := same[same["budget"] == b]).shape[0] >= 2):
                out[_key(r)] = g
                break
    return out


def _claim(parts):
    """One claim's row fields from its parts [(name, (text, intervals, verdict)) or (name, None)]."""
    parts = [(n, p) for n, p in parts if p is not None]
    if not parts:
        return "", "", ev.NOT_RUN
    name = lambda n, s: f"{n}: {s}" if n else s  # noqa: E731
    ours = "; ".join(name(n, p[0]) for n, p in parts)
    none = "untested: one seed, and no per-image values (a count, or a record made before they were kept)"
    if all(not p[1] for _, p in parts):  # said once, not once per depth
        ivs = none
    else:  # the parts with intervals, then those without, named together with the reason once
        ivs = "; ".join(name(n, p[1] if isinstance(p[1], str) else ", ".join(map(str, p[1]))) for n, p in parts if p[1])
        bare = [n for n, p in parts if not p[1]]
        if bare:
            ivs += f"; {', '.join(bare)}: {none}"
    return ours, ivs, ev.combine(p[2] for _, p in parts)


def _pair(df, a, b, metric, side=1, dataset="mnist", layers=5, fa="", fb="", layers_b=None, metric_b=None, noise=None):
    ra, rb = _model(df, dataset, a, layers, fa), _model(df, dataset, b, layers_b or layers, fb)
    return compare(ra, rb, metric, side, metric_b, noise) if len(ra) and len(rb) else None


def _per_depth(df, metric, a, b=None, side=1, dataset="mnist", depths=range(2, 6), noise=None):
    """Parts of "``a`` beats ``b`` at every depth"; ``b=None`` is the best VAE of each depth, named."""
    parts = []
    for L in depths:
        ra = _model(df, dataset, a, L)
        rb = _best_vae(df, dataset, L, metric) if b is None else _model(df, dataset, b, L)
        if len(ra) and len(rb):
            text, ivs, v = compare(ra, rb, metric, side, noise=noise)
            if b is None:  # which VAE, and of how many run at this depth and budget
                n = _vaes(df, dataset, L)["variant"].nunique()
                text += f" ({rb['variant'].iloc[0]}" + (f", best of {n})" if n > 1 else ", the only VAE run)")
            parts.append((f"L={L}", (text, ivs, v)))
    return parts


def _steps(df, variant, metric, dataset="mnist", depths=range(2, 6), noise=None):
    """Parts of "``variant`` improves with each added layer": L against L-1, step by step."""
    parts = []
    for lo, hi in zip(depths, list(depths)[1:]):
        ra, rb = _model(df, dataset, variant, hi), _model(df, dataset, variant, lo)
        if len(ra) and len(rb):
            parts.append((f"{lo}→{hi}", compare(ra, rb, metric, noise=noise)))
    return parts


def _with(df, array: str):
    """The rows of ``df`` whose records store ``array`` (e.g. Fig. 6's ``pca_labels``, which the k-NN
    metrics read, or the nested ``test_L1000_per_image``)."""
    if "path" not in df:
        return df.iloc[:0]
    return df[np.array([isinstance(p, str) and array in arrays_at(p) for p in df["path"]], bool)]


def _layer_steps(df, variant, metric="knn_l", dataset="mnist", layers=5):
    """Parts of "``variant``'s layers show more of ``metric`` the higher they sit": layer i+1 against
    layer i of the same records, step by step."""
    rows = _model(df, dataset, variant, layers)
    if not len(rows):
        return []
    return [(f"z{i}→z{i + 1}", compare(rows, rows, f"{metric}{i + 1}", metric_b=f"{metric}{i}")) for i in range(1, layers)]


def _active_every_layer(df, variant="LVAE+BN+WU", layers=5):
    """Active units (the paper's measure: test KL above :data:`analysis.ACTIVE_KL`) are a count per record:
    the claim holds when every seed has some in every layer, does not hold when every seed has a layer
    without any."""
    rows = _model(df, "mnist", variant, layers)
    try:
        counts = [_active_kl(r) for _, r in rows.iterrows()]
    except KeyError:
        return None
    if not counts:
        return None
    ok = [min(c) > 0 for c in counts]
    v = ev.HOLDS if all(ok) else ev.FAILS if not any(ok) else ev.OPEN
    return ("; ".join(f"LVAE {c}" for c in counts),
            f"a count per record: {len(counts)} seed(s), each checked (units with KL > {analysis.ACTIVE_KL} nats)", v)


def _late_trend(df, variant="LVAE+BN+WU", layers=5, share: float = 0.25):
    """Fig. 2's "no over-fitting", on the records' training curves: the least-squares slope of test L_1
    (evaluation mode, at each evaluation epoch) over the last ``share`` of training, in nats per 100 epochs,
    averaged over seeds with its 95% interval (the seeds' OLS standard errors combined); the slope of
    train L_1 (the running mean in training mode) is given beside it. The claim holds when test L_1 still
    rises, does not hold when it falls."""
    rows = _model(df, "mnist", variant, layers)
    slopes = []
    for _, r in rows.iterrows():
        if not isinstance(r.get("path"), str):
            continue
        m = curves_at(r["path"])
        if m is None:
            continue
        m = m[m["epoch"] > (1 - share) * m["epoch"].max()]
        e = m[m["test_elbo"].notna()]
        if len(e) < 3:
            continue
        fit = stats.linregress(e["epoch"].to_numpy(float) / 100, e["test_elbo"].to_numpy(float))
        train = stats.linregress(m["epoch"].to_numpy(float) / 100, m["train_elbo"].to_numpy(float))
        slopes.append((fit.slope, fit.stderr, train.slope, len(e), int(m["epoch"].max())))
    if not slopes:
        return None
    s = np.array(slopes)
    mean, se = s[:, 0].mean(), np.sqrt((s[:, 1] ** 2).sum()) / len(s)
    iv = ev.normal(mean, se, s[:, 3].sum(), f"evaluations in the last {share:.0%} of {int(s[0, 4])} epochs, {len(s)} seed(s)")
    text = (f"test L_1 {mean:+.3f} nats per 100 epochs over the last {share:.0%} of training, train L_1 "
            f"{s[:, 2].mean():+.3f}")
    return text, [iv], ev.verdict([iv], 1)


def train_above_test(df) -> str:
    """Fig. 2's caption, from the records: which models end with the running train L_1 (training mode)
    below test L_1 (evaluation mode), and which above it, from which evaluation epoch on for good."""
    above, below = {}, {}
    for _, r in df.iterrows():
        if not isinstance(r.get("path"), str) or int(r["layers"]) != 5:
            continue
        e = curves_at(r["path"])
        if e is None:
            continue
        e = e[e["test_elbo"].notna()]
        over = (e["train_elbo"] > e["test_elbo"]).to_numpy()
        key = f"{r['variant']} ({describe_budget(r['budget'], r['dataset'], short=True)}"
        if len(over) and over[-1]:
            first = 0 if over.all() else len(over) - int(np.argmin(over[::-1]))
            above.setdefault(key, []).append(int(e["epoch"].iloc[first]))
        else:
            below.setdefault(key, []).append(r["seed"])
    seeds = lambda n: f", {n} seeds)" if n > 1 else ")"  # noqa: E731
    out = []
    if below:
        out.append("Test lies above train at the end for " + ", ".join(k + seeds(len(v)) for k, v in below.items())
                   + ": train L_1 is the running mean over each epoch in training mode (batch statistics, a fresh "
                   "binarisation, a model still improving during the epoch), test is measured in evaluation mode at "
                   "the epoch's end.")
    if above:
        out.append("Train ends above test, and stays above, for " + "; ".join(
            k + seeds(len(v))[:-1] + f", from epoch {min(v)}" + (f" to {max(v)}" if max(v) != min(v) else "") + ")"
            for k, v in above.items()) + ".")
    return " ".join(out)


def _claim_list(df, noise: dict | None = None):
    """(figures, claim, parts) for each claim of the paper; a part is (name, compare(...)) or (name, None)
    where a record is missing. ``noise``: :func:`_noise_pool` of ``df``."""
    pair, per_depth, steps = (partial(f, noise=noise) for f in (_pair, _per_depth, _steps))
    lv = "LVAE+BN+WU"
    vaes = ("VAE", "VAE+BN", "VAE+BN+WU")
    out = [
        (("fig2",), "the LVAE's test L_1 ends above every VAE variant's (5 layers)",
         [(v, pair(df, lv, v, "test_L1")) for v in vaes]),
        (("fig2",), "... and its train L_1 too (evaluation mode, 10,000 training images)",
         [(v, pair(df, lv, v, "train_L1")) for v in vaes]),
        (("fig2",), "no over-fitting: the LVAE's test L_1 does not fall late in training (its slope over the last "
                    "quarter of the epochs)", [("", _late_trend(df, lv))]),
        (("fig3", "fig7"), "LVAE+BN+WU beats the best VAE of the same depth on test L_1 (MNIST, 2-5 layers)",
         per_depth(df, "test_L1", lv)),
        (("fig3", "fig7"), "... and on test L_K, the estimate of log p(x)", per_depth(df, "test_LK", lv)),
        (("fig3", "table1"), f"L_K still rises past K = {NESTED_K} (the paper's K against the 200-epoch runs', on the same "
                             "LVAE+BN+WU, 5 layers): a 200-epoch run's L_1000 understates it",
         [("", pair(nested, lv, lv, "test_LK", metric_b=f"test_L{NESTED_K}") if len(nested := _with(df, f"test_L{NESTED_K}_per_image")) else None)]),
        (("fig3",), "the LVAE's bound is tighter: L_K - L_1 smaller than VAE+BN+WU's (5 layers)",
         [("", pair(df, lv, "VAE+BN+WU", "bound_gap", -1))]),
        (("fig2", "fig3"), "batch norm raises the test likelihood of the 5-layer VAE",
         [("", pair(df, "VAE+BN", "VAE", "test_LK"))]),
        (("fig2", "fig3"), "warm-up raises it further", [("", pair(df, "VAE+BN+WU", "VAE+BN", "test_LK"))]),
        (("fig3",), "the LVAE improves with each added layer, 2→3→4→5 (test L_1, as the paper's text)",
         steps(df, lv, "test_L1")),
        (("fig3",), "the plain VAE does not improve past one layer: each deeper VAE is below the 1-layer one (test L_1)",
         [(f"L={L}", pair(df, "VAE", "VAE", "test_L1", -1, layers=L, layers_b=1)) for L in range(2, 6)]),
        (("fig3",), "VAE+BN+WU improves up to three layers, 1→2→3 (test L_1)",
         steps(df, "VAE+BN+WU", "test_L1", depths=range(1, 4))),
        (("fig4",), "the LVAE keeps active units in every layer (5 layers)", [("", _active_every_layer(df))]),
        (("fig4",), "... and more active units in total than VAE+BN+WU (units with KL above 0.01 nats, the paper's measure)",
         [("", pair(_with(df, "unit_kl_l1"), lv, "VAE+BN+WU", "active_total"))]),
        (("fig5",), "the LVAE puts more KL (information) into layers 3-5 than VAE+BN+WU",
         [("", pair(df, lv, "VAE+BN+WU", "kl_upper"))]),
        (("fig6",), "the LVAE's top layer separates the digit classes better than VAE+BN+WU's (10-NN accuracy "
                    "in Fig. 6's PCA plane of z5, 5 layers)", [("", pair(_with(df, "pca_labels"), lv, "VAE+BN+WU", "knn_l5"))]),
        (("fig6",), "the LVAE's layers cluster by class progressively more, bottom to top (10-NN accuracy in "
                    "each layer's PCA plane)", _layer_steps(_with(df, "pca_labels"), lv)),
        (("fig7",), "the LVAE without batch norm (LVAE+WU) is worse than LVAE+BN+WU at every depth (test L_K)",
         per_depth(df, "test_LK", "LVAE+WU", lv, side=-1)),
        (("fig8", "table2"), "on OMNIGLOT the LVAE beats the best VAE of the same depth (test L_K)",
         per_depth(df, "test_LK", lv, dataset="omniglot28")),
        (("fig8", "table2"), "on OMNIGLOT too, batch norm raises the test likelihood of the 5-layer VAE",
         [("", pair(df, "VAE+BN", "VAE", "test_LK", dataset="omniglot28"))]),
        (("fig8", "table2"), "... and warm-up raises it further",
         [("", pair(df, "VAE+BN+WU", "VAE+BN", "test_LK", dataset="omniglot28"))]),
        (("table1",), "fine-tuning (10 MC samples, annealed lr) improves L_K, against the same extra epochs "
                      "with one sample (the control)", [("", pair(df, lv, lv, "test_LK", fa="ft", fb="ft-control"))]),
        (("table1",), "training with 10 importance samples improves it further",
         [("", pair(df, lv, lv, "test_LK", fa="ft-iw10", fb="ft"))]),
    ]
    return out


CLAIM_COLUMNS = ["figure", "claim", "budget", "ours", "interval (A - B, 95%)", "verdict", "the paper's effect"]


def _paper_effects() -> dict:
    """{claim: {part: the paper's own difference A - B}}, from the numbers it prints (:mod:`lvae_lib.paper`),
    for the claims whose comparison it states; others have none."""
    text = {(d["metric"], d["variant"]): d["value"] for d in paper.MNIST_TEXT}
    om = paper.TABLE2["OMNIGLOT"]
    vaes = ("VAE", "VAE+BN", "VAE+BN+WU")
    ft = dict((n, v) for n, v, _ in paper.TABLE1)
    return {
        "LVAE+BN+WU beats the best VAE of the same depth on test L_1 (MNIST, 2-5 layers)":
            {"L=5": text[("test L_1", "LVAE+BN+WU")] - text[("test L_1", "best VAE (3 layers)")]},
        "... and on test L_K, the estimate of log p(x)":
            {"L=5": text[("test L_5000", "LVAE+BN+WU")] - text[("test L_5000", "best VAE")]},
        "on OMNIGLOT the LVAE beats the best VAE of the same depth (test L_K)":
            {f"L={L}": om["LVAE+BN+WU"][L - 1] - max(om[v][L - 1] for v in vaes) for L in range(2, 6)},
        "on OMNIGLOT too, batch norm raises the test likelihood of the 5-layer VAE": {"": om["VAE+BN"][4] - om["VAE"][4]},
        "... and warm-up raises it further": {"": om["VAE+BN+WU"][4] - om["VAE+BN"][4]},
        "training with 10 importance samples improves it further":
            {"": ft["LVAE, 5-layer + finetuning + IW=10"] - ft["LVAE, 5-layer + finetuning"]},
        # the study's: the paper's LVAE - VAE gap, which the authors' settings might bring back
        "with the authors' settings the LVAE beats the VAE on test L_1, as in the paper":
            {"": text[("test L_1", "LVAE+BN+WU")] - text[("test L_1", "best VAE (3 layers)")]},
        "with the authors' settings the LVAE beats the VAE on test L_K, as in the paper":
            {"": text[("test L_5000", "LVAE+BN+WU")] - text[("test L_5000", "best VAE")]},
    }


def _effects_text(claim: str, parts) -> str:
    effects = _paper_effects().get(claim, {})
    out = []
    for name, part in parts:
        if name in effects and part is not None:
            out.append((f"{name}: " if name else "") + ev.paper_effect(effects[name], part[1] if isinstance(part[1], list) else []))
    return "; ".join(out)


def _with_intervals(parts) -> list:
    """The parts of a claim that have intervals: [(name, (text, intervals, verdict))], e.g. ``name`` "L=5"."""
    return [(n, p) for n, p in parts if p is not None and p[1]]


def weigh(df, figure: str | None = None, claim_list=None) -> list[dict]:
    """The rows of :func:`decide`, each also holding under ``"parts"`` the evidence it was decided on, as
    structured parts [(name, (text, intervals, verdict)) or (name, None)], so that a reader of one claim's
    intervals (:func:`result_in_words`, :func:`study_in_words`) takes them from here rather than parsing the
    table's text or weighing the claims again."""
    claim_list = claim_list or _claim_list
    rows: dict[str, list] = {}
    order: list[str] = []
    for b in BUDGET_ORDER:
        sub = df[df["budget"] == b]
        for figs, claim, parts in claim_list(sub, _noise_pool(sub, df)) if len(sub) else ():
            if figure is not None and figure not in figs:
                continue
            if claim not in order:
                order.append(claim)
            ours, ivs, verdict = _claim(parts)
            tested = [x for x in rows.get(claim, []) if x["verdict"] != ev.NOT_RUN]
            if verdict == ev.NOT_RUN or (b == "smoke" and tested):
                continue
            rows.setdefault(claim, []).append({"figure": ", ".join(figs), "claim": claim, "budget": b, "ours": ours,
                                               "interval (A - B, 95%)": ivs, "verdict": verdict,
                                               "the paper's effect": _effects_text(claim, parts), "parts": parts})
    out = []
    for claim in order:
        out += rows.get(claim) or [{"figure": figure or "", "claim": claim, "budget": "", "ours": "-",
                                    "interval (A - B, 95%)": "", "verdict": ev.NOT_RUN, "the paper's effect": "",
                                    "parts": []}]
    return out


def decide(df, figure: str | None = None, claim_list=None) -> pd.DataFrame:
    """The paper's claims that ``df``'s records test: our evidence, its intervals and the verdict of
    :func:`lvae_lib.evidence.verdict` (holds / does not hold / not resolved / untested; "not run" where a record is
    missing), and, where the paper prints both sides of the comparison, whether its own difference lies inside our
    intervals (:func:`lvae_lib.evidence.paper_effect`).

    A claim compares records of one budget only. It gets a row for every budget (paper, cpu) whose
    records can test it; ``smoke`` records (which say nothing about the method) only where no larger
    budget can. Rows of several seeds of a model are all used. ``figure`` (e.g. ``"fig3"``) keeps the
    claims of one figure. ``claim_list``: another list of claims in :func:`_claim_list`'s form (default: the
    paper's; :func:`study_claims`: the authors'-settings study's). :func:`weigh` gives the same rows with the
    evidence behind each.
    """
    return as_table(weigh(df, figure, claim_list))


def as_table(weighed: list[dict]) -> pd.DataFrame:
    """:func:`weigh`'s rows as :func:`decide`'s table (for a reader that has weighed the claims already)."""
    return pd.DataFrame(weighed, columns=CLAIM_COLUMNS)


def active_units_table(df) -> pd.DataFrame:
    """Active units per layer of each record: the paper's measure (KL) and Burda's, as ``a-b-c-d-e``."""
    dash = lambda a: "-".join(map(str, a))  # noqa: E731
    kl = [dash(_active_kl(r)) if isinstance(r.get("path"), str) and "unit_kl_l1" in arrays_at(r["path"]) else ""
          for _, r in df.iterrows()]
    return pd.DataFrame({"budget": df["budget"], "model": df["variant"], "seed": df["seed"],
                         "KL > 0.01 nats (the paper's)": kl, "Burda's A_u > 0.01": df["active_units"].map(dash)})


def result_in_words(df: pd.DataFrame, weighed: list[dict] | None = None) -> str:
    """The result in a few sentences, generated from the records ``df`` (every budget and seed, as
    :func:`decide` takes them) by the rule behind the claims table, never typed: what the paper's protocol gave
    for the central pair, the central claim's verdict with its intervals against the paper's effect, and the
    count of verdicts at each claim's largest budget, naming the claims that do not hold. ``weighed``:
    :func:`weigh` of ``df``, where the caller has it already (a notebook that also shows the claims table)."""
    weighed, out = weigh(df) if weighed is None else weighed, []
    claims_table = as_table(weighed)
    central = "... and on test L_K, the estimate of log p(x)"
    paper_rows = df[(df["budget"] == "paper") & (df["dataset"] == "mnist") & (df["layers"] == 5) & (df["finetune"] == "")]
    if len(paper_rows):
        got = {v: g for v, g in paper_rows.groupby("variant")}
        parts = [f"{v} {g['test_LK'].mean():.2f}" + (f" ({len(g)} seeds)" if len(g) > 1 else "")
                 for v, g in got.items()]
        text = {(d["metric"], d["variant"]): d["value"] for d in paper.MNIST_TEXT}
        out.append(f"Trained with the paper's protocol (2000 epochs, test L_5000, one seed a model unless said), our "
                   f"5-layer models reach {', '.join(parts)} nats on MNIST, where the paper reports "
                   f"{text[('test L_5000', 'LVAE+BN+WU')]:.2f} for its LVAE and {text[('test L_5000', 'best VAE')]:.2f} "
                   f"for its best VAE.")
    r = next((x for x in weighed if x["claim"] == central), None)  # its largest budget
    if r is not None:
        deepest = _with_intervals(r["parts"])[-1:]  # [(e.g. "L=5", (text, intervals, verdict))]
        ivs = "; ".join(f"{n}: {', '.join(map(str, p[1]))}" for n, p in deepest)
        effects = _paper_effects()[central]
        effect = "; ".join(ev.paper_effect(effects[n], p[1]) for n, p in deepest if n in effects)
        out.append(f"The central claim, that the LVAE beats the best VAE on the likelihood, is **{r['verdict']}** at "
                   f"{describe_budget(r['budget'])}" + (f" ({ivs})" if ivs else "")
                   + (f"; the paper's own difference: {effect}." if effect else "."))
    # each claim at the largest budget that could test it (else its largest budget)
    tested = claims_table["verdict"].isin([ev.HOLDS, ev.FAILS, ev.OPEN])
    first = pd.concat([claims_table[tested], claims_table[~tested]]).drop_duplicates("claim")
    counts = first["verdict"].value_counts()
    plural = {ev.HOLDS: "hold", ev.FAILS: "do not hold", ev.OPEN: "are not resolved", ev.UNTESTED: "are untested",
              ev.NOT_RUN: "are not run"}
    out.append(f"Of the paper's {len(first)} claims, each at the largest budget that tests it: "
               + ", ".join(f"{counts[v]} {plural[v]}" for v in plural if v in counts) + ".")
    fails = first[first["verdict"] == ev.FAILS]
    if len(fails):
        out.append("Those that do not hold: " + "; ".join(f"{c.rstrip('.')} ({describe_budget(b)})"
                                                          for c, b in zip(fails["claim"], fails["budget"]))
                   + ".")
    return " ".join(out)


# ---- the authors'-settings study (not the paper's claims): each of its variants against the model it changes
# (config.VARIANTS with paper=False: "VAE+BN+WU+clip" changes "VAE+BN+WU")
STUDY_BASE = {name: name.rsplit("+", 1)[0] for name, v in VARIANTS.items() if not v.paper}
STUDY_METRICS = (("test_L1", "test L_1"), ("test_LK", "test L_K"))
# what the verdict on "the setting lowers it" (side -1) says of the setting
_EFFECT = {ev.HOLDS: "lowers it", ev.FAILS: "raises it", ev.OPEN: "not resolved", ev.UNTESTED: "untested"}


def _study_noise(df) -> dict:
    """For each study variant with fewer than two seeds in ``df`` (one budget's rows): the rows of the model it
    changes, where that has two or more seeds; their spread stands in for the study variant's own training
    noise (an assumption, named in the interval's text), so that one seed of a setting is not judged by the
    test images alone."""
    out = {}
    for _, r in df.drop_duplicates(["dataset", "variant", "layers", "finetune"]).iterrows():
        base = STUDY_BASE.get(r["variant"])
        if base and len(_model(df, *_key(r))) < 2:
            rows = _model(df, r["dataset"], base, r["layers"], r["finetune"])
            if len(rows) >= 2:
                out[_key(r)] = rows
    return out


def study_claims(df, noise: dict | None = None):
    """The study's claims in :func:`_claim_list`'s form, for :func:`decide` (``claim_list=study_claims``):
    whether the authors' settings lower each model's likelihood, and whether with them the LVAE's lead over the
    VAE comes back (the paper's gap)."""
    noise = {**(noise or {}), **_study_noise(df)}
    pair = partial(_pair, noise=noise)
    out = []
    for model in ("VAE+BN+WU", "LVAE+BN+WU"):
        for metric, name in STUDY_METRICS:
            out.append((("authors",), f"the authors' settings lower {model}'s {name} (5 layers)",
                        [("", pair(df, f"{model}+authors", model, metric, -1))]))
    for metric, name in STUDY_METRICS:
        out.append((("authors",), f"with the authors' settings the LVAE beats the VAE on {name}, as in the paper",
                    [("", pair(df, "LVAE+BN+WU+authors", "VAE+BN+WU+authors", metric))]))
    return out


def settings_table(df) -> pd.DataFrame:
    """Each study variant with records in ``df`` against the model it changes (same budget, dataset and depth):
    the setting, the seeds behind each side, and for test L_1 and test L_K the difference (setting - without)
    with its widest 95% interval (:func:`compare`, with :func:`_study_noise`) and what it says of the setting:
    *lowers it*, *raises it* or *not resolved* by the book's rule."""
    cols = ["budget", "setting", "changes", "seeds"] + [c for _, n in STUDY_METRICS for c in (f"Δ {n} [95%]", n)]
    out = []
    for b in BUDGET_ORDER:
        sub = df[df["budget"] == b]
        noise = {**_noise_pool(sub, df), **_study_noise(sub)}
        for (ds, v, L, ft), g in sub.groupby(["dataset", "variant", "layers", "finetune"], sort=False):
            base = _model(sub, ds, STUDY_BASE.get(v, ""), L, ft)
            if v not in STUDY_BASE or not len(base):
                continue
            row = {"budget": b, "setting": v[len(STUDY_BASE[v]) + 1:], "changes": f"{STUDY_BASE[v]}, {L} layers",
                   "seeds": f"{len(g)} vs {len(base)}"}
            for metric, name in STUDY_METRICS:
                _, ivs, verdict = compare(g, base, metric, -1, noise=noise)
                row[f"Δ {name} [95%]"] = max(ivs, key=ev.Interval.width).brief() if ivs else "-"
                row[name] = _EFFECT[verdict]
            out.append(row)
    return pd.DataFrame(out, columns=cols)


def study_in_words(df, settings: pd.DataFrame | None = None, weighed: list[dict] | None = None) -> str:
    """The study's result in a few sentences, generated from the records ``df`` by the functions behind its
    tables (:func:`settings_table`; :func:`study_claims` under :func:`decide`'s rule), never typed: at the
    largest budget with records, what the authors' settings together do to each model's test L_K, which single
    settings lower, raise or leave unresolved the test L_K of the model they change, and whether with the
    authors' settings the LVAE's lead over the VAE comes back (its widest interval and verdict). ``settings``
    and ``weighed``: :func:`settings_table` of ``df`` and :func:`weigh` of it with ``claim_list=study_claims``,
    where the caller has them already."""
    settings = settings_table(df) if settings is None else settings
    if not len(settings):
        return "The study has no records yet."
    b = next(x for x in BUDGET_ORDER if x in set(settings["budget"]))  # BUDGET_ORDER: the largest first
    s, name = settings[settings["budget"] == b], STUDY_METRICS[-1][1]
    together = s[s["setting"] == "authors"]
    out = [f"At {describe_budget(b)} ({b} budget), test L_K:"]
    if len(together):
        every = f"together (all but {', '.join(AUTHORS_LEFT_OUT)})" if AUTHORS_LEFT_OUT else "all together"
        out.append(f"the authors' settings {every} change " + "; ".join(
            f"{r['changes'].split(',')[0]} by {r[f'Δ {name} [95%]']} nats ({r[name]}, {r['seeds']} seeds)"
            for _, r in together.iterrows()) + ".")
    single = s[s["setting"] != "authors"]
    if len(single):
        twice = single["setting"].duplicated(keep=False)  # a setting measured on both models is named with its model
        label = single["setting"].where(~twice, single["setting"] + " on " + single["changes"].str.split(",").str[0])
        groups = {w: ", ".join(label[single[name] == w]) for w in _EFFECT.values()}
        n = list(dict.fromkeys(single["seeds"]))  # e.g. "3 vs 3": the setting's seeds vs its model's
        n_seeds = f"{n[0]} seeds each" if len(n) == 1 else "seeds: " + " or ".join(n)
        out.append(f"Of the {len(single)} single settings ({n_seeds}), "
                   + "; ".join(f"{w}: {g}" for w, g in groups.items() if g) + ".")
    gap = f"with the authors' settings the LVAE beats the VAE on {name}, as in the paper"
    weighed = weigh(df, claim_list=study_claims) if weighed is None else weighed
    rows = [r for r in weighed if r["claim"] == gap and r["budget"] == b]
    for _, (_, ivs, verdict) in _with_intervals(rows[0]["parts"]) if rows else ():
        effect = _effects_text(gap, [("", (None, ivs))])
        out.append(f"With the authors' settings the LVAE's lead over the VAE is {max(ivs, key=ev.Interval.width).brief()} "
                   f"nats, **{verdict}**" + (f"; the paper's own lead {effect}." if effect else "."))
    return " ".join(out)
