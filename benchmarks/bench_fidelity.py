"""Measurement fidelity: fridgebench's single-connection point read against the native tools.

On the same servers in the same run, one fixed hot session is read back to back on one
connection by

* fridgebench (closed loop, concurrency 1, the real engine path: ``run_closed_loop`` +
  ``compare.executor`` + the store's ``get``), and
* the native client for that server: ``redis-benchmark -c 1`` running ``GET session:<id>``,
  ``pgbench -c 1 -M prepared`` running the store's exact point-read SELECT (``:sid`` bound as a
  parameter, just as asyncpg binds ``$1``).

Pairs are repeated with the order flipped each repeat (native first, then fridgebench first, ...)
and the median of the per-repeat p50 ratios (fridgebench / native) is judged against 1.5x.
A decomposition section then measures the same read through thinner layers (bare client, no
engine; bare connection, no pool; a no-op through the closed loop) so a miss can be attributed.
Unless ``--skip-compare``, ``fridgebench compare`` with defaults is timed as a subprocess
(target < 120 s incl. provisioning: both paths since issue 11, see bench_compare_paths.py) and the
driver overhead it records is printed.

    .venv/bin/python benchmarks/bench_fidelity.py [--repeats 3] [--seconds 5] [--skip-compare]

Not part of the test run. See benchmarks/README.md for the method and recorded figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import glob
import io
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from fridgebench.engine.driver import install_event_loop_policy, run_closed_loop  # noqa: E402
from fridgebench.experiments.compare import executor  # noqa: E402
from fridgebench.measure.summary import latency_summary, new_histogram, summarize  # noqa: E402
from fridgebench.stores import make_store  # noqa: E402
from fridgebench.stores.postgres import PostgresStore  # noqa: E402
from fridgebench.workload.generator import Op, Workload  # noqa: E402
from fridgebench.workload.model import Load, load_scenario  # noqa: E402

TARGET_RATIO = 1.5
TARGET_COMPARE_S = 120.0  # issue 11: the default runs both paths (five stores) and profiles them
REDIS_STORE = "redis-atomic"  # redis-seed's get is the same: GET+PTTL in one write (lean client)
console = Console()


# -- helpers ---------------------------------------------------------------------------------
def loadavg() -> str:
    a, b, c = os.getloadavg()
    return f"{a:.2f} {b:.2f} {c:.2f} (1/5/15 min; {os.cpu_count()} CPUs)"


def pgbench_binary() -> str:
    from fridgebench.provision import binaries

    try:
        p = binaries.embedded_pg_bin() / "pgbench"
        if os.access(p, os.X_OK):
            return str(p)
    except Exception:  # noqa: BLE001 - fall back to the system's
        pass
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"), reverse=True):
        return cand
    found = shutil.which("pgbench")
    if not found:
        raise SystemExit("no pgbench found (embedded wheel, /usr/lib/postgresql/*/bin or PATH)")
    return found


def closed_load(seconds: float, warmup: float) -> Load:
    return Load(model="closed", concurrency=1, warmup_seconds=warmup, duration_seconds=seconds)


async def engine_p50(execute: Callable[[Op], Awaitable[bool]], session_id: str, seconds: float,
                     warmup: float) -> dict[str, Any]:
    """The real engine path: closed loop, one worker, the same op over and over -> summarize()."""
    ops = itertools.repeat(Op("get", session_id))
    log, win = await run_closed_loop(execute, ops, closed_load(seconds, warmup))
    m = summarize(log, win)
    g = m.ops["get"]
    if g["errors"] or g["not_found"]:
        raise SystemExit(f"fridgebench read of {session_id}: {g['errors']} errors, {g['not_found']} not found")
    s = g["latency_service"]
    return {"p50_us": s["p50_us"], "p99_us": s["p99_us"], "count": s["count"],
            "ops_per_s": g["throughput_per_s"], "intended_p50_us": g["latency_intended"]["p50_us"]}


async def bare_p50(call: Callable[[], Awaitable[Any]], seconds: float, warmup: float) -> dict[str, Any]:
    """No engine: a tight loop timing ``call`` with perf_counter into the same HdrHistogram."""
    perf = time.perf_counter
    end = perf() + warmup
    while perf() < end:
        await call()
    h = new_histogram()
    t0 = perf()
    end = t0 + seconds
    n = 0
    while True:
        s = perf()
        if s >= end:
            break
        await call()
        h.record_value(max(1, int((perf() - s) * 1e6)))
        n += 1
    s = latency_summary(h)
    return {"p50_us": s["p50_us"], "p99_us": s["p99_us"], "count": n, "ops_per_s": round(n / (perf() - t0), 1)}


# -- native tools ----------------------------------------------------------------------------
def redis_benchmark(port: int, key: str, n: int, pipeline: int = 1) -> dict[str, Any]:
    cmd = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "1", "-n", str(n), "--csv"]
    if pipeline > 1:
        cmd += ["-P", str(pipeline)]
    cmd += ["GET", key]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600).stdout
    rows = [r for r in csv.reader(io.StringIO(out)) if r]
    header = next(i for i, r in enumerate(rows) if "p50_latency_ms" in r)
    row = dict(zip(rows[header], rows[header + 1]))
    return {"p50_us": round(float(row["p50_latency_ms"]) * 1000, 1),
            "p99_us": round(float(row["p99_latency_ms"]) * 1000, 1),
            "count": n, "ops_per_s": float(row["rps"])}


def pgbench(pgbench_bin: str, dsn: str, session_id: str, seconds: float, warmup: float,
            workdir: Path) -> dict[str, Any]:
    """pgbench -c 1 -M prepared on the store's exact SELECT; p50 from the per-transaction log."""
    script = workdir / "point_read.sql"
    script.write_text(PostgresStore.point_read_sql.replace("$1", ":sid") + ";\n", encoding="utf-8")
    logdir = Path(tempfile.mkdtemp(prefix="pgblog-", dir=workdir))
    prefix = logdir / "pgbench_log"
    total = int(round(seconds + warmup))
    cmd = [pgbench_bin, "-n", "-c", "1", "-j", "1", "-T", str(max(1, total)), "-M", "prepared",
           "-f", str(script), "-D", f"sid={session_id}", "--log", f"--log-prefix={prefix}", dsn]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=total + 120)
    if proc.returncode != 0:
        raise SystemExit(f"pgbench failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    files = glob.glob(f"{prefix}*")
    if not files:
        raise SystemExit(f"pgbench wrote no log under {logdir}: {proc.stdout[-400:]}")
    lines: list[tuple[float, int]] = []
    for f in files:
        with open(f, encoding="ascii") as fh:
            for line in fh:
                p = line.split()  # client_id transaction_no time script_no time_epoch time_us
                if len(p) >= 6 and p[2] not in ("skipped",):
                    lines.append((int(p[4]) + int(p[5]) / 1e6, int(p[2])))
    shutil.rmtree(logdir, ignore_errors=True)
    if not lines:
        raise SystemExit("pgbench log is empty")
    t_start = min(t for t, _ in lines)
    h = new_histogram()
    kept = [lat for t, lat in lines if t - t_start >= warmup]  # same warm-up exclusion as fridgebench
    for lat in kept:
        h.record_value(max(1, lat))
    s = latency_summary(h)
    span = max(1e-9, max(t for t, _ in lines) - t_start - warmup)
    return {"p50_us": s["p50_us"], "p99_us": s["p99_us"], "count": len(kept), "ops_per_s": round(len(kept) / span, 1)}


# -- the measurement -------------------------------------------------------------------------
async def fidelity(args: argparse.Namespace, pg_dsn: str, redis_url: str, redis_port: int,
                   workdir: Path) -> dict[str, Any]:
    sc = load_scenario("session-lifecycle").with_overrides(**{"population.sessions": args.sessions})
    ttl = sc.ttl_seconds
    population = Workload.from_catalogue(sc).population()
    # the hot session: the first one holding `--ingredients` ingredients (a typical fridge)
    sid, names = next((s, n) for s, n in population if len(n) == args.ingredients)
    key = f"session:{sid}"

    pg = make_store("postgres", postgres_dsn=pg_dsn, redis_url=redis_url, pool_size=1)
    rd = make_store(REDIS_STORE, postgres_dsn=pg_dsn, redis_url=redis_url, pool_size=1)
    async with pg, rd:
        for st in (pg, rd):
            t = time.perf_counter()
            await st.bulk_load(population, ttl)
            console.print(f"[dim]{st.name}: loaded {len(population):,} sessions in {time.perf_counter() - t:.1f} s[/]")
        # settle the freshly loaded tables now, so autovacuum/analyze does not fire mid-measurement
        await pg.pool.execute("VACUUM ANALYZE user_fridge_sessions, user_fridge_ingredients, ingredients")  # type: ignore[attr-defined]
        got_pg, got_rd = await pg.get(sid), await rd.get(sid)
        assert got_pg is not None and got_rd is not None and list(got_pg.ingredients) == list(got_rd.ingredients)
        raw = await rd.redis.get(key)  # type: ignore[attr-defined]
        hot = {"session_id": sid, "ingredients": len(names), "redis_value_bytes": len(raw)}
        console.print(f"hot session {sid}: {len(names)} ingredients, Redis value {len(raw)} bytes")

        pgbench_bin = pgbench_binary()
        console.print(f"[dim]pgbench: {pgbench_bin}; redis-benchmark: {shutil.which('redis-benchmark')}[/]")
        # size redis-benchmark's -n so it runs about --seconds (it has no duration option)
        cal = redis_benchmark(redis_port, key, 3000)
        n_redis = max(5000, int(cal["ops_per_s"] * args.seconds))

        ex_rd, ex_pg = executor(rd, ttl), executor(pg, ttl)
        runners: dict[str, dict[str, Callable[[], Awaitable[dict[str, Any]]]]] = {
            "redis GET": {
                "native": lambda: asyncio.to_thread(redis_benchmark, redis_port, key, n_redis),
                "fridgebench": lambda: engine_p50(ex_rd, sid, args.seconds, args.warmup),
            },
            "postgres SELECT": {
                "native": lambda: asyncio.to_thread(pgbench, pgbench_bin, pg_dsn, sid, args.seconds,
                                                    args.warmup, workdir),
                "fridgebench": lambda: engine_p50(ex_pg, sid, args.seconds, args.warmup),
            },
        }
        repeats: dict[str, list[dict[str, Any]]] = {op: [] for op in runners}
        for r in range(args.repeats):
            order = ("native", "fridgebench") if r % 2 == 0 else ("fridgebench", "native")
            for op, pair in runners.items():
                res: dict[str, Any] = {}
                for who in order:
                    res[who] = await pair[who]()
                res["ratio"] = round(res["fridgebench"]["p50_us"] / res["native"]["p50_us"], 3)
                res["order"] = "/".join(order)
                repeats[op].append(res)
                console.print(f"[dim]repeat {r + 1} {op}: native p50 {res['native']['p50_us']} µs, "
                              f"fridgebench p50 {res['fridgebench']['p50_us']} µs -> {res['ratio']}x ({res['order']})[/]")

        # -- decomposition: the same read through thinner layers ------------------------------
        d = args.decompose_seconds
        w = min(args.warmup, 1.0)
        client = rd.redis  # type: ignore[attr-defined]

        async def plain_get(op: Op) -> bool:
            return await client.get(key) is not None

        async def get_pttl() -> Any:
            async with client.pipeline(transaction=False) as pipe:
                pipe.get(key)
                pipe.pttl(key)
                return await pipe.execute()

        async def noop(op: Op) -> bool:
            return True

        sql = PostgresStore.point_read_sql
        decomposition: dict[str, dict[str, Any]] = {}
        dec = decomposition
        dec["redis-benchmark GET"] = await asyncio.to_thread(redis_benchmark, redis_port, key, n_redis)
        dec["redis-benchmark GET -P 2 (two commands per round trip)"] = await asyncio.to_thread(
            redis_benchmark, redis_port, key, n_redis * 2, 2)
        # the floor for Python + this event loop: RESP by hand over an asyncio stream
        reader, writer = await asyncio.open_connection("127.0.0.1", redis_port)
        resp = f"*2\r\n$3\r\nGET\r\n${len(key.encode())}\r\n{key}\r\n".encode()

        async def raw_get() -> None:
            writer.write(resp)
            n = int((await reader.readline())[1:])
            await reader.readexactly(n + 2)

        dec["bare loop: hand-written RESP GET (asyncio stream)"] = await bare_p50(raw_get, d, w)
        writer.close()
        # redis-py without any pool: one Connection, packed commands
        from redis.asyncio.connection import Connection

        rconn = Connection(host="127.0.0.1", port=redis_port)
        await rconn.connect()
        p_get = rconn.pack_command("GET", key)
        p_both = rconn.pack_commands([("GET", key), ("PTTL", key)])

        async def conn_get() -> Any:
            await rconn.send_packed_command(p_get, check_health=False)
            return await rconn.read_response()

        async def conn_both() -> Any:
            await rconn.send_packed_command(p_both, check_health=False)
            return await rconn.read_response(), await rconn.read_response()

        dec["bare loop: redis-py Connection, GET (no pool)"] = await bare_p50(conn_get, d, w)
        dec["bare loop: redis-py Connection, GET+PTTL packed (no pool)"] = await bare_p50(conn_both, d, w)
        await rconn.disconnect()
        plain_client = aioredis.Redis.from_url(redis_url)  # plain (non-blocking) ConnectionPool
        dec["bare loop: redis-py Redis GET, plain ConnectionPool"] = await bare_p50(lambda: plain_client.get(key), d, w)
        await plain_client.aclose()
        dec["bare loop: redis-py Redis GET, BlockingConnectionPool (the previous store path)"] = await bare_p50(lambda: client.get(key), d, w)
        dec["bare loop: GET+PTTL redis-py pipeline (the previous store path)"] = await bare_p50(get_pttl, d, w)
        from fridgebench.stores._lean_redis import pack

        lean_both = pack("GET", key) + pack("PTTL", key)
        lean_get = pack("GET", key)
        dec["bare loop: store's lean client, GET"] = await bare_p50(
            lambda: rd.lean.request(lean_get), d, w)  # type: ignore[attr-defined]
        dec["bare loop: store's lean client, GET+PTTL in one write"] = await bare_p50(
            lambda: rd.lean.request(lean_both, 2), d, w)  # type: ignore[attr-defined]
        dec["bare loop: store.get (redis; lean GET+PTTL + JSON, Session)"] = await bare_p50(lambda: rd.get(sid), d, w)
        dec["engine + plain GET (store's client)"] = await engine_p50(plain_get, sid, d, w)
        dec["engine + store.get (redis)"] = await engine_p50(ex_rd, sid, d, w)
        dec["pgbench -M prepared"] = await asyncio.to_thread(pgbench, pgbench_bin, pg_dsn, sid, d, w, workdir)
        async with pg.pool.acquire() as conn:  # type: ignore[attr-defined]  # a plain asyncpg connection
            dec["bare loop: asyncpg conn.fetchrow (no pool)"] = await bare_p50(lambda: conn.fetchrow(sql, sid), d, w)

        async def no_reset(c: Any) -> None:
            return None

        pool2 = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1, reset=no_reset)
        dec["bare loop: asyncpg pool.fetchrow, reset=no-op"] = await bare_p50(lambda: pool2.fetchrow(sql, sid), d, w)
        await pool2.close()
        pool3 = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=1)
        dec["bare loop: asyncpg pool.fetchrow, default reset (the previous store path)"] = await bare_p50(
            lambda: pool3.fetchrow(sql, sid), d, w)
        await pool3.close()
        dec["bare loop: store.get (postgres)"] = await bare_p50(lambda: pg.get(sid), d, w)
        dec["engine + store.get (postgres)"] = await engine_p50(ex_pg, sid, d, w)
        dec["engine + no-op (closed-loop driver alone)"] = await engine_p50(noop, sid, d, w)
        await pg.discard_written()  # exactly the sessions this benchmark wrote
        await rd.discard_written()
    return {"hot_session": hot, "redis_benchmark_n": n_redis, "repeats": repeats, "decomposition": decomposition}


