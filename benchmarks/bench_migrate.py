"""Backfill throughput: N sessions (8 ingredients on average) from PostgreSQL into Redis.

Prints, from the same run: fridgebench's backfill rate, a naive per-session loop in the seed's
style (one GET + one SETEX round trip per session), and ``redis-benchmark -P 100 -t set``; and
where the CPU went per run (PostgreSQL's backends, Redis, fridgebench's own process), which is
what bounds the rate on a 2-core machine.

    .venv/bin/python benchmarks/bench_migrate.py --sessions 1000000 --runs 3

Uses the machine's PostgreSQL (its own database, dropped afterwards unless --keep; refilled -- dropped
and created afresh, so the fill may build keys and indexes after loading -- when it does not hold
--sessions sessions) and Redis db --redis-db (default 15; flushed before and after; redis-benchmark
writes into the same db). Not part of the test run. Prints the load average: on a shared machine,
quote the ratios measured in the same run, not the absolute rates.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import time

import psycopg
import redis

from fridgebench.migrate import rehearsal, run
from fridgebench.migrate.source import SourceSchema

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
DB = "fb_bench_migrate"
DSN = f"postgresql://postgres@127.0.0.1:5432/{DB}"
URL = "redis://127.0.0.1:6379/15"


def naive(n: int) -> float:
    """The seed's style: per session a GET (does it exist?) then SETEX, one round trip each."""
    r = redis.Redis.from_url(URL)
    src = SourceSchema()
    t0 = time.perf_counter()
    done = 0
    with psycopg.connect(DSN) as conn:
        with conn.cursor(name="naive") as cur:  # server-side cursor
            cur.itersize = 2000
            cur.execute(src.live_sessions_query(limit=n))
            for sid, value, pxat in cur:
                key = f"session:{sid}"
                r.get(key)
                r.set(key, value, ex=max(1, int((pxat - time.time() * 1000) / 1000)))  # the seed's SETEX
                done += 1
    dt = time.perf_counter() - t0
    r.flushdb()
    r.close()
    return done / dt


def applier_rate(n: int, r: redis.Redis) -> dict[str, float]:
    """A live migration (capture installed, backfilled), then ``n`` sessions' expiries extended in
    one statement (n change rows), then the same command again: it resumes with the backfill done
    and applies the changes until caught up. The rate is change rows over the apply phase's time."""
    r.flushdb()
    run.cleanup(DSN, URL)
    opts = run.Options(dsn=DSN, url=URL, live=True, until_caught_up=True)
    run.migrate(opts)
    with psycopg.connect(DSN, autocommit=True) as c:
        c.execute("""UPDATE user_fridge_sessions SET expires_at = expires_at + interval '1 hour'
                     WHERE session_id IN (SELECT session_id FROM user_fridge_sessions
                                          WHERE expires_at > now() ORDER BY random() LIMIT %s)""", [n])
    s = run.migrate(opts)
    ch = s["changes"]
    dt = ch["seconds"]  # the apply phase (the run's preflight scans the 1M keys already in Redis first)
    r.flushdb()
    run.cleanup(DSN, URL)
    return {"change_rows": ch["change_rows"], "sessions": ch["sessions"], "seconds": dt,
            "changes_per_s": ch["change_rows"] / dt, "resumed_run_seconds": s["duration_s"]}


def pg_cpu_seconds() -> float | None:
    """User+system CPU of the PostgreSQL server's processes that have exited (its backends: the
    postmaster's reaped children), read from /proc; None when the server is not local/readable."""
    try:
        with psycopg.connect(DSN) as c:
            ddir = c.execute("SHOW data_directory").fetchone()[0]
        with open(os.path.join(ddir, "postmaster.pid")) as f:
            pid = int(f.readline())
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, psycopg.Error):
        return None


