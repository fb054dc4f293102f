"""Paper-vs-ours tables and the per-figure data the notebooks plot, read from the results store."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from . import analysis, evidence as ev
from .config import bottom_up
from .experiments import BUDGET_ORDER, NESTED_K, describe_budget
from . import paper
from .results import Store, kl_snapshots


def _store(df, row):
    """The store holding ``row``'s record (rows of one table may come from different budgets)."""
    return Store(df.attrs["results_dir"], row.budget if hasattr(row, "budget") else row["budget"])


MODEL_KEYS = ["budget", "dataset", "variant", "layers", "finetune"]
SUMMARY = ["train_L1", "test_L1", "test_LK"]


def seed_mean(df) -> pd.DataFrame:
    """One row per model (budget, dataset, variant, depth, fine-tuning): each summary number averaged
    over the model's seeds, with its sd (``<name>_sd``, NaN for one seed) and ``n_seeds``. The other
    columns (active units, layer KL, the record's path) are those of the model's first row, the
    notebook's own seed (:func:`lvae_lib.notebooks.ensure` puts it first)."""
    if not len(df):
        return df
    g = df.groupby(MODEL_KEYS, sort=False)
    out = g.first().reset_index()
    for m in SUMMARY:
        out[m] = g[m].mean().values
        out[f"{m}_sd"] = g[m].std().values
    out["n_seeds"] = g.size().values
    out = out.sort_values("budget", key=lambda b: b.map(BUDGET_ORDER.index), kind="stable", ignore_index=True)
    out.attrs.update(df.attrs)
    return out  # largest budget first: a model's first row is its best-budget record


def spread(sd, n) -> str:
    """``0.05 (n=3)``: the seed-to-seed sd of a mean over ``n`` seeds; empty for one seed."""
    return "" if n is None or n < 2 or pd.isna(sd) else f"{sd:.2f} (n={int(n)})"


def fmt(mean, sd=float("nan"), n=1) -> str:
    """``-83.38`` for one seed, ``-83.38 ± 0.05 (n=3)`` for several."""
    return f"{mean:.2f}" + (f" ± {spread(sd, n)}" if spread(sd, n) else "")


def curves(df, layers=5) -> dict:
    """variant -> [per-epoch metrics of its ``layers``-layer model, one per seed] (Fig. 2)."""
    out: dict[str, list] = {}
    if not len(df):
        return out
    d = df[(df["layers"] == layers) & (df["finetune"] == "")]
    for r in d.itertuples():
        out.setdefault(r.variant, []).append(_store(df, r).metrics(r.run_obj, r.key))
    return out


def sample_grids(df, dataset: str) -> dict:
    """Figs. 9-10's panels for one dataset: test images, the LVAE's reconstructions, its samples and the
    VAE's (5 layers, the figure's budget), then the same models' samples at each other budget shown."""
    d = df[df["dataset"] == dataset]
    if not len(d):
        return {}
    lvae, vae = arrays(d, "LVAE+BN+WU"), arrays(d, "VAE+BN+WU")
    grids = {"a) data": lvae["data"], "b) LVAE+BN+WU: reconstructions": lvae["reconstructions"],
             "c) LVAE+BN+WU: samples": lvae["samples"], "d) VAE+BN+WU: samples": vae["samples"]}
    for b in list(dict.fromkeys(d["budget"]))[1:]:  # the paper budget's models, where some exist
        for v in ("LVAE+BN+WU", "VAE+BN+WU"):
            if ((d["variant"] == v) & (d["budget"] == b)).any():
                grids[f"{'abcdefgh'[len(grids)]}) {shown_as(d, v, b)}: samples"] = arrays(d, v, budget=b)["samples"]
    return grids


def layer_kl_table(df) -> pd.DataFrame:
    """Each record's test-set KL per layer (nats), a column per layer (Fig. 5's numbers)."""
    out = df[["budget", "variant", "seed"]].reset_index(drop=True)
    kl = pd.DataFrame([list(a) for a in df["layer_kl"]]).round(2).abs()  # abs: no "-0.0" for a KL of zero
    kl.columns = [f"layer {i + 1}" for i in kl.columns]
    return pd.concat([out, kl], axis=1)


def warmup_curves(df, variants=("LVAE+BN+WU", "VAE+BN+WU"), layers=5) -> tuple[str, dict]:
    """The training curves of seed 0 of ``variants`` at the largest budget that has all of them:
    ``(budget, {variant: per-epoch metrics})`` (the warm-up figure)."""
    for b in BUDGET_ORDER:
        d = df[(df["budget"] == b) & (df["seed"] == 0)]
        got = {v: c[0] for v, c in curves(d, layers).items() if v in variants}
        if len(got) == len(variants):
            return b, {v: got[v] for v in variants}
    return "", {}


def shown_as(df, variant: str, budget: str) -> str:
    """A model's name in a figure of ``df``: its variant, and its budget where the figure draws records
    of several (the paper budget's models beside a cpu grid: :func:`lvae_lib.notebooks.beside_paper`)."""
    if not len(df) or df["budget"].nunique() < 2:
        return variant
    return f"{variant} ({describe_budget(budget, df['dataset'].iloc[0], short=True)})"


def _firsts(df, layers=5):
    """The first row (the notebook's seed) of each ``layers``-layer model of each budget, in ``df``'s order."""
    return df[(df["layers"] == layers) & (df["finetune"] == "")].drop_duplicates(["budget", "variant"]).itertuples()


