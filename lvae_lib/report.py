"""Paper-vs-ours tables and the per-figure data the notebooks plot, read from the results store."""
from __future__ import annotations

import operator
from pathlib import Path

import numpy as np
import pandas as pd

from . import paper
from .results import Store


def _store(df, row):
    """The store holding ``row``'s record (rows of one table may come from different budgets)."""
    return Store(df.attrs["results_dir"], row.budget if hasattr(row, "budget") else row["budget"])


def curves(df, layers=5) -> dict:
    """variant -> per-epoch metrics of its ``layers``-layer model (Fig. 2)."""
    d = df[(df["layers"] == layers) & (df["finetune"] == "")]
    return {r.variant: _store(df, r).metrics(r.run_obj, r.key) for r in d.itertuples()}


def snapshots(df, layers=5) -> dict:
    """variant -> {epoch: [per-unit KL per layer]} (Fig. 4)."""
    out = {}
    for r in df[(df["layers"] == layers) & (df["finetune"] == "")].itertuples():
        a = _store(df, r).arrays(r.run_obj, r.key)
        snaps = {}
        for k, v in a.items():
            if k.startswith("kl_snapshot_e"):
                e, layer = k[len("kl_snapshot_e"):].split("_l")
                snaps.setdefault(int(e), {})[int(layer)] = v
        out[r.variant] = {e: [s[i] for i in sorted(s)] for e, s in sorted(snaps.items())}
    return out


def arrays(df, variant, layers=5, finetune="") -> dict:
    r = df[(df["variant"] == variant) & (df["layers"] == layers) & (df["finetune"] == finetune)].iloc[0]
    return _store(df, r).arrays(r["run_obj"], r["key"])


def projections(df, layers=5) -> tuple[dict, np.ndarray]:
    """variant -> [2-D PCA of z_i per layer], and the class labels (Fig. 6)."""
    out, labels = {}, None
    for v in df[(df["layers"] == layers) & (df["finetune"] == "")]["variant"]:
        a = arrays(df, v, layers)
        out[v] = [a[f"pca_l{i}"] for i in range(1, layers + 1)]
        labels = a.get("pca_labels")
    return out, labels


def layers_table(df, metric="test_LK") -> pd.DataFrame:
    """variant x layers table of one metric (ours)."""
    d = df[df["finetune"] == ""].pivot_table(index="variant", columns="layers", values=metric)
    return d.round(2)


BUDGET_ORDER = ("paper", "cpu", "smoke")


