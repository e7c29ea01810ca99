"""Helpers tests import (a normal module: fixtures live in conftest files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from tests import procs

WITH_REPORT = {"FRIDGEBENCH_NO_REPORT": "0"}  # the environment of a run that writes its report (conftest turns it off)


def cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess (exit codes, stderr, signals as an operator sees them)."""
    return procs.run([sys.executable, "-c", "from fridgebench.cli import main; main()", *args],
                     capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def popen_cli(*args: str) -> subprocess.Popen[str]:
    """The real console entry point, running in the background (to signal or kill it)."""
    return procs.popen([sys.executable, "-c", "from fridgebench.cli import main; main()", *args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def verify_cli(dsn: str, url: str, *extra: str) -> dict[str, Any]:
    """``migrate verify --json``: its document; the exit status must agree with it (0 = no difference)."""
    res = cli("migrate", "verify", "--from", dsn, "--to", url, "--json", *extra)
    assert res.stdout, res.stderr
    doc: dict[str, Any] = json.loads(res.stdout)
    assert (res.returncode == 0) == (doc["total_differences"] == 0), res.stderr
    return doc


def checkpoint(dsn: str) -> dict[str, Any] | None:
    """migrate's checkpoint row, or None before migrate created it."""
    with psycopg.connect(dsn) as c:
        if not c.execute("SELECT to_regclass('fridgebench_migrate.checkpoint') IS NOT NULL").fetchone()[0]:
            return None
        row = c.execute("SELECT written, backfill_done, last_session_id, run_id, changes_applied, "
                        "apply_watermark::text FROM fridgebench_migrate.checkpoint").fetchone()
        if row is None:
            return None
        return {"written": row[0], "done": row[1], "last": row[2], "run_id": row[3], "applied": row[4],
                "watermark": int(row[5]) if row[5] is not None else None}


def wait_until(what: str, predicate: Any, timeout: float = 60.0, every: float = 0.05) -> Any:
    """Poll ``predicate()`` until it returns something truthy (returned), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(every)


def wait_caught_up(dsn: str, timeout: float = 60.0) -> None:
    """Until migrate's apply watermark passed every change row (lag zero)."""
    def caught_up() -> bool:
        with psycopg.connect(dsn, autocommit=True) as c:
            wm, mx = c.execute("SELECT (SELECT apply_watermark FROM fridgebench_migrate.checkpoint)::text, "
                               "(SELECT max(txid) FROM fridgebench_migrate.changes)::text").fetchone()
        return wm is not None and (mx is None or int(wm) > int(mx))
    wait_until("migrate to catch up (lag zero)", caught_up, timeout, every=0.1)


def fill(dsn: str, n: int, seed: int = 1) -> None:
    from fridgebench.migrate.rehearsal import fill as _fill

    _fill(dsn, n, seed=seed, existing="reuse")


def read_hlog(path: "os.PathLike[str] | str") -> tuple[Any, int, float]:
    """An interval log read back with HdrHistogram's own log reader: the intervals merged, how
    many there were, and the log's start time (seconds since the epoch)."""
    from hdrh.log import HistogramLogReader

    from fridgebench.measure.summary import new_histogram

    reader = HistogramLogReader(str(path), new_histogram())
    merged, n = new_histogram(), 0
    try:
        while (h := reader.get_next_interval_histogram()) is not None:
            merged.add(h)
            n += 1
        return merged, n, reader.get_start_time_sec()
    finally:
        reader.close()


def db_now(dsn: str) -> Any:
    with psycopg.connect(dsn, autocommit=True) as c:
        return c.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]


def expired_since(dsn: str, t0: Any) -> int:
    """Sessions that expired between ``t0`` (a :func:`db_now`) and now: a verify in between counted them
    live when it read PostgreSQL and found them gone from Redis by the time it scanned it."""
    with psycopg.connect(dsn, autocommit=True) as c:
        return int(c.execute("SELECT count(*) FROM user_fridge_sessions WHERE expires_at > %s "
                             "AND expires_at <= clock_timestamp()", [t0]).fetchone()[0])  # type: ignore[index]


def assert_counted_on_both_sides(dsn: str, t0: Any, doc: dict[str, Any]) -> None:
    """verify's live sessions (PostgreSQL) and session keys (Redis) agree, except sessions that expired
    while it ran (the fills make some expire within minutes)."""
    assert 0 <= doc["checked"] - doc["redis_keys"] <= expired_since(dsn, t0), (doc["checked"], doc["redis_keys"])


def fresh_run_root() -> Path:
    """A private run root under the system temp dir (pytest's tmp dirs are 0700 below /tmp/pytest-of-root,
    which an unprivileged PostgreSQL user cannot traverse)."""
    path = Path(tempfile.mkdtemp(prefix="fridgebench-test-"))
    os.chmod(path, 0o711)  # ours: traversable (not listable) by the unprivileged PostgreSQL user under root
    return path
