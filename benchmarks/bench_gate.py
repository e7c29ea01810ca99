"""Does `fridgebench gate` neither cry wolf nor sleep — on this (noisy) machine?

Pairs of baseline/current run sets are measured on the same servers:

* **A/A** — both sides are the same code and servers: any "regression" verdict is a false alarm.
* **A/B** — the current side is really slower on one operation: a statement-level trigger on
  ``user_fridge_ingredients`` runs on every INSERT, i.e. on every ingredient *add* (no other
  operation inserts there). By default (``--slowed-by sleep``) it waits: on a share of the adds
  (``random() < share``) the backend sleeps 1 ms (``pg_sleep``'s finest step) before the row is
  written, holding the add's transaction open and burning no CPU — a slow path taken by some
  adds, as a lock wait or a remote call would be. The share is calibrated at the start so the add
  p50 rises about ``--slowdown`` (25%). ``--slowed-by burn`` (the earlier runs) burns CPU in a
  PL/pgSQL loop instead: on 2 cores shared with the driver that CPU also delays the other
  operations' tails, so "no other operation flagged" is then partly a test of the slowdown, not
  of the gate. Nothing is edited in any results file: the slowdown is in the server path, and the
  runs measure it.

Every run is a real ``fridgebench compare`` (subprocess, ``--stores postgres,redis-atomic``)
against servers this benchmark starts once (embedded binaries). Within a pair, the runs of the
two sides alternate (baseline, slowed, then the reverse order...) so drift of the machine falls
on both alike. The A/A pair *i* is pair *i*'s baseline against pair *i+1*'s (the same code,
measured about a minute later: more drift between them than within an A/B pair, so a harder
test of false alarms); one more baseline is measured for the last. Runs kept by the earlier
layout (an own "aa" side per pair) are still read by ``--from-runs``.

Each pair is judged by the gate (threshold 10%, p50 and p99) with all its repeats (rank test),
speed-adjusted (the default) and ``--absolute``, and with subsets — 1 run a side (bootstrap over
seconds), 4, ... — to show how many repeats the gate needs; and by two naive rules on the first
run of each side: "current > 200% of previous" and "current > 110% of previous", per store × op
at p50 and p99.

Targets: A/A at most 1 pair of 20 with a regression verdict (goal 0); A/B at least 19 of 20
pairs with *postgres add p50* a regression and no other operation flagged.

    .venv/bin/python benchmarks/bench_gate.py [--pairs 20] [--repeats 5] [--duration 6] [--quick] [--keep DIR]
    .venv/bin/python benchmarks/bench_gate.py --from-runs DIR     # judge kept runs again, measuring nothing

Not part of the test run; takes long (see benchmarks/README.md). Exit 0 when the targets are
met, 3 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from fridgebench.gate.judge import GateOptions, judge, machine_probes  # noqa: E402
from fridgebench.measure.results import _cpu_model  # noqa: E402
from fridgebench.measure.runs import Run, load_runs  # noqa: E402
from fridgebench.provision import ProvisionOptions, provisioned  # noqa: E402

console = Console(stderr=True, highlight=False, width=140)
TARGET_OP = ("postgres", "add")

BURN_SQL = """
CREATE OR REPLACE FUNCTION fb_bench_burn(n integer) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE x bigint := 0;
BEGIN
  FOR i IN 1..n LOOP x := x + (i % 7); END LOOP;
  RETURN x;
END $$;
"""
TRIGGER_SQL = """
CREATE OR REPLACE FUNCTION fb_bench_slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN {body} RETURN NULL; END $$;
DROP TRIGGER IF EXISTS fb_bench_slow ON user_fridge_ingredients;
CREATE TRIGGER fb_bench_slow BEFORE INSERT ON user_fridge_ingredients
  FOR EACH STATEMENT EXECUTE FUNCTION fb_bench_slow();
