"""Does `fridgebench gate` neither cry wolf nor sleep — on this (noisy) machine?

Pairs of baseline/current run sets are measured on the same servers:

* **A/A** — both sides are the same code and servers: any "regression" verdict is a false alarm.
* **A/B** — the current side is really slower on one operation: a statement-level trigger on
  ``user_fridge_ingredients`` burns CPU inside PostgreSQL on every INSERT, i.e. on every
  ingredient *add* (no other operation inserts there). Its work is calibrated at the start to
  about ``--slowdown`` (25%) of the measured add p50. Nothing is edited in any results file:
  the slowdown is in the server path, and the runs measure it.

Every run is a real ``fridgebench compare`` (subprocess, ``--stores postgres,redis-atomic``)
against servers this benchmark starts once (embedded binaries). Within a pair, the runs of the
sides alternate (A/A baseline, A/A current, A/B current, then the reverse order...) so drift
of the machine falls on every side alike; the A/A and A/B pairs share their baseline runs.

Each pair is judged by the gate (threshold 10%, p50 and p99) with all its repeats (rank test),
and with subsets — 1 run a side (bootstrap over seconds), 4, ... — to show how many repeats the
gate needs; and by two naive rules on the first run of each side: "current > 200% of previous"
and "current > 110% of previous", per store × op at p50 and p99.

Targets: A/A at most 1 pair of 20 with a regression verdict (goal 0); A/B at least 19 of 20
pairs with *postgres add p50* a regression and no other operation flagged.

    .venv/bin/python benchmarks/bench_gate.py [--pairs 20] [--repeats 5] [--duration 6] [--quick]

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

from fridgebench.gate.judge import GateOptions, judge  # noqa: E402
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
BEGIN PERFORM fb_bench_burn({n}); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS fb_bench_slow ON user_fridge_ingredients;
CREATE TRIGGER fb_bench_slow BEFORE INSERT ON user_fridge_ingredients
  FOR EACH STATEMENT EXECUTE FUNCTION fb_bench_slow();
"""
DROP_SQL = "DROP TRIGGER IF EXISTS fb_bench_slow ON user_fridge_ingredients"


