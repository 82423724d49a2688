"""How good a cost model is at what the search needs: ordering the schedules of one pipeline.

Every function takes, for ONE pipeline, ``predicted`` and ``measured`` runtimes (lower is better;
any units, only the order of ``predicted`` matters) and is computed per pipeline; ``summarize``
averages over pipelines (each pipeline counts once, as TenSet and Adams2019 report them).

* pairwise ordering accuracy: over pairs with different measured times, the fraction the model
  orders the same way (a predicted tie counts half). ``min_ratio=1.2``: only pairs whose measured
  times differ by more than 20% (the slower / the faster > 1.2), which timing noise cannot flip.
* top-k regret: how much slower the best measured schedule among the model's k best predicted is
  than the best measured schedule: ``measured[best of top-k] / min(measured) - 1`` (0 is perfect).
* Kendall's tau-b between predicted and measured times (1: same order, -1: reversed).

Held-out sets are a few dozen pipelines, and one pipeline's top-1 regret can be 3.4 (random_55):
a mean over 40 pipelines moves by points when one pick flips. ``bootstrap_interval`` gives the
interval of a mean over pipelines (resampling pipelines), and ``paired_difference`` that of the
difference between two models on the same pipelines, so that "B beats A" is read against what the
choice of pipelines alone would move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np


def _arrays(predicted: Sequence[float] | np.ndarray,
            measured: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(predicted, dtype=np.float64).ravel()
    m = np.asarray(measured, dtype=np.float64).ravel()
    if p.shape != m.shape:
        raise ValueError(f"{p.size} predictions for {m.size} measurements")
    if m.size and not np.all(np.isfinite(m)):
        raise ValueError("measured runtimes must be finite")
    return np.nan_to_num(p, nan=np.inf), m


def pairwise_counts(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray,
                    min_ratio: float = 1.0) -> tuple[float, int]:
    """(correctly ordered pairs, pairs considered); a predicted tie counts 0.5.

    A pair is considered when its measured times differ, and, for ``min_ratio > 1``, when the
    slower is more than ``min_ratio`` times the faster.
    """
    p, m = _arrays(predicted, measured)
    i, j = np.triu_indices(m.size, k=1)
    lo, hi = np.minimum(m[i], m[j]), np.maximum(m[i], m[j])
    keep = hi > lo
    if min_ratio > 1.0:
        keep &= hi > min_ratio * lo
    i, j = i[keep], j[keep]
    dm = np.sign(m[i] - m[j])
    with np.errstate(invalid="ignore"):
        dp = np.sign(p[i] - p[j])
    dp = np.nan_to_num(dp, nan=0.0)  # inf - inf: a tie
    correct = float(np.sum(dp == dm) + 0.5 * np.sum(dp == 0))
    return correct, int(i.size)


def pairwise_accuracy(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray,
                      min_ratio: float = 1.0) -> float:
    """Fraction of correctly ordered pairs (NaN when no pair qualifies)."""
    correct, total = pairwise_counts(predicted, measured, min_ratio)
    return correct / total if total else math.nan


def top_k_regret(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray,
                 k: int = 1) -> float:
    """``min(measured over the k best predicted) / min(measured) - 1``; ties in prediction are
    broken by position (the first listed wins), so the result is deterministic."""
    p, m = _arrays(predicted, measured)
    if m.size == 0:
        return math.nan
    if k < 1:
        raise ValueError("k must be >= 1")
    order = np.argsort(p, kind="stable")[:k]
    best = float(m.min())
    if best <= 0:
        raise ValueError("measured runtimes must be positive")
    return float(m[order].min()) / best - 1.0


def kendall_tau(predicted: Sequence[float] | np.ndarray, measured: Sequence[float] | np.ndarray) -> float:
    """Kendall's tau-b (ties in either list handled); NaN when either list is constant."""
    p, m = _arrays(predicted, measured)
    i, j = np.triu_indices(m.size, k=1)
    with np.errstate(invalid="ignore"):
        sp = np.nan_to_num(np.sign(p[i] - p[j]), nan=0.0)
    sm = np.sign(m[i] - m[j])
    n0 = i.size
    n1 = int(np.sum(sp == 0))   # pairs tied in prediction
    n2 = int(np.sum(sm == 0))   # pairs tied in measurement
    denom = math.sqrt(float(n0 - n1) * float(n0 - n2))
    if denom == 0:
        return math.nan
    return float(np.sum(sp * sm)) / denom