def snapshots(df, layers=5) -> dict:
    """model (:func:`shown_as`) -> {epoch: [per-unit KL per layer]} (Fig. 4)."""
    return {shown_as(df, r.variant, r.budget): kl_snapshots(_store(df, r).arrays(r.run_obj, r.key))
            for r in _firsts(df, layers)} if len(df) else {}


def arrays(df, variant, layers=5, finetune="", budget=None) -> dict:
    """The arrays of the first record of a model in ``df`` (of ``budget``, where given)."""
    d = df if budget is None else df[df["budget"] == budget]
    r = d[(d["variant"] == variant) & (d["layers"] == layers) & (d["finetune"] == finetune)].iloc[0]
    return _store(df, r).arrays(r["run_obj"], r["key"])


def projections(df, layers=5) -> tuple[dict, np.ndarray]:
    """model (:func:`shown_as`) -> [2-D PCA of z_i per layer], and the class labels (Fig. 6; every record
    projects the same first test images)."""
    out, labels = {}, None
    for r in (_firsts(df, layers) if len(df) else []):
        a = _store(df, r).arrays(r.run_obj, r.key)
        out[shown_as(df, r.variant, r.budget)] = [a[f"pca_l{i}"] for i in range(1, layers + 1)]
        labels = a.get("pca_labels")
    return out, labels


def layer_knn(df, layers=5) -> pd.DataFrame:
    """The ``layers``-layer models' rows (one per seed) with a ``knn`` column: per layer, the 10-NN
    accuracy of the digit class in Fig. 6's PCA plane (:func:`lvae_lib.analysis.knn_correct`)."""
    d = df[(df["layers"] == layers) & (df["finetune"] == "")].copy()
    d["knn"] = [[_knn(r["path"], i).mean() for i in range(1, layers + 1)] for _, r in d.iterrows()]
    return d


def layers_table(df, metric="test_LK") -> pd.DataFrame:
    """variant x layers table of one metric (ours): the mean over seeds, ``± sd (n)`` where there are several."""
    d = seed_mean(df[df["finetune"] == ""])
    cells = d.assign(cell=[fmt(r[metric], r[f"{metric}_sd"], r["n_seeds"]) for _, r in d.iterrows()])
    return cells.pivot(index="variant", columns="layers", values="cell").fillna("")