def redis_cpu_seconds(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def own_cpu_seconds() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def redis_benchmark() -> float:
    db = URL.rsplit("/", 1)[1]
    out = subprocess.run(["redis-benchmark", "-q", "-P", "100", "-t", "set", "-n", "2000000", "--dbnum", db],
                         capture_output=True, text=True, timeout=300).stdout
    m = re.findall(r"SET: ([\d.]+) requests per second", out.replace("\r", "\n"))
    return float(m[-1]) if m else float("nan")


def main() -> None:
    global DB, DSN, URL
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--naive-sample", type=int, default=50_000, help="sessions for the naive loop (rate only)")
    ap.add_argument("--concurrency", type=int, default=run.Options.concurrency)
    ap.add_argument("--batch-size", type=int, default=run.Options.batch_size)
    ap.add_argument("--keep", action="store_true", help="keep the filled database for the next run")
    ap.add_argument("--db", default=DB, help="database to use (filled unless it already holds --sessions sessions)")
    ap.add_argument("--redis-db", type=int, default=15, help="Redis database index (flushed)")
    ap.add_argument("--live", action="store_true",
                    help="backfill with change capture installed (migrate --live --until-caught-up), as an operator "
                         "migrating a running application would")
    ap.add_argument("--verify", action="store_true",
                    help="after the last run: fridgebench migrate verify over everything it wrote; prints its time")
    ap.add_argument("--changes", type=int, default=0,
                    help="after the runs: N captured changes (expiry extensions of N sessions, one statement), "
                         "then the same live command again, which applies them; prints the applier's rate")
    a = ap.parse_args()
    DB, DSN = a.db, f"postgresql://postgres@127.0.0.1:5432/{a.db}"
    URL = f"redis://127.0.0.1:6379/{a.redis_db}"
    with psycopg.connect(ADMIN, autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DB]).fetchone()
        if not exists:
            c.execute(f"CREATE DATABASE {DB}")
    with psycopg.connect(DSN) as c:
        have = c.execute("SELECT to_regclass('user_fridge_sessions') IS NOT NULL").fetchone()[0] and \
            c.execute("SELECT count(*) FROM user_fridge_sessions").fetchone()[0]
    fill_s = None
    if have != a.sessions:
        existing = "refuse"
        if have is not False and DB.startswith("fb_bench"):  # the bench's own database, another size: start afresh
            with psycopg.connect(ADMIN, autocommit=True) as c:
                c.execute(f"DROP DATABASE {DB} WITH (FORCE)")
                c.execute(f"CREATE DATABASE {DB}")
        elif have is not False:
            existing = "reset"  # someone's schema: emptied and refilled through its constraints, never altered
        print(f"filling {a.sessions:,} sessions ...", flush=True)
        f = rehearsal.fill(DSN, a.sessions, seed=1, existing=existing, expired_share=0.0, expiring_share=0.0)
        fill_s = f.seconds
        print(f"  {f.ingredient_rows / f.sessions:.2f} ingredients per session, {f.seconds:.1f} s "
              f"({f.sessions / f.seconds:,.0f} sessions/s)", flush=True)
    r = redis.Redis.from_url(URL)
    rates: list[float] = []
    cpu: list[dict[str, float | None]] = []
    load = [os.getloadavg()]
    try:
        for i in range(a.runs):
            r.flushdb()
            run.cleanup(DSN, URL)
            time.sleep(0.5)  # the previous run's backends have exited
            cpu0 = (pg_cpu_seconds(), redis_cpu_seconds(r), own_cpu_seconds())
            s = run.migrate(run.Options(dsn=DSN, url=URL, batch_size=a.batch_size, concurrency=a.concurrency,
                                        live=a.live, until_caught_up=a.live))
            time.sleep(0.3)
            cpu1 = (pg_cpu_seconds(), redis_cpu_seconds(r), own_cpu_seconds())
            b = s["backfill"]
            rates.append(b["written"] / b["seconds"])
            per_m = 1e6 / max(1, b["written"])
            cpu.append({"postgres": (cpu1[0] - cpu0[0]) * per_m if cpu0[0] is not None and cpu1[0] is not None else None,
                        "redis": (cpu1[1] - cpu0[1]) * per_m, "fridgebench": (cpu1[2] - cpu0[2]) * per_m})
            pg_s = f"{cpu[-1]['postgres']:.1f}" if cpu[-1]["postgres"] is not None else "?"
            print(f"run {i + 1}: {b['written']:,} sessions in {b['seconds']:.2f} s = {rates[-1]:,.0f} sessions/s "
                  f"(load average {os.getloadavg()[0]:.2f}); CPU s per 1M sessions: PostgreSQL {pg_s}, "
                  f"Redis {cpu[-1]['redis']:.1f}, fridgebench {cpu[-1]['fridgebench']:.1f}", flush=True)
        verified = None
        if a.verify:
            t0 = time.perf_counter()
            rep = run.verify(DSN, URL, SourceSchema(), ttl_tolerance_s=1.0, sample=5, settle_s=0)
            verified = {"seconds": time.perf_counter() - t0, "checked": rep.checked, "redis_keys": rep.redis_keys,
                        "total_differences": rep.total}
            print(f"verify: {rep.checked:,} live sessions against {rep.redis_keys:,} Redis keys in "
                  f"{verified['seconds']:.1f} s, {rep.total} differences", flush=True)
        applier = applier_rate(a.changes, r) if a.changes else None
        r.flushdb()
        nv = naive(a.naive_sample)
        rb = redis_benchmark()
        load.append(os.getloadavg())
    finally:
        r.flushdb()
        r.close()
        run.cleanup(DSN, URL)
        if not a.keep:
            with psycopg.connect(ADMIN, autocommit=True) as c:
                c.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    med = statistics.median(rates)
    result = {"sessions": a.sessions, "runs": rates, "median_sessions_per_s": med, "naive_sessions_per_s": nv,
              "redis_benchmark_set_per_s": rb, "vs_naive": med / nv, "vs_redis_benchmark_set": med / rb,
              "concurrency": a.concurrency, "fill_seconds": fill_s, "cpus": os.cpu_count(),
              "load_average_start_end": [list(x) for x in load],
              "cpu_seconds_per_million": cpu, "live": a.live, "applier": applier, "verify": verified,
              "target_sessions_per_s": 100_000, "target_met": med >= 100_000,
              "note": "per session fridgebench writes one SET ... PXAT plus its id into an ownership set (SADD)"}
    print(json.dumps(result, indent=2))
    print(f"\nbackfill median {med:,.0f} sessions/s (target 100,000: {'met' if med >= 100_000 else 'MISSED'}) | "
          f"naive GET+SETEX loop {nv:,.0f}/s ({med / nv:.1f}x) | "
          f"redis-benchmark -P 100 SET {rb:,.0f}/s (backfill = {med / rb:.2f} of it)"
          + (" [--live: change capture installed]" if a.live else ""))
    if applier:
        print(f"applier: {applier['change_rows']:,} captured changes of {applier['sessions']:,} sessions applied in "
              f"{applier['seconds']:.2f} s = {applier['changes_per_s']:,.0f} changes/s "
              f"(the whole resumed run, preflight included: {applier['resumed_run_seconds']:.2f} s)")
    raise SystemExit(0 if med >= 100_000 else 3)


if __name__ == "__main__":
    main()