@dataclass
class PipelineMetrics:
    """The metrics of one pipeline (``name`` and ``key`` identify it; ``n`` schedules)."""

    name: str
    key: str
    n: int
    pairwise: float
    pairwise_20: float
    top1_regret: float
    top5_regret: float
    kendall_tau: float
    pairs: int = 0
    pairs_20: int = 0


def pipeline_metrics(name: str, key: str, predicted: Sequence[float] | np.ndarray,
                     measured: Sequence[float] | np.ndarray) -> PipelineMetrics:
    c, t = pairwise_counts(predicted, measured)
    c20, t20 = pairwise_counts(predicted, measured, 1.2)
    return PipelineMetrics(name, key, len(np.asarray(measured).ravel()),
                           c / t if t else math.nan, c20 / t20 if t20 else math.nan,
                           top_k_regret(predicted, measured, 1), top_k_regret(predicted, measured, 5),
                           kendall_tau(predicted, measured), t, t20)


METRIC_NAMES = ("pairwise", "pairwise_20", "top1_regret", "top5_regret", "kendall_tau")


@dataclass
class Summary:
    """Means over pipelines (NaN-skipping) plus pooled pair counts and the per-pipeline rows."""

    n_pipelines: int
    n_schedules: int
    means: dict[str, float]
    pooled_pairwise: float
    pooled_pairwise_20: float
    rows: list[PipelineMetrics] = field(default_factory=list)

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        out = {f"{prefix}{k}": v for k, v in self.means.items()}
        out[f"{prefix}pooled_pairwise"] = self.pooled_pairwise
        out[f"{prefix}pooled_pairwise_20"] = self.pooled_pairwise_20
        out[f"{prefix}n_pipelines"] = float(self.n_pipelines)
        out[f"{prefix}n_schedules"] = float(self.n_schedules)
        return out

    def line(self) -> str:
        mm = self.means
        return (f"{self.n_pipelines} pipelines, {self.n_schedules} schedules: pairwise "
                f"{_fmt(mm['pairwise'])} (>20%: {_fmt(mm['pairwise_20'])}), top-1 regret "
                f"{_fmt(mm['top1_regret'], pct=True)}, top-5 regret {_fmt(mm['top5_regret'], pct=True)}, "
                f"Kendall tau {_fmt(mm['kendall_tau'])}")


def _fmt(v: float, pct: bool = False) -> str:
    if math.isnan(v):
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def summarize(rows: Iterable[PipelineMetrics]) -> Summary:
    rows = list(rows)
    means: dict[str, float] = {}
    for name in METRIC_NAMES:
        vals = [getattr(r, name) for r in rows if not math.isnan(getattr(r, name))]
        means[name] = float(np.mean(vals)) if vals else math.nan
    pairs = sum(r.pairs for r in rows)
    pairs20 = sum(r.pairs_20 for r in rows)
    correct = sum(r.pairwise * r.pairs for r in rows if r.pairs)
    correct20 = sum(r.pairwise_20 * r.pairs_20 for r in rows if r.pairs_20)
    return Summary(len(rows), sum(r.n for r in rows), means,
                   correct / pairs if pairs else math.nan, correct20 / pairs20 if pairs20 else math.nan,
                   rows)


def bootstrap_interval(values: Sequence[float] | np.ndarray, resamples: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one per pipeline; NaNs dropped):
    the pipelines resampled with replacement ``resamples`` times. (nan, nan) without values."""
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        return math.nan, math.nan
    if v.size == 1 or resamples < 1:
        m = float(v.mean())
        return m, m
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(resamples, v.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [tail, 1.0 - tail])
    return float(lo), float(hi)


def paired_difference(a: Iterable[PipelineMetrics], b: Iterable[PipelineMetrics], metric: str,
                      resamples: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float, int]:
    """Mean over the pipelines both rate (matched by ``key``; NaNs dropped) of ``b.metric -
    a.metric``, its bootstrap interval, and the number of pipelines: (mean, lo, hi, n)."""
    if metric not in METRIC_NAMES:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(METRIC_NAMES)}")
    first = {r.key: getattr(r, metric) for r in a}
    diffs = [getattr(r, metric) - first[r.key] for r in b if r.key in first]
    d = np.asarray(diffs, dtype=np.float64)
    d = d[~np.isnan(d)]
    if d.size == 0:
        return math.nan, math.nan, math.nan, 0
    lo, hi = bootstrap_interval(d, resamples, level, seed)
    return float(d.mean()), lo, hi, int(d.size)


__all__ = ["bootstrap_interval", "paired_difference", "pairwise_counts", "pairwise_accuracy", "top_k_regret",
           "kendall_tau", "PipelineMetrics", "pipeline_metrics", "Summary", "summarize", "METRIC_NAMES"]
