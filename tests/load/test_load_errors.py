"""Bad input is one clear line and a non-zero exit; Ctrl-C / SIGTERM leave no Locust or server process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from fridgebench.measure.results import INCOMPLETE_MARKER
from tests import procs, servers
from tests.load.helpers import FB, fb, locust_processes
from tests.procs import servers_under


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_error_line(res: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert "Traceback" not in res.stderr
    return errors[0]


@pytest.mark.parametrize("args, code, needle", [
    (["--processes", "0"], 2, "--processes 0"),
    (["no-such-scenario"], 2, "unknown scenario 'no-such-scenario'"),
    (["--stores", "postgres,mysql"], 2, "mysql"),
    (["--stores", "postgres-app"], 2, "postgres-app has no Locust user"),  # asyncio code: compare measures it
    (["--duration", "0.5"], 2, "whole seconds"),
    (["--master", "--worker", "--master-host", "x"], 2, "exclude each other"),
    (["--reuse", "--reset"], 2, "--reuse and --reset exclude each other"),
    (["--worker", "--master-host", "x", "--reset"], 2, "--reset is the master's"),
    (["--redis-url", "redis://:s3cret@127.0.0.1:1/0", "--postgres-dsn", "postgresql://bob:hunter2@127.0.0.1:1/x"],
     1, "127.0.0.1:1"),
])
def test_bad_input_is_one_line_before_anything_runs(tmp_path: Path, args: list[str], code: int, needle: str) -> None:
    res = fb("load", *args, "--out", str(tmp_path))
    assert res.returncode == code, res.stderr
    line = _one_error_line(res)
    assert needle in line, line
    assert "s3cret" not in res.stderr and "hunter2" not in res.stderr
    assert not list(tmp_path.iterdir())  # no run folder: nothing was measured
    assert locust_processes(str(tmp_path)) == []


def test_a_worker_pointed_at_no_master_gives_up_with_one_line(tmp_path: Path) -> None:
    port = _free_port()
    t = time.monotonic()
    res = fb("load", "--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "--connect-timeout", "3",
             "--redis-url", servers.redis_url(servers.REDIS_DB_SHARED), "--postgres-dsn", servers.PG_ADMIN_DSN,
             env={"FRIDGEBENCH_MARK": str(tmp_path)})
    assert res.returncode == 1, res.stderr
    line = _one_error_line(res)
    assert f"no Locust master answered at 127.0.0.1:{port}" in line and "fridgebench load --master" in line
    assert time.monotonic() - t < 60
    assert locust_processes(str(tmp_path)) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_locust_and_the_servers(tmp_path: Path, run_root: Path, sig: int) -> None:
    out = tmp_path / "reports"
    proc = procs.popen([*FB, "load", "--duration", "60", "--sessions", "1000", "--users", "4", "--processes", "2",
                        "--out", str(out), "--run-dir", str(run_root)],
                       stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                       env={**os.environ, "COLUMNS": "200"})
    seen = procs.stderr_until(proc, "/60 s", within=120)
    assert "/60 s" in seen, seen
    assert len(servers_under(run_root)) == 2
    assert len(locust_processes(str(out))) == 3  # the master and two workers, mid-run
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=90) == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    run_dir = next(out.iterdir())
    assert (run_dir / INCOMPLETE_MARKER).exists() and not (run_dir / "results.json").exists()
    assert (run_dir / "locust-master.log").exists()  # what happened stays readable
    assert servers_under(run_root) == []
    assert locust_processes(str(out)) == []
