"""Intervals and verdicts: the one rule by which every claim of the report is decided.

A claim compares two models A and B of one budget on a metric (e.g. test L_K) and says on which side
the difference A - B lies. Two intervals can stand behind it:

* **over test images** (:func:`paired`): both models are evaluated on the same test images, so the
  per-image estimates give a paired difference d_i; its mean has a 95% normal interval
  mean(d) +- 1.96 sd(d) / sqrt(n). It measures how sure the test set makes us, for these trained models.
  With several seeds, d_i is the difference of the models' per-image estimates averaged over the seeds
  that both stored them (where they share none, each model's average over its own).
* **over seeds** (:func:`over_seeds`): where each model has records for two or more training seeds,
  Welch's t interval of the difference of their seed means. It measures training noise.
* **over images, with borrowed seed noise** (:func:`with_seed_noise`): where a model has fewer than two
  seeds at this budget (the paper budget's single runs) but two or more at another, the interval over
  images is widened by the seed-to-seed sd measured there, so that a lead smaller than the training
  noise is not taken for a result. It assumes the noise of one budget is that of the other.

:func:`verdict`: a claim **holds** only when every interval behind it lies wholly on the claimed side,
**does not hold** when every one lies wholly on the other side, is **not resolved** when they straddle
the line, and is **untested** when no interval can be formed (one seed and no per-image estimates in the
records: a count, or a record made before they were kept). :func:`paper_effect` says whether the
paper's own difference lies inside our intervals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

LEVEL = 0.95
HOLDS, FAILS, OPEN, UNTESTED, NOT_RUN = "holds", "does not hold", "not resolved", "untested", "not run"


@dataclass(frozen=True)
class Interval:
    """A difference A - B with its ``LEVEL`` interval, estimated over ``n`` ``what`` (images or seeds);
    ``n_b``, where set, is B's count when it differs from A's (seeds: 3 of the LVAE against 2 of the VAE)."""

    mean: float
    lo: float
    hi: float
    n: int
    what: str
    n_b: int | None = None

    def brief(self) -> str:
        """``+0.21 [-0.36, +0.78]``: the difference and its interval, in nats to two decimals."""
        return f"{self.mean:+.2f} [{self.lo:+.2f}, {self.hi:+.2f}]"

    def __str__(self) -> str:
        counts = f"{self.n:,}" if self.n_b in (None, self.n) else f"{self.n:,} vs {self.n_b:,}"
        return f"{self.brief()} over {counts} {self.what}"

    def width(self) -> float:
        return self.hi - self.lo

    def side(self) -> int:
        """+1 when the interval lies wholly above 0, -1 wholly below, 0 when it contains 0."""
        return 1 if self.lo > 0 else -1 if self.hi < 0 else 0


def normal(mean: float, se: float, n: int, what: str, level: float = LEVEL) -> Interval:
    """The normal ``level`` interval of an estimate ``mean`` with standard error ``se`` (over ``n`` ``what``)."""
    half = stats.norm.ppf(0.5 + level / 2) * se
    return Interval(float(mean), float(mean - half), float(mean + half), int(n), what)


def paired(a, b, level: float = LEVEL) -> Interval:
    """Mean of the paired differences ``a - b`` (one per test image) with its normal interval."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"paired differences need two 1-D arrays of the same length >= 2, got {a.shape} and {b.shape}")
    d = a - b
    return normal(d.mean(), d.std(ddof=1) / math.sqrt(len(d)), len(d), "images", level)


def over_seeds(a, b, level: float = LEVEL) -> Interval | None:
    """Welch's t interval of mean(a) - mean(b), with ``a`` and ``b`` one value per seed (it reads "over 3 vs
    2 seeds" where their counts differ); None with fewer than two seeds on either side."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff, se = a.mean() - b.mean(), math.sqrt(va + vb)
    if se == 0:
        return Interval(float(diff), float(diff), float(diff), len(a), "seeds", len(b))
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = stats.t.ppf(0.5 + level / 2, dof) * se
    return Interval(float(diff), float(diff - half), float(diff + half), len(a), "seeds", len(b))


def with_seed_noise(iv: Interval, noise, source: str, level: float = LEVEL) -> Interval:
    """The interval over images ``iv`` of a difference A - B, widened by the training noise of A and B.

    ``noise`` holds, per model, ``(sd, dof, n)``: the sd of the metric over seeds (measured on ``dof + 1``
    seeds, at this budget or another) and the number ``n`` of seeds behind the model's value here. The
    difference's variance is then se_images^2 + sum(sd^2 / n), and its t quantile takes Satterthwaite's
    degrees of freedom (the image part counted as known): a noise measured on three seeds widens more
    than its sd alone says. ``source`` says where the noise was measured, for the interval's text."""
    z = stats.norm.ppf(0.5 + level / 2)
    se_images = (iv.hi - iv.lo) / 2 / z
    parts = [(sd**2 / n, dof) for sd, dof, n in noise]
    var = se_images**2 + sum(p for p, _ in parts)
    denom = sum(p**2 / d for p, d in parts if p > 0)
    half = (stats.t.ppf(0.5 + level / 2, var**2 / denom) if denom > 0 else z) * math.sqrt(var)
    return replace(iv, lo=iv.mean - half, hi=iv.mean + half, what=f"{iv.what}, with the seed noise measured at {source}")


def verdict(intervals, claimed_side: int = 1) -> str:
    """The verdict on "A - B lies on ``claimed_side``" (+1: A > B, -1: A < B) from its intervals."""
    sides = [iv.side() * claimed_side for iv in intervals if iv is not None]
    if not sides:
        return UNTESTED
    if all(s == 1 for s in sides):
        return HOLDS
    if all(s == -1 for s in sides):
        return FAILS
    return OPEN


def combine(verdicts) -> str:
    """One verdict for a claim made of parts (every depth, every step): it holds when every part holds,
    does not hold when some part does not hold, is untested when no part could be tested, and is not
    resolved otherwise."""
    verdicts = [v for v in verdicts if v != NOT_RUN]
    if not verdicts:
        return NOT_RUN
    if all(v == HOLDS for v in verdicts):
        return HOLDS
    if FAILS in verdicts:
        return FAILS
    return UNTESTED if all(v == UNTESTED for v in verdicts) else OPEN


def paper_effect(value: float, intervals) -> str:
    """Whether the paper's own difference ``value`` (A - B, from its printed numbers) is consistent with our
    intervals: excluded only when it lies outside every one of them (the widest, with the training noise,
    decides)."""
    intervals = [iv for iv in intervals if iv is not None]
    if not intervals:
        return f"{value:+.2f} (no interval of ours to hold it against)"
    inside = any(iv.lo <= value <= iv.hi for iv in intervals)
    widest = max(intervals, key=Interval.width)
    return (f"{value:+.2f} lies {'inside' if inside else 'outside'} our [{widest.lo:+.2f}, {widest.hi:+.2f}]")