def top_budget(d: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``d`` that belong to its largest budget (paper > cpu > smoke): a "best of" is taken
    within one budget, never across budgets."""
    for b in BUDGET_ORDER:
        if (d["budget"] == b).any():
            return d[d["budget"] == b]
    return d


def _with_sd(rows) -> pd.DataFrame:
    """A compare table's rows as a frame, with its ``ours: sd`` over seeds as a number (2 decimals, empty for
    one seed) beside ``seeds``: the reproduction table and its plot read them, :func:`fmt` formats them."""
    out = pd.DataFrame(rows)
    out["ours: sd"] = out["ours: sd"].astype(float).round(2)
    out["seeds"] = out["seeds"].astype("Int64")
    if "ours: K" in out:
        out["ours: K"] = out["ours: K"].astype("Int64")
    return out


def mnist_text_compare(df) -> pd.DataFrame:
    """The MNIST numbers the paper states in its text (Fig. 3) beside ours."""
    d = seed_mean(df[(df["finetune"] == "") & (df["dataset"] == "mnist")]) if len(df) else df
    vae = top_budget(d[d["variant"].map(bottom_up).astype(bool)]) if len(d) else d
    lvae5 = top_budget(d[(d["variant"] == "LVAE+BN+WU") & (d["layers"] == 5)]) if len(d) else d
    best = lambda t, m: t.loc[t[m].idxmax()] if len(t) else None  # noqa: E731
    # a best of our bottom-up models says over how many it is taken: at a budget with only part of the
    # grid (the paper budget's one 5-layer VAE+BN+WU) it is not the paper's best of every variant and depth
    at = "" if not len(vae) else describe_budget(vae["budget"].iloc[0], "mnist", short=True)
    of = "" if not len(vae) else (f" (the only bottom-up model trained for {at})" if len(vae) == 1
                                  else f" (best of {len(vae)} bottom-up models trained for {at})")
    ours = {
        ("test L_1", "LVAE+BN+WU"): (best(lvae5, "test_L1"), "test_L1"),
        ("test L_1", "best VAE (3 layers)"): (best(vae, "test_L1"), "test_L1"),
        ("test L_5000", "LVAE+BN+WU"): (best(lvae5, "test_LK"), "test_LK"),
        ("test L_5000", "best VAE"): (best(vae, "test_LK"), "test_LK"),
    }
    rows = []
    for p in paper.MNIST_TEXT:
        r, m = ours[(p["metric"], p["variant"])]
        rows.append({"metric": p["metric"], "model": p["variant"], "paper": p["value"],
                     "ours": None if r is None else round(float(r[m]), 2),
                     "ours: sd": None if r is None else r[f"{m}_sd"], "seeds": None if r is None else r["n_seeds"],
                     "ours: model": "" if r is None else f"{r['variant']}, {r['layers']} layers"
                                                          + (of if p["variant"].startswith("best VAE") else ""),
                     "ours: metric": "" if r is None else p["metric"].replace("5000", str(int(r["K"]))),
                     "budget": "" if r is None else r["budget"]})
    return _with_sd(rows)


# the rows of Table 1 that our records answer, by our run's fine-tuning ("" for the base model)
TABLE1_OURS = {"LVAE, 5-layer": "", "LVAE, 5-layer + finetuning": "ft", "LVAE, 5-layer + finetuning + IW=10": "ft-iw10",
               "LVAE, 5-layer + the same extra epochs with 1 sample (our control, not in the paper)": "ft-control"}


def table1_compare(df) -> pd.DataFrame:
    """Table 1: the paper's rows, with ours (and the bound and budget it was measured with) beside the LVAE rows,
    all of one budget, a row of ours only (the control of the fine-tuning claim), and last the base LVAE of any
    larger budget, which is never placed above fine-tuning of a smaller one."""
    d = df[(df["dataset"] == "mnist") & (df["variant"] == "LVAE+BN+WU") & (df["layers"] == 5)] if len(df) else df
    means = seed_mean(d)
    # the LVAE rows come from one budget, that of the largest fine-tuning records (so that fine-tuning is read
    # against its own base); a base of a larger budget gets a row of its own, after them
    tuned = [b for b in BUDGET_ORDER if len(means) and ((means["budget"] == b) & (means["finetune"] != "")).any()]
    budget = tuned[0] if tuned else (means["budget"].iloc[0] if len(means) else None)
    by_ft = {r.finetune: r for r in means.itertuples() if r.budget == budget}
    ours = {name: by_ft.get(ft) for name, ft in TABLE1_OURS.items()}
    control = next(name for name, ft in TABLE1_OURS.items() if ft == "ft-control")
    base = "LVAE, 5-layer"
    larger = [r for r in means.itertuples() if r.finetune == "" and BUDGET_ORDER.index(r.budget) < BUDGET_ORDER.index(budget)] \
        if budget else []
    extra = [(f"{base}, {describe_budget(r.budget, 'mnist', short=True)}", dict((n, v) for n, v, _ in paper.TABLE1)[base], r) for r in larger]
    rows = []
    for name, value, r in [(n, v, ours.get(n)) for n, v, _ in paper.TABLE1] + [(control, None, ours.get(control))] + extra:
        rows.append({"model": name, "paper": value, "ours": round(r.test_LK, 2) if r else None,
                     "ours: sd": r.test_LK_sd if r else None, "seeds": r.n_seeds if r else None,
                     "ours: metric": f"L_{int(r.K)}" if r else "", "budget": r.budget if r else ""})
    return _with_sd(rows)


TABLE2_DATA = {"OMNIGLOT": "omniglot28", "NORB": "norb"}


def table2_compare(df) -> pd.DataFrame:
    """Table 2: paper and ours side by side for every dataset, variant and depth."""
    rows = []
    df = seed_mean(df)
    for dname, values in paper.TABLE2.items():
        ds = TABLE2_DATA[dname]
        for v, per_layer in values.items():
            for L, pv in enumerate(per_layer, start=1):
                o = df[(df["dataset"] == ds) & (df["variant"] == v) & (df["layers"] == L) & (df["finetune"] == "")]
                rows.append({"dataset (paper)": dname, "dataset (ours)": o["dataset_name"].iloc[0] if len(o) else "not run",
                             "variant": v, "layers": "-".join(["64", "32", "16", "8", "4"][:L]), "paper": pv,
                             "ours": round(float(o["test_LK"].iloc[0]), 2) if len(o) else None,
                             "ours: sd": o["test_LK_sd"].iloc[0] if len(o) else None,
                             "seeds": o["n_seeds"].iloc[0] if len(o) else None,
                             "ours: K": int(o["K"].iloc[0]) if len(o) else pd.NA,
                             "budget": o["budget"].iloc[0] if len(o) else ""})
    return _with_sd(rows)


def table2_grid(df, dataset: str = "OMNIGLOT") -> pd.DataFrame:
    """Table 2 as the paper prints it, for one of its datasets: a row per variant and source (the paper's
    value, then ours: the seed mean of our L_K), a column per depth (the latent sizes)."""
    t = table2_compare(df)
    t = t[t["dataset (paper)"] == dataset]
    rows = []
    for v, g in t.groupby("variant", sort=False):
        for src, col in (("paper", "paper"), ("ours", "ours")):
            rows.append({"variant": v, "": src, **{lay: (f"{x:.2f}" if pd.notna(x) else "") for lay, x in zip(g["layers"], g[col])}})
    return pd.DataFrame(rows)


def table2_note(df) -> str:
    """The line above Table 2: what our numbers are (budget, K, seeds, data), and why a dataset has none."""
    t = table2_compare(df)
    ours = t[t["ours"].notna()]
    from .plots import caption  # here: plots imports report

    out = [caption(df)]
    if len(ours):
        ks = sorted({int(k) for k in ours["ours: K"].dropna()})
        seeds = sorted({int(n) for n in ours["seeds"].dropna()})
        n = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]} to {seeds[-1]}"
        out.append(f"Our values are test L_{'/'.join(map(str, ks))}, each the mean over {n} seed(s).")
    for ds, why in (getattr(df, "attrs", {}).get("unavailable") or {}).items():
        out.append(f"No {ds.upper()} run here: {why.rstrip('.')}; its rows are the paper's alone.")
    return " ".join(out)


# ----------------------------------------------------------------------------- the reproduction report
def reproduction_table(df) -> pd.DataFrame:
    """pythae-style: from (the paper's figure or table) | dataset | metric | model | paper | ours | our model | our K | budget |
    ours - paper, for every number the paper prints (its text on Fig. 3, Table 1, Table 2), from the
    records in ``df``. ``ours - paper`` is given only where our bound is the paper's (same K): L_K
    rises with K, so a difference across Ks would mix the K gap into the comparison."""
    rows = []
    for _, r in mnist_text_compare(df).iterrows():
        rows.append({"from": "Fig. 3 (text)", "dataset": "MNIST", "metric": r["metric"], "model": r["model"],
                     "paper": r["paper"], "ours": r["ours"], "our sd": r["ours: sd"], "our seeds": r["seeds"],
                     "our model": r["ours: model"], "our metric": r["ours: metric"], "budget": r["budget"]})
    t1 = table1_compare(df)
    for _, r in t1[t1["model"].str.startswith("LVAE, 5-layer") & t1["paper"].notna()].iterrows():
        rows.append({"from": "Table 1", "dataset": "MNIST", "metric": "test L_5000", "model": r["model"],
                     "paper": r["paper"], "ours": r["ours"], "our sd": r["ours: sd"], "our seeds": r["seeds"],
                     "our model": r["model"] if pd.notna(r["ours"]) else "",
                     "our metric": f"test {r['ours: metric']}" if r["ours: metric"] else "", "budget": r["budget"]})
    for _, r in table2_compare(df).iterrows():
        if pd.isna(r["paper"]):
            continue
        rows.append({"from": "Table 2", "dataset": f"{r['dataset (paper)']} (ours: {r['dataset (ours)']})",
                     "metric": "test L_5000", "model": f"{r['variant']}, {r['layers']}", "paper": r["paper"],
                     "ours": r["ours"], "our sd": r["ours: sd"], "our seeds": r["seeds"],
                     "our model": f"{r['variant']}, {r['layers']}" if pd.notna(r["ours"]) else "",
                     "our metric": f"test L_{int(r['ours: K'])}" if pd.notna(r["ours"]) else "",
                     "budget": r["budget"]})
    out = pd.DataFrame(rows)
    same_k = out["our metric"] == out["metric"]
    out["ours - paper"] = (out["ours"].astype(float) - out["paper"].astype(float)).where(same_k).round(2)
    return out


def compact(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The reproduction table as the book prints it: the datasets of which we have no record at all
    (NORB where it cannot be downloaded) left out and named instead, one ``ours`` cell with its spread,
    and the dataset's label without the repetition of our stand-in's name."""
    have = table.groupby("dataset")["ours"].transform(lambda o: o.notna().any())
    missing = list(dict.fromkeys(d.split(" (")[0] for d in table.loc[~have, "dataset"]))
    t = table[have].copy()
    t["ours"] = ["" if pd.isna(o) else fmt(o, sd, n) for o, sd, n in zip(t["ours"], t["our sd"], t["our seeds"])]
    t["dataset"] = t["dataset"].str.split(" \\(").str[0]
    return t.drop(columns=["our sd", "our seeds"]), missing


def _gap(r):
    return r["test_LK"] - r["test_L1"]


# metric -> (value of a record's table row, its per-test-image values from the record's arrays, or None)
METRICS = {
    "test_LK": (lambda r: r["test_LK"], lambda a: a.get("test_LK_per_image")),
    "test_L1": (lambda r: r["test_L1"], lambda a: a.get("test_L1_per_image")),
    # L_1 of 10,000 training images (one fixed binarization), evaluation mode: a summary only
    "train_L1": (lambda r: r["train_L1"], lambda a: None),
    # L_K - L_1: how much importance sampling still adds, i.e. how loose the bound L_1 is
    "bound_gap": (_gap, lambda a: a["test_LK_per_image"] - a["test_L1_per_image"] if "test_LK_per_image" in a else None),
    # KL[q|p] summed over layers 3-5 (Fig. 5)
    # (one Monte Carlo pass: the per-image KL where the record keeps it, so the value and its interval agree)
    "kl_upper": (lambda r: _kl_upper(_arrays_at(r["path"])) if isinstance(r.get("path"), str)
                 and "layer_kl_per_image" in _arrays_at(r["path"]) else float(np.asarray(r["layer_kl"])[2:].sum()),
                 lambda a: a["layer_kl_per_image"][:, 2:].sum(1) if "layer_kl_per_image" in a else None),
    # units whose test-set KL is above analysis.ACTIVE_KL, the paper's measure (Fig. 4); Burda's A_u is "active_total_au"
    "active_total": (lambda r: float(sum(_active_kl(r))), lambda a: None),
    "active_total_au": (lambda r: float(sum(r["active_units"])), lambda a: None),
}


def _kl_upper(a: dict) -> float:
    return float(a["layer_kl_per_image"][:, 2:].sum(1).mean())


def _active_kl(r) -> list[int]:
    """Active units per layer of a record's row by the paper's measure (per-unit KL, :func:`analysis.active_units_kl`)."""
    a = _arrays_at(r["path"]) if isinstance(r.get("path"), str) else {}
    layers = [a[f"unit_kl_l{i}"] for i in range(1, int(r["layers"]) + 1) if f"unit_kl_l{i}" in a]
    if len(layers) != int(r["layers"]):
        raise KeyError(f"{r.get('path')}: no per-unit KL of every layer")
    return analysis.active_units_kl(layers)
# L_1000 of the first 1000 samples of a record with K > 1000 (experiments.NESTED_K)
METRICS[f"test_L{NESTED_K}"] = (lambda r: float(_arrays_at(r["path"])[f"test_L{NESTED_K}_per_image"].mean()),
                                lambda a: a.get(f"test_L{NESTED_K}_per_image"))
# k-NN accuracy in Fig. 6's PCA plane of layer i (analysis.knn_correct): how well the layer separates the classes
METRICS.update({f"knn_l{i}": (lambda r, i=i: float(_knn(r["path"], i).mean()), lambda a, i=i: _knn_of(a, i))
                for i in range(1, 6)})


@functools.lru_cache(maxsize=256)
def _arrays_at(path: str) -> dict:
    f = Path(path) / "arrays.npz"
    if not f.exists():
        return {}
    with np.load(f) as a:
        return dict(a)


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


def _knn_of(arrays: dict, layer: int):
    """Per test image, 1.0 where its layer-``layer`` PCA point is classified right by its neighbours."""
    if f"pca_l{layer}" not in arrays:
        return None
    return analysis.knn_correct(arrays[f"pca_l{layer}"], arrays["pca_labels"]).astype(np.float64)


@functools.lru_cache(maxsize=256)
def _knn(path: str, layer: int):
    return _knn_of(_arrays_at(path), layer)


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


def compare(a, b, metric: str, side: int = 1, metric_b: str | None = None):
    """The evidence on "model ``a`` - model ``b`` lies on ``side``" for ``metric``: ``(text, intervals,
    verdict)``. ``a`` and ``b`` are the rows (one per seed) of two models of one budget; the intervals
    are those of :mod:`lvae_lib.evidence` that the records allow (per test image, over seeds).
    ``metric_b`` (default ``metric``) is what is read from ``b``: one model's layer i+1 against its
    layer i is ``compare(rows, rows, "knn_l2", metric_b="knn_l1")`` (its seed interval is then Welch's,
    which ignores the pairing by seed and so errs on the wide side)."""
    metric_b = metric_b or metric
    (value, per_image), (value_b, per_image_b) = METRICS[metric], METRICS[metric_b]
    text = f"{_values(a, metric)} vs {_values(b, metric_b)}"
    pa = {r["seed"]: per_image(_arrays_at(r["path"])) for _, r in a.iterrows() if isinstance(r.get("path"), str)}
    pb = {r["seed"]: per_image_b(_arrays_at(r["path"])) for _, r in b.iterrows() if isinstance(r.get("path"), str)}
    common = sorted(s for s in set(pa) & set(pb) if pa[s] is not None and pb[s] is not None
                    and pa[s].shape == pb[s].shape)
    intervals = []
    if common:
        intervals.append(ev.paired(np.mean([pa[s] for s in common], 0), np.mean([pb[s] for s in common], 0)))
    seeds = ev.over_seeds([value(r) for _, r in a.iterrows()], [value_b(r) for _, r in b.iterrows()])
    intervals.append(seeds)
    if common and seeds is None and set(a.get("path", ())) != set(b.get("path", ())):  # one model against itself: no noise
        noise = [_seed_noise(rows, m, len(common)) for rows, m in ((a, metric), (b, metric_b))]
        if all(noise):
            intervals.append(ev.with_seed_noise(intervals[0], [n[:3] for n in noise],
                                                ", ".join(sorted({n[3] for n in noise}))))
    intervals = [iv for iv in intervals if iv is not None]
    return text, intervals, ev.verdict(intervals, side)


def _seed_noise(rows, metric: str, n: int):
    """(sd over seeds, its degrees of freedom, n, the budget described, e.g. "200 epochs") of ``metric`` for the model of ``rows``: from its
    own seeds where it has two or more, else from the seeds of the same model at another budget
    (``noise_rows``, set by :func:`claims`); None where neither exists or the metric cannot be read there."""
    own = rows if len(rows) >= 2 else rows["noise_rows"].iloc[0] if "noise_rows" in rows else None
    if own is None or not isinstance(own, pd.DataFrame) or len(own) < 2:
        return None
    try:
        v = np.array([METRICS[metric][0](r) for _, r in own.iterrows()], np.float64)
    except (KeyError, TypeError):  # e.g. a nested L_1000 that records of that budget do not keep
        return None
    return float(v.std(ddof=1)), len(v) - 1, n, describe_budget(own["budget"].iloc[0], own["dataset"].iloc[0], short=True)


def _noise_rows(sub, df):
    """``sub`` (one budget's rows of ``df``) with a ``noise_rows`` column: for a model with fewer than two
    seeds there, its rows at the largest other budget (never smoke) that has two or more seeds of it."""
    def other(r):
        model = (r["dataset"], r["variant"], r["layers"], r["finetune"])
        if len(_model(sub, *model)) >= 2:
            return None
        same = _model(df, *model)
        for b in BUDGET_ORDER:
            if b not in (r["budget"], "smoke") and ((g := same[same["budget"] == b]).shape[0] >= 2):
                return g
        return None

    sub = sub.copy()
    sub["noise_rows"] = [other(r) for _, r in sub.iterrows()] if len(sub) else []
    return sub


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


def _pair(df, a, b, metric, side=1, dataset="mnist", layers=5, fa="", fb="", layers_b=None, metric_b=None):
    ra, rb = _model(df, dataset, a, layers, fa), _model(df, dataset, b, layers_b or layers, fb)
    return compare(ra, rb, metric, side, metric_b) if len(ra) and len(rb) else None


def _per_depth(df, metric, a, b=None, side=1, dataset="mnist", depths=range(2, 6)):
    """Parts of "``a`` beats ``b`` at every depth"; ``b=None`` is the best VAE of each depth, named."""
    parts = []
    for L in depths:
        ra = _model(df, dataset, a, L)
        rb = _best_vae(df, dataset, L, metric) if b is None else _model(df, dataset, b, L)
        if len(ra) and len(rb):
            text, ivs, v = compare(ra, rb, metric, side)
            if b is None:  # which VAE, and of how many run at this depth and budget
                n = _vaes(df, dataset, L)["variant"].nunique()
                text += f" ({rb['variant'].iloc[0]}" + (f", best of {n})" if n > 1 else ", the only VAE run)")
            parts.append((f"L={L}", (text, ivs, v)))
    return parts


def _steps(df, variant, metric, dataset="mnist", depths=range(2, 6)):
    """Parts of "``variant`` improves with each added layer": L against L-1, step by step."""
    parts = []
    for lo, hi in zip(depths, list(depths)[1:]):
        ra, rb = _model(df, dataset, variant, hi), _model(df, dataset, variant, lo)
        if len(ra) and len(rb):
            parts.append((f"{lo}→{hi}", compare(ra, rb, metric)))
    return parts


def _with(df, array: str):
    """The rows of ``df`` whose records store ``array`` (e.g. Fig. 6's ``pca_labels``, which the k-NN
    metrics read, or the nested ``test_L1000_per_image``)."""
    if "path" not in df:
        return df.iloc[:0]
    return df[np.array([isinstance(p, str) and array in _arrays_at(p) for p in df["path"]], bool)]


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
        m = _curves_of(r["path"])
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
        e = _curves_of(r["path"])
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


def _curves_of(path: str):
    """A record's per-epoch metrics with train and test L_1, or None where it has no such curves."""
    from .results import read_metrics

    try:
        m = read_metrics(path)
    except (OSError, ValueError):
        return None
    return m if {"epoch", "train_elbo", "test_elbo"} <= set(m.columns) else None


def _claim_list(df):
    """(figures, claim, parts) for each claim of the paper; a part is (name, compare(...)) or (name, None)
    where a record is missing."""
    lv = "LVAE+BN+WU"
    vaes = ("VAE", "VAE+BN", "VAE+BN+WU")
    out = [
        (("fig2",), "the LVAE's test L_1 ends above every VAE variant's (5 layers)",
         [(v, _pair(df, lv, v, "test_L1")) for v in vaes]),
        (("fig2",), "... and its train L_1 too (evaluation mode, 10,000 training images)",
         [(v, _pair(df, lv, v, "train_L1")) for v in vaes]),
        (("fig2",), "no over-fitting: the LVAE's test L_1 does not fall late in training (its slope over the last "
                    "quarter of the epochs)", [("", _late_trend(df, lv))]),
        (("fig3", "fig7"), "LVAE+BN+WU beats the best VAE of the same depth on test L_1 (MNIST, 2-5 layers)",
         _per_depth(df, "test_L1", lv)),
        (("fig3", "fig7"), "... and on test L_K, the estimate of log p(x)", _per_depth(df, "test_LK", lv)),
        (("fig3", "table1"), f"L_K still rises past K = {NESTED_K} (the paper's K against the 200-epoch runs', on the same "
                             "LVAE+BN+WU, 5 layers): a 200-epoch run's L_1000 understates it",
         [("", _pair(nested, lv, lv, "test_LK", metric_b=f"test_L{NESTED_K}") if len(nested := _with(df, f"test_L{NESTED_K}_per_image")) else None)]),
        (("fig3",), "the LVAE's bound is tighter: L_K - L_1 smaller than VAE+BN+WU's (5 layers)",
         [("", _pair(df, lv, "VAE+BN+WU", "bound_gap", -1))]),
        (("fig2", "fig3"), "batch norm raises the test likelihood of the 5-layer VAE",
         [("", _pair(df, "VAE+BN", "VAE", "test_LK"))]),
        (("fig2", "fig3"), "warm-up raises it further", [("", _pair(df, "VAE+BN+WU", "VAE+BN", "test_LK"))]),
        (("fig3",), "the LVAE improves with each added layer, 2→3→4→5 (test L_1, as the paper's text)",
         _steps(df, lv, "test_L1")),
        (("fig3",), "the plain VAE does not improve past one layer: each deeper VAE is below the 1-layer one (test L_1)",
         [(f"L={L}", _pair(df, "VAE", "VAE", "test_L1", -1, layers=L, layers_b=1)) for L in range(2, 6)]),
        (("fig3",), "VAE+BN+WU improves up to three layers, 1→2→3 (test L_1)",
         _steps(df, "VAE+BN+WU", "test_L1", depths=range(1, 4))),
        (("fig4",), "the LVAE keeps active units in every layer (5 layers)", [("", _active_every_layer(df))]),
        (("fig4",), "... and more active units in total than VAE+BN+WU (units with KL above 0.01 nats, the paper's measure)",
         [("", _pair(_with(df, "unit_kl_l1"), lv, "VAE+BN+WU", "active_total"))]),
        (("fig5",), "the LVAE puts more KL (information) into layers 3-5 than VAE+BN+WU",
         [("", _pair(df, lv, "VAE+BN+WU", "kl_upper"))]),
        (("fig6",), "the LVAE's top layer separates the digit classes better than VAE+BN+WU's (10-NN accuracy "
                    "in Fig. 6's PCA plane of z5, 5 layers)", [("", _pair(_with(df, "pca_labels"), lv, "VAE+BN+WU", "knn_l5"))]),
        (("fig6",), "the LVAE's layers cluster by class progressively more, bottom to top (10-NN accuracy in "
                    "each layer's PCA plane)", _layer_steps(_with(df, "pca_labels"), lv)),
        (("fig7",), "the LVAE without batch norm (LVAE+WU) is worse than LVAE+BN+WU at every depth (test L_K)",
         _per_depth(df, "test_LK", "LVAE+WU", lv, side=-1)),
        (("fig8", "table2"), "on OMNIGLOT the LVAE beats the best VAE of the same depth (test L_K)",
         _per_depth(df, "test_LK", lv, dataset="omniglot28")),
        (("fig8", "table2"), "on OMNIGLOT too, batch norm raises the test likelihood of the 5-layer VAE",
         [("", _pair(df, "VAE+BN", "VAE", "test_LK", dataset="omniglot28"))]),
        (("fig8", "table2"), "... and warm-up raises it further",
         [("", _pair(df, "VAE+BN+WU", "VAE+BN", "test_LK", dataset="omniglot28"))]),
        (("table1",), "fine-tuning (10 MC samples, annealed lr) improves L_K, against the same extra epochs "
                      "with one sample (the control)", [("", _pair(df, lv, lv, "test_LK", fa="ft", fb="ft-control"))]),
        (("table1",), "training with 10 importance samples improves it further",
         [("", _pair(df, lv, lv, "test_LK", fa="ft-iw10", fb="ft"))]),
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
    }


def _effects_text(claim: str, parts) -> str:
    effects = _paper_effects().get(claim, {})
    out = []
    for name, part in parts:
        if name in effects and part is not None:
            out.append((f"{name}: " if name else "") + ev.paper_effect(effects[name], part[1] if isinstance(part[1], list) else []))
    return "; ".join(out)


def claims(df, figure: str | None = None) -> pd.DataFrame:
    """The paper's claims that ``df``'s records test: our evidence, its intervals and the verdict of
    :func:`lvae_lib.evidence.verdict` (holds / does not hold / not resolved / untested; "not run" where a record is
    missing), and, where the paper prints both sides of the comparison, whether its own difference lies inside our
    intervals (:func:`lvae_lib.evidence.paper_effect`).

    A claim compares records of one budget only. It gets a row for every budget (paper, cpu) whose
    records can test it; ``smoke`` records (which say nothing about the method) only where no larger
    budget can. Rows of several seeds of a model are all used. ``figure`` (e.g. ``"fig3"``) keeps the
    claims of one figure.
    """
    if not len(df):
        return pd.DataFrame(columns=CLAIM_COLUMNS)
    rows: dict[str, list] = {}
    order: list[str] = []
    for b in BUDGET_ORDER:
        sub = _noise_rows(df[df["budget"] == b], df)
        for figs, claim, parts in _claim_list(sub):
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
                                               "the paper's effect": _effects_text(claim, parts)})
    out = []
    for claim in order:
        out += rows.get(claim) or [{"figure": "", "claim": claim, "budget": "", "ours": "-",
                                    "interval (A - B, 95%)": "", "verdict": ev.NOT_RUN, "the paper's effect": ""}]
    out = pd.DataFrame(out, columns=CLAIM_COLUMNS)
    if figure is not None:  # the figure column of a claim that is not run anywhere is filled here
        out.loc[out["figure"] == "", "figure"] = figure
    return out


