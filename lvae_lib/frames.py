"""The records as a table: the keys that name a model, the mean of its seeds, how a mean is printed, and
one cache of each record's arrays and training curves (read by :mod:`lvae_lib.report`, :mod:`lvae_lib.claims`
and :mod:`lvae_lib.plots`)."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from . import analysis
from .experiments import BUDGET_ORDER
from .results import read_metrics

MODEL_KEYS = ["budget", "dataset", "variant", "layers", "finetune"]
SUMMARY = ["train_L1", "test_L1", "test_LK"]


def seed_mean(df) -> pd.DataFrame:
    """One row per model (budget, dataset, variant, depth, fine-tuning): each summary number averaged
    over the model's seeds, with its sd (``<name>_sd``, NaN for one seed) and ``n_seeds``. The other
    columns (active units, layer KL, the record's path) are those of the model's first row, the
    notebook's own seed (:meth:`lvae_lib.query.RecordSet.shown` puts it first)."""
    if not len(df):
        return df
    g = df.groupby(MODEL_KEYS, sort=False)
    out = g.first().reset_index()
    for m in SUMMARY:
        out[m] = g[m].mean().values
        out[f"{m}_sd"] = g[m].std().values
    out["n_seeds"] = g.size().values
    out = out.sort_values("budget", key=lambda b: b.map(BUDGET_ORDER.index), kind="stable", ignore_index=True)
    return out  # largest budget first: a model's first row is its best-budget record


def spread(sd, n) -> str:
    """``0.05 (n=3)``: the seed-to-seed sd of a mean over ``n`` seeds; empty for one seed."""
    return "" if n is None or n < 2 or pd.isna(sd) else f"{sd:.2f} (n={int(n)})"


def fmt(mean, sd=float("nan"), n=1) -> str:
    """``-83.38`` for one seed, ``-83.38 ± 0.05 (n=3)`` for several."""
    return f"{mean:.2f}" + (f" ± {spread(sd, n)}" if spread(sd, n) else "")


@functools.lru_cache(maxsize=256)
def arrays_at(path: str) -> dict:
    """The arrays of the record in folder ``path`` (empty where it keeps none), read once."""
    f = Path(path) / "arrays.npz"
    if not f.exists():
        return {}
    with np.load(f) as a:
        return dict(a)


def knn_of(arrays: dict, layer: int):
    """Per test image, 1.0 where its layer-``layer`` PCA point is classified right by its neighbours."""
    if f"pca_l{layer}" not in arrays:
        return None
    return analysis.knn_correct(arrays[f"pca_l{layer}"], arrays["pca_labels"]).astype(np.float64)


@functools.lru_cache(maxsize=256)
def knn(path: str, layer: int):
    return knn_of(arrays_at(path), layer)


def curves_at(path: str):
    """A record's per-epoch metrics with train and test L_1, or None where it has no such curves."""
    try:
        m = read_metrics(path)
    except (OSError, ValueError):
        return None
    return m if {"epoch", "train_elbo", "test_elbo"} <= set(m.columns) else None
