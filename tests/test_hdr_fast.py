"""The summary's fast HdrHistogram reads give exactly what hdrh's own (slow, Python-loop) methods give."""

from __future__ import annotations

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram

from fridgebench.measure.summary import latency_summary, mean_value, new_histogram, value_at_percentile

PCTS = (0.0, 0.1, 1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0)


def _random(rng: np.random.Generator) -> HdrHistogram:
    h = new_histogram()
    n = int(rng.integers(1, 3000))
    for v in rng.lognormal(rng.uniform(0, 14), rng.uniform(0.05, 2.5), n).astype(np.int64) + 1:
        h.record_value(min(int(v), 600_000_000), int(rng.integers(1, 4)))
    return h


@pytest.mark.parametrize("seed", range(8))
def test_mean_and_percentiles_match_hdrh_on_recorded_merged_and_decoded_histograms(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = _random(rng), _random(rng)
    merged = new_histogram()
    merged.add(a)
    merged.add(b)
    for h in (a, merged, HdrHistogram.decode(a.encode())):  # a decoded one's counts array may be shorter
        assert mean_value(h) == h.get_mean_value()
        for p in PCTS:
            assert value_at_percentile(h, p) == h.get_value_at_percentile(p), p
        summary, hdrh = latency_summary(h), h.get_percentile_to_value_dict([50.0, 90.0, 99.0, 99.9])
        assert summary["mean_us"] == round(h.get_mean_value(), 1)
        assert [summary[k] for k in ("p50_us", "p90_us", "p99_us", "p99_9_us")] == [hdrh[p] for p in (50, 90, 99, 99.9)]


def test_an_empty_histogram() -> None:
    h = new_histogram()
    assert mean_value(h) == h.get_mean_value() == 0.0
    assert value_at_percentile(h, 50) == h.get_value_at_percentile(50) == 0


@pytest.mark.parametrize("seed", range(4))
def test_the_synthetic_runs_record_exactly_as_hdrh_does(seed: int) -> None:
    """tests/report/synth.py records a whole array at once: the same counts, total, min and max as
    ``record_value`` one by one (the gate's and report's known answers rest on it)."""
    from tests.report.synth import record

    rng = np.random.default_rng(seed)
    values = np.clip(rng.lognormal(rng.uniform(0, 14), rng.uniform(0.05, 2.5), 4000).astype(np.int64) + 1,
                     1, 600_000_000)
    fast, slow = new_histogram(), new_histogram()
    record(fast, values)
    for v in values.tolist():
        slow.record_value(v)
    assert list(fast.counts) == list(slow.counts)
    assert (fast.total_count, fast.min_value, fast.max_value) == (slow.total_count, slow.min_value, slow.max_value)