def active_units_table(df) -> pd.DataFrame:
    """Active units per layer of each record: the paper's measure (KL) and Burda's, as ``a-b-c-d-e``."""
    dash = lambda a: "-".join(map(str, a))  # noqa: E731
    kl = [dash(_active_kl(r)) if isinstance(r.get("path"), str) and "unit_kl_l1" in _arrays_at(r["path"]) else ""
          for _, r in df.iterrows()]
    return pd.DataFrame({"budget": df["budget"], "model": df["variant"], "seed": df["seed"],
                         "KL > 0.01 nats (the paper's)": kl, "Burda's A_u > 0.01": df["active_units"].map(dash)})


def result_in_words(claims_table: pd.DataFrame, df: pd.DataFrame) -> str:
    """The result in a few sentences, generated from the records and the claims table (never typed): what
    the paper's protocol gave for the central pair, the central claim's verdict against the paper's effect,
    and the count of verdicts at each claim's largest budget, naming the claims that do not hold."""
    out = []
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
    rows = claims_table[claims_table["claim"] == central]
    if len(rows):
        r = rows.iloc[0]
        out.append(f"The central claim, that the LVAE beats the best VAE on the likelihood, is **{r['verdict']}** at "
                   f"{describe_budget(r['budget'])} ({r['interval (A - B, 95%)'].split(';')[-1].strip()})"
                   + (f"; the paper's own difference: {r['the paper' + chr(39) + 's effect'].split(': ', 1)[-1]}."
                      if r["the paper's effect"] else "."))
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