class Bench:
    def __init__(self, args: argparse.Namespace, dsn: str, url: str, work: Path) -> None:
        self.args, self.dsn, self.url, self.work = args, dsn, url, work
        self.burn_n = 0
        self.runs = 0

    def compare(self, out: Path) -> Path:
        a = self.args
        before = set(out.iterdir()) if out.exists() else set()
        cmd = [sys.executable, "-m", "fridgebench.cli", "compare", "--stores", "postgres,redis-atomic",
               "--duration", str(a.duration), "--warmup", str(a.warmup), "--sessions", str(a.sessions),
               "--rate", str(a.rate), "--postgres-dsn", self.dsn, "--redis-url", self.url, "--reset",
               "--no-report", "--out", str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
        if res.returncode != 0:
            raise SystemExit(f"compare failed ({res.returncode}): {res.stderr[-1500:]}")
        self.runs += 1
        (new,) = set(out.iterdir()) - before
        return new

    def slow(self, on: bool) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute(TRIGGER_SQL.format(n=self.burn_n) if on else DROP_SQL)  # type: ignore[arg-type]

    def calibrate(self) -> dict[str, Any]:
        """Pick the trigger's work so an add takes about --slowdown longer at p50, and check it.

        The trigger costs more than its loop (firing it, entering PL/pgSQL): a first guess from the loop's
        cost alone overshot (+45% for a 25% target). So: 2 plain and 2 slowed runs with the first guess
        give the trigger's fixed cost; the loop is then sized for the rest; 3 slowed and 3 plain runs,
        interleaved, check the result (medians: one run on a busy machine misleads)."""
        with psycopg.connect(self.dsn, autocommit=True) as c:
            c.execute(BURN_SQL)  # type: ignore[arg-type]
            per = []
            for n in (20_000, 40_000):
                t = []
                for _ in range(15):
                    t0 = time.perf_counter()
                    c.execute("SELECT fb_bench_burn(%s)", (n,))
                    t.append(time.perf_counter() - t0)
                per.append((n, statistics.median(t)))
        (n1, t1), (n2, t2) = per
        us_per_iter = max(1e-6, (t2 - t1) / (n2 - n1) * 1e6)

        def add_p50(slowed: bool) -> float:
            if slowed:
                self.slow(True)
            try:
                d = self.work / "calibration" / ("b" if slowed else "a")
                return _value(load_runs(self.compare(d))[-1], *TARGET_OP, 50.0)
            finally:
                if slowed:
                    self.slow(False)

        plain = [add_p50(False), add_p50(False)]
        base = statistics.median(plain)
        target_us = self.args.slowdown * base
        first: list[float] = []
        fixed_us = 0.0
        first_n = 0
        if self.args.burn_iterations:  # sized by earlier runs on this machine: skip the first guess
            self.burn_n = self.args.burn_iterations
        else:
            self.burn_n = max(1, int(target_us / us_per_iter))
            first = [add_p50(True), add_p50(True)]
            fixed_us = max(0.0, statistics.median(first) - base - self.burn_n * us_per_iter)
            first_n = self.burn_n
            self.burn_n = max(1, int((target_us - fixed_us) / us_per_iter))
        slowed = []
        for _ in range(3):
            slowed.append(add_p50(True))
            plain.append(add_p50(False))
        got = statistics.median(slowed) / statistics.median(plain) - 1
        return {"add_p50_us": base, "add_p50_plain_us": plain, "add_p50_first_guess_us": first,
                "first_guess_iterations": first_n, "trigger_fixed_us": round(fixed_us, 1),
                "add_p50_slowed_us": slowed, "us_per_iteration": round(us_per_iter, 4),
                "iterations": self.burn_n, "slowdown_measured": round(got, 3)}


def _value(run: Run, store: str, op: str, pct: float) -> float:
    h = run.hlog(store, op)
    assert h is not None
    v = h.percentile(pct)
    assert v is not None
    return v


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
    ap.add_argument("--slowdown", type=float, default=0.25)
    ap.add_argument("--burn-iterations", type=int, default=0,
                    help="the trigger's loop size, instead of sizing it from --slowdown (under load the added "
                         "latency is not linear in the loop: on 2026-11-26 993 iterations gave +16%%, 2,872 gave +45%%)")
    ap.add_argument("--threshold", type=float, default=10.0, help="the gate's --threshold, percent")
    ap.add_argument("--quick", action="store_true", help="2 pairs x 4 repeats, 4 s runs: checks the bench works")
    ap.add_argument("--keep", type=Path, help="keep the runs in this folder (default: a temp folder, removed)")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()
    if args.quick:
        args.pairs, args.repeats, args.duration = 2, 4, 4.0
    work = args.keep or Path(tempfile.mkdtemp(prefix="fb-bench-gate-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _main(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _main(args: argparse.Namespace, work: Path) -> int:
    t_start = time.perf_counter()
    pcts = (50.0, 99.0)
    opts = GateOptions(threshold=args.threshold / 100.0, percentiles=pcts)
    target = f"{TARGET_OP[0]} {TARGET_OP[1]} p50"
    try:
        server_root = Path(tempfile.mkdtemp(prefix="fb-bench-gate-servers-"))
        os.chmod(server_root, 0o711)
        with provisioned(ProvisionOptions(run_dir=str(server_root))) as ep:
            bench = Bench(args, ep.postgres_dsn, ep.redis_url, work)
            cal = bench.calibrate()
            console.print(f"calibration: add p50 {cal['add_p50_us']:.0f} µs; the trigger's fixed cost ~"
                          f"{cal['trigger_fixed_us']:.0f} µs, then its loop burns {cal['iterations']:,} iterations "
                          f"(~{cal['us_per_iteration'] * cal['iterations']:.0f} µs); 3 slowed vs 5 plain runs measured "
                          f"{cal['slowdown_measured'] * 100:+.0f}% on add p50 (medians)")
            pairs = []
            for i in range(args.pairs):
                d = work / f"pair{i:02d}"
                for j in range(args.repeats):
                    order = ["base", "aa", "ab"] if (i + j) % 2 == 0 else ["ab", "aa", "base"]
                    for side in order:
                        if side == "ab":
                            bench.slow(True)
                        try:
                            bench.compare(d / side)
                        finally:
                            if side == "ab":
                                bench.slow(False)
                pairs.append(d)
                console.print(f"pair {i + 1}/{args.pairs} measured ({bench.runs} runs, "
                              f"{(time.perf_counter() - t_start) / 60:.1f} min)")
    finally:
        shutil.rmtree(server_root, ignore_errors=True)

    subsets = sorted({1, args.repeats, *(k for k in (4, 5, 7) if k < args.repeats)})
    methods: dict[str, dict[str, Any]] = {}

    def tally(name: str) -> dict[str, Any]:
        return methods.setdefault(name, {"aa_false_alarm_pairs": 0, "aa_inconclusive_rows": 0, "aa_rows": 0,
                                         "ab_caught": 0, "ab_untouched_flagged_pairs": 0, "ab_target_inconclusive": 0,
                                         "pairs": 0})

    shifts: dict[str, list[float]] = {"aa": [], "ab": []}  # median add p50 of a side ÷ the baseline's, − 1
    for d in pairs:
        base, aa, ab = (load_runs(d / s) for s in ("base", "aa", "ab"))
        b50 = statistics.median(_value(r, *TARGET_OP, 50.0) for r in base)
        for name, side in (("aa", aa), ("ab", ab)):
            shifts[name].append(statistics.median(_value(r, *TARGET_OP, 50.0) for r in side) / b50 - 1)
        for k in subsets:
            m = tally(f"gate, {k} run{'s' if k > 1 else ''} a side")
            m["pairs"] += 1
            r_aa = judge(base[:k], aa[:k], opts)
            r_ab = judge(base[:k], ab[:k], opts)
            m["aa_false_alarm_pairs"] += bool(r_aa.count("regression"))
            m["aa_inconclusive_rows"] += r_aa.count("inconclusive")
            m["aa_rows"] += len(r_aa.rows)
            v = {r.name: r.verdict for r in r_ab.rows}
            m["ab_caught"] += v.get(target) == "regression"
            m["ab_target_inconclusive"] += v.get(target) == "inconclusive"
            m["ab_untouched_flagged_pairs"] += any(x == "regression" and n.split(" p")[0] != target.split(" p")[0]
                                                   for n, x in v.items())
        for factor, name in ((2.0, "naive: > 200% of previous"), (1.10, "naive: > 110% of previous")):
            m = tally(name)
            m["pairs"] += 1
            m["aa_false_alarm_pairs"] += bool(naive(base[0], aa[0], factor, pcts))
            flagged = naive(base[0], ab[0], factor, pcts)
            m["ab_caught"] += target in flagged
            m["ab_untouched_flagged_pairs"] += any(f.split(" p")[0] != target.split(" p")[0] for f in flagged)

    n = len(pairs)
    t = Table(title=f"bench_gate — {n} pairs, {args.repeats} runs a side, {args.duration:g} s runs at "
                    f"{args.rate:g} ops/s; A/B: {TARGET_OP[0]} {TARGET_OP[1]} slowed ~{args.slowdown:.0%} in the server",
              title_justify="left")
    for col in ("method", "A/A false alarms (pairs)", "A/A inconclusive rows", "A/B caught (add p50)",
                "A/B untouched ops flagged (pairs)"):
        t.add_column(col, justify="left" if col == "method" else "right")
    for name, m in methods.items():
        inc = f"{m['aa_inconclusive_rows']}/{m['aa_rows']}" if m["aa_rows"] else "-"
        t.add_row(name, f"{m['aa_false_alarm_pairs']}/{n}", inc,
                  f"{m['ab_caught']}/{n}" + (f" ({m['ab_target_inconclusive']} inconcl.)" if m["ab_target_inconclusive"] else ""),
                  f"{m['ab_untouched_flagged_pairs']}/{n}")
    console.print(t)
    q = {k: statistics.quantiles(v, n=4) if len(v) > 1 else v * 3 for k, v in shifts.items()}
    console.print(f"{target} per pair, median of a side's runs ÷ the baseline's: A/B {statistics.median(shifts['ab']):+.0%} "
                  f"(quartiles {q['ab'][0]:+.0%} … {q['ab'][2]:+.0%}, range {min(shifts['ab']):+.0%} … "
                  f"{max(shifts['ab']):+.0%}); A/A {statistics.median(shifts['aa']):+.0%} (range "
                  f"{min(shifts['aa']):+.0%} … {max(shifts['aa']):+.0%})")
    minutes = (time.perf_counter() - t_start) / 60
    console.print(f"CPU: {_cpu_model()} × {os.cpu_count()}; {bench.runs} compare runs in {minutes:.1f} min "
                  f"({minutes * 60 / max(bench.runs, 1):.0f} s a run); load average now {os.getloadavg()[0]:.2f}")
    full = methods[f"gate, {args.repeats} run{'s' if args.repeats > 1 else ''} a side"]
    aa_ok = full["aa_false_alarm_pairs"] <= max(1, n // 20)
    ab_ok = full["ab_caught"] >= n - max(1, n // 20) and full["ab_untouched_flagged_pairs"] == 0
    console.print(f"targets ({args.repeats} runs a side): A/A ≤ {max(1, n // 20)} false alarm: "
                  f"{'met' if aa_ok else 'MISSED'}; A/B ≥ {n - max(1, n // 20)} caught, untouched not flagged: "
                  f"{'met' if ab_ok else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "calibration": cal,
                                         "methods": methods, "shifts": shifts, "cpu": _cpu_model(), "runs": bench.runs,
                                         "minutes": round(minutes, 1)}, indent=2))
    return 0 if aa_ok and ab_ok else 3


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        console.print("interrupted: the servers were stopped")
        sys.exit(130)
