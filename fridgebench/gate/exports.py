"""The current side's latencies for the dashboards people already use.

* ``github-action-benchmark``: the ``customSmallerIsBetter`` tool's input — a JSON array of
  ``{"name", "unit", "value", "range"?, "extra"?}`` (``range`` and ``extra`` are strings).
* ``bencher``: Bencher Metric Format — ``{benchmark: {measure: {"value", "lower_value"?,
  "upper_value"?}}}``, in the built-in ``latency`` measure (nanoseconds).

Values: per store × operation × percentile, the median over the side's runs of each run's
percentile (latency from the intended start); the range / lower-upper values are the runs'
minimum and maximum (absent with a single run).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from fridgebench.errors import UsageError
from fridgebench.gate.judge import GateResult, _compare, values_for_export
from fridgebench.measure.runs import Run

KINDS = ("github-action-benchmark", "bencher")


def _series(runs: list[Run], percentiles: tuple[float, ...],
            result: GateResult | None) -> list[tuple[str, str, float, list[float], str]]:
    verdicts = {(r.store, r.op, r.percentile): r for r in (result.rows if result else [])}
    stores = _compare(runs[0])["stores"]
    out = []
    for store, run in stores.items():
        for op in run["ops"]:
            for pct in percentiles:
                vals = values_for_export(runs, store, op, pct)
                if not vals:
                    continue
                row = verdicts.get((store, op, pct))
                out.append((store, op, pct, vals, f"gate: {row.verdict} ({row.why})" if row else ""))
    return out


def github_action_benchmark(runs: list[Run], percentiles: tuple[float, ...],
                            result: GateResult | None = None) -> list[dict[str, Any]]:
    out = []
    for store, op, pct, vals, verdict in _series(runs, percentiles, result):
        entry: dict[str, Any] = {"name": f"{store} {op} p{pct:g}", "unit": "us",
                                 "value": round(statistics.median(vals), 1)}
        if len(vals) > 1:
            entry["range"] = f"± {round((max(vals) - min(vals)) / 2, 1):g}"
        extra = [f"latency from the intended start; median of {len(vals)} run(s)"]
        if verdict:
            extra.append(verdict)
        entry["extra"] = "\n".join(extra)
        out.append(entry)
    return out


def bencher(runs: list[Run], percentiles: tuple[float, ...], result: GateResult | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for store, op, pct, vals, _ in _series(runs, percentiles, result):
        metric: dict[str, float] = {"value": round(statistics.median(vals) * 1000, 1)}  # µs -> ns
        if len(vals) > 1:
            metric["lower_value"] = round(min(vals) * 1000, 1)
            metric["upper_value"] = round(max(vals) * 1000, 1)
        out[f"{store}/{op}/p{pct:g}"] = {"latency": metric}
    return out


def write_export(kind: str, path: Path, runs: list[Run], percentiles: tuple[float, ...],
                 result: GateResult | None = None) -> Path:
    if kind == "github-action-benchmark":
        doc: Any = github_action_benchmark(runs, percentiles, result)
    elif kind == "bencher":
        doc = bencher(runs, percentiles, result)
    else:
        raise UsageError(f"unknown export format {kind!r}", hint=f"use one of: {', '.join(KINDS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
