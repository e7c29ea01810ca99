"""`fridgebench compare` end to end through the real CLI, on real servers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from fridgebench.measure.results import INCOMPLETE_MARKER, SCHEMA_VERSION, load_results
from tests import procs, servers
from tests.helpers import read_hlog as _read_hlog
from tests.procs import servers_under

FB = [sys.executable, "-m", "fridgebench.cli"]
SHORT = ["--duration", "1.5", "--warmup", "0.5", "--sessions", "2000", "--rate", "600"]


def _fb(*args: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FB, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


@pytest.fixture
def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers import fresh_run_root
    import shutil

    root = fresh_run_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_compare_on_embedded_servers_writes_a_complete_results_document(tmp_path: Path, run_root: Path) -> None:
    res = _fb("compare", *SHORT, "--json", "--profile", "--out", str(tmp_path), "--run-dir", str(run_root))
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)  # --json: the document alone on stdout
    assert doc["schema_version"] == SCHEMA_VERSION and doc["complete"] is True
    run_dir = next(tmp_path.iterdir())
    loaded = load_results(run_dir)
    assert loaded.run_id == doc["run_id"]
    assert not (run_dir / INCOMPLETE_MARKER).exists()
    section = doc["sections"]["compare"]
    # both paths by default: lean clients, and fridge2fork's own code (with its two cheapest fixes)
    assert list(section["stores"]) == ["postgres", "redis-atomic", "postgres-app", "postgres-app-fixed", "redis-app"]
    started = datetime.fromisoformat(doc["started_at"]).timestamp()
    finished = datetime.fromisoformat(doc["finished_at"]).timestamp()
    for name, run in section["stores"].items():
        o = run["overall"]
        app = run["path"] == "app"
        assert run["path"] == ("app" if name.endswith(("-app", "-app-fixed")) else "server")
        assert o["offered_rate_per_s"] == (100 if app else 600)  # the app path's own rate: min(--rate, 100)
        # the app's own races (a read's UPDATE of a session a concurrent request deleted) are the app's errors
        assert set(run["errors"]) <= ({"StaleDataError"} if app else set()), (name, run["errors"])
        assert o["operations"] > 0.8 * o["offered_rate_per_s"] * 1.5  # the measured 1.5 s
        assert run["ops"]["get"]["latency_intended"]["p50_us"] >= run["ops"]["get"]["latency_service"]["p50_us"]
        for op, figures in run["ops"].items():  # every operation's log holds every operation measured
            merged, intervals, start = _read_hlog(run_dir / f"{name}.{op}.hlog")
            assert merged.get_total_count() == figures["count"], (name, op)
            assert intervals >= 1 and started <= start <= finished, (name, op, start)
            assert merged.get_max_value() == figures["latency_intended"]["max_us"], (name, op)
            assert merged.get_value_at_percentile(50) == figures["latency_intended"]["p50_us"], (name, op)
        assert {p.name for p in run_dir.glob(f"{name}.*.hlog")} == {f"{name}.{op}.hlog" for op in run["ops"]}
        m = run["machine"]  # the gate's reference for a whole-store change: the machine alone, around this store
        for k in ("cpu_us", "flush_us"):
            assert m[k] > 0 and m[f"{k}_before"] > 0 and m[f"{k}_after"] > 0 and m[f"{k}_samples"] >= 10, m
    pool = section["stores"]["postgres-app"]["client_pool"]
    assert (pool["size"], pool["max_overflow"]) == (5, 10) and pool["connections_opened"] >= 1
    pairs = {(c["path"], c["baseline"], c["other"]) for c in section["comparisons"]}
    assert pairs == {("server", "postgres", "redis-atomic"), ("app", "postgres-app", "redis-app"),
                     ("app", "postgres-app-fixed", "redis-app")}
    assert set(section["paths"]) == {"app", "server"}
    assert set(section["fix"]["by_op"]) >= {"get", "add"}
    assert {op for op, r in section["fix"]["by_op"].items() if r["changed_by_fix"]} == {"get", "add"}
    prof = section["profile"]["stores"]
    assert set(prof) == set(section["stores"])
    assert prof["postgres-app"]["ops"]["get"]["postgres"]["round_trips"] == 8
    assert prof["postgres"]["ops"]["get"]["postgres"]["round_trips"] == 1
    assert "Where the time goes" in res.stderr
    assert section["driver_overhead"]["dispatch_lag"]["count"] > 0
    servers = {s["kind"]: s for s in doc["environment"]["servers"]}
    assert servers["postgres"]["source"] == "embedded" and servers["postgres"]["durability"]["fsync"] == "on"
    assert servers["redis"]["durability"]["appendonly"] == "no"
    claims = {c["key"]: c for c in doc["claims"]}
    assert claims["performance"]["verdict"] != "not measured"
    perf = claims["performance"]
    assert "as fridge2fork's code uses them: PostgreSQL" in perf["measured"]
    assert "as the servers can serve them:" in perf["measured"]
    assert set(perf["figures"]["paths"]) == {"app", "server"} and perf["figures"]["primary_path"] == "server"
    assert perf["figures"]["get_p50_us"].keys() == {"postgres", "redis-atomic"}  # as before: the server pair
    assert claims["failure_recovery"]["measured"] == "not measured by this command"
    assert (run_dir / "intervals.csv").read_text().startswith("store,t_s,ops")
    assert servers_under(run_root) == []  # everything it started is stopped
    assert "The seed's claims" in res.stderr


def _hot_scenario(tmp_path: Path) -> Path:
    p = tmp_path / "hot-adds.toml"
    p.write_text("""