def time_compare() -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="fb-compare-"))
    exe = ROOT / ".venv" / "bin" / "fridgebench"
    cmd = [str(exe) if exe.exists() else "fridgebench", "compare", "--out", str(out)]
    console.print(f"[dim]timing: {' '.join(cmd)}[/]")
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    wall = time.perf_counter() - t
    res: dict[str, Any] = {"wall_s": round(wall, 1), "exit_code": proc.returncode}
    found = sorted(out.rglob("results.json"))
    if proc.returncode != 0 or not found:
        res["error"] = (proc.stderr or proc.stdout)[-1500:]
    else:
        doc = json.loads(found[0].read_text(encoding="utf-8"))
        res["driver_overhead"] = doc.get("sections", {}).get("compare", {}).get("driver_overhead")
    shutil.rmtree(out, ignore_errors=True)
    return res


# -- output ----------------------------------------------------------------------------------
def render(result: dict[str, Any]) -> bool:
    ok = True
    t = Table(title="Point read, one connection: p50 (µs) per repeat", show_lines=False)
    t.add_column("operation")
    t.add_column("repeat", justify="right")
    t.add_column("order")
    t.add_column("native p50", justify="right")
    t.add_column("fridgebench p50", justify="right")
    t.add_column("ratio", justify="right")
    t.add_column("native ops/s", justify="right")
    t.add_column("fridgebench ops/s", justify="right")
    for op, reps in result["repeats"].items():
        for i, r in enumerate(reps):
            t.add_row(op, str(i + 1), r["order"], f"{r['native']['p50_us']:g}", f"{r['fridgebench']['p50_us']:g}",
                      f"{r['ratio']:.2f}x", f"{r['native']['ops_per_s']:,.0f}", f"{r['fridgebench']['ops_per_s']:,.0f}")
    console.print(t)
    v = Table(title=f"Verdict: median ratio fridgebench/native p50, target <= {TARGET_RATIO}x")
    for c in ("operation", "native tool", "median native p50 µs", "median fridgebench p50 µs", "median ratio", "result"):
        v.add_column(c)
    tools = {"redis GET": "redis-benchmark -c 1 GET", "postgres SELECT": "pgbench -c 1 -M prepared"}
    for op, reps in result["repeats"].items():
        ratio = statistics.median(r["ratio"] for r in reps)
        passed = ratio <= TARGET_RATIO
        ok &= passed
        result.setdefault("verdict", {})[op] = {"median_ratio": round(ratio, 3), "pass": passed}
        v.add_row(op, tools[op], f"{statistics.median(r['native']['p50_us'] for r in reps):g}",
                  f"{statistics.median(r['fridgebench']['p50_us'] for r in reps):g}", f"{ratio:.2f}x",
                  "[green]PASS[/]" if passed else "[red]FAIL[/]")
    console.print(v)
    d = Table(title="Decomposition: the same hot read through thinner layers (one run each)")
    for c in ("path", "p50 µs", "p99 µs", "ops/s"):
        d.add_column(c, justify="right" if c != "path" else "left")
    for name, r in result["decomposition"].items():
        d.add_row(name, f"{r['p50_us']:g}", f"{r['p99_us']:g}", f"{r['ops_per_s']:,.0f}")
    console.print(d)
    cmp_ = result.get("compare")
    if cmp_:
        if "error" in cmp_:
            ok = False
            console.print(f"[red]fridgebench compare failed (exit {cmp_['exit_code']}) after {cmp_['wall_s']} s[/]\n{cmp_['error']}")
        else:
            passed = cmp_["wall_s"] < TARGET_COMPARE_S
            ok &= passed
            console.print(f"fridgebench compare (defaults, provisioning included): {cmp_['wall_s']} s wall "
                          f"(target < {TARGET_COMPARE_S:g} s) {'[green]PASS[/]' if passed else '[red]FAIL[/]'}")
            do = cmp_.get("driver_overhead") or {}
            lag, svc = do.get("dispatch_lag", {}), do.get("service", {})
            console.print(f"driver overhead (compare's results.json, no-op at {do.get('rate_per_s')} ops/s open loop): "
                          f"dispatch lag p50 {lag.get('p50_us')} µs p99 {lag.get('p99_us')} µs; "
                          f"no-op service p50 {svc.get('p50_us')} µs p99 {svc.get('p99_us')} µs")
    console.print(f"load average: before {result['load_before']}; after {result['load_after']}")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run (excluded)")
    ap.add_argument("--decompose-seconds", type=float, default=3.0)
    ap.add_argument("--sessions", type=int, default=10_000)
    ap.add_argument("--ingredients", type=int, default=8, help="ingredients in the hot session")
    ap.add_argument("--skip-compare", action="store_true")
    ap.add_argument("--postgres-dsn", default=os.environ.get("FRIDGEBENCH_POSTGRES_DSN"))
    ap.add_argument("--redis-url", default=os.environ.get("FRIDGEBENCH_REDIS_URL"))
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    args = ap.parse_args()

    from urllib.parse import urlparse

    from fridgebench.provision import ProvisionOptions, provisioned

    loop_name = install_event_loop_policy()
    result: dict[str, Any] = {"load_before": loadavg(), "event_loop": loop_name}
    console.print(f"load average before: {result['load_before']}; event loop {loop_name}")
    workdir = Path(tempfile.mkdtemp(prefix="fb-fidelity-"))
    try:
        opts = ProvisionOptions(postgres_dsn=args.postgres_dsn, redis_url=args.redis_url,
                                existing="refuse")  # never run beside someone else's sessions
        with provisioned(opts, on_event=lambda line: console.print(f"[dim]{line}[/]")) as ep:
            port = urlparse(ep.redis_url).port or 6379
            result["servers"] = {"postgres": ep.postgres.version, "redis": ep.redis.version}
            result.update(asyncio.run(fidelity(args, ep.postgres_dsn, ep.redis_url, port, workdir)))
        result["load_after_fidelity"] = loadavg()
        if not args.skip_compare:
            result["compare"] = time_compare()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["load_after"] = loadavg()
    ok = render(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0 if ok else 3


if __name__ == "__main__":
    sys.exit(main())
