"""Does a faster precision keep the records within the noise? The gate before it becomes a default.

For each model of :data:`MODELS`, records trained in ``precision`` are compared with the committed fp32
records of the same runs at the same budget (seeds 0-2, the same evaluation, always in fp32):

* over seeds: Welch's interval of mean(precision) - mean(fp32), for test L_1, test L_K and the active
  units in all layers (:func:`lvae_lib.evidence.over_seeds`);
* over test images, for seed 0 where both records keep per-image estimates: the paired interval of the
  per-image L_1 and L_K (:func:`lvae_lib.evidence.paired`). It measures the test set's noise only; the
  two seed-0 models trained apart, so their difference includes training noise too.

:func:`decide`: the precision may become the default only if every interval in nats contains 0 and lies
within +-:data:`MARGIN` nats, and every active-unit interval contains 0.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from . import evidence, results
from .experiments import DEFAULT_RESULTS, SEEDS, Run, get_budget

MODELS = (Run("mnist", "LVAE+BN+WU", 5), Run("mnist", "VAE+BN+WU", 5))
MARGIN = 0.15  # nats: a precision that moves a bound further than this is not the same protocol


def _records(store: results.Store, run: Run, budget, precision: str) -> list[results.Record]:
    out = []
    for s in SEEDS:
        r = replace(run, seed=s, precision=precision)
        if store.complete(r, r.key(budget)):
            out.append(store.load(r, r.key(budget)))
    return out


def _per_image(rec: results.Record, name: str):
    with np.load(f"{rec.path}/arrays.npz") as f:
        return f[name] if name in f.files else None


def compare(precision: str = "bf16", budget: str = "cpu", results_dir=None) -> pd.DataFrame:
    """One row per (model, metric, interval kind): the difference ``precision`` - fp32 with its interval,
    the seeds on each side, and whether it passes (:func:`decide`'s rule for that row)."""
    b = get_budget(budget)
    store = results.Store(results_dir or DEFAULT_RESULTS, b.name)
    rows = []
    for run in MODELS:
        new, old = _records(store, run, b, precision), _records(store, run, b, "fp32")
        metrics = {"test L_1": lambda r: r.summary.test_L1, f"test L_{b.eval_k}": lambda r: r.summary.test_LK,
                   "active units": lambda r: sum(r.summary.active_units)}
        for name, get in metrics.items():
            iv = evidence.over_seeds([get(r) for r in new], [get(r) for r in old])
            rows.append(_row(run, name, iv, len(new), len(old), "seeds"))
        a = next((r for r in new if r.run.seed == 0), None)
        o = next((r for r in old if r.run.seed == 0), None)
        for name, arr in (("test L_1", "test_L1_per_image"), (f"test L_{b.eval_k}", "test_LK_per_image")):
            pa, po = (_per_image(a, arr) if a else None), (_per_image(o, arr) if o else None)
            iv = evidence.paired(pa, po) if pa is not None and po is not None else None
            rows.append(_row(run, name, iv, int(a is not None), int(o is not None), "test images, seed 0"))
    return pd.DataFrame(rows)


def _row(run: Run, metric: str, iv, n_new: int, n_old: int, over: str) -> dict:
    nats = metric != "active units"
    if iv is None:
        ok, why = None, "no interval: " + ("fewer than two seeds on a side" if over == "seeds" else
                                            "a seed-0 record, or its per-image estimates, is missing")
    else:
        ok = iv.lo <= 0 <= iv.hi and (not nats or (-MARGIN <= iv.lo and iv.hi <= MARGIN))
        why = ("contains 0" if iv.lo <= 0 <= iv.hi else "excludes 0") + (
            "" if not nats else f", {'within' if -MARGIN <= iv.lo and iv.hi <= MARGIN else 'not within'} "
                                f"+-{MARGIN} nats")
    return {"model": f"{run.variant}-L{run.layers}", "metric": metric, "over": over, "seeds": f"{n_new} vs {n_old}",
            "difference": None if iv is None else iv.mean, "lo": None if iv is None else iv.lo,
            "hi": None if iv is None else iv.hi, "passes": ok, "why": why}


def decide(table: pd.DataFrame) -> tuple[bool, str]:
    """Whether the precision may become the CPU default, and the sentence that says why."""
    missing = table[table["passes"].isna()]
    failed = table[table["passes"] == False]  # noqa: E712 - a column of True/False/None
    example = "" if not len(failed) else (
        f"{failed.iloc[0]['model']} {failed.iloc[0]['metric']} over {failed.iloc[0]['over']}: "
        f"{failed.iloc[0]['difference']:+.2f} [{failed.iloc[0]['lo']:+.2f}, {failed.iloc[0]['hi']:+.2f}] "
        f"({failed.iloc[0]['why']})")
    if len(missing):
        return False, (f"not decided: {len(missing)} of {len(table)} comparisons have no interval yet "
                       f"({'; '.join(sorted(set(missing['why'])))})"
                       + (f"; of the others, {len(failed)} fail the rule, e.g. {example}" if len(failed) else ""))
    if len(failed):
        return False, f"stays opt-in: {len(failed)} of {len(table)} intervals fail the rule, e.g. {example}"
    return True, f"may become the default: all {len(table)} intervals contain 0 and lie within +-{MARGIN} nats"
