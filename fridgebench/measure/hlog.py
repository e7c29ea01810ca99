"""Read a run's HdrHistogram interval logs (``<store>.<op>.hlog``) back into counts per interval.

A run writes one log per store and operation (format 1.2, microseconds, latency from the
intended start, one histogram per measured second). Reports and the gate read them back as a
matrix: one row per interval, one column per distinct recorded value, so percentiles of any
set of intervals (merged) are a cumulative sum away — which is what the gate's bootstrap does
thousands of times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram

from fridgebench.errors import UsageError


@dataclass(frozen=True)
class IntervalCounts:
    """Per-interval latency counts of one store and operation."""

    starts: np.ndarray  # interval start, seconds after the first interval (float, n)
    values: np.ndarray  # distinct recorded values, µs (highest equivalent value of each bucket), ascending (k)
    counts: np.ndarray  # n × k, int64

    @property
    def intervals(self) -> int:
        return int(self.counts.shape[0])

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def merged(self) -> np.ndarray:
        return self.counts.sum(axis=0)

    def percentile(self, p: float) -> float | None:
        """The value at percentile ``p`` (0..100) of all intervals merged."""
        return percentile_of(self.merged(), self.values, p)

    def percentiles(self, ps: list[float]) -> dict[float, float | None]:
        merged = self.merged()
        return {p: percentile_of(merged, self.values, p) for p in ps}

    def on_grid(self, grid: np.ndarray) -> np.ndarray:
        """Counts re-indexed onto ``grid`` (a sorted superset of ``values``)."""
        out = np.zeros((self.counts.shape[0], grid.size), dtype=np.int64)
        out[:, np.searchsorted(grid, self.values)] = self.counts
        return out


def percentile_of(counts: np.ndarray, values: np.ndarray, p: float) -> float | None:
    """HdrHistogram's convention: the smallest recorded value with at least ceil(p% of n) values at or below it."""
    total = int(counts.sum())
    if total == 0:
        return None
    rank = max(1, math.ceil(p / 100.0 * total))
    idx = int(np.searchsorted(np.cumsum(counts), rank))
    return float(values[min(idx, values.size - 1)])


def read_hlog(path: Path) -> IntervalCounts:
    """Parse an interval log written by fridgebench (or any HdrHistogram 1.2 log of one tag)."""
    rows: list[tuple[float, dict[int, int]]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line or line.startswith("#") or line.startswith('"'):
            continue
        parts = line.split(",")
        if len(parts) < 4:
            raise UsageError(f"{path}:{lineno} is not an HdrHistogram interval log line",
                             hint="was the file edited or truncated? re-run the command that wrote it")
        try:
            start = float(parts[-4] if parts[0].startswith("Tag=") else parts[0])
            hist = HdrHistogram.decode(parts[-1].strip())
        except Exception:  # hdrh raises several kinds on a corrupt payload
            raise UsageError(f"{path}:{lineno} holds a histogram that does not decode",
                             hint="was the file edited or truncated? re-run the command that wrote it") from None
        if hist is None:
            raise UsageError(f"{path}:{lineno} holds a histogram that does not decode")
        rows.append((start, _recorded(hist)))
    values = np.array(sorted({v for _, d in rows for v in d}), dtype=np.float64)
    counts = np.zeros((len(rows), values.size), dtype=np.int64)
    index = {v: i for i, v in enumerate(values.tolist())}
    for r, (_, d) in enumerate(rows):
        for v, c in d.items():
            counts[r, index[float(v)]] = c
    starts = np.array([s for s, _ in rows], dtype=np.float64)
    return IntervalCounts(starts=starts - (starts[0] if starts.size else 0.0), values=values, counts=counts)


def counts_array(hist: HdrHistogram) -> np.ndarray:
    """The histogram's counts, without a copy (a decoded histogram's array may be shorter: the rest is 0).
    Reading it with numpy replaces hdrh's iterators, which walk every bucket in Python (~100x slower)."""
    return np.ctypeslib.as_array(hist.counts)[:min(hist.counts_len, hist.encoder.payload.counts_len)]


def _recorded(hist: HdrHistogram) -> dict[int, int]:
    """{highest equivalent value: count} of every non-empty bucket."""
    counts = counts_array(hist)
    out: dict[int, int] = {}
    for i in np.flatnonzero(counts).tolist():
        v = hist.get_highest_equivalent_value(hist.get_value_from_index(i))
        out[v] = out.get(v, 0) + int(counts[i])
    return out


def common_grid(*parts: IntervalCounts) -> np.ndarray:
    return np.unique(np.concatenate([p.values for p in parts])) if parts else np.zeros(0)