# ----------------------------------------------------------------------------- run times
def bench_table(results_dir=None) -> pd.DataFrame:
    """The rows written by ``python -m lvae_lib bench`` (``results/bench/*.csv``), one table."""
    from .experiments import DEFAULT_RESULTS

    files = [f for f in sorted((Path(results_dir or DEFAULT_RESULTS) / "bench").glob("*.csv"))
             if not f.stem.endswith("-profile")]
    if not files:
        return pd.DataFrame()
    cols = {"device": "device", "what": "what", "model": "model", "impl": "how", "ms_per_step": "ms a step",
            "images_per_s": "images/s", "gflops": "GFLOP/s", "pct_peak": "% of peak",
            "speedup_vs_reference": "× reference"}
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    if "precision" in df.columns:  # the step modes have a table of their own (bench.modes_table)
        df = df[df["precision"].isna()]
    df = df[[c for c in cols if c in df.columns]].rename(columns=cols)
    df["device"] = df["device"].str.replace(" 80GB HBM3", "", regex=False)  # the column stays narrow
    return df.round(1).reset_index(drop=True)


def bench_profile(results_dir=None, device: str = "cpu") -> pd.DataFrame:
    """The top operators of a training step written by ``bench --profile`` (``results/bench/<device>-profile.csv``)."""
    from .experiments import DEFAULT_RESULTS

    f = Path(results_dir or DEFAULT_RESULTS) / "bench" / f"{device}-profile.csv"
    return pd.read_csv(f).round(3) if f.exists() else pd.DataFrame()