def top_budget(d: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``d`` that belong to its largest budget (paper > cpu > smoke): a "best of" is taken
    within one budget, never across budgets."""
    for b in BUDGET_ORDER:
        if (d["budget"] == b).any():
            return d[d["budget"] == b]
    return d


def mnist_text_compare(df) -> pd.DataFrame:
    """The MNIST numbers the paper states in its text (Fig. 3) beside ours."""
    d = df[(df["finetune"] == "") & (df["dataset"] == "mnist")] if len(df) else df
    vae = top_budget(d[d["variant"].str.startswith("VAE")]) if len(d) else d
    lvae5 = d[(d["variant"] == "LVAE+BN+WU") & (d["layers"] == 5)] if len(d) else d
    best = lambda t, m: t.loc[t[m].idxmax()] if len(t) else None  # noqa: E731
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
                     "ours: model": "" if r is None else f"{r['variant']}, {r['layers']} layers",
                     "ours: metric": "" if r is None else p["metric"].replace("5000", str(int(r["K"]))),
                     "budget": "" if r is None else r["budget"]})
    return pd.DataFrame(rows)


def table1_compare(df) -> pd.DataFrame:
    """Table 1: the paper's rows, with ours (and the bound and budget it was measured with) beside the LVAE rows."""
    d = df[(df["dataset"] == "mnist") & (df["variant"] == "LVAE+BN+WU") & (df["layers"] == 5)] if len(df) else df
    by_ft = {r.finetune: r for r in d.itertuples()}
    ours = {"LVAE, 5-layer": by_ft.get(""), "LVAE, 5-layer + finetuning": by_ft.get("ft"),
            "LVAE, 5-layer + finetuning + IW=10": by_ft.get("ft-iw10")}
    rows = []
    for name, value, src in paper.TABLE1:
        r = ours.get(name)
        rows.append({"model": name, "paper": value, "ours": round(r.test_LK, 2) if r else None,
                     "ours: metric": f"L_{int(r.K)}" if r else "", "budget": r.budget if r else ""})
    return pd.DataFrame(rows)


TABLE2_DATA = {"OMNIGLOT": "omniglot28", "NORB": "norb"}


def table2_compare(df) -> pd.DataFrame:
    """Table 2: paper and ours side by side for every dataset, variant and depth."""
    rows = []
    for dname, values in paper.TABLE2.items():
        ds = TABLE2_DATA[dname]
        for v, per_layer in values.items():
            for L, pv in enumerate(per_layer, start=1):
                o = df[(df["dataset"] == ds) & (df["variant"] == v) & (df["layers"] == L) & (df["finetune"] == "")]
                rows.append({"dataset (paper)": dname, "dataset (ours)": o["dataset_name"].iloc[0] if len(o) else "not run",
                             "variant": v, "layers": "-".join(["64", "32", "16", "8", "4"][:L]), "paper": pv,
                             "ours": round(float(o["test_LK"].iloc[0]), 2) if len(o) else None,
                             "ours: K": int(o["K"].iloc[0]) if len(o) else None,
                             "budget": o["budget"].iloc[0] if len(o) else ""})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- the reproduction report
def reproduction_table(df) -> pd.DataFrame:
    """pythae-style: figure/table | dataset | metric | model | paper | ours | budget, for every number
    the paper prints (its text on Fig. 3, Table 1, Table 2), from the records in ``df``."""
    rows = []
    for _, r in mnist_text_compare(df).iterrows():
        rows.append({"figure/table": "Fig. 3 (text)", "dataset": "MNIST", "metric": r["metric"], "model": r["model"],
                     "paper": r["paper"], "ours": r["ours"], "ours: metric": r["ours: metric"], "budget": r["budget"]})
    t1 = table1_compare(df)
    for _, r in t1[t1["model"].str.startswith("LVAE")].iterrows():
        rows.append({"figure/table": "Table 1", "dataset": "MNIST", "metric": "test L_5000", "model": r["model"],
                     "paper": r["paper"], "ours": r["ours"], "ours: metric": r["ours: metric"], "budget": r["budget"]})
    for _, r in table2_compare(df).iterrows():
        if pd.isna(r["paper"]):
            continue
        rows.append({"figure/table": "Table 2", "dataset": f"{r['dataset (paper)']} (ours: {r['dataset (ours)']})",
                     "metric": "test L_5000", "model": f"{r['variant']}, {r['layers']}", "paper": r["paper"],
                     "ours": r["ours"], "ours: metric": f"L_{int(r['ours: K'])}" if pd.notna(r["ours"]) else "",
                     "budget": r["budget"]})
    out = pd.DataFrame(rows)
    out["ours - paper"] = (out["ours"].astype(float) - out["paper"].astype(float)).round(2)
    return out


def _row(df, dataset, variant, layers, finetune=""):
    d = df[(df["dataset"] == dataset) & (df["variant"] == variant) & (df["layers"] == layers) & (df["finetune"] == finetune)]
    return d.iloc[0] if len(d) else None


def _best_vae(df, dataset, layers, metric):
    d = df[(df["dataset"] == dataset) & df["variant"].str.startswith("VAE") & (df["layers"] == layers) & (df["finetune"] == "")]
    return d.loc[d[metric].idxmax()] if len(d) else None


def _per_depth(df, metric, a, b=None, holds=operator.ge, dataset="mnist", depths=range(2, 6)):
    """(evidence, holds) for variant ``a`` against ``b`` at every depth that has both records; ``b=None``
    is the best VAE of each depth, named in the evidence. None where no depth has both."""
    parts, verdicts = [], []
    for L in depths:
        ra = _row(df, dataset, a, L)
        rb = _best_vae(df, dataset, L, metric) if b is None else _row(df, dataset, b, L)
        if ra is None or rb is None:
            continue
        parts.append(f"L={L}: {ra[metric]:.2f} vs {rb[metric]:.2f}" + (f" ({rb['variant']})" if b is None else ""))
        verdicts.append(bool(holds(ra[metric], rb[metric])))
    return "; ".join(parts), (all(verdicts) if verdicts else None)


def _pair(df, a, b, metric, layers=5, dataset="mnist", fa="", fb=""):
    ra, rb = _row(df, dataset, a[0], layers, fa), _row(df, dataset, b[0], layers, fb)
    if ra is None or rb is None:
        return "", None
    return f"{a[1]} {ra[metric]:.2f} vs {b[1]} {rb[metric]:.2f}", bool(ra[metric] >= rb[metric])


def _bn_then_wu(df, dataset):
    """(evidence, holds) for VAE+BN against VAE, then VAE+BN+WU against VAE+BN (5 layers, test L_K)."""
    return (_pair(df, ("VAE+BN", "VAE+BN"), ("VAE", "VAE"), "test_LK", dataset=dataset),
            _pair(df, ("VAE+BN+WU", "VAE+BN+WU"), ("VAE+BN", "VAE+BN"), "test_LK", dataset=dataset))


def _claim_list(df):
    """(figures, claim, evidence, holds) for each claim of the paper; holds is None where the records
    cannot test it (a record is missing)."""
    out = []

    def add(figs, text, rows, test):
        ok = all(r is not None for r in rows)
        out.append((figs, text, *(test() if ok else ("", None))))

    for metric, text in (("test_L1", "LVAE+BN+WU beats the best VAE of the same depth on test L_1 (MNIST, 2-5 layers)"),
                         ("test_LK", "... and on test L_K, the estimate of log p(x)")):
        out.append((("fig3", "fig7"), text, *_per_depth(df, metric, "LVAE+BN+WU")))
    lv, va = _row(df, "mnist", "LVAE+BN+WU", 5), _row(df, "mnist", "VAE+BN+WU", 5)
    gap = lambda r: r["test_LK"] - r["test_L1"]  # noqa: E731
    add(("fig3",), "the LVAE's bound is tighter: L_K - L_1 smaller than VAE+BN+WU's (5 layers)", (lv, va),
        lambda: (f"{gap(lv):.2f} vs {gap(va):.2f} nats", bool(gap(lv) <= gap(va))))
    bn, wu = _bn_then_wu(df, "mnist")
    out.append((("fig2", "fig3"), "batch norm raises the test likelihood of the 5-layer VAE", *bn))
    out.append((("fig2", "fig3"), "warm-up raises it further", *wu))
    l2 = _row(df, "mnist", "LVAE+BN+WU", 2)
    add(("fig3",), "the LVAE improves with depth: 5 layers beat 2 (test L_K)", (l2, lv),
        lambda: (f"{lv['test_LK']:.2f} vs {l2['test_LK']:.2f}", bool(lv["test_LK"] >= l2["test_LK"])))
    au = lambda r: list(r["active_units"])  # noqa: E731
    add(("fig4",), "the LVAE keeps active units in every layer (5 layers)", (lv,),
        lambda: (f"LVAE {au(lv)}", all(u > 0 for u in au(lv))))
    add(("fig4",), "... and more active units in total than VAE+BN+WU", (lv, va),
        lambda: (f"{sum(au(lv))} vs {sum(au(va))} ({au(va)})", sum(au(lv)) > sum(au(va))))
    upper = lambda r: float(np.asarray(r["layer_kl"])[2:].sum())  # noqa: E731
    add(("fig5",), "the LVAE puts more KL (information) into layers 3-5 than VAE+BN+WU", (lv, va),
        lambda: (f"{upper(lv):.2f} vs {upper(va):.2f} nats", upper(lv) > upper(va)))
    out.append((("fig7",), "the LVAE without batch norm (LVAE+WU) is worse than LVAE+BN+WU at every depth (test L_K)",
                *_per_depth(df, "test_LK", "LVAE+WU", "LVAE+BN+WU", operator.lt)))
    out.append((("fig8", "table2"), "on OMNIGLOT the LVAE beats the best VAE of the same depth (test L_K)",
                *_per_depth(df, "test_LK", "LVAE+BN+WU", dataset="omniglot28")))
    bn, wu = _bn_then_wu(df, "omniglot28")
    out.append((("fig8", "table2"), "on OMNIGLOT too, batch norm raises the test likelihood of the 5-layer VAE", *bn))
    out.append((("fig8", "table2"), "... and warm-up raises it further", *wu))
    ft, ft10 = (_row(df, "mnist", "LVAE+BN+WU", 5, f) for f in ("ft", "ft-iw10"))
    add(("table1",), "fine-tuning (10 MC samples, annealed lr) improves L_K", (lv, ft),
        lambda: (f"{ft['test_LK']:.2f} vs {lv['test_LK']:.2f}", bool(ft["test_LK"] >= lv["test_LK"])))
    add(("table1",), "training with 10 importance samples improves it further", (ft, ft10),
        lambda: (f"{ft10['test_LK']:.2f} vs {ft['test_LK']:.2f}", bool(ft10["test_LK"] >= ft["test_LK"])))
    return out


def claims(df, figure: str | None = None) -> pd.DataFrame:
    """The paper's claims that ``df``'s records test, each with our evidence and whether it holds.

    A claim compares records of one budget only: it is tested in the largest budget whose records
    can test it, and that budget is named. ``figure`` (e.g. ``"fig3"``) keeps the claims of one figure.
    At the ``smoke`` budget a verdict says nothing about the method.
    """
    cols = ["figure", "claim", "ours", "budget", "verdict"]
    if not len(df):
        return pd.DataFrame(columns=cols)
    order = {c[1]: i for i, c in enumerate(_claim_list(df))}  # every claim some budget can test, in order
    found: dict[str, dict] = {}
    for b in BUDGET_ORDER:
        sub = df[df["budget"] == b] if len(df) else df
        for figs, claim, evidence, ok in _claim_list(sub):
            if figure is not None and figure not in figs:
                continue
            if claim not in found or (found[claim]["verdict"] == "not run" and ok is not None):
                verdict = "not run" if ok is None else ("holds" if ok else "does not hold")
                found[claim] = {"figure": ", ".join(figs), "claim": claim, "ours": evidence or "-",
                                "budget": b if ok is not None else "", "verdict": verdict}
    return pd.DataFrame(sorted(found.values(), key=lambda r: order.get(r["claim"], len(order))), columns=cols)


# ----------------------------------------------------------------------------- run times
def bench_table(results_dir=None) -> pd.DataFrame:
    """The rows written by ``python -m lvae_lib bench`` (``results/bench/*.csv``), one table."""
    from .experiments import DEFAULT_RESULTS

    files = [f for f in sorted((Path(results_dir or DEFAULT_RESULTS) / "bench").glob("*.csv"))
             if not f.stem.endswith("-profile")]
    if not files:
        return pd.DataFrame()
    cols = ["device", "threads", "what", "model", "impl", "ms_per_step", "epoch_s_60k", "images_per_s",
            "mnist_test_minutes", "gflops", "pct_peak", "speedup_vs_reference", "date"]
    df = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    return df[[c for c in cols if c in df.columns]].round(2)


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
    return out[["budget", "dataset_name", "model", "epochs", "minutes", "s_per_epoch", "device", "threads"]]


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
