"""``fridgebench failure``: how long the default set takes, how finely it resolves recovery, and what
its fault proxy costs.

Three measurements, on this machine:

1. **the default set** -- ``fridgebench failure`` with no arguments (crash and pause on postgres,
   redis-atomic, redis-fallback and pg-redis-cache; Redis ``none`` and ``aof-everysec``,
   PostgreSQL ``sync``), run as a subprocess exactly as a user runs it (provisioning included),
   ``--runs`` times: wall seconds each. Target: under 4 minutes.
2. **recovery resolution** -- from that run's results document: the timeline's bucket (100 ms) and,
   per case, the recovery figures, which are taken from operation timestamps (first success after
   the heal to 0.1 ms) -- printed so the resolution can be read off. Target: 100 ms or better.
3. **the fault proxy's own cost, no fault** -- embedded Valkey and PostgreSQL started for the run
   (stopped on exit): the cheapest request on one connection (Redis PING, PostgreSQL ``SELECT 1``),
   direct vs through the proxy, alternating in rounds, ``--proxy-samples`` each; p50 and p99 side by
   side. The proxy runs in fridgebench's event loop (the load's), which is where its cost lands.

    .venv/bin/python benchmarks/bench_failure.py [--runs 1] [--proxy-samples 20000] [--json out.json]

Prints figures, the CPU model and load averages; exits 0 when the default set finishes in under
240 s and recovery is resolved to 100 ms or better, 3 otherwise. Not part of the test run.
"""

from __future__ import annotations

import argparse
import asyncio
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

TARGET_S = 240.0
TARGET_RESOLUTION_S = 0.1
console = Console(stderr=True, highlight=False, width=140)


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


def run_default(out: Path, run_dir: Path) -> tuple[float, dict[str, Any]]:
    t = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "fridgebench.cli", "failure", "--json", "--out", str(out),
                          "--run-dir", str(run_dir)], capture_output=True, text=True, timeout=1800,
                         env={**os.environ, "COLUMNS": "160"})
    took = time.monotonic() - t
    if res.returncode != 0:
        console.print(res.stderr[-4000:])
        raise SystemExit(f"fridgebench failure exited {res.returncode}")
    return took, json.loads(res.stdout)


async def proxy_cost(samples: int) -> dict[str, Any]:
    from fridgebench.faults.proxy import FaultProxy, measure_added_latency
    from fridgebench.provision import ProvisionOptions, provisioned

    out: dict[str, Any] = {}
    root = tempfile.mkdtemp(prefix="fridgebench-bench-")
    os.chmod(root, 0o711)
    with provisioned(ProvisionOptions(run_dir=root)) as ep:
        for kind, url, info in (("redis", ep.redis_url, ep.redis), ("postgres", ep.postgres_dsn, ep.postgres)):
            proxy = await FaultProxy(info.host or "127.0.0.1", info.port or 0).start()
            try:
                out[kind] = await measure_added_latency(kind, url, proxy, n=samples, rounds=10)
            finally:
                proxy.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1, help="runs of the default set")
    ap.add_argument("--proxy-samples", type=int, default=20_000, help="requests each way, direct and proxied")
    ap.add_argument("--skip-default", action="store_true", help="only the proxy's cost")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    from fridgebench.engine.driver import install_event_loop_policy

    loop = install_event_loop_policy()
    result: dict[str, Any] = {"cpu": cpu_model(), "load_before": loadavg(), "event_loop": loop}
    console.print(f"CPU: {result['cpu']}; load average {result['load_before']} (the machine may be shared: "
                  "figures taken now are provisional)")
    ok = True
    if not args.skip_default:
        walls = []
        doc: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as out:
            run_dir = Path(tempfile.mkdtemp(prefix="fridgebench-bench-run-"))
            os.chmod(run_dir, 0o711)
            for i in range(args.runs):
                took, doc = run_default(Path(out), run_dir)
                walls.append(round(took, 1))
                console.print(f"run {i + 1}: `fridgebench failure` (defaults) {took:.1f} s wall, "
                              f"{len(doc['sections']['failure']['cases'])} cases")
        cases = doc["sections"]["failure"]["cases"]
        bucket = cases[0]["timeline"][1]["t_s"] - cases[0]["timeline"][0]["t_s"] if cases else None
        t = Table(title="Recovery, per case (last run): seconds after the heal", title_justify="left")
        for col in ("case", "first success", "p99 within 1.5x", "server ready", "error window", "sessions lost"):
            t.add_column(col, justify="left" if col == "case" else "right")
        for c in cases:
            r = c["recovery"]
            ew = r["error_window"]
            t.add_row(c["id"], _f(r["first_success_after_heal_s"], 4), _f(r["p99_back_within_1_5x_after_heal_s"], 1),
                      _f((c.get("server") or {}).get("server_ready_s"), 3), _f(ew and ew["seconds"], 3),
                      f"{c['accounting']['sessions_lost']:,}/{c['accounting']['sessions_judged']:,}")
        console.print(t)
        median_wall = statistics.median(walls)
        resolution_ok = bucket is not None and bucket <= TARGET_RESOLUTION_S + 1e-9
        wall_ok = median_wall < TARGET_S
        console.print(f"default set: median {median_wall:.1f} s over {len(walls)} run(s) (target < {TARGET_S:.0f} s): "
                      f"{'PASS' if wall_ok else 'FAIL'}; timeline bucket {bucket:g} s, recovery instants from operation "
                      f"timestamps (target <= {TARGET_RESOLUTION_S:g} s): {'PASS' if resolution_ok else 'FAIL'}")
        ok = wall_ok and resolution_ok
        result.update(default_walls_s=walls, default_median_s=median_wall, timeline_bucket_s=bucket,
                      cases=[{"id": c["id"], "recovery": c["recovery"], "server": c.get("server"),
                              "sessions_lost": c["accounting"]["sessions_lost"]} for c in cases],
                      claims={c["key"]: {"verdict": c["verdict"], "measured": c["measured"]}
                              for c in doc["claims"] if c["verdict"] != "not measured"})
    costs = asyncio.run(proxy_cost(args.proxy_samples))
    t = Table(title="The fault proxy with no fault: one connection, the cheapest request", title_justify="left")
    for col in ("server", "request", "samples", "direct p50", "proxied p50", "added p50", "direct p99", "proxied p99"):
        t.add_column(col, justify="left" if col in ("server", "request") else "right")
    for kind, m in costs.items():
        t.add_row(kind, m["request"], f"{m['samples']:,}", f"{m['direct_p50_us']:g} µs", f"{m['proxied_p50_us']:g} µs",
                  f"+{m['added_p50_us']:g} µs", f"{m['direct_p99_us']:g} µs", f"{m['proxied_p99_us']:g} µs")
    console.print(t)
    result["proxy"] = costs
    result["load_after"] = loadavg()
    console.print(f"load average after: {result['load_after']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    return 0 if ok else 3


def _f(v: Any, digits: int) -> str:
    return "-" if v is None else f"{float(v):.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
