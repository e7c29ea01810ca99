"""The gate's statistics: how much slower or faster, how sure, from repeated runs or from one run.

Two estimators of the ratio current ÷ baseline of a latency percentile, each with a 95%
interval and a two-sided p-value:

* :func:`rank_test` — several runs per side (each run gives one value): the Mann-Whitney U
  test (SciPy) for significance, the Hodges-Lehmann estimate of the ratio (median of all
  current/baseline pairwise ratios) and its distribution-free interval (Moses: order statistics
  of the pairwise ratios at the U test's critical value).
* :func:`bootstrap` — one to three runs per side: resample runs, then seconds within each run
  (per-second HdrHistogram counts), merge and take the percentile; the interval and p-value
  come from the resampled ratios. Per-second values are not independent of the run they come
  from, so one run per side is weaker evidence than repeats: the interval says so by being
  narrow only when every second agrees.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

import numpy as np

MIN_RANK_RUNS = 4  # per side: below this the U test cannot reach p < 0.05 with any data


@dataclass(frozen=True)
class Estimate:
    ratio: float | None  # current ÷ baseline
    ci: tuple[float, float] | None  # 95% (1 - alpha) interval of the ratio
    p: float | None  # two-sided
    method: str  # "mann-whitney" | "bootstrap"
    n: tuple[int, int]  # samples per side: runs (rank test) or runs × seconds (bootstrap)
    baseline: float | None  # the side's value: median of runs, or the merged percentile
    current: float | None


def rank_test(baseline: Sequence[float], current: Sequence[float], alpha: float = 0.05) -> Estimate:
    """Mann-Whitney U across runs; Hodges-Lehmann ratio with its Moses interval."""
    from scipy.stats import mannwhitneyu

    b = np.asarray([v for v in baseline if v and v > 0], dtype=float)
    c = np.asarray([v for v in current if v and v > 0], dtype=float)
    m, n = b.size, c.size
    if m == 0 or n == 0:
        return Estimate(None, None, None, "mann-whitney", (m, n), None, None)
    diffs = np.sort((np.log(c)[None, :] - np.log(b)[:, None]).ravel())  # log(current/baseline), all pairs
    ratio = float(math.exp(np.median(diffs)))
    p = float(mannwhitneyu(c, b, alternative="two-sided").pvalue) if m >= 2 and n >= 2 else None
    k = moses_k(m, n, alpha)
    ci = (float(math.exp(diffs[k - 1])), float(math.exp(diffs[m * n - k]))) if k >= 1 else None
    return Estimate(ratio, ci, p, "mann-whitney", (m, n), float(np.median(b)), float(np.median(c)))


def moses_k(m: int, n: int, alpha: float) -> int:
    """Rank (1-based) of the pairwise difference that bounds the 1-alpha interval (normal approximation
    of U's null distribution with continuity correction; 0 when no interval exists at this size)."""
    mu = m * n / 2.0
    sd = math.sqrt(m * n * (m + n + 1) / 12.0)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return max(0, int(math.floor(mu - z * sd + 0.5)))


def bootstrap(baseline: list[np.ndarray], current: list[np.ndarray], values: np.ndarray, pct: float, *,
              seed: int = 0, n_boot: int = 2000, alpha: float = 0.05) -> Estimate:
    """Ratio of percentile ``pct`` (current ÷ baseline), resampling runs then seconds.

    ``baseline`` / ``current``: per run, an (intervals × len(values)) counts matrix on the shared ``values`` grid.
    """
    rng = np.random.default_rng(seed)
    nb = (len(baseline), sum(x.shape[0] for x in baseline))
    nc = (len(current), sum(x.shape[0] for x in current))
    pb, pc = _pct_rows(sum(x.sum(axis=0) for x in baseline)[None, :], values, pct), \
        _pct_rows(sum(x.sum(axis=0) for x in current)[None, :], values, pct)
    if not baseline or not current or np.isnan(pb[0]) or np.isnan(pc[0]):
        return Estimate(None, None, None, "bootstrap", (nb[1], nc[1]), None, None)
    bb = _pct_rows(_resampled(baseline, rng, n_boot), values, pct)
    bc = _pct_rows(_resampled(current, rng, n_boot), values, pct)
    ok = ~(np.isnan(bb) | np.isnan(bc))
    lr = np.log(bc[ok]) - np.log(bb[ok])
    lo, hi = np.quantile(lr, [alpha / 2, 1 - alpha / 2])
    p = 2 * min(float(np.mean(lr <= 0)), float(np.mean(lr >= 0)))
    p = min(1.0, max(p, 1.0 / lr.size))
    return Estimate(float(pc[0] / pb[0]), (float(math.exp(lo)), float(math.exp(hi))), p, "bootstrap",
                    (nb[1], nc[1]), float(pb[0]), float(pc[0]))


def _resampled(runs: list[np.ndarray], rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """n_boot merged count vectors: runs drawn with replacement, then each drawn run's seconds with replacement."""
    stacked = np.concatenate(runs, axis=0).astype(np.float64)
    offsets = np.cumsum([0] + [r.shape[0] for r in runs])
    weights = np.zeros((n_boot, stacked.shape[0]))
    picks = rng.integers(0, len(runs), size=(n_boot, len(runs)))
    for b in range(n_boot):
        for r in picks[b]:
            a, z = offsets[r], offsets[r + 1]
            weights[b, a:z] += rng.multinomial(z - a, np.full(z - a, 1.0 / (z - a)))
    return weights @ stacked


def _pct_rows(counts: np.ndarray, values: np.ndarray, pct: float) -> np.ndarray:
    """Percentile ``pct`` of each row of counts (HdrHistogram's rank convention); NaN for an empty row."""
    cum = np.cumsum(counts, axis=1)
    total = cum[:, -1] if cum.shape[1] else np.zeros(counts.shape[0])
    rank = np.maximum(1.0, np.ceil(pct / 100.0 * total - 1e-9))
    idx = (cum < rank[:, None]).sum(axis=1)
    out = values[np.minimum(idx, values.size - 1)].astype(float) if values.size else np.full(counts.shape[0], np.nan)
    out[total <= 0] = np.nan
    return out


def quantile_bootstrap(baseline: list[list[float]], current: list[list[float]], *, seed: int = 0,
                       n_boot: int = 2000, alpha: float = 0.05) -> Estimate:
    """Fallback without interval logs: ratio of medians of per-second values (e.g. per-second p50 from
    results.json), resampling runs then seconds."""
    rng = np.random.default_rng(seed)
    b_all = [v for run in baseline for v in run]
    c_all = [v for run in current for v in run]
    if not b_all or not c_all:
        return Estimate(None, None, None, "bootstrap", (len(b_all), len(c_all)), None, None)

    def draw(runs: list[list[float]]) -> np.ndarray:
        out = np.empty(n_boot)
        arrs = [np.asarray(r, dtype=float) for r in runs if r]
        for b in range(n_boot):
            chosen = [arrs[i] for i in rng.integers(0, len(arrs), size=len(arrs))]
            out[b] = np.median(np.concatenate([rng.choice(a, size=a.size) for a in chosen]))
        return out

    bb, bc = draw(baseline), draw(current)
    lr = np.log(bc) - np.log(bb)
    lo, hi = np.quantile(lr, [alpha / 2, 1 - alpha / 2])
    p = min(1.0, max(2 * min(float(np.mean(lr <= 0)), float(np.mean(lr >= 0))), 1.0 / n_boot))
    mb, mc = float(np.median(b_all)), float(np.median(c_all))
    return Estimate(mc / mb, (float(math.exp(lo)), float(math.exp(hi))), p, "bootstrap",
                    (len(b_all), len(c_all)), mb, mc)
