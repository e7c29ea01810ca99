"""Passwords never reach output or files on the paths that *succeed*.

Every command that accepts credentials runs to success with a password in its DSN / URL, and
stdout, stderr and every file the run wrote (``results.json``, ``results.json.partial``,
``intervals.csv``, the ``.hlog`` files, the ``up`` record, migrate's checkpoint rows in
PostgreSQL) are scanned for it -- in its URL-encoded and its decoded form. Each scan also checks
the masked form *is* there, so a run that never printed the URL cannot pass by accident.

PostgreSQL: the machine's, whose trust authentication accepts any password (an override DSN
that carries a password of its own has that one scanned for instead). Redis: a throwaway server
started with ``--requirepass`` (the machine's Redis accepts any password).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import psycopg
import pytest

from tests import procs
from tests.helpers import fresh_run_root
from tests.helpers import checkpoint, wait_until
from tests.procs import servers_under
from tests.servers import ThrowawayRedis, machine_database, throwaway_redis

PASSWORD = "fbS3cret@pw!"  # decoded; in URLs it is percent-encoded
FB = [sys.executable, "-m", "fridgebench.cli"]


def _with_password(dsn: str) -> tuple[str, str]:
    """``dsn`` carrying a password, and the password as sent (decoded)."""
    s = urlsplit(dsn)
    if s.password:  # an override DSN with its own password: that is the secret to look for
        return dsn, unquote(s.password)
    netloc = f"{s.username or 'postgres'}:{quote(PASSWORD, safe='')}@{s.hostname}:{s.port or 5432}"
    return urlunsplit((s.scheme, netloc, s.path, s.query, s.fragment)), PASSWORD


def _forms(secret: str) -> list[str]:
    return sorted({secret, quote(secret, safe=""), quote(secret)})


def assert_clean(where: str, text: str | bytes, secrets: list[str]) -> None:
    data = text.encode() if isinstance(text, str) else text
    for form in secrets:
        at = data.find(form.encode())
        assert at < 0, f"password in {where}: ...{data[max(0, at - 80):at + 40]!r}..."


def assert_tree_clean(root: Path, secrets: list[str]) -> list[Path]:
    files = [p for p in root.rglob("*") if p.is_file()]
    for p in files:
        assert_clean(str(p), p.read_bytes(), secrets)
    return files


def _names_server(text: str, url: str) -> bool:
    """Whether ``text`` names the server of ``url`` (its host:port) -- so a clean scan is not
    clean only because the URL was never printed."""
    s = urlsplit(url)
    return f"{s.hostname}:{s.port}" in text


def fb(*args: str, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # as a user runs it: no store from the environment; each run writes its report and compare profiles
    # (both scanned too)
    base = {k: v for k, v in os.environ.items()
            if k not in ("FRIDGEBENCH_POSTGRES_DSN", "FRIDGEBENCH_REDIS_URL", "FRIDGEBENCH_NO_REPORT", "FRIDGEBENCH_PROFILE")}
    return subprocess.run([*FB, *args], capture_output=True, text=True, timeout=timeout,
                          env={**base, "COLUMNS": "200", **(env or {})})


def ok(res: subprocess.CompletedProcess[str], secrets: list[str], what: str) -> None:
    assert res.returncode == 0, res.stderr[-3000:]
    assert_clean(f"{what} stdout", res.stdout, secrets)
    assert_clean(f"{what} stderr", res.stderr, secrets)


@pytest.fixture(scope="module")
def redis_pw() -> Iterator[ThrowawayRedis]:
    with throwaway_redis(password=PASSWORD) as server:
        yield server


@pytest.fixture
def pg_pw() -> Iterator[tuple[str, list[str]]]:
    """A fresh database on the machine's PostgreSQL, as a DSN with a password; the forms to scan for."""
    with machine_database("fb_test_mask") as dsn:
        with_pw, secret = _with_password(dsn)
        yield with_pw, _forms(secret)


def _redis_url(server: ThrowawayRedis, db: int) -> str:
    return server.url(db, password=quote(PASSWORD, safe=""))