name = "hot-adds"
description = "concurrent adds to a few hot sessions"
[population]
sessions = 20
ingredients = [0, 0]
[keys]
distribution = "zipfian"
zipf_s = 2.0
[mix]
add = 1
[load]
model = "open"
rate = 2000
concurrency = 32
warmup_seconds = 0
duration_seconds = 1.5
""", encoding="utf-8")
    return p


def test_external_stores_and_the_seed_race_shows_as_lost_updates(
        tmp_path: Path, external_pg_dsn: str, external_redis_url: str) -> None:
    res = _fb("compare", str(_hot_scenario(tmp_path)), "--json", "--out", str(tmp_path / "r"),
              "--stores", "postgres,redis-seed,redis-atomic,redis-app", "--app-rate", "2000", "--no-profile",
              "--postgres-dsn", external_pg_dsn, "--redis-url", external_redis_url)
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    assert {s["source"] for s in doc["environment"]["servers"]} == {"external"}
    stores = doc["sections"]["compare"]["stores"]
    lost = {name: run["correctness"]["lost_updates"] for name, run in stores.items()}
    checked = {name: run["correctness"]["adds_checked"] for name, run in stores.items()}
    assert all(n > 1000 for n in checked.values()), checked
    assert lost["postgres"] == 0 and lost["redis-atomic"] == 0
    assert lost["redis-seed"] > 0  # GET -> modify -> SETEX loses concurrent adds
    assert lost["redis-app"] > 0  # the same code on the app's redis.asyncio client: the same race
    assert any("lost" in w for w in doc["warnings"])
    assert "profile" not in doc["sections"]["compare"]  # --no-profile
    # redis-app is on the app path, whose PostgreSQL store did not run: no ratio for it, and a warning saying so
    assert {c["other"] for c in doc["sections"]["compare"]["comparisons"]} == {"redis-seed", "redis-atomic"}
    assert any("redis-app is on the app path" in w for w in doc["warnings"])


def test_the_app_pair_alone_on_external_stores(tmp_path: Path, external_pg_dsn: str, external_redis_url: str) -> None:
    """`--stores postgres-app,redis-app` works like any pair; its profile counts round trips on its own
    connections even on a server others use (the machine's PostgreSQL has no pg_stat_statements)."""
    res = _fb("compare", *SHORT, "--stores", "postgres-app,redis-app", "--json", "--profile", "--out", str(tmp_path),
              "--postgres-dsn", external_pg_dsn, "--redis-url", external_redis_url)
    assert res.returncode == 0, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    section = doc["sections"]["compare"]
    assert {(c["baseline"], c["other"], c["path"]) for c in section["comparisons"]} == {("postgres-app", "redis-app", "app")}
    perf = next(c for c in doc["claims"] if c["key"] == "performance")
    assert perf["measured"].startswith("session read p50 as fridge2fork's code uses them: PostgreSQL")
    assert "as the servers can serve them" not in perf["measured"]
    assert perf["figures"]["primary_path"] == "app" and "fix" not in perf["figures"]  # no fixed variant ran
    prof = section["profile"]["stores"]
    get = prof["postgres-app"]["ops"]["get"]["postgres"]
    assert (get["round_trips"], get["statements"]) == (8, 8)
    assert "statements" not in get["server"]  # pg_stat_statements is not loaded there: not guessed
    assert prof["postgres-app"]["servers"]["postgres"]["pg_stat_statements"] is False
    assert prof["redis-app"]["ops"]["add"]["redis"]["round_trips"] == 2


@pytest.mark.parametrize("args, code, needle", [
    (["--stores", "postgres,mysql"], 2, "mysql"),
    (["--paths", "app,cloud"], 2, "cloud"),
    (["--paths", "app", "--stores", "postgres-app,redis-app"], 2, "--stores and --paths"),
    (["saturation", "--rate", "100"], 2, "closed-loop"),
    (["saturation", "--app-rate", "100"], 2, "--app-rate applies to open-loop"),
    (["--app-rate", "0"], 2, "--app-rate 0"),
    (["--duration", "0"], 2, "duration_seconds"),
    (["--redis-url", "redis://:s3cret@127.0.0.1:1/0", "--postgres-dsn", servers.PG_ADMIN_DSN],
     1, "127.0.0.1:1"),
    (["--postgres-dsn", "postgresql://bob:hunter2@127.0.0.1:1/x", "--redis-url", servers.redis_url(servers.REDIS_DB_SHARED)],
     1, "127.0.0.1:1"),
])
def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    res = _fb("compare", *args, "--out", str(tmp_path))
    assert res.returncode == code, res.stderr
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1, res.stderr  # (an info line may precede it: "using PostgreSQL ... (external)")
    assert needle in errors[0]
    assert "s3cret" not in res.stderr and "hunter2" not in res.stderr
    assert "Traceback" not in res.stderr
    assert not list(tmp_path.iterdir())  # no run folder at all: nothing was measured


def test_debug_shows_the_traceback_of_a_bad_input(tmp_path: Path) -> None:
    plain = _fb("compare", "--stores", "postgres,mysql", "--out", str(tmp_path))
    debug = _fb("--debug", "compare", "--stores", "postgres,mysql", "--out", str(tmp_path))
    assert plain.returncode == debug.returncode == 2
    assert "Traceback" not in plain.stderr and "Traceback" in debug.stderr
    line = [l for l in plain.stderr.splitlines() if l.startswith("error:")]
    assert len(line) == 1 and line[0] in debug.stderr.splitlines()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_servers_and_leaves_no_complete_results(tmp_path: Path, run_root: Path, sig: int) -> None:
    proc = procs.popen([*FB, "compare", "--duration", "60", "--sessions", "2000", "--rate", "500",
                        "--out", str(tmp_path), "--run-dir", str(run_root)],
                       stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                       env={**os.environ, "COLUMNS": "200"})
    seen = procs.stderr_until(proc, "loaded", within=90)
    assert "loaded" in seen, seen
    assert len(servers_under(run_root)) == 2, "PostgreSQL and Valkey should be running mid-run"
    time.sleep(1.5)
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    run_dir = next(tmp_path.iterdir())
    assert (run_dir / INCOMPLETE_MARKER).exists()
    assert not (run_dir / "results.json").exists()
    # stopped: polled with a deadline (a backend may take a moment to follow its postmaster out)
    deadline = time.monotonic() + 15
    while servers_under(run_root):
        assert time.monotonic() < deadline, servers_under(run_root)
        time.sleep(0.05)


@pytest.fixture
def tiny_disk(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A 16 KiB tmpfs: room for the run folder's INCOMPLETE marker, not for the results."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no mount command here: cannot make a tiny tmpfs to fill")
    if done.returncode != 0:  # root without CAP_SYS_ADMIN (an unprivileged container): not this machine's to test
        pytest.skip(f"mounting a 16 KiB tmpfs is not permitted here: {(done.stderr or done.stdout).strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")
def test_disk_full_is_one_line_and_no_complete_results(tiny_disk: Path, run_root: Path) -> None:
    res = _fb("compare", *SHORT, "--stores", "postgres,redis-atomic", "--out", str(tiny_disk),
              "--run-dir", str(run_root))
    assert res.returncode == 1, res.stderr[-2000:]
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "disk full" in errors[0], res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert not list(tiny_disk.glob("*/results.json"))
    assert [p.name for p in tiny_disk.glob(f"*/{INCOMPLETE_MARKER}")]  # marked as not a result
    assert servers_under(run_root) == []
