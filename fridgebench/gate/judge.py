"""The gate's verdicts: per store × operation × percentile, regression / improvement / unchanged / inconclusive.

A change counts only when it is both significant (p < alpha) and larger than the threshold.
"unchanged" is a claim too: the 95% interval of the ratio must lie within ±threshold, so a
regression of that size is ruled out. Anything else is "inconclusive", with the reason: too
few runs or samples, too noisy, the driver short of CPU. Runs that are not comparable are
refused as a whole (see :mod:`fridgebench.gate.comparable`).

Exit status: any regression -> 3; refused, or no row could be judged -> 4; with ``strict``,
any inconclusive row -> 4; otherwise 0.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from fridgebench.errors import ExitStatus, UsageError
from fridgebench.gate import comparable, stats
from fridgebench.measure.hlog import IntervalCounts, common_grid
from fridgebench.measure.runs import Run

Verdict = Literal["regression", "improvement", "unchanged", "inconclusive"]
VERDICT_ORDER: dict[str, int] = {"regression": 0, "inconclusive": 1, "improvement": 2, "unchanged": 3}

DRIVER_SHARE = 0.5  # the driver's own no-op lag at a percentile, as a share of the latency measured there
MIN_TAIL_SAMPLES = 10  # a percentile p needs count × (1 - p) >= this in every run: p99 needs 1,000 operations
MIN_INTERVALS = 5  # seconds per side for the one-run bootstrap
SUMMARY_KEYS = {50.0: "p50_us", 90.0: "p90_us", 99.0: "p99_us", 99.9: "p99_9_us"}


@dataclass(frozen=True)
class GateOptions:
    threshold: float = 0.10  # minimum effect, as a fraction
    percentiles: tuple[float, ...] = (50.0, 99.0)
    alpha: float = 0.05
    stores: tuple[str, ...] | None = None  # None: every store both sides ran
    ops: tuple[str, ...] | None = None
    strict: bool = False
    seed: int = 0
    n_boot: int = 2000

    def validate(self) -> None:
        if not (0 < self.threshold < 10) or math.isnan(self.threshold):
            raise UsageError(f"--threshold must be a percentage above 0, got {self.threshold * 100:g}",
                             hint="e.g. --threshold 10 (a change must exceed 10% to count)")
        if not self.percentiles:
            raise UsageError("no percentile chosen", hint="e.g. --percentile 50 --percentile 99")
        for p in self.percentiles:
            if not (0 < p < 100):
                raise UsageError(f"--percentile must be between 0 and 100 (exclusive), got {p:g}",
                                 hint="e.g. --percentile 50 --percentile 99")
        if not (0 < self.alpha < 0.5):
            raise UsageError(f"--alpha must be between 0 and 0.5, got {self.alpha:g}", hint="e.g. --alpha 0.05")


@dataclass(frozen=True)
class Row:
    store: str
    op: str
    percentile: float
    verdict: Verdict
    why: str
    baseline_us: float | None = None
    current_us: float | None = None
    ratio: float | None = None
    ci95: tuple[float, float] | None = None
    p_value: float | None = None
    method: str = ""
    samples: tuple[int, int] = (0, 0)

    @property
    def name(self) -> str:
        return f"{self.store} {self.op} p{self.percentile:g}"

    @property
    def change(self) -> float | None:
        return None if self.ratio is None else self.ratio - 1.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["change"] = None if self.change is None else round(self.change, 4)
        for k in ("ratio", "p_value"):
            if d[k] is not None:
                d[k] = round(d[k], 4)
        if d["ci95"] is not None:
            d["ci95"] = [round(x, 4) for x in d["ci95"]]
        return d


@dataclass
class GateResult:
    options: GateOptions
    baseline: list[str]  # run ids
    current: list[str]
    rows: list[Row] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(1 for r in self.rows if r.verdict == verdict)

    @property
    def judged(self) -> int:
        return sum(1 for r in self.rows if r.verdict != "inconclusive")

    @property
    def exit_status(self) -> ExitStatus:
        if self.count("regression"):
            return ExitStatus.GATE_FAILED
        if self.refused or not self.judged:
            return ExitStatus.TOO_NOISY
        if self.options.strict and self.count("inconclusive"):
            return ExitStatus.TOO_NOISY
        return ExitStatus.OK

    @property
    def outcome(self) -> str:
        s = self.exit_status
        if s == ExitStatus.GATE_FAILED:
            return "regression"
        if s == ExitStatus.TOO_NOISY:
            return "refused" if self.refused else "inconclusive"
        return "pass"

    def ordered(self) -> list[Row]:
        """Most important first: regressions (largest first), inconclusive, improvements, unchanged."""
        return sorted(self.rows, key=lambda r: (VERDICT_ORDER[r.verdict], -abs(r.change or 0.0)))

    def headline(self) -> str:
        t = f"{self.options.threshold * 100:g}%"
        if self.refused:
            return f"the runs are not comparable — {self.refused[0]}"
        counts = ", ".join(f"{self.count(v)} {v}" for v in ("regression", "improvement", "unchanged", "inconclusive")
                           if self.count(v))
        if self.count("regression"):
            worst = self.ordered()[0]
            return f"{worst.name} {_pct(worst.change)} (threshold {t}); {counts}"
        if not self.judged:
            return f"no row could be judged ({counts or 'nothing to compare'})"
        return f"no regression beyond {t}: {counts}"

    def to_dict(self) -> dict[str, Any]:
        o = self.options
        return {
            "outcome": self.outcome, "exit_status": int(self.exit_status), "headline": self.headline(),
            "options": {"threshold": o.threshold, "percentiles": list(o.percentiles), "alpha": o.alpha,
                        "strict": o.strict},
            "baseline": self.baseline, "current": self.current,
            "counts": {v: self.count(v) for v in VERDICT_ORDER},
            "refused": self.refused, "notes": self.notes,
            "rows": [r.to_dict() for r in self.ordered()],
        }


def _pct(change: float | None) -> str:
    return "-" if change is None else f"{change * 100:+.1f}%"


# --------------------------------------------------------------------------------------------


def _compare(run: Run) -> dict[str, Any]:
    sec = run.doc.sections.get("compare")
    if not isinstance(sec, dict) or not sec.get("stores"):
        raise UsageError(f"{run.path} holds no compare results ({run.doc.command} run)",
                         hint="the gate compares runs of `fridgebench compare`")
    return sec


def driver_lag(run: Run, pct: float) -> float | None:
    """The driver's own dispatch lag (a no-op through the same scheduler, measured in the run) at the
    summary percentile at or above ``pct``."""
    lag = (_compare(run).get("driver_overhead") or {}).get("dispatch_lag") or {}
    for p, key in sorted(SUMMARY_KEYS.items()):
        if p >= pct and lag.get(key) is not None:
            return float(lag[key])
    return float(lag["max_us"]) if lag.get("max_us") is not None else None


def driver_starved(run: Run, store: str, op: str, pct: float) -> str | None:
    """Why this run's percentile is the driver's rather than the store's, or None: when the driver alone
    started operations late by half the measured latency or more, it was short of CPU at that percentile."""
    lag, value = driver_lag(run, pct), _run_value(run, store, op, pct)
    if lag is None or value is None or lag < DRIVER_SHARE * value:
        return None
    return f"{run.run_id}: the driver alone lagged {lag:,.0f} µs at p{pct:g}, the store measured {value:,.0f} µs"


def judge(baseline: list[Run], current: list[Run], opts: GateOptions) -> GateResult:
    opts.validate()
    res = GateResult(opts, [r.run_id for r in baseline], [r.run_id for r in current])
    for r in (*baseline, *current):
        _compare(r)
    res.refused = comparable.check(baseline, current)
    if res.refused:
        return res
    sides = {"baseline": list(baseline), "current": list(current)}
    if min(len(baseline), len(current)) < stats.MIN_RANK_RUNS:
        res.notes.append(f"{min(len(baseline), len(current))} run(s) on a side: the bootstrap sees the variation "
                         "between seconds of a run, not between runs (another process, page cache, CPU "
                         "frequency); on a loaded 2-core machine bench_gate saw 3 of 6 same-code pairs flagged this "
                         f"way — for a verdict to trust, repeat: compare --repeat 5 (the rank test needs "
                         f"{stats.MIN_RANK_RUNS} a side)")
    stores_b = _stores_ops(sides["baseline"])
    stores_c = _stores_ops(sides["current"])
    for s in sorted(set(stores_b) ^ set(stores_c)):
        res.notes.append(f"store {s} ran on one side only: not compared")
    wanted_stores = [s for s in stores_b if s in stores_c and (opts.stores is None or s in opts.stores)]
    if opts.stores:
        for s in opts.stores:
            if s not in stores_b or s not in stores_c:
                raise UsageError(f"store {s!r} is not in both sides' runs",
                                 hint=f"both ran: {', '.join(s for s in stores_b if s in stores_c) or 'none'}")
    for store in wanted_stores:
        ops = [o for o in stores_b[store] if o in stores_c[store] and (opts.ops is None or o in opts.ops)]
        for op in ops:
            for pct in opts.percentiles:
                res.rows.append(_row(store, op, pct, sides["baseline"], sides["current"], opts, res.notes))
    if opts.ops:
        missing = [o for o in opts.ops if not any(r.op == o for r in res.rows)]
        if missing:
            raise UsageError(f"operation {', '.join(missing)} is not in both sides' runs",
                             hint="operations are: create, get, add, remove, extend, delete, recipe")
    return res


def _stores_ops(runs: list[Run]) -> dict[str, list[str]]:
    """Stores and operations every run of the side measured (in the first run's order)."""
    first = _compare(runs[0])["stores"]
    out = {s: list(v["ops"]) for s, v in first.items()}
    for r in runs[1:]:
        st = _compare(r)["stores"]
        out = {s: [o for o in ops if o in st.get(s, {}).get("ops", {})] for s, ops in out.items() if s in st}
    return out


def _count(run: Run, store: str, op: str) -> int:
    return int(_compare(run)["stores"][store]["ops"][op]["latency_intended"].get("count") or 0)


def _run_value(run: Run, store: str, op: str, pct: float) -> float | None:
    """One run's percentile: from its interval log when present (any percentile), else results.json."""
    h = run.hlog(store, op)
    if h is not None and h.total:
        return h.percentile(pct)
    key = SUMMARY_KEYS.get(pct)
    li = _compare(run)["stores"][store]["ops"][op]["latency_intended"]
    return float(li[key]) if key and li.get(key) is not None else None


def _row(store: str, op: str, pct: float, base: list[Run], cur: list[Run], opts: GateOptions,
         notes: list[str]) -> Row:
    def inconclusive(why: str, **kw: Any) -> Row:
        return Row(store, op, pct, "inconclusive", why, **kw)

    starved = {side: [w for w in (driver_starved(r, store, op, pct) for r in runs) if w]
               for side, runs in (("baseline", base), ("current", cur))}
    if any(starved.values()):
        keep_b = [r for r in base if not driver_starved(r, store, op, pct)]
        keep_c = [r for r in cur if not driver_starved(r, store, op, pct)]
        if len(base) >= stats.MIN_RANK_RUNS and len(cur) >= stats.MIN_RANK_RUNS and \
                min(len(keep_b), len(keep_c)) >= stats.MIN_RANK_RUNS:
            notes.append(f"{store} {op} p{pct:g}: {len(base) - len(keep_b) + len(cur) - len(keep_c)} run(s) left "
                         "out — the driver was short of CPU there")
            base, cur = keep_b, keep_c
        else:
            first = next(w for ws in starved.values() for w in ws)
            n = sum(len(ws) for ws in starved.values())
            return inconclusive(f"driver short of CPU in {n} run(s) ({first})")

    need = math.ceil(MIN_TAIL_SAMPLES / (1 - pct / 100.0))
    fewest = min(_count(r, store, op) for r in (*base, *cur))
    if fewest < need:
        return inconclusive(f"too few samples: {fewest:,} operations in a run; p{pct:g} needs at least {need:,}")
    if len(base) >= stats.MIN_RANK_RUNS and len(cur) >= stats.MIN_RANK_RUNS:
        vb = [_run_value(r, store, op, pct) for r in base]
        vc = [_run_value(r, store, op, pct) for r in cur]
        if any(v is None for v in (*vb, *vc)):
            return inconclusive(f"p{pct:g} not recorded (no interval logs, and results.json keeps p50/p90/p99/p99.9)")
        est = stats.rank_test(vb, vc, opts.alpha)  # type: ignore[arg-type]
    elif len(base) != len(cur) and min(len(base), len(cur)) >= 2 and max(len(base), len(cur)) >= stats.MIN_RANK_RUNS:
        return inconclusive(f"too few repeats: {len(base)} baseline and {len(cur)} current runs; the rank test needs "
                            f"{stats.MIN_RANK_RUNS} per side")
    else:
        est_or_why = _bootstrap(store, op, pct, base, cur, opts)
        if isinstance(est_or_why, str):
            return inconclusive(est_or_why)
        est = est_or_why
    return decide(store, op, pct, est, opts)


def _bootstrap(store: str, op: str, pct: float, base: list[Run], cur: list[Run],
               opts: GateOptions) -> stats.Estimate | str:
    hb = [r.hlog(store, op) for r in base]
    hc = [r.hlog(store, op) for r in cur]
    seed = opts.seed  # the same seed for every row: a rerun of the gate gives the same verdicts
    if all(h is not None for h in (*hb, *hc)):
        parts: list[IntervalCounts] = [h for h in (*hb, *hc) if h is not None]
        n_b = sum(h.intervals for h in hb if h is not None)
        n_c = sum(h.intervals for h in hc if h is not None)
        if min(n_b, n_c) < MIN_INTERVALS:
            return f"too few samples: {min(n_b, n_c)} measured seconds on a side; the bootstrap needs {MIN_INTERVALS}"
        grid = common_grid(*parts)
        return stats.bootstrap([h.on_grid(grid) for h in hb if h is not None],
                               [h.on_grid(grid) for h in hc if h is not None], grid, pct,
                               seed=seed, n_boot=opts.n_boot, alpha=opts.alpha)
    key = {50.0: "by_op_p50_us", 99.0: "by_op_p99_us"}.get(pct)
    if key is None:
        return f"p{pct:g} per second not recorded (no interval logs): repeat runs (compare --repeat) for the rank test"

    def per_second(run: Run) -> list[float]:
        ivs = _compare(run)["stores"][store].get("intervals") or []
        return [float(iv[key][op]) for iv in ivs if op in (iv.get(key) or {})]

    vb, vc = [per_second(r) for r in base], [per_second(r) for r in cur]
    if min(sum(map(len, vb)), sum(map(len, vc))) < MIN_INTERVALS:
        return (f"too few samples: per-second p{pct:g} of {op} recorded for fewer than {MIN_INTERVALS} seconds "
                "(results format 1 keeps only p50; no interval logs)")
    return stats.quantile_bootstrap(vb, vc, seed=seed, n_boot=opts.n_boot, alpha=opts.alpha)


def decide(store: str, op: str, pct: float, est: stats.Estimate, opts: GateOptions) -> Row:
    t = opts.threshold
    kw: dict[str, Any] = dict(baseline_us=est.baseline, current_us=est.current, ratio=est.ratio, ci95=est.ci,
                              p_value=est.p, method=est.method, samples=est.n)
    if est.ratio is None:
        return Row(store, op, pct, "inconclusive", "no data on one side", **kw)
    if est.ci is None or est.p is None:
        return Row(store, op, pct, "inconclusive",
                   f"too few repeats ({est.n[0]} and {est.n[1]}) for a {100 * (1 - opts.alpha):g}% interval", **kw)
    lo, hi = est.ci
    sig = est.p < opts.alpha
    ci_txt = f"95% CI {_pct(lo - 1)} … {_pct(hi - 1)}"
    if sig and est.ratio > 1 + t:
        return Row(store, op, pct, "regression", f"{_pct(est.ratio - 1)} slower (p={est.p:.3g}, {ci_txt})", **kw)
    if sig and est.ratio < 1 - t:
        return Row(store, op, pct, "improvement", f"{_pct(est.ratio - 1)} (faster; p={est.p:.3g}, {ci_txt})", **kw)
    if hi <= 1 + t:
        extra = "; significant but within the threshold" if sig else ""
        faster = "; a larger speed-up is not ruled out" if lo < 1 - t else ""
        return Row(store, op, pct, "unchanged", f"{ci_txt} rules out a regression over {t * 100:g}%{extra}{faster}",
                   **kw)
    return Row(store, op, pct, "inconclusive",
               f"too noisy: {ci_txt} allows a regression over {t * 100:g}% (p={est.p:.3g}); more repeats narrow it",
               **kw)


def values_for_export(runs: list[Run], store: str, op: str, pct: float) -> list[float]:
    """Per-run values of one percentile (for the dashboard exports)."""
    vals = [_run_value(r, store, op, pct) for r in runs]
    return [v for v in vals if v is not None]

