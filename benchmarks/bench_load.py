"""How much load one Locust process drives, two processes drive, and compare's asyncio engine — same servers, same run.

Three questions, per store (default: postgres and redis-atomic):

1. **Ceiling of one Locust process**: ``fridgebench load --rate 0`` (users back to back, no
   pacing) with one Locust process, then with ``--processes 2`` (master + 2 workers). Printed:
   achieved ops/s, p50/p99 (µs, from the actual send), each process's CPU, fridgebench's verdict
   on what was the limit. On a 2-core machine the servers share the cores with the generator.
2. **compare's engine at its ceiling**: ``fridgebench compare saturation`` (closed loop, same
   number of connections) — asyncio + uvloop, one process.
3. **Same offered rate**: ``fridgebench load --rate R`` (R paced over the users) against
   ``fridgebench compare --rate R`` (open loop). Achieved rate, p50/p99 and the generator's CPU:
   what each driver costs to offer the same load, and how the latencies compare (Locust: service
   time; compare: from the intended start, and service time).

    .venv/bin/python benchmarks/bench_load.py [--stores postgres,redis-atomic] [--users 32]
        [--rate 1000] [--duration 10] [--repeats 3] [--json out.json]

Starts embedded PostgreSQL + Valkey once (stopped on exit) and passes them to every run as
external stores. Prints the CPU model and the load average before and after: on a shared
machine, quote ratios measured in the same run, not absolute rates. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from fridgebench.measure.results import Environment
from fridgebench.provision import ProvisionOptions, provisioned

FB = [sys.executable, "-m", "fridgebench.cli"]


def _run(args: list[str], out: Path) -> dict[str, Any]:
    res = subprocess.run([*FB, *args, "--json", "--out", str(out)], capture_output=True, text=True, timeout=900,
                         env={**os.environ, "COLUMNS": "200"})
    if res.returncode != 0:
        raise SystemExit(f"fridgebench {' '.join(args)} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return json.loads(res.stdout)


def _load(doc: dict[str, Any], store: str) -> dict[str, Any]:
    run = doc["sections"]["load"]["stores"][store]
    o, g = run["overall"], run["generator"]
    cpus = [p["cpu_percent"] for p in g["processes"] if p.get("cpu_percent") is not None]
    return {"ops_per_s": o["achieved_rate_per_s"], "p50_us": o["latency_service"].get("p50_us"),
            "p99_us": o["latency_service"].get("p99_us"), "generator_cpu": cpus, "machine_cpu": g.get("host_cpu_percent"),
            "limit": g["limit"], "errors": o["errors"]}


def _compare(doc: dict[str, Any], store: str) -> dict[str, Any]:
    o = doc["sections"]["compare"]["stores"][store]["overall"]
    return {"ops_per_s": o["throughput_per_s"], "p50_us": o["latency_intended"].get("p50_us"),
            "p99_us": o["latency_intended"].get("p99_us"), "service_p50_us": o["latency_service"].get("p50_us"),
            "service_p99_us": o["latency_service"].get("p99_us"), "errors": o["errors"], "late": o["late_sends"]}


def _cpu_model() -> str:
    return Environment.capture().cpu_model


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stores", default="postgres,redis-atomic")
    ap.add_argument("--users", type=int, default=32, help="Locust users = compare's connections")
    ap.add_argument("--rate", type=float, default=1000.0, help="the offered rate of part 3")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--sessions", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", dest="json_out", type=Path)
    a = ap.parse_args()
    stores = [s.strip() for s in a.stores.split(",") if s.strip()]
    print(f"CPU: {_cpu_model()} x {os.cpu_count()}; {platform.platform()}; Python {platform.python_version()}")
    print(f"load average before: {os.getloadavg()}")
    common = ["--duration", f"{a.duration:g}", "--warmup", f"{a.warmup:g}", "--sessions", str(a.sessions)]
    results: dict[str, Any] = {"cpu": _cpu_model(), "cores": os.cpu_count(), "args": vars(a) | {"json_out": None},
                               "loadavg_before": os.getloadavg(), "stores": {}}
    with provisioned(ProvisionOptions()) as ep, tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        ext = ["--postgres-dsn", ep.postgres_dsn, "--redis-url", ep.redis_url]
        out = Path(tmp)
        for store in stores:
            rows: dict[str, list[dict[str, Any]]] = {k: [] for k in
                                                     ("locust_1", "locust_2", "compare_closed", "locust_rate", "compare_rate")}
            for i in range(a.repeats):
                base = ["--stores", store, *common, *ext]
                rows["locust_1"].append(_load(_run(["load", "--rate", "0", "--users", str(a.users), *base], out), store))
                rows["locust_2"].append(_load(_run(["load", "--rate", "0", "--users", str(a.users), "--processes", "2",
                                                    *base], out), store))
                rows["compare_closed"].append(_compare(_run(["compare", "saturation", "--concurrency", str(a.users),
                                                             *base], out), store))
                rows["locust_rate"].append(_load(_run(["load", "--rate", f"{a.rate:g}", "--users", str(a.users), *base],
                                                      out), store))
                rows["compare_rate"].append(_compare(_run(["compare", "session-lifecycle", "--rate", f"{a.rate:g}",
                                                           "--concurrency", str(a.users), *base], out), store))
                print(f"{store} repeat {i + 1}/{a.repeats}: " + ", ".join(
                    f"{k} {v[-1]['ops_per_s']:,.0f}/s" for k, v in rows.items()), flush=True)
            results["stores"][store] = rows
            l1, l2, cc = (_median(rows[k], "ops_per_s") for k in ("locust_1", "locust_2", "compare_closed"))
            cpu1 = statistics.median(max(r["generator_cpu"] or [0]) for r in rows["locust_1"])
            cpu2 = statistics.median(max(r["generator_cpu"] or [0]) for r in rows["locust_2"])
            print(f"\n{store} — {a.users} users/connections, back to back, medians of {a.repeats}:")
            print(f"  Locust, 1 process      {l1:>10,.0f} ops/s   p50 {_median(rows['locust_1'], 'p50_us'):>8,.0f} µs   "
                  f"p99 {_median(rows['locust_1'], 'p99_us'):>8,.0f} µs   generator CPU {cpu1:.0f}% of a core   "
                  f"limit: {rows['locust_1'][-1]['limit']}")
            print(f"  Locust, 2 processes    {l2:>10,.0f} ops/s   p50 {_median(rows['locust_2'], 'p50_us'):>8,.0f} µs   "
                  f"p99 {_median(rows['locust_2'], 'p99_us'):>8,.0f} µs   busiest worker {cpu2:.0f}%   "
                  f"x{l2 / l1:.2f} of 1 process")
            print(f"  compare (asyncio)      {cc:>10,.0f} ops/s   p50 {_median(rows['compare_closed'], 'service_p50_us'):>8,.0f} µs   "
                  f"p99 {_median(rows['compare_closed'], 'service_p99_us'):>8,.0f} µs   "
                  f"x{cc / l1:.2f} of Locust's 1 process")
            lr, cr = rows["locust_rate"], rows["compare_rate"]
            print(f"  at {a.rate:g} ops/s offered: Locust achieved {_median(lr, 'ops_per_s'):,.0f}/s, p50 "
                  f"{_median(lr, 'p50_us'):,.0f} µs, p99 {_median(lr, 'p99_us'):,.0f} µs (from the send), generator "
                  f"{statistics.median(max(r['generator_cpu'] or [0]) for r in lr):.0f}% CPU; compare achieved "
                  f"{_median(cr, 'ops_per_s'):,.0f}/s, p50 {_median(cr, 'p50_us'):,.0f} µs / p99 {_median(cr, 'p99_us'):,.0f} µs "
                  f"from the intended start (service p50 {_median(cr, 'service_p50_us'):,.0f} µs, "
                  f"p99 {_median(cr, 'service_p99_us'):,.0f} µs)\n", flush=True)
    results["loadavg_after"] = os.getloadavg()
    print(f"load average after: {results['loadavg_after']}")
    if a.json_out:
        a.json_out.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
