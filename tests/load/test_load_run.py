"""`fridgebench load` end to end on embedded servers: one Locust process, then a master and two workers.

Every request is counted four ways and they must agree exactly: fridgebench's merged histograms
(plus errors), each Locust process's own tally, Locust's own statistics, and what the server
itself counted (Redis INFO commandstats, PostgreSQL pg_stat_user_tables).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fridgebench.measure.results import INCOMPLETE_MARKER, load_results
from tests.helpers import WITH_REPORT, read_hlog
from tests.load.helpers import fb, locust_processes
from tests.procs import servers_under

SHORT = ["--duration", "2", "--warmup", "0.5", "--sessions", "1500", "--users", "6", "--spawn-rate", "6"]


def _ok(run: dict[str, Any], op: str) -> int:
    return run["requests_total"].get(op, {}).get("ok", 0)


def _req(run: dict[str, Any], op: str) -> int:
    return run["requests_total"].get(op, {}).get("requests", 0)


def _assert_counts_agree(name: str, run: dict[str, Any], processes: int) -> None:
    total = run["requests_total"]
    assert total and sum(c["requests"] for c in total.values()) > 200, (name, total)
    for op, c in total.items():
        # the merged histograms hold every reply; errors are counted, not timed
        assert c["in_histograms"] + c["errors"] == c["requests"], (name, op, c)
        assert c["in_histograms"] == c["ok"] + c["not_found"], (name, op, c)
        assert run["locust_requests"][op]["requests"] == c["requests"], (name, op, run["locust_requests"])
    per_process = run["process_requests"]
    assert len(per_process) == processes and all(n > 0 for n in per_process.values()), per_process
    assert sum(per_process.values()) == sum(c["requests"] for c in total.values()), (per_process, total)
    d = run["server_counters"]["delta"]
    if name == "postgres":
        assert d.get("user_fridge_sessions.n_tup_ins", 0) == _ok(run, "create"), d
        assert d.get("user_fridge_sessions.n_tup_del", 0) == _ok(run, "delete"), d
        assert d.get("user_fridge_sessions.n_tup_upd", 0) == _ok(run, "add") + _ok(run, "remove") + _ok(run, "extend"), d
    else:
        assert d.get("pttl", 0) == _req(run, "get"), d  # only a session read sends PTTL (with its GET)
        assert d.get("expire", 0) == _req(run, "extend"), d
        assert d.get("del", 0) == _req(run, "delete"), d
        if name == "redis-seed":  # GET -> SETEX: a GET per add/remove, a write when the session was there
            assert d.get("get", 0) == _req(run, "get") + _req(run, "add") + _req(run, "remove"), d
            assert d.get("setex", 0) == _req(run, "create") + _ok(run, "add"), d
            # SET ... KEEPTTL XX: sent when the GET found the session, applied unless it vanished in between
            assert _ok(run, "remove") <= d.get("set", 0) <= _req(run, "remove"), d
        else:  # one script call per add/remove (EVALSHA, EVAL when the script was not cached yet)
            assert d.get("evalsha", 0) == _req(run, "add") + _req(run, "remove"), d
            assert d.get("setex", 0) == _req(run, "create"), d


def test_one_locust_process_on_embedded_servers(tmp_path: Path, run_root: Path) -> None:
    out = tmp_path / "reports"
    res = fb("load", *SHORT, "--json", "--out", str(out), "--run-dir", str(run_root), env=WITH_REPORT)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)  # --json: the document alone on stdout
    assert doc["command"] == "load" and doc["complete"] is True
    run_dir = next(out.iterdir())
    assert load_results(run_dir).run_id == doc["run_id"] and not (run_dir / INCOMPLETE_MARKER).exists()
    section = doc["sections"]["load"]
    assert section["mode"] == "local" and "coordinated omission is NOT corrected" in section["measurement"]
    assert set(section["stores"]) == {"postgres", "redis-seed", "redis-atomic"}
    for name, run in section["stores"].items():
        o = run["overall"]
        assert o["errors"] == 0 and not run["errors"], (name, run["errors"])
        assert o["offered_rate_per_s"] == 1500 and o["achieved_rate_per_s"] > 0 and o["achieved_vs_offered"] is not None
        assert o["measured_seconds"] == 2 and len(run["intervals"]) == 2
        get = run["ops"]["get"]["latency_service"]
        assert 1 <= get["p50_us"] <= get["p99_us"] <= get["max_us"]
        assert get["p50_us"] % 1000 != 0 or get["p99_us"] % 1000 != 0  # microseconds, not Locust's whole ms
        _assert_counts_agree(name, run, processes=1)
        assert run["generator"]["processes"][0]["cpu_percent"] is not None and run["generator"]["verdict"]
        for op, figures in run["ops"].items():  # every operation's log, read with HdrHistogram's own log reader
            lat = figures["latency_service"]
            merged, intervals, _ = read_hlog(run_dir / f"{name}.{op}.hlog")
            # the measured seconds (warm-up excluded), as the section's own figures
            assert merged.get_total_count() == lat["count"], (name, op, merged.get_total_count(), lat)
            assert intervals >= 2, (name, op)
            if lat["count"]:
                assert merged.get_value_at_percentile(50) == pytest.approx(lat["p50_us"], rel=0.01), (name, op)
                assert merged.get_max_value() == pytest.approx(lat["max_us"], rel=0.01), (name, op)
        assert {p.name for p in run_dir.glob(f"{name}.*.hlog")} == {f"{name}.{op}.hlog" for op in run["ops"]}
    assert section["stores"]["postgres"]["correctness"]["lost_updates"] == 0
    assert section["stores"]["redis-atomic"]["correctness"]["lost_updates"] == 0
    for f in ("intervals.csv", "locust_stats.csv", "locust_failures.csv", "locust_report.html", "locust-local.log"):
        assert (run_dir / f).stat().st_size > 0, f
    assert "redis-seed,get," in (run_dir / "locust_stats.csv").read_text()  # Locust's own figures, beside ours
    html = (run_dir / "report.html").read_text()  # written by default: the load section of this run
    assert "Latency and throughput through Locust, second by second" in html and "<svg" in html
    assert {s["kind"] for s in doc["environment"]["servers"]} == {"postgres", "redis"}
    assert "achieved" in res.stderr and "load generator CPU" in res.stderr
    assert servers_under(run_root) == [] and locust_processes(str(out)) == []


def _hot_scenario(tmp_path: Path) -> Path:
    p = tmp_path / "hot.toml"
    p.write_text("""