"""
DROP_SQL = "DROP TRIGGER IF EXISTS fb_bench_slow ON user_fridge_ingredients"
SLEEP_S = 0.001  # pg_sleep waits in whole milliseconds (WaitLatch's timeout), so the dose is the share of adds


class Bench:
    def __init__(self, args: argparse.Namespace, dsn: str, url: str, work: Path) -> None:
        self.args, self.dsn, self.url, self.work = args, dsn, url, work
        self.burn_n = 0  # --slowed-by burn: the loop's iterations
        self.share = 0.0  # --slowed-by sleep: the share of adds that wait SLEEP_S
        self.runs = 0

    def compare(self, out: Path) -> Path:
        a = self.args
        before = set(out.iterdir()) if out.exists() else set()
        cmd = [sys.executable, "-m", "fridgebench.cli", "compare", "--stores", a.stores,
               "--duration", str(a.duration), "--warmup", str(a.warmup), "--sessions", str(a.sessions),
               "--rate", str(a.rate), "--postgres-dsn", self.dsn, "--redis-url", self.url, "--reset",
               "--no-report", "--no-profile", "--out", str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
        if res.returncode != 0:
            raise SystemExit(f"compare failed ({res.returncode}): {res.stderr[-1500:]}")
        self.runs += 1
        (new,) = set(out.iterdir()) - before
        return new

    def slow(self, on: bool) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            if not on:
                c.execute(DROP_SQL)  # type: ignore[arg-type]
            elif self.args.slowed_by == "sleep":
                c.execute(TRIGGER_SQL.format(  # type: ignore[arg-type]
                    body=f"IF random() < {self.share:.4f} THEN PERFORM pg_sleep({SLEEP_S}); END IF;"))
            else:
                c.execute(TRIGGER_SQL.format(body=f"PERFORM fb_bench_burn({self.burn_n});"))  # type: ignore[arg-type]

    def calibrate(self) -> dict[str, Any]:
        """Pick the trigger's dose (the share of adds that sleep, or the loop's iterations) so an add takes about
        --slowdown longer at p50, and check it.

        The first guess is from the idle cost of the dose (a sleep's, or the loop's: under load the loop costs
        far more, 2.6× on 2026-11-27, and a sleep moves the p50 of a mixture by less than its share × its
        length); 2 plain and 2 slowed runs with it, compared relative to the store's other operations (raw
        figures swing 2× with the machine), scale the dose; 3 slowed and 3 plain runs, interleaved, check the
        result (medians). ``--slow-share`` / ``--burn-iterations`` skip the guess."""
        sleep = self.args.slowed_by == "sleep"
        with psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute(BURN_SQL)  # type: ignore[arg-type]
            per = []
            for n in ((1,) if sleep else (20_000, 40_000)):
                t = []
                for _ in range(15):
                    t0 = time.perf_counter()
                    c.execute(f"SELECT pg_sleep({SLEEP_S})" if sleep else  # type: ignore[arg-type]
                              f"SELECT fb_bench_burn({n})")
                    t.append(time.perf_counter() - t0)
                per.append((n, statistics.median(t)))
        # a sleep's length; or an iteration's cost, from the difference of two loop sizes
        us_per_dose = per[0][1] * 1e6 if sleep else max(1e-6, (per[1][1] - per[0][1]) / (per[1][0] - per[0][0]) * 1e6)

        def add_p50(slowed: bool) -> tuple[float, float]:
            """The run's add p50, raw and relative to the store's other operations in the run (one run's raw
            figures swing 2× with the machine here; the ratio holds steady)."""
            if slowed:
                self.slow(True)
            try:
                run = load_runs(self.compare(self.work / "calibration" / ("b" if slowed else "a")))[-1]
                return _value(run, *TARGET_OP, 50.0), _relative(run)
            finally:
                if slowed:
                    self.slow(False)

        def set_dose(x: float) -> None:
            if sleep:
                self.share = min(1.0, max(0.01, x))
            else:
                self.burn_n = max(1, int(x))

        def dose() -> float:
            return self.share if sleep else self.burn_n

        plain = [add_p50(False), add_p50(False)]
        base = statistics.median(raw for raw, _ in plain)
        first: list[tuple[float, float]] = []
        first_dose = 0.0
        given = self.args.slow_share if sleep else self.args.burn_iterations
        if given:  # sized by earlier runs on this machine: skip the first guess
            set_dose(given)
        else:  # a guess from the dose's idle cost, then scaled by the slowdown it gave (relative medians)
            set_dose(self.args.slowdown * base / us_per_dose)
            first_dose = dose()
            first = [add_p50(True), add_p50(True)]
            got1 = statistics.median(r for _, r in first) / statistics.median(r for _, r in plain) - 1
            set_dose(first_dose * self.args.slowdown / max(got1, 0.01))
        slowed = []
        for _ in range(3):
            slowed.append(add_p50(True))
            plain.append(add_p50(False))
        got = statistics.median(r for _, r in slowed) / statistics.median(r for _, r in plain) - 1
        got_raw = statistics.median(x for x, _ in slowed) / statistics.median(x for x, _ in plain) - 1
        return {"slowed_by": self.args.slowed_by, "add_p50_us": base, "add_p50_plain_us": plain,
                "add_p50_first_guess_us": first, "first_guess": first_dose, "add_p50_slowed_us": slowed,
                **({"share": self.share, "sleep_us": round(us_per_dose, 1)} if sleep else
                   {"iterations": self.burn_n, "us_per_iteration": round(us_per_dose, 4)}),
                "slowdown_measured": round(got, 3), "slowdown_measured_raw": round(got_raw, 3)}


def _value(run: Run, store: str, op: str, pct: float) -> float:
    h = run.hlog(store, op)
    assert h is not None
    v = h.percentile(pct)
    assert v is not None
    return v


def _relative(run: Run) -> float:
    """add p50 ÷ the median p50 of the store's other operations in the same run."""
    ops = run.doc.sections["compare"]["stores"][TARGET_OP[0]]["ops"]
    return _value(run, *TARGET_OP, 50.0) / statistics.median(_value(run, TARGET_OP[0], op, 50.0)
                                                             for op in ops if op != TARGET_OP[1])