def test_compare_on_stores_with_passwords(tmp_path: Path, pg_pw, redis_pw) -> None:  # type: ignore[no-untyped-def]
    dsn, secrets = pg_pw
    secrets = sorted(set(secrets) | set(_forms(PASSWORD)))
    res = fb("compare", "--stores", "postgres,redis-atomic", "--duration", "1", "--warmup", "0.2",
             "--sessions", "200", "--rate", "200", "--json", "--out", str(tmp_path),
             "--postgres-dsn", dsn, "--redis-url", _redis_url(redis_pw, 1))
    ok(res, secrets, "compare")
    files = assert_tree_clean(tmp_path, secrets)
    names = {p.name for p in files}
    assert {"results.json", "intervals.csv", "postgres.get.hlog", "redis-atomic.get.hlog", "report.html",
            "report.md"} <= names, names  # the report too: written by default
    doc = json.loads(res.stdout)
    urls = {s["kind"]: s["url"] for s in doc["environment"]["servers"]}
    assert ":***@" in urls["postgres"] and ":***@" in urls["redis"]  # the URLs are there, masked
    assert _names_server(res.stderr, dsn)  # the store was named on stderr (masked, or without its password)


def test_ttl_on_stores_with_passwords(tmp_path: Path, pg_pw, redis_pw) -> None:  # type: ignore[no-untyped-def]
    dsn, secrets = pg_pw
    secrets = sorted(set(secrets) | set(_forms(PASSWORD)))
    res = fb("ttl", "--sessions", "20", "--ttl", "1", "--ingredients", "2", "--stores", "postgres,redis-atomic",
             "--memory-counts", "100", "--cleanup-sessions", "40", "--cleanup-every", "0.1", "--json",
             "--out", str(tmp_path), "--postgres-dsn", dsn, "--redis-url", _redis_url(redis_pw, 2))
    ok(res, secrets, "ttl")
    files = assert_tree_clean(tmp_path, secrets)
    assert sorted(p.name for p in files) == ["report.html", "report.md", "results.json"]  # each scanned above
    assert _names_server(json.dumps(json.loads(res.stdout)["environment"]["servers"]), dsn)