name = "hot"
description = "many adds to a few hot sessions, and every other operation"
[population]
sessions = 30
ingredients = [0, 2]
[keys]
distribution = "zipfian"
zipf_s = 2.0
[mix]
create = 1
get = 4
add = 10
remove = 2
extend = 2
delete = 0.2
[load]
model = "closed"
concurrency = 8
warmup_seconds = 0.5
duration_seconds = 2
""", encoding="utf-8")
    return p


def test_master_and_two_workers_merge_exactly_and_the_seed_race_shows(tmp_path: Path, run_root: Path) -> None:
    out = tmp_path / "reports"
    res = fb("load", str(_hot_scenario(tmp_path)), "--processes", "2", "--stores", "redis-seed,postgres",
             "--sessions", "30", "--users", "8", "--spawn-rate", "8", "--out", str(out), "--run-dir", str(run_root),
             "--no-report")
    assert res.returncode == 0, res.stderr[-3000:]
    run_dir = next(out.iterdir())
    assert not (run_dir / "report.html").exists()
    doc = load_results(run_dir).to_dict()
    section = doc["sections"]["load"]
    assert section["mode"] == "distributed" and section["offered_rate_per_s"] is None  # closed loop: back to back
    for name, run in section["stores"].items():
        _assert_counts_agree(name, run, processes=2)
        assert len(run["generator"]["processes"]) == 2 and run["generator"]["missing_final_reports"] == []
        assert run["overall"]["errors"] == 0, run["errors"]
    seed, pg = section["stores"]["redis-seed"]["correctness"], section["stores"]["postgres"]["correctness"]
    assert seed["adds_checked"] > 300 and pg["adds_checked"] > 300
    assert pg["lost_updates"] == 0
    assert seed["lost_updates"] > 0  # GET -> SETEX from two processes on the same hot sessions
    assert any("lost" in w for w in doc["warnings"])
    for name in ("master", "worker-1", "worker-2"):
        assert (run_dir / f"locust-{name}.log").exists()
    assert servers_under(run_root) == [] and locust_processes(str(out)) == []