def _run_cpu(pair: Path) -> str:
    run = load_runs(pair / "base")[0]
    return f"{run.doc.environment.cpu_model} × {run.doc.environment.cpu_count}"


def naive(base: Run, cur: Run, factor: float, pcts: tuple[float, ...]) -> set[str]:
    """What a "current > factor × previous" rule flags, on one run a side."""
    out = set()
    for store, s in base.doc.sections["compare"]["stores"].items():
        for op in s["ops"]:
            if op not in cur.doc.sections["compare"]["stores"].get(store, {}).get("ops", {}):
                continue
            for p in pcts:
                if _value(cur, store, op, p) > factor * _value(base, store, op, p):
                    out.add(f"{store} {op} p{p:g}")
    return out


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt()


def main() -> int:
    # Ctrl-C or SIGTERM (even when started in the background, where SIGINT is ignored): unwind, so the
    # servers started below are stopped and the trigger is dropped
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5, help="runs per side of a pair")
    ap.add_argument("--duration", type=float, default=6.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--stores", default="postgres,redis-atomic",
                    help="compare's --stores (postgres alone halves the time a run takes; the slowdown is there)")
    ap.add_argument("--slowdown", type=float, default=0.25)
    ap.add_argument("--slowed-by", choices=("sleep", "burn"), default="sleep",
                    help="how the trigger slows the adds: sleep 1 ms on a share of them (no CPU), or burn CPU on each")
    ap.add_argument("--slow-share", type=float, default=0.0,
                    help="--slowed-by sleep: the share of adds that sleep, instead of sizing it from --slowdown")
    ap.add_argument("--burn-iterations", type=int, default=0,
                    help="the trigger's loop size, instead of sizing it from --slowdown (under load the added "
                         "latency is not linear in the loop: on 2026-11-26 993 iterations gave +16%%, 2,872 gave +45%%)")
    ap.add_argument("--threshold", type=float, default=10.0, help="the gate's --threshold, percent")
    ap.add_argument("--quick", action="store_true", help="2 pairs x 4 repeats, 4 s runs: checks the bench works")
    ap.add_argument("--keep", type=Path, help="keep the runs in this folder (default: a temp folder, removed)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    ap.add_argument("--from-runs", type=Path, metavar="DIR",
                    help="judge the runs an earlier --keep DIR kept, without measuring (e.g. after a change to the gate)")
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.repeats, args.duration = 2, 4, 4.0
    if args.from_runs:
        return _judge(args, args.from_runs, sorted(args.from_runs.glob("pair*")),
                      json.loads((args.from_runs / "calibration.json").read_text()), time.perf_counter(), 0)
    work = args.keep or Path(tempfile.mkdtemp(prefix="fb-bench-gate-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _main(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _main(args: argparse.Namespace, work: Path) -> int:
    t_start = time.perf_counter()
    try:
        server_root = Path(tempfile.mkdtemp(prefix="fb-bench-gate-servers-"))
        os.chmod(server_root, 0o711)
        with provisioned(ProvisionOptions(run_dir=str(server_root))) as ep:
            bench = Bench(args, ep.postgres_dsn, ep.redis_url, work)
            cal = bench.calibrate()
            (work / "calibration.json").write_text(json.dumps(cal, indent=2))
            how = (f"{cal['share']:.1%} of the adds sleep {SLEEP_S * 1e3:g} ms (~{cal['sleep_us']:.0f} µs on an idle "
                   "server)" if args.slowed_by == "sleep" else
                   f"the trigger burns {cal['iterations']:,} iterations (~{cal['us_per_iteration'] * cal['iterations']:.0f}"
                   " µs on an idle server)")
            console.print(f"calibration: add p50 {cal['add_p50_us']:.0f} µs; {how}; 3 slowed vs 5 plain runs: add p50 "
                          f"{cal['slowdown_measured'] * 100:+.0f}% relative to the store's other operations, "
                          f"{cal['slowdown_measured_raw'] * 100:+.0f}% raw (medians)")
            pairs = []
            for i in range(args.pairs + 1):  # one more baseline: the last A/A pair's current side
                d = work / f"pair{i:02d}"
                for j in range(args.repeats):
                    order = ["base", "ab"] if (i + j) % 2 == 0 else ["ab", "base"]
                    for side in (order if i < args.pairs else ["base"]):
                        if side == "ab":
                            bench.slow(True)
                        try:
                            bench.compare(d / side)
                        finally:
                            if side == "ab":
                                bench.slow(False)
                pairs.append(d)
                console.print(f"pair {i + 1}/{args.pairs + 1} measured ({bench.runs} runs, "
                              f"{(time.perf_counter() - t_start) / 60:.1f} min)")
    finally:
        shutil.rmtree(server_root, ignore_errors=True)
    return _judge(args, work, pairs, cal, t_start, bench.runs)


def _judge(args: argparse.Namespace, work: Path, pairs: list[Path], cal: dict[str, Any], t_start: float,
           measured: int) -> int:
    pcts = (50.0, 99.0)
    target = f"{TARGET_OP[0]} {TARGET_OP[1]} p50"
    repeats = min(len(load_runs(pairs[0] / "base")), len(load_runs(pairs[0] / "ab"))) if args.from_runs else args.repeats
    args.repeats = repeats
    if args.from_runs:  # the title's figures: what the kept runs ran
        load = load_runs(pairs[0] / "base")[0].doc.scenario.get("load", {})
        args.duration, args.rate = load.get("duration_seconds", args.duration), load.get("rate", args.rate)
    subsets = sorted({1, args.repeats, *(k for k in (4, 5, 7, 10) if k < args.repeats)})
    methods: dict[str, dict[str, Any]] = {}

    def tally(name: str) -> dict[str, Any]:
        return methods.setdefault(name, {"aa_false_alarm_pairs": 0, "aa_inconclusive_rows": 0, "aa_rows": 0,
                                         "ab_caught": 0, "ab_untouched_flagged_pairs": 0, "ab_target_inconclusive": 0,
                                         "aa_machine_held_back": 0, "ab_machine_held_back": 0, "pairs": 0})

    machine_shift: dict[str, list[float]] = {"cpu_us": [], "flush_us": [], "store": []}  # A/A: current ÷ baseline, medians

    shifts: dict[str, list[float]] = {"aa": [], "ab": []}  # median add p50 of a side ÷ the baseline's, − 1
    rel_shifts: dict[str, list[float]] = {"aa": [], "ab": []}  # the same, of add ÷ the store's other operations
    spread: list[float] = []  # coefficient of variation of add p50 across a pair's baseline runs: raw, relative
    rel_spread: list[float] = []
    ab_pairs = [d for d in pairs if (d / "ab").exists()]
    for d, nxt in zip(ab_pairs, [*pairs[1:], pairs[0]]):
        base, ab = (load_runs(d / s)[:args.repeats] for s in ("base", "ab"))
        # A/A: this pair's baseline against the next pair's (the same code, measured a minute later), or,
        # in runs kept by the earlier three-sided layout, the pair's own "aa" side
        aa = load_runs(d / "aa" if (d / "aa").exists() else nxt / "base")[:args.repeats]
        b50 = statistics.median(_value(r, *TARGET_OP, 50.0) for r in base)
        rb50 = statistics.median(_relative(r) for r in base)
        for name, side in (("aa", aa), ("ab", ab)):
            shifts[name].append(statistics.median(_value(r, *TARGET_OP, 50.0) for r in side) / b50 - 1)
            rel_shifts[name].append(statistics.median(_relative(r) for r in side) / rb50 - 1)
        raw_b = [_value(r, *TARGET_OP, 50.0) for r in base]
        rel_b = [_relative(r) for r in base]
        spread.append(statistics.stdev(raw_b) / statistics.mean(raw_b))
        rel_spread.append(statistics.stdev(rel_b) / statistics.mean(rel_b))
        for k in subsets:
            for adjust in ((True, False) if k >= 4 else (True,)):  # the speed adjustment needs the rank test
                name = f"gate, {k} run{'s' if k > 1 else ''} a side" + ("" if k < 4 else
                                                                        " (speed-adjusted)" if adjust else " --absolute")
                m = tally(name)
                m["pairs"] += 1
                opts = GateOptions(threshold=args.threshold / 100.0, percentiles=pcts, adjust=adjust)
                r_aa = judge(base[:k], aa[:k], opts)
                r_ab = judge(base[:k], ab[:k], opts)
                m["aa_false_alarm_pairs"] += bool(r_aa.count("regression"))
                m["aa_inconclusive_rows"] += r_aa.count("inconclusive")
                # whole-store verdicts the machine probe held back (the machine moved as much as the store)
                m["aa_machine_held_back"] += sum("the machine moved between the sides" in r.why for r in r_aa.rows)
                m["ab_machine_held_back"] += sum("the machine moved between the sides" in r.why for r in r_ab.rows)
                m["aa_rows"] += len(r_aa.rows)
                v = {r.name: r.verdict for r in r_ab.rows}
                m["ab_caught"] += v.get(target) == "regression"
                m["ab_target_inconclusive"] += v.get(target) == "inconclusive"
                # any other row flagged: another operation, or a store's "all operations"
                m["ab_untouched_flagged_pairs"] += any(x == "regression" and n != target and
                                                       n.split(" p")[0] != target.split(" p")[0] for n, x in v.items())
        for res in ("cpu_us", "flush_us"):
            mb = [(machine_probes(r, TARGET_OP[0]) or {}).get(res) for r in base]
            mc = [(machine_probes(r, TARGET_OP[0]) or {}).get(res) for r in aa]
            if all(mb) and all(mc):
                machine_shift[res].append(statistics.median(mc) / statistics.median(mb) - 1)  # type: ignore[type-var]
        machine_shift["store"].append(statistics.median(
            statistics.median(_value(r, TARGET_OP[0], op, 50.0) for r in aa) /
            statistics.median(_value(r, TARGET_OP[0], op, 50.0) for r in base)
            for op in base[0].doc.sections["compare"]["stores"][TARGET_OP[0]]["ops"]) - 1)
        for factor, name in ((2.0, "naive: > 200% of previous"), (1.10, "naive: > 110% of previous")):
            m = tally(name)
            m["pairs"] += 1
            m["aa_false_alarm_pairs"] += bool(naive(base[0], aa[0], factor, pcts))
            flagged = naive(base[0], ab[0], factor, pcts)
            m["ab_caught"] += target in flagged
            m["ab_untouched_flagged_pairs"] += any(f.split(" p")[0] != target.split(" p")[0] for f in flagged)

    n = len(ab_pairs)
    t = Table(title=f"bench_gate — {n} pairs, {args.repeats} runs a side, {args.duration:g} s runs at "
                    f"{args.rate:g} ops/s; A/B: {TARGET_OP[0]} {TARGET_OP[1]} slowed ~{args.slowdown:.0%} in the server "
                    f"({cal.get('slowed_by', 'burn')})",
              title_justify="left")
    for col in ("method", "A/A false alarms (pairs)", "A/A inconclusive rows", "A/B caught (add p50)",
                "A/B untouched ops flagged (pairs)", "held back by the machine probe (A/A, A/B rows)"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for name, m in methods.items():
        inc = f"{m['aa_inconclusive_rows']}/{m['aa_rows']}" if m["aa_rows"] else "-"
        t.add_row(name, f"{m['aa_false_alarm_pairs']}/{n}", inc,
                  f"{m['ab_caught']}/{n}" + (f" ({m['ab_target_inconclusive']} inconcl.)" if m["ab_target_inconclusive"] else ""),
                  f"{m['ab_untouched_flagged_pairs']}/{n}",
                  f"{m['aa_machine_held_back']}, {m['ab_machine_held_back']}" if m["aa_rows"] else "-")
    console.print(t)
    if machine_shift["cpu_us"] and len(machine_shift["cpu_us"]) == len(machine_shift["store"]):
        pairs_txt = "; ".join(f"store {s:+.0%} cpu {c:+.0%} flush {f:+.0%}" for s, c, f in
                              zip(machine_shift["store"], machine_shift["cpu_us"], machine_shift["flush_us"]))
        console.print(f"A/A pairs, current ÷ baseline (medians of runs): {TARGET_OP[0]}'s median op p50, and the machine "
                      f"probe — {pairs_txt}")
    q = {k: statistics.quantiles(v, n=4) if len(v) > 1 else v * 3 for k, v in shifts.items()}
    console.print(f"{target} per pair, median of a side's runs ÷ the baseline's: A/B {statistics.median(shifts['ab']):+.0%} "
                  f"(quartiles {q['ab'][0]:+.0%} … {q['ab'][2]:+.0%}, range {min(shifts['ab']):+.0%} … "
                  f"{max(shifts['ab']):+.0%}); A/A {statistics.median(shifts['aa']):+.0%} (range "
                  f"{min(shifts['aa']):+.0%} … {max(shifts['aa']):+.0%})")
    qr = statistics.quantiles(rel_shifts["ab"], n=4) if n > 1 else rel_shifts["ab"] * 3
    console.print(f"the same relative to the store's other operations (what the speed-adjusted gate sees): A/B "
                  f"{statistics.median(rel_shifts['ab']):+.0%} (quartiles {qr[0]:+.0%} … {qr[2]:+.0%}, range "
                  f"{min(rel_shifts['ab']):+.0%} … {max(rel_shifts['ab']):+.0%}); A/A "
                  f"{statistics.median(rel_shifts['aa']):+.0%}")
    console.print(f"spread of {target} between a pair's baseline runs (CV, median over pairs): raw "
                  f"{statistics.median(spread):.0%}, relative to the store's other operations "
                  f"{statistics.median(rel_spread):.0%}")
    minutes = (time.perf_counter() - t_start) / 60
    if measured:
        console.print(f"CPU: {_cpu_model()} × {os.cpu_count()}; {measured} compare runs in {minutes:.1f} min "
                      f"({minutes * 60 / max(measured, 1):.0f} s a run); load average now {os.getloadavg()[0]:.2f}")
    else:
        console.print(f"judged the runs kept in {work} (CPU then: {_run_cpu(pairs[0])})")
    full = methods[f"gate, {args.repeats} run{'s' if args.repeats > 1 else ''} a side" +
                   (" (speed-adjusted)" if args.repeats >= 4 else "")]
    aa_ok = full["aa_false_alarm_pairs"] <= max(1, n // 20)
    ab_ok = full["ab_caught"] >= n - max(1, n // 20) and full["ab_untouched_flagged_pairs"] == 0
    console.print(f"targets ({args.repeats} runs a side): A/A ≤ {max(1, n // 20)} false alarm: "
                  f"{'met' if aa_ok else 'MISSED'}; A/B ≥ {n - max(1, n // 20)} caught, untouched not flagged: "
                  f"{'met' if ab_ok else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "calibration": cal,
                                         "methods": methods, "shifts": shifts, "relative_shifts": rel_shifts,
                                         "baseline_cv": {"raw": spread, "relative": rel_spread},
                                         "aa_machine_shift": machine_shift,
                                         "cpu": _cpu_model(), "runs": measured, "minutes": round(minutes, 1)},
                                        indent=2))
    return 0 if aa_ok and ab_ok else 3


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        console.print("interrupted: the servers were stopped")
        sys.exit(130)