def run_times(df, smoke: bool = False) -> pd.DataFrame:
    """Measured training time of each record: budget, model, epochs, minutes, seconds per epoch, hardware
    (``smoke`` records, seconds each, are left out unless asked for)."""
    if len(df) and not smoke:
        df = df[df["budget"] != "smoke"]
    if not len(df):
        return pd.DataFrame()
    out = df.assign(model=df["variant"] + "-L" + df["layers"].astype(str) + df["finetune"].map(lambda f: f" {f}" if f else ""),
                    minutes=(df["train_seconds"] / 60).round(1),
                    s_per_epoch=(df["train_seconds"] / df["epochs"]).round(2))
    out = out[["budget", "dataset_name", "model", "seed", "epochs", "minutes", "s_per_epoch", "device", "threads"]]
    return out.rename(columns={"dataset_name": "dataset", "s_per_epoch": "s an epoch"}).reset_index(drop=True)


def budget_totals(df) -> pd.DataFrame:
    """Total measured training hours per budget and dataset, and the number of records behind them.

    A fine-tuned record's training time includes its base model's; where the base is a row of ``df``
    too, it is counted once."""
    if not len(df):
        return pd.DataFrame()
    ident = ["budget", "dataset", "variant", "layers", "seed"]
    base = df[df["finetune"] == ""].set_index(ident)["train_seconds"]
    shared = [base.get(tuple(r[c] for c in ident), 0.0) if r["finetune"] else 0.0 for _, r in df.iterrows()]
    df = df.assign(train_seconds=df["train_seconds"] - shared)
    g = df.groupby(["budget", "dataset_name"]).agg(records=("key", "size"), hours=("train_seconds", "sum"))
    g["hours"] = (g["hours"] / 3600).round(2)
    return g.reset_index()


