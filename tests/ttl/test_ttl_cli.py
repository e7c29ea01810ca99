"""`fridgebench ttl` through the CLI runner: bad input, unreachable stores, a real --json run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from fridgebench.cli import app
from fridgebench.measure.results import load_results

runner = CliRunner()


def _one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    err = result.stderr.strip()
    assert "Traceback" not in err and "Traceback" not in result.stdout
    assert result.stdout == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error:")
    return err


@pytest.mark.parametrize("args, needle", [
    (["--ttl", "0"], "--ttl must be a positive"),
    (["--ttl", "-3"], "--ttl must be a positive"),
    (["--ttl", "0.5"], "whole number of seconds"),
    (["--sessions", "1000000000000"], "of memory, this machine has"),
    (["--memory-counts", "10000,99999999999"], "of memory, this machine has"),
    (["--memory-counts", "ten"], "--memory-counts"),
    (["--stores", "postgres,mongo"], "unknown store mongo"),
    (["--stores", "postgres-app"], "ttl measures the servers (expiry, cleanup, memory), not the client path: "
                                   "postgres-app stores exactly what postgres stores — use --stores postgres"),
    (["--stores", "redis-app"], "use --stores redis-seed"),
    (["--sessions", "3"], "--sessions must be at least 10"),
    (["--cleanup-every", "0"], "--cleanup-every must be a positive"),
    (["--cleanup-every", "-1"], "--cleanup-every must be a positive"),
    (["--cleanup-sessions", "1"], "--cleanup-sessions must be at least 2"),
])
def test_bad_input_is_one_line_and_exit_2(args: list[str], needle: str, tmp_path: Path) -> None:
    # no server is started: validation happens before provisioning (the unreachable URLs prove it)
    result = runner.invoke(app, ["ttl", *args, "--out", str(tmp_path), "--postgres-dsn",
                                 "postgresql://u:secret@127.0.0.1:1/x", "--redis-url", "redis://127.0.0.1:1/0"])
    assert result.exit_code == 2, result.stderr
    assert needle in _one_line_error(result)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_store_is_one_line_and_exit_1(tmp_path: Path, ttl_redis_url: str) -> None:
    result = runner.invoke(app, ["ttl", "--sessions", "20", "--ttl", "1", "--out", str(tmp_path),
                                 "--postgres-dsn", "postgresql://fb:hunter2@127.0.0.1:1/nowhere",
                                 "--redis-url", ttl_redis_url])
    assert result.exit_code == 1
    err = _one_line_error(result)
    assert "PostgreSQL" in err and "hunter2" not in err


def test_json_run_writes_a_valid_results_document(tmp_path: Path, ttl_pg_dsn: str, ttl_redis_url: str) -> None:
    flags_before = redis.Redis.from_url(ttl_redis_url).config_get("notify-keyspace-events")
    # two stores are enough for the document and both claims; each store's expiry is tested in test_ttl_measure
    result = runner.invoke(app, ["ttl", "--json", "--sessions", "60", "--ttl", "1", "--ingredients", "3",
                                 "--stores", "postgres,redis-seed",
                                 "--memory-counts", "300,600", "--cleanup-sessions", "400", "--cleanup-every", "0.1",
                                 "--out", str(tmp_path), "--postgres-dsn", ttl_pg_dsn, "--redis-url", ttl_redis_url,
                                 "--allow-config-set"],  # a Redis of the tests' own: time each key's removal
                           env={"FRIDGEBENCH_NO_REPORT": None})  # the default: a run writes its report
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)  # the document alone on stdout
    (tmp_path / "stdout.json").write_text(result.stdout)
    doc = load_results(tmp_path / "stdout.json")
    assert doc.command == "ttl" and doc.complete
    run_dirs = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert len(run_dirs) == 1 and load_results(run_dirs[0]).run_id == data["run_id"]
    assert "Expiry, cleanup and memory" in (run_dirs[0] / "report.html").read_text()  # the run's own report
    ttl = doc.sections["ttl"]
    assert set(ttl["expiry"]) == set(ttl["memory"]) == {"postgres", "redis-seed"}
    assert [p["sessions"] for p in ttl["memory"]["postgres"]["points"]] == [300, 600]
    assert ttl["cleanup"]["variants"][0]["deleted_sessions"] == 200
    claims = {c.key: c for c in doc.claims}
    for key in ("auto_expiry", "memory_use"):
        assert claims[key].verdict != "not measured" and claims[key].command == "fridgebench ttl"
        assert claims[key].figures
    assert claims["performance"].verdict == "not measured"
    assert "B/session" in claims["memory_use"].measured
    assert ttl["expiry"]["redis-seed"]["notifications"] is True  # switched on for the run, then restored:
    assert redis.Redis.from_url(ttl_redis_url).config_get("notify-keyspace-events") == flags_before
    assert "Expiry lag" in result.stderr and "Bytes per session" in result.stderr
