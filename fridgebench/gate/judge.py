"""The gate's verdicts: per store × operation × percentile, regression / improvement / unchanged / inconclusive.

A change counts only when it is both significant (p < alpha) and larger than the threshold.
"unchanged" is a claim too: the 95% interval of the ratio must lie within ±threshold, so a
regression of that size is ruled out. Anything else is "inconclusive", with the reason: too
few runs or samples, too noisy, the driver short of CPU. Runs that are not comparable are
refused as a whole (see :mod:`fridgebench.gate.comparable`).

Machine speed. On a shared 2-core runner a whole run is often 1.5–3× slower than the next one,
most of a store's operations alike (another tenant, the disk's flush time, CPU frequency):
bench_gate measured a run-to-run spread of 20–45% in a store's p50 (on 2026-11-27 the PostgreSQL
writes, each waiting for a WAL flush, swung together; reads less), against the 25% change a gate
should catch. The operations of a run are interleaved within milliseconds, so that swing cancels
in their ratios (add ÷ the store's other operations: 8% spread where add alone spread 41%).
With repeated runs (the rank test) each run gets a speed factor per store and percentile: the
median, over the store's operations, of the run's value ÷ that operation's median in the baseline
(the "median of ratios" size factor of RNA-seq analysis, DESeq, where a few genes change and
the sample depth scales all). An operation is judged on its values ÷ its run's factor — its
change relative to the store's other operations — and the factors themselves are judged as one
more row, "all operations", which is where a change of the whole store shows (with the machine's
noise, as without the adjustment). The median lets a change in a minority of a store's operations
through untouched; a change in most of them moves the factor, which the "all operations" row
then shows: a relative improvement in a store whose whole moved the other way (or the reverse)
is not claimed. ``adjust=False`` (``gate --absolute``) judges the raw values only.

A whole-store change (the ``all operations`` row, or a raw row) is the one the machine can fake:
bench_gate's one A/A false alarm in 10 pairs was postgres +61% as a whole, its baseline measured
3.5 minutes before its current side on a machine that had slowed meanwhile. Each store's
measurement in a run is bracketed by a machine probe (:mod:`fridgebench.measure.machine`: a CPU
loop, an fdatasync); such a change is claimed only when it keeps its verdict judged against each
(the store's values ÷ the run's probe), else it is inconclusive and says how far the machine moved.

The probe moves less than a store does when the machine slows (bench_gate, 2026-11-27: the store +46%
with the probe +15%; +135% with the CPU loop 7% faster), so two more checks use the store itself:
a row judged on raw values for want of samples (p99 of short runs) must keep its verdict against
the store's speed factor at another percentile (:func:`against_store`); and while the store as a
whole moved by more than the threshold, a relative change must exceed the other operations' own
relative changes by the threshold, since a machine that moves does not move every operation alike
(:func:`_uneven`).

Exit status: any regression -> 3; refused, or no row could be judged -> 4; with ``strict``,
any inconclusive row -> 4; otherwise 0.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from fridgebench.errors import ExitStatus, UsageError
from fridgebench.gate import comparable, stats
from fridgebench.measure import machine
from fridgebench.measure.hlog import IntervalCounts, common_grid
from fridgebench.measure.runs import Run

Verdict = Literal["regression", "improvement", "unchanged", "inconclusive"]
VERDICT_ORDER: dict[str, int] = {"regression": 0, "inconclusive": 1, "improvement": 2, "unchanged": 3}

DRIVER_SHARE = 0.5  # the driver's own no-op lag at a percentile, as a share of the latency measured there
MIN_TAIL_SAMPLES = 10  # a percentile p needs count × (1 - p) >= this in every run: p99 needs 1,000 operations
MIN_INTERVALS = 5  # seconds per side for the one-run bootstrap
ADJUST_MIN_OPS = 3  # operations with a value in every run, for a store's speed factor
ALL_OPS = "all operations"  # the row of a store's speed factors
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
    adjust: bool = True  # with repeats: judge each operation relative to its run's speed (see the module's text)

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
    raw_ratio: float | None = None  # with the speed adjustment: the unadjusted ratio (``ratio`` is adjusted)

    @property
    def name(self) -> str:
        return f"{self.store} {self.op} p{self.percentile:g}"

    @property
    def change(self) -> float | None:
        return None if self.ratio is None else self.ratio - 1.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["change"] = None if self.change is None else round(self.change, 4)
        for k in ("ratio", "p_value", "raw_ratio"):
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
    rank = min(len(baseline), len(current)) >= stats.MIN_RANK_RUNS
    for store in wanted_stores:
        both = [o for o in stores_b[store] if o in stores_c[store]]
        ops = [o for o in both if opts.ops is None or o in opts.ops]
        speeds = {pct: _speed(store, both, pct, sides["baseline"], sides["current"]) if opts.adjust and rank else None
                  for pct in opts.percentiles}
        for pct in opts.percentiles:
            speed = speeds[pct]
            # where this percentile has no speed factor, its raw rows are checked against the nearest one's
            ref = None if speed is not None else min(((p, sp) for p, sp in speeds.items() if sp is not None),
                                                     key=lambda x: abs(x[0] - pct), default=None)
            rows = [_row(store, op, pct, sides["baseline"], sides["current"], opts, res.notes, speed, ref)
                    for op in ops]
            if speed is not None:
                whole = decide(store, ALL_OPS, pct, stats.rank_test([speed.factor[r.run_id] for r in baseline],
                                                                  [speed.factor[r.run_id] for r in current],
                                                                  opts.alpha), opts)
                whole = replace(whole, baseline_us=None, current_us=None,  # factors, not microseconds
                                why=f"{whole.why} — each run's median of its p{pct:g} ÷ the baseline's, over "
                                    f"{', '.join(speed.ops)}")
                whole = against_machine(whole, [speed.factor[r.run_id] for r in baseline],
                                        [speed.factor[r.run_id] for r in current], baseline, current, opts)
                rows = _uneven([_guarded(r, whole) for r in rows], whole, opts) + [whole]
            res.rows.extend(rows)
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


@dataclass(frozen=True)
class Speed:
    """A store's speed factor per run at one percentile (run id -> factor; 1 = the baseline's typical run)."""
    factor: dict[str, float]
    ops: tuple[str, ...]  # the operations it was taken over


def _speed(store: str, ops: list[str], pct: float, base: list[Run], cur: list[Run]) -> Speed | None:
    """Each run's median, over the store's operations, of its value ÷ the operation's baseline median; None
    when fewer than ADJUST_MIN_OPS operations have enough samples for ``pct`` in every run."""
    need = math.ceil(MIN_TAIL_SAMPLES / (1 - pct / 100.0))
    runs = [*base, *cur]
    usable: dict[str, list[float]] = {}
    for op in ops:
        if any(_count(r, store, op) < need for r in runs):
            continue
        vals = [_run_value(r, store, op, pct) for r in runs]
        if all(v is not None and v > 0 for v in vals):
            usable[op] = vals  # type: ignore[assignment]
    if len(usable) < ADJUST_MIN_OPS:
        return None
    mid = {op: statistics.median(v[:len(base)]) for op, v in usable.items()}
    factor = {r.run_id: statistics.median(usable[op][i] / mid[op] for op in usable) for i, r in enumerate(runs)}
    return Speed(factor, tuple(usable))


def _guarded(row: Row, whole: Row) -> Row:
    """A relative verdict, checked against the store's own movement (its ``all operations`` row). A relative
    change against that movement is not claimed: most of the store's operations moved the other way and the
    factor with them (a relative improvement of ``get`` while the store got slower is the other operations'
    regression, not ``get``'s improvement); nor is "unchanged" relative to the others while the store as a
    whole moved. While the store's movement is inconclusive, an operation unchanged relative to the others is
    unchanged (that is what it measured), and says where the rest is."""
    if row.raw_ratio is None:
        return row
    if row.verdict == "unchanged" and whole.verdict in ("regression", "improvement"):  # kept pace with a store that moved
        return replace(row, verdict="inconclusive",
                       why=f"{row.why}, but the store as a whole is {whole.verdict} ({_pct(whole.change)}; "
                           f"unadjusted {_pct(row.raw_ratio - 1)}): see {ALL_OPS}")
    if row.verdict == "unchanged" and whole.verdict == "inconclusive":
        return replace(row, why=f"{row.why} (the store as a whole: inconclusive, see {ALL_OPS})")
    if (row.verdict == "improvement" and whole.verdict == "regression") or \
            (row.verdict == "regression" and whole.verdict == "improvement"):
        return replace(row, verdict="inconclusive",
                       why=f"{_pct(row.change)} relative to the store's other operations, but the store as a whole "
                           f"{'slowed' if whole.verdict == 'regression' else 'sped up'} ({_pct(whole.change)}; "
                           f"unadjusted {_pct(row.raw_ratio - 1)}): see {ALL_OPS}")
    return row


def _uneven(rows: list[Row], whole: Row, opts: GateOptions) -> list[Row]:
    """Relative verdicts, checked against how evenly the store moved. The speed factor assumes a store's
    operations move together when the machine does; when the store as a whole moved between the sides by more
    than the threshold, they did not move quite alike (a slower disk slows the writes, a slower CPU the reads
    more), and each operation's change relative to the others carries that unevenness. bench_gate's A/A
    false alarms of 2026-11-27 were such: the store +46% and +135% as a whole between two times, and
    ``delete`` +15%, ``get`` +11.5% relative to the others in the same pairs. So while the store moved, a
    relative change is claimed only when it exceeds, by the threshold, the largest relative change of the
    store's other operations; a change of one operation (the others within a few percent) still shows."""
    if whole.ratio is None or abs(math.log(whole.ratio)) <= math.log1p(opts.threshold):
        return rows  # the store held still as a whole: its operations' ratios are what they measure
    out = []
    for r in rows:
        others = [o for o in rows if o is not r and o.raw_ratio is not None and o.ratio]
        if r.verdict not in ("regression", "improvement") or r.raw_ratio is None or not r.ratio or not others:
            out.append(r)
            continue
        widest = max(others, key=lambda o: abs(math.log(o.ratio)))  # type: ignore[arg-type]
        if abs(math.log(r.ratio)) - abs(math.log(widest.ratio)) > math.log1p(opts.threshold):  # type: ignore[arg-type]
            out.append(r)
            continue
        out.append(replace(r, verdict="inconclusive",
                           why=f"{_pct(r.change)} relative to the store's other operations ({r.verdict}, p="
                               f"{r.p_value:.3g}), but the store as a whole moved {_pct(whole.change)} between the "
                               f"sides and its operations did not move alike ({widest.op} {_pct(widest.change)} "
                               f"relative): a change within that unevenness is not claimed. Measure both sides "
                               "interleaved in one job, or on a quieter runner"))
    return out


def against_store(row: Row, vb: list[float], vc: list[float], base: list[Run], cur: list[Run], ref_pct: float,
                  ref: Speed, opts: GateOptions) -> Row:
    """A row judged on raw values (no speed factor at its percentile: too few samples for most operations, e.g.
    p99 of short runs) while the store's speed factor is known at another percentile: the change is claimed
    only when it keeps its verdict judged on each run's value ÷ the store's factor there. Otherwise the store
    as a whole moved as much between the sides (the machine, as :func:`against_machine` says, seen through the
    store's own operations) and the row is inconclusive."""
    if row.verdict not in ("regression", "improvement"):
        return row
    fb, fc = [ref.factor[r.run_id] for r in base], [ref.factor[r.run_id] for r in cur]
    again = _rejudged(row, vb, vc, fb, fc, opts)
    shift = stats.rank_test(fb, fc, opts.alpha).ratio
    what = f"the store as a whole (its p{ref_pct:g} speed over {', '.join(ref.ops)}) {_pct(None if shift is None else shift - 1)}"
    if again.verdict == row.verdict:
        return replace(row, why=f"{row.why}; against {what}: {_pct(again.change)}, {again.verdict}")
    return replace(row, verdict="inconclusive",
                   why=f"{_pct(row.change)} ({row.verdict}, p={row.p_value:.3g}), but {what} between the sides too "
                       f"(against it: {_pct(again.change)}, {again.verdict}): not claimed as this operation's own "
                       "change. Longer runs give this percentile a speed factor of its own")


def _row(store: str, op: str, pct: float, base: list[Run], cur: list[Run], opts: GateOptions,
         notes: list[str], speed: Speed | None = None, ref: tuple[float, Speed] | None = None) -> Row:
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
        if speed is not None and op in speed.ops:
            raw = est
            est = stats.rank_test([v / speed.factor[r.run_id] for v, r in zip(vb, base)],  # type: ignore[operator]
                                  [v / speed.factor[r.run_id] for v, r in zip(vc, cur)], opts.alpha)
            est = stats.Estimate(est.ratio, est.ci, est.p, "mann-whitney, speed-adjusted", est.n, raw.baseline,
                                 raw.current)
            row = decide(store, op, pct, est, opts, relative=True)
            return replace(row, raw_ratio=raw.ratio)
        row = against_machine(decide(store, op, pct, est, opts), vb, vc, base, cur, opts)  # type: ignore[arg-type]
        return row if ref is None else against_store(row, vb, vc, base, cur, *ref, opts)  # type: ignore[arg-type]
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


def machine_probes(run: Run, store: str) -> dict[str, Any] | None:
    """The machine's speed around this store's measurement in the run (:mod:`fridgebench.measure.machine`)."""
    m = _compare(run)["stores"][store].get("machine")
    return m if isinstance(m, dict) else None


def _rejudged(row: Row, vb: list[float], vc: list[float], per_b: list[float], per_c: list[float],
              opts: GateOptions) -> Row:
    """The row judged again on each run's value ÷ that run's reference (a machine probe, a speed factor)."""
    est = stats.rank_test([v / m for v, m in zip(vb, per_b)], [v / m for v, m in zip(vc, per_c)], opts.alpha)
    return decide(row.store, row.op, row.percentile, est, opts)


def against_machine(row: Row, vb: list[float], vc: list[float], base: list[Run], cur: list[Run],
                    opts: GateOptions) -> Row:
    """A change of a store as a whole (its ``all operations`` row; a row judged on raw values) is claimed only
    when it stands against the machine: judged again on each run's value ÷ that run's machine probe (CPU, disk
    flush), it must keep its verdict. When the machine itself moved between the sides, as much as the store,
    the change is the machine's as far as these runs can tell: inconclusive, saying so. A relative row needs no
    such check: the machine's speed cancels in it."""
    if row.verdict not in ("regression", "improvement"):
        return row
    probes = [machine_probes(r, row.store) for r in (*base, *cur)]
    if any(p is None for p in probes):
        return replace(row, why=f"{row.why}; these runs carry no machine probe (written by an older "
                                "fridgebench), so a change of the machine between the sides is not ruled out")
    moved: list[str] = []
    held: list[str] = []
    for res in machine.RESOURCES:
        mb = [p.get(res) for p in probes[:len(base)]]  # type: ignore[union-attr]
        mc = [p.get(res) for p in probes[len(base):]]  # type: ignore[union-attr]
        if any(not v or v <= 0 for v in (*mb, *mc)):
            continue
        shift = stats.rank_test(mb, mc, opts.alpha).ratio  # type: ignore[arg-type]
        again = _rejudged(row, vb, vc, mb, mc, opts)  # type: ignore[arg-type]
        what = f"{machine.label(res)} {_pct(None if shift is None else shift - 1)}"
        (held if again.verdict == row.verdict else moved).append(
            f"{what} (against it the store: {_pct(again.change)}, {again.verdict})")
    if not moved:
        return replace(row, why=f"{row.why}; the machine held still: {'; '.join(held)}" if held else row.why)
    return replace(row, verdict="inconclusive",
                   why=f"{_pct(row.change)} ({row.verdict}, p={row.p_value:.3g}), but the machine moved between the "
                       f"sides too — {'; '.join(moved + held)}: not claimed as the store's own change. Measure both "
                       "sides interleaved in one job, or on a quieter runner")


def decide(store: str, op: str, pct: float, est: stats.Estimate, opts: GateOptions, relative: bool = False) -> Row:
    """The verdict from an estimate; ``relative``: the estimate is of the change relative to the store's other
    operations (speed-adjusted), which the wording says."""
    t = opts.threshold
    rel = " relative to the store's other operations" if relative else ""
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
        return Row(store, op, pct, "regression", f"{_pct(est.ratio - 1)} slower{rel} (p={est.p:.3g}, {ci_txt})", **kw)
    if sig and est.ratio < 1 - t:
        return Row(store, op, pct, "improvement", f"{_pct(est.ratio - 1)} (faster{rel}; p={est.p:.3g}, {ci_txt})",
                   **kw)
    if hi <= 1 + t:
        extra = "; significant but within the threshold" if sig else ""
        faster = "; a larger speed-up is not ruled out" if lo < 1 - t else ""
        return Row(store, op, pct, "unchanged",
                   f"{ci_txt} rules out a regression over {t * 100:g}%{rel}{extra}{faster}", **kw)
    return Row(store, op, pct, "inconclusive",
               f"too noisy: {ci_txt} allows a regression over {t * 100:g}%{rel} (p={est.p:.3g}); more repeats "
               "narrow it", **kw)


def values_for_export(runs: list[Run], store: str, op: str, pct: float) -> list[float]:
    """Per-run values of one percentile (for the dashboard exports)."""
    vals = [_run_value(r, store, op, pct) for r in runs]
    return [v for v in vals if v is not None]

