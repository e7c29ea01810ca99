"""compare's default run, both paths: how long it takes, and what it finds (median of runs).

Issue 11 made ``fridgebench compare`` run two paths by default — the **server path** (lean
clients: ``postgres`` vs ``redis-atomic``) and the **app path** (fridge2fork's own code:
``postgres-app`` and ``postgres-app-fixed`` vs ``redis-app``) — and profile one operation of each
kind per store. This runs the default command ``--runs`` times, each as a subprocess on fresh
embedded servers (provisioning included, as a user runs it), and prints per run and as medians:

* the wall time (target: every run under 120 s on this machine);
* the session read's p50 per store and the PostgreSQL ÷ Redis ratios of each pair — the app path's
  ratio against the server path's, measured in the same run (the reference): how much the app's
  code widens what the servers differ by;
* the share of the app path's read gap the two cheapest fixes close;
* from the profile: the app read's round trips, WAL-flushing commits and client CPU beside the
  lean read's.

    .venv/bin/python benchmarks/bench_compare_paths.py [--runs 3] [--json out.json] [-- extra compare args]

Prints the CPU model and the load average around each run (the ratios move with a busy machine:
compare prints a noise warning then). Exits 0 when every run finished in time, 3 otherwise.
Not part of the test run. Figures in benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

TARGET_S = 120.0
console = Console(stderr=True, highlight=False, width=130)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} × {os.cpu_count()}"
    except OSError:
        pass
    return f"unknown × {os.cpu_count()}"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def one_run(extra: list[str]) -> dict[str, Any]:
    fb = ROOT / ".venv" / "bin" / "fridgebench"
    cmd = [str(fb) if fb.exists() else "fridgebench", "compare", "--json", *extra]
    with tempfile.TemporaryDirectory(prefix="fb-bench-paths-") as out:
        load_before = loadavg()
        t0 = time.perf_counter()
        proc = subprocess.run([*cmd, "--out", out], capture_output=True, text=True, cwd=ROOT, timeout=900,
                              env={**os.environ, "COLUMNS": "200"})
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"compare failed (exit {proc.returncode}): {proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    section = doc["sections"]["compare"]
    stores = section["stores"]
    perf = next(c for c in doc["claims"] if c["key"] == "performance")
    paths = perf["figures"].get("paths", {})
    fix = section.get("fix") or {}
    prof = (section.get("profile") or {}).get("stores", {})

    def p50(name: str) -> float | None:
        return stores.get(name, {}).get("ops", {}).get("get", {}).get("latency_intended", {}).get("p50_us")

    def ratio(base: str, other: str) -> float | None:
        row = next((c for c in section["comparisons"] if c["op"] == "get" and c["baseline"] == base
                    and c["other"] == other), None)
        return row["p50_ratio"] if row else None

    def prof_get(name: str) -> dict[str, Any]:
        row = prof.get(name, {}).get("ops", {}).get("get", {})
        pg = row.get("postgres", {})
        return {"round_trips": pg.get("round_trips"), "wal_flushes": pg.get("server", {}).get("write_transactions"),
                "client_cpu_us": row.get("client_cpu_us"), "wall_us": row.get("wall_us")}

    return {
        "wall_s": round(wall, 1), "load_before": load_before, "load_after": loadavg(),
        "verdict": perf["verdict"], "verdict_by_path": {p: v["verdict"] for p, v in paths.items()},
        "get_p50_us": {n: p50(n) for n in stores},
        "server_ratio": ratio("postgres", "redis-atomic"), "app_ratio": ratio("postgres-app", "redis-app"),
        "fixed_ratio": ratio("postgres-app-fixed", "redis-app"),
        "fix_closes_read_gap": fix.get("by_op", {}).get("get", {}).get("closed_by_fix"),
        "profile_get": {n: prof_get(n) for n in ("postgres", "postgres-app", "postgres-app-fixed")},
        "offered": {p: v.get("offered_rate_per_s") for p, v in section.get("paths", {}).items()},
        "warnings": doc["warnings"],
    }


def med(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return round(statistics.median(vals), 2) if vals else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write every run's figures here")
    ap.add_argument("extra", nargs="*", help="arguments passed on to `fridgebench compare` (after --)")
    args = ap.parse_args()
    console.print(f"CPU: {cpu_model()}; load average {loadavg()}; target: every run under {TARGET_S:g} s")
    rows = []
    for i in range(args.runs):
        console.print(f"[dim]run {i + 1}/{args.runs}: fridgebench compare {' '.join(args.extra)}[/]")
        rows.append(one_run(args.extra))
        r = rows[-1]
        console.print(f"  {r['wall_s']} s (load {r['load_before']} → {r['load_after']}); read ratio app "
                      f"{r['app_ratio']}x, server {r['server_ratio']}x, fixed {r['fixed_ratio']}x; "
                      f"{len(r['warnings'])} warnings")
    t = Table(title="compare, both paths (defaults, embedded servers, provisioning included)", title_justify="left")
    for col in ("run", "wall", "load", "app ÷", "server ÷", "app / server", "fixed ÷", "fix closes", "verdict"):
        t.add_column(col, justify="left" if col in ("run", "verdict", "load") else "right")
    for i, r in enumerate(rows, 1):
        widen = (r["app_ratio"] / r["server_ratio"]) if r["app_ratio"] and r["server_ratio"] else None
        r["app_over_server"] = round(widen, 2) if widen else None
        t.add_row(str(i), f"{r['wall_s']} s", f"{r['load_before']} → {r['load_after']}", f"{r['app_ratio']}x",
                  f"{r['server_ratio']}x", f"{widen:.1f}" if widen else "-", f"{r['fixed_ratio']}x",
                  f"{r['fix_closes_read_gap']:.0%}" if r["fix_closes_read_gap"] is not None else "-",
                  f"{r['verdict']} ({', '.join(f'{p}: {v}' for p, v in r['verdict_by_path'].items())})")
    t.add_row("median", f"{med(rows, 'wall_s')} s", "", f"{med(rows, 'app_ratio')}x", f"{med(rows, 'server_ratio')}x",
              f"{med(rows, 'app_over_server')}", f"{med(rows, 'fixed_ratio')}x",
              f"{med(rows, 'fix_closes_read_gap'):.0%}" if med(rows, "fix_closes_read_gap") is not None else "-", "")
    console.print(t)
    p = Table(title="session read p50 (µs) per store, and the profile's read", title_justify="left")
    p.add_column("store")
    p.add_column("read p50, median", justify="right")
    p.add_column("round trips", justify="right")
    p.add_column("WAL flushes", justify="right")
    p.add_column("client CPU µs", justify="right")
    for name in rows[0]["get_p50_us"]:
        vals = [r["get_p50_us"][name] for r in rows if r["get_p50_us"].get(name) is not None]
        pr = [r["profile_get"].get(name) or {} for r in rows]
        cpu = [x["client_cpu_us"] for x in pr if x.get("client_cpu_us") is not None]
        p.add_row(name, f"{statistics.median(vals):g}" if vals else "-", str(pr[0].get("round_trips", "-")),
                  str(pr[0].get("wal_flushes", "-")), f"{statistics.median(cpu):g}" if cpu else "-")
    console.print(p)
    console.print(f"offered: {rows[0]['offered']}")
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_model(), "runs": rows}, indent=2))
    ok = all(r["wall_s"] < TARGET_S for r in rows)
    console.print(f"every run under {TARGET_S:g} s: {'[green]PASS[/]' if ok else '[red]FAIL[/]'} "
                  f"(slowest {max(r['wall_s'] for r in rows)} s)")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