CHECK_NAMES = {"bn_recomputed": "batch norm recomputed over the training set, against the running averages"}


def _check_intervals(c) -> list:
    """The 95% interval of each weight check's per-image difference (its rows' ``diff`` and ``diff_se``)."""
    return [ev.normal(d, se, n, "images") for d, se, n in zip(c["diff"], c["diff_se"], c["n_images"])]


def weight_checks_table(results_dir=None, budget: str = "paper") -> pd.DataFrame:
    """The checks of the kept models (:func:`lvae_lib.runner.weight_checks`) as the book shows them: per
    model and check, our new estimate, the one it is compared with, their difference per test image with its
    95% interval, and where it ran."""
    from .experiments import DEFAULT_RESULTS, get_budget

    c = Store(results_dir or DEFAULT_RESULTS, budget).checks()
    k_ref = get_budget(budget).eval_k  # each record's own K: its budget's
    if not len(c):
        return pd.DataFrame()
    ivs = _check_intervals(c)
    what = [CHECK_NAMES.get(ch, f"L_{k} against L_{k_ref} of its first samples, first {n:,} test images")
            for ch, k, n in zip(c["check"], c["k"], c["n_images"])]
    return pd.DataFrame({
        "model": c["label"] + ", seed " + c["seed"].astype(str), "check": what,
        "ours": c["value"].round(2), "compared with": c["reference"].round(2),
        "difference [95% interval]": [f"{iv.mean:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]" for iv in ivs],
        "images": c["n_images"], "ran on": c["device"] + ", " + c["date"]})


def weight_checks_in_words(results_dir=None, budget: str = "paper") -> str:
    """One sentence per check, generated from the checks: the range of the differences, and where their
    intervals lie against zero."""
    from .experiments import DEFAULT_RESULTS, get_budget

    c = Store(results_dir or DEFAULT_RESULTS, budget).checks()
    K = get_budget(budget).eval_k
    out = []
    for ch, g in c.groupby("check", sort=False):
        sides = [iv.side() for iv in _check_intervals(g)]
        span = f"by {g['diff'].min():+.3f} to {g['diff'].max():+.3f} nats over {len(g)} model(s)"
        excl = sum(sd != 0 for sd in sides)
        where = ("every interval includes zero" if excl == 0 else "every interval lies above zero" if min(sides) == 1
                 else "every interval lies below zero" if max(sides) == -1 else f"{excl} of {len(g)} intervals exclude zero")
        if ch == "bn_recomputed":
            out.append(f"Recomputing the batch-norm statistics over the training set moves test L_{K} {span} ({where}).")
        else:
            out.append(f"L_{g['k'].iloc[0]} exceeds L_{K} of the same samples {span} ({where}): "
                       f"so far is L_{K} from converged in K.")
    return " ".join(out)
