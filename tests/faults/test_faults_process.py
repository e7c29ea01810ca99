"""Process faults on servers fridgebench starts (embedded Valkey and PostgreSQL): crash, restart on
the same data, pause, a killed backend -- and never a signal to a process fridgebench did not start."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis

from fridgebench.errors import ProvisionError
from fridgebench.faults.durability import MODES
from fridgebench.faults.process import ExternalCrash, ProcessFault, run_command
from fridgebench.faults.base import FaultError
from fridgebench.provision import local
from fridgebench.provision.base import ProvisionOptions, ServerInfo
from fridgebench.provision.fleet import Fleet
from tests.helpers import fresh_run_root
from tests.procs import servers_under

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def root() -> Iterator[Path]:
    path = fresh_run_root()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def fleet(root: Path) -> Iterator[Fleet]:
    with Fleet(ProvisionOptions(run_dir=str(root))) as f:
        yield f
    assert servers_under(root) == []  # every server it started is stopped, paused ones included


def r(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def test_redis_none_crash_loses_everything_and_restarts_on_the_same_port(fleet: Fleet) -> None:
    srv = fleet.server("redis", "none", MODES["none"].settings)
    port, pid = srv.info.port, srv.info.pid
    assert srv.server is not None
    started = srv.server.create_time
    r(srv.url).set("fbtest:k", "v")
    srv.kill()
    assert srv.down and not local.pid_alive(pid, started)
    with pytest.raises(redis.ConnectionError):
        r(srv.url).ping()
    srv.respawn()
    ready = srv.wait_ready(30)
    assert ready["ready_s"] >= ready["answered_s"] >= 0
    assert srv.info.port == port and srv.info.pid != pid
    assert r(srv.url).get("fbtest:k") is None  # no persistence: gone


def test_redis_aof_always_crash_keeps_every_acknowledged_write(fleet: Fleet) -> None:
    srv = fleet.server("redis", "aof-always", MODES["aof-always"].settings)
    c = r(srv.url)
    for i in range(200):
        c.set(f"fbtest:k{i}", i)
    assert c.config_get("appendfsync")["appendfsync"] == "always"
    srv.kill()
    srv.respawn()
    srv.wait_ready(30)
    c = r(srv.url)
    assert [int(c.get(f"fbtest:k{i}")) for i in range(200)] == list(range(200))
    c.flushdb()


def test_redis_rdb_clean_restart_saves_a_snapshot(fleet: Fleet) -> None:
    srv = fleet.server("redis", "rdb", MODES["rdb"].settings)
    r(srv.url).set("fbtest:k", "v")
    srv.shutdown()
    srv.respawn()
    srv.wait_ready(30)
    assert r(srv.url).get("fbtest:k") == b"v"
    r(srv.url).flushdb()


def test_pause_hangs_requests_and_resume_answers_them(fleet: Fleet) -> None:
    srv = fleet.server("redis", "none", MODES["none"].settings)
    srv.pause()
    try:
        with pytest.raises(redis.TimeoutError):
            redis.Redis.from_url(srv.url, socket_timeout=0.3, socket_connect_timeout=2, retry_on_timeout=False).ping()
    finally:
        srv.resume()
    assert r(srv.url).ping()


def test_postgres_crash_keeps_committed_rows_and_a_killed_backend_recovers(fleet: Fleet) -> None:
    srv = fleet.server("postgres", "sync", MODES["sync"].settings)

    async def main() -> None:
        conn = await asyncpg.connect(srv.url)
        await conn.execute("CREATE TABLE IF NOT EXISTS fbtest_t (i int)")
        await conn.execute("INSERT INTO fbtest_t SELECT generate_series(1, 100)")
        other = await asyncpg.connect(srv.url)
        killed = srv.kill_backend()
        assert killed in (conn.get_server_pid(), other.get_server_pid())
        await asyncio.sleep(0.2)
        for c in (conn, other):  # every backend ended: PostgreSQL's own crash recovery
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await c.fetchval("SELECT 1")
            c.terminate()
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = await asyncpg.connect(srv.url)
                break
            except (asyncpg.CannotConnectNowError, OSError):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        assert await conn.fetchval("SELECT count(*) FROM fbtest_t") == 100
        await conn.close()

    asyncio.run(main())
    pid = srv.info.pid
    srv.kill()
    srv.respawn()
    srv.wait_ready(60)
    assert srv.info.pid != pid

    async def count() -> int:
        conn = await asyncpg.connect(srv.url)
        try:
            n = await conn.fetchval("SELECT count(*) FROM fbtest_t")
            await conn.execute("DROP TABLE fbtest_t")
            return int(n)
        finally:
            await conn.close()

    assert asyncio.run(count()) == 100


def test_a_process_fridgebench_did_not_start_is_never_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen(["sleep", "30"])
    try:
        # the right pid, but not the start time fridgebench recorded: a reused pid
        fake = local.LocalServer(ServerInfo("redis", "embedded", "", pid=other.pid, port=1), "", tmp_path,
                                 create_time=1.0, argv=["sleep", "30"], log=tmp_path / "log")
        for act in (local.kill, local.pause, local.kill_backend, local.shutdown):
            with pytest.raises(ProvisionError, match="not signalling it|PostgreSQL"):
                act(fake)
        assert other.poll() is None  # untouched, not stopped
        assert open(f"/proc/{other.pid}/stat").read().split()[2] != "T"
    finally:
        other.kill()
        other.wait()


def test_process_faults_refuse_an_external_server() -> None:
    from fridgebench.provision.fleet import Controlled

    ext = Controlled("redis", "external", "redis://127.0.0.1:1/0", ServerInfo("redis", "external", "redis://127.0.0.1:1/0"))
    with pytest.raises(FaultError, match="external"):
        ProcessFault("crash", ext)
    with pytest.raises(ProvisionError, match="not fridgebench's to signal"):
        ext.kill()


async def test_commands_failing_or_hanging_are_one_line_errors() -> None:
    out = await run_command("echo done", timeout_s=10, what="--kill-cmd")
    assert out["output_tail"] == ["done"] and out["seconds"] >= 0
    with pytest.raises(FaultError, match=r"--kill-cmd `exit 3` failed \(exit 3\)"):
        await run_command("exit 3", timeout_s=10, what="--kill-cmd")
    t = time.monotonic()
    with pytest.raises(FaultError, match="did not finish within 0.5 s"):
        await run_command("sleep 31.25 & sleep 31.25", timeout_s=0.5, what="--start-cmd")
    assert time.monotonic() - t < 10
    deadline = time.monotonic() + 10
    while subprocess.run(["pgrep", "-f", "^sleep 31.25$"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the hanging command's process group was not killed"
        await asyncio.sleep(0.05)


async def test_external_crash_runs_start_cmd_on_emergency_heal(tmp_path: Path) -> None:
    from fridgebench.provision.fleet import Controlled

    marker = tmp_path / "started"
    ext = Controlled("redis", "external", "redis://127.0.0.1:1/0", ServerInfo("redis", "external", ""))

    async def ready(t: float) -> float | None:
        return 0.0

    f = ExternalCrash(ext, "true", f"touch {marker}", timeout_s=10, ready=ready)
    await f.inject()
    assert not marker.exists()
    assert "ran --start-cmd" in (await f.emergency_heal())[0]
    assert marker.exists()
    assert await f.emergency_heal() == []  # once


async def test_memory_full_sets_and_restores_maxmemory_on_a_server_fridgebench_started(fleet: Fleet) -> None:
    from fridgebench.faults.memory import MemoryFull

    srv = fleet.server("redis", "none", MODES["none"].settings)
    c = r(srv.url)
    c.mset({f"fbtest:m{i}": "x" * 200 for i in range(2000)})
    f = MemoryFull(srv, "allkeys-lru", fraction=0.5)
    await f.inject()
    got = c.config_get("maxmemory*")
    assert int(got["maxmemory"]) == f.detail["maxmemory"] > 0 and got["maxmemory-policy"] == "allkeys-lru"
    c.set("fbtest:push", "y" * 1000)  # a write makes it evict
    await f.heal()
    got = c.config_get("maxmemory*")
    assert (got["maxmemory"], got["maxmemory-policy"]) == ("0", "noeviction")
    assert f.detail["evicted_keys"] > 0
    c.flushdb()


async def test_memory_full_emergency_heal_restores_too(fleet: Fleet) -> None:
    from fridgebench.faults.memory import MemoryFull

    srv = fleet.server("redis", "none", MODES["none"].settings)
    f = MemoryFull(srv, "noeviction", fraction=0.1)
    await f.inject()
    assert r(srv.url).config_get("maxmemory")["maxmemory"] != "0"
    assert await f.emergency_heal() == ["restored Redis maxmemory and maxmemory-policy"]
    assert r(srv.url).config_get("maxmemory")["maxmemory"] == "0"


def test_memory_full_refuses_an_external_server_without_the_opt_in() -> None:
    from fridgebench.faults.memory import MemoryFull
    from fridgebench.provision.fleet import Controlled

    ext = Controlled("redis", "external", "redis://127.0.0.1:1/0", ServerInfo("redis", "external", ""))
    with pytest.raises(FaultError, match="--allow-config-set"):
        MemoryFull(ext, "noeviction")