def test_up_status_down_with_external_stores_with_passwords(pg_pw, redis_pw) -> None:  # type: ignore[no-untyped-def]
    dsn, secrets = pg_pw
    secrets = sorted(set(secrets) | set(_forms(PASSWORD)))
    root = fresh_run_root()
    try:
        # one store external (with its password), the other started and recorded in up.json
        for external in (["--postgres-dsn", dsn], ["--redis-url", _redis_url(redis_pw, 3)]):
            res = fb("up", "--run-dir", str(root), *external)
            ok(res, secrets, "up")
            assert _names_server(res.stderr, external[1])
            res = fb("up", "--run-dir", str(root), *external, "--json")  # already up: reports both again
            ok(res, secrets, "up --json")
            assert _names_server(res.stdout, external[1])
            assert (root / "up.json").exists()
            for args in (["status"], ["status", "--json"]):
                ok(fb(*args, "--run-dir", str(root)), secrets, " ".join(args))
            assert_tree_clean(root, secrets)  # the record, the started server's folder and logs
            ok(fb("down", "--run-dir", str(root)), secrets, "down")
            assert servers_under(root) == []
    finally:
        fb("down", "--run-dir", str(root))
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def test_rehearse_migrate_verify_cleanup_with_passwords(tmp_path: Path, pg_pw, redis_pw) -> None:  # type: ignore[no-untyped-def]
    dsn, secrets = pg_pw
    secrets = sorted(set(secrets) | set(_forms(PASSWORD)))
    url = _redis_url(redis_pw, 4)
    reports = tmp_path / "reports"
    env = {"FRIDGEBENCH_REPORTS": str(reports)}
    ok(fb("rehearse", "fill", "--dsn", dsn, "--sessions", "1500", "--json"), secrets, "rehearse fill")
    ok(fb("rehearse", "write", "--dsn", dsn, "--rate", "100", "--duration", "0.5", "--json"), secrets,
       "rehearse write")
    ok(fb("migrate", "--from", dsn, "--to", url, "--dry-run", "--json", env=env), secrets, "migrate --dry-run")

    # interrupted: the partial results of a --follow stopped with Ctrl-C
    p = procs.popen([*FB, "migrate", "--from", dsn, "--to", url, "--live", "--follow"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    env={**os.environ, **env, "COLUMNS": "200"})
    try:
        wait_until("the backfill", lambda: (checkpoint(dsn) or {}).get("done"))
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130, err
    assert_clean("interrupted migrate stdout", out, secrets)
    assert_clean("interrupted migrate stderr", err, secrets)
    assert list(reports.glob("*/results.json.partial"))

    res = fb("migrate", "--from", dsn, "--to", url, "--live", "--until-caught-up", "--json", env=env)
    ok(res, secrets, "migrate")
    doc = json.loads(res.stdout)
    assert _names_server(doc["source"], dsn) and _names_server(doc["target"], url)
    res = fb("migrate", "verify", "--from", dsn, "--to", url, "--json", env=env)
    ok(res, secrets, "migrate verify")
    assert json.loads(res.stdout)["total_differences"] == 0
    # what migrate stores in the application's database
    with psycopg.connect(dsn) as c:
        rows = c.execute("SELECT target, run_id, ranges::text FROM fridgebench_migrate.checkpoint").fetchall()
        rows += c.execute("SELECT key, value FROM fridgebench_migrate.meta").fetchall()
    assert rows
    assert_clean("fridgebench_migrate tables", repr(rows), secrets)
    assert _names_server(rows[0][0], url)
    # key=value DSN form, as psycopg takes it
    s = urlsplit(dsn)
    kv = (f"host={s.hostname} port={s.port or 5432} dbname={s.path.lstrip('/')} user={s.username} "
          f"password={unquote(s.password or '')}")
    res = fb("migrate", "verify", "--from", kv, "--to", url, "--json", env=env)
    assert_clean("migrate verify (key=value DSN) stdout", res.stdout, secrets)
    assert_clean("migrate verify (key=value DSN) stderr", res.stderr, secrets)
    # verified, or (where only URLs are taken) refused as a usage error: masked either way
    assert (res.returncode, "password=***" in res.stdout) == (0, True) or \
        (res.returncode, "password=***" in res.stderr) == (2, True), res.stderr
    ok(fb("migrate", "cleanup", "--from", dsn, "--to", url), secrets, "migrate cleanup")
    files = assert_tree_clean(reports, secrets)
    assert {p.name for p in files} >= {"results.json", "results.json.partial", "INCOMPLETE"}
    assert len([p for p in files if p.name == "results.json"]) >= 3  # dry run, migrate, verify (and key=value)


def test_load_on_stores_with_passwords(tmp_path: Path, pg_pw, redis_pw) -> None:  # type: ignore[no-untyped-def]
    """Locust's own files too: its log, statistics and HTML report are written by processes that get
    the store URLs in their environment."""
    dsn, secrets = pg_pw
    secrets = sorted(set(secrets) | set(_forms(PASSWORD)))
    res = fb("load", "--stores", "postgres,redis-atomic", "--duration", "1", "--warmup", "0.2", "--sessions", "200",
             "--users", "2", "--spawn-rate", "2", "--json", "--out", str(tmp_path),
             "--postgres-dsn", dsn, "--redis-url", _redis_url(redis_pw, 5))
    ok(res, secrets, "load")
    names = {p.name for p in assert_tree_clean(tmp_path, secrets)}
    assert {"results.json", "intervals.csv", "postgres.get.hlog", "locust-local.log", "locust_stats.csv",
            "locust_report.html", "report.html"} <= names, names
    urls = {s["kind"]: s["url"] for s in json.loads(res.stdout)["environment"]["servers"]}
    assert ":***@" in urls["postgres"] and ":***@" in urls["redis"]


def test_failure_on_stores_with_passwords(tmp_path: Path, pg_pw, redis_pw) -> None:  # type: ignore[no-untyped-def]
    """A reset through the fault proxy: the proxy and the fallback's second client connect with the URLs."""
    dsn, secrets = pg_pw
    secrets = sorted(set(secrets) | set(_forms(PASSWORD)))
    res = fb("failure", "reset", "--stores", "redis-atomic", "--warmup", "0.2", "--duration", "4", "--at", "0.4",
             "--down", "0.4", "--rate", "200", "--sessions", "200", "--json", "--out", str(tmp_path),
             "--postgres-dsn", dsn, "--redis-url", _redis_url(redis_pw, 6))
    ok(res, secrets, "failure")
    names = {p.name for p in assert_tree_clean(tmp_path, secrets)}
    assert "results.json" in names and "report.html" in names and any(n.endswith(".hlog") for n in names), names
    doc = json.loads(res.stdout)
    assert doc["sections"]["failure"]["cases"], doc["sections"]["failure"]
    urls = {s["kind"]: s["url"] for s in doc["environment"]["servers"]}
    assert ":***@" in urls["redis"], urls
