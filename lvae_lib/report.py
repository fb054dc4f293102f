"""Paper-vs-ours tables and the per-figure data the notebooks plot, read from the results store."""
from __future__ import annotations

import numpy as np
import pandas as pd

from . import paper
from .results import Store


def _store(df):
    return Store(df.attrs["results_dir"], df.attrs["budget"])


def curves(df, layers=5) -> dict:
    """variant -> per-epoch metrics of its ``layers``-layer model (Fig. 2)."""
    st = _store(df)
    d = df[(df["layers"] == layers) & (df["finetune"] == "")]
    return {r.variant: st.metrics(r.run_obj, r.key) for r in d.itertuples()}


def snapshots(df, layers=5) -> dict:
    """variant -> {epoch: [per-unit KL per layer]} (Fig. 4)."""
    st = _store(df)
    out = {}
    for r in df[(df["layers"] == layers) & (df["finetune"] == "")].itertuples():
        a = st.arrays(r.run_obj, r.key)
        snaps = {}
        for k, v in a.items():
            if k.startswith("kl_snapshot_e"):
                e, layer = k[len("kl_snapshot_e"):].split("_l")
                snaps.setdefault(int(e), {})[int(layer)] = v
        out[r.variant] = {e: [s[i] for i in sorted(s)] for e, s in sorted(snaps.items())}
    return out


def arrays(df, variant, layers=5, finetune="") -> dict:
    r = df[(df["variant"] == variant) & (df["layers"] == layers) & (df["finetune"] == finetune)].iloc[0]
    return _store(df).arrays(r["run_obj"], r["key"])


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


def mnist_text_compare(df) -> pd.DataFrame:
    """The MNIST numbers the paper states in its text (Fig. 3) beside ours."""
    d = df[df["finetune"] == ""]
    vae = d[d["variant"].str.startswith("VAE")]
    lvae5 = d[(d["variant"] == "LVAE+BN+WU") & (d["layers"] == 5)]
    k = int(d["K"].iloc[0])
    ours = {
        ("test L_1", "LVAE+BN+WU"): lvae5["test_L1"].max(),
        ("test L_1", "best VAE (3 layers)"): vae["test_L1"].max(),
        ("test L_5000", "LVAE+BN+WU"): lvae5["test_LK"].max(),
        ("test L_5000", "best VAE"): vae["test_LK"].max(),
    }
    rows = []
    for p in paper.MNIST_TEXT:
        rows.append({"metric": p["metric"], "model": p["variant"], "paper": p["value"],
                     "ours": round(float(ours[(p["metric"], p["variant"])]), 2),
                     "ours: metric": p["metric"].replace("5000", str(k)), "budget": df.attrs["budget"]})
    return pd.DataFrame(rows)


def table1_compare(df) -> pd.DataFrame:
    """Table 1: the paper's rows, with ours beside the three LVAE rows."""
    d = df[(df["variant"] == "LVAE+BN+WU") & (df["layers"] == 5)]
    by_ft = {r.finetune: r for r in d.itertuples()}
    k = int(df["K"].iloc[0]) if len(df) else 0
    ours = {"LVAE, 5-layer": by_ft.get(""), "LVAE, 5-layer + finetuning": by_ft.get("ft"),
            "LVAE, 5-layer + finetuning + IW=10": by_ft.get("ft-iw10")}
    rows = []
    for name, value, src in paper.TABLE1:
        r = ours.get(name)
        rows.append({"model": name, "paper": value, f"ours (L_{k})": round(r.test_LK, 2) if r else None,
                     "budget": df.attrs["budget"] if r else ""})
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
                             "ours": round(float(o["test_LK"].iloc[0]), 2) if len(o) else None})
    return pd.DataFrame(rows)
