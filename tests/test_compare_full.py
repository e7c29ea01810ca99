"""`compare --sweep` and `compare --full` through the real command line.

One run, one results document holding every section it measured, and the claims of all of them
merged into the seed's table; the ttl part's options are validated before any server starts.

The sweep's and ttl's own sizes are not flags of ``compare`` (their defaults take minutes), so
the CLI process is started with those two option classes' defaults shrunk (a few lines run
before ``main()``); everything else -- parsing, provisioning, the measurements on real servers,
the document, the exit status -- is the real command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from fridgebench.measure.results import load_results
from fridgebench.report.claims import SEED_CLAIMS
from tests.servers import ThrowawayRedis, machine_database

SHRUNK = """
import functools
import fridgebench.experiments.sweep as sweep
import fridgebench.experiments.ttl as ttl
sweep.SweepOptions = functools.partial(sweep.SweepOptions, rates=(100, 150), step_seconds=0.5, slo_p99_us=2_000_000)
ttl.TtlOptions = functools.partial(ttl.TtlOptions, {ttl})
import dataclasses
import fridgebench.experiments.failure as failure
_preset = failure.short_preset
def _short(*a, **k):
    o = _preset(*a, **k)
    return dataclasses.replace(o, scenario=o.scenario.with_overrides({{"load.duration_seconds": 4.0,
        "load.warmup_seconds": 0.2, "population.sessions": 300}}), at_s=0.6, down_s=0.4)
failure.short_preset = _short
from fridgebench.cli import main
main()
"""
SMALL_TTL = "sessions=20, ttl_s=1, ingredients=2, memory_counts=(200,), cleanup_sessions=40, cleanup_every_s=0.1"
SHORT = ["--stores", "postgres,redis-atomic", "--duration", "0.6", "--warmup", "0.1", "--sessions", "200",
         "--rate", "200"]


def _fb(*args: str, ttl: str = SMALL_TTL) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FRIDGEBENCH_POSTGRES_DSN", "FRIDGEBENCH_REDIS_URL")}
    return subprocess.run([sys.executable, "-c", SHRUNK.format(ttl=ttl), *args], capture_output=True, text=True,
                          timeout=300, env={**env, "COLUMNS": "200"})


@pytest.fixture
def stores(private_redis: ThrowawayRedis) -> Iterator[list[str]]:
    """A fresh database on the machine's PostgreSQL and a flushed db of the private Redis."""
    client = private_redis.client(5)
    client.flushdb()
    with machine_database("fb_test_full") as dsn:
        yield ["--postgres-dsn", dsn, "--redis-url", private_redis.url(5)]
    client.flushdb()
    client.close()


def _claims(doc: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    assert [c["key"] for c in doc["claims"]] == list(SEED_CLAIMS)  # the seed's table, every row, in order
    return {c["key"]: c for c in doc["claims"]}


def test_compare_sweep_is_one_document_with_both_sections_and_merged_claims(tmp_path: Path, stores) -> None:  # type: ignore[no-untyped-def]
    res = _fb("compare", *SHORT, "--sweep", "--json", "--out", str(tmp_path), *stores)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    runs = [d for d in tmp_path.iterdir() if d.is_dir()]
    assert len(runs) == 1 and load_results(runs[0]).run_id == doc["run_id"]
    assert set(doc["sections"]) == {"compare", "sweep"}
    sweep = doc["sections"]["sweep"]
    assert sweep["rates"] == [100, 150] and set(sweep["stores"]) == {"postgres", "redis-atomic"}
    for name, s in sweep["stores"].items():
        assert s["steps"][0]["offered_per_s"] == 100 and s["steps"][0]["errors"] == 0, (name, s)
    claims = _claims(doc)
    assert claims["performance"]["verdict"] != "not measured"  # compare's row survives the merge
    assert claims["install"]["verdict"] == "not measured"  # external stores: nothing was installed
    assert claims["scalability"]["verdict"] != "not measured" and claims["scalability"]["figures"]
    assert claims["scalability"]["command"] == "compare --sweep"  # what measured it (--full includes it)
    assert claims["auto_expiry"]["verdict"] == claims["memory_use"]["verdict"] == "not measured"
    assert "sweep" in res.stderr.lower()


def test_compare_full_adds_ttl_and_fills_every_claim_it_can(tmp_path: Path, stores) -> None:  # type: ignore[no-untyped-def]
    res = _fb("compare", *SHORT, "--full", "--json", "--out", str(tmp_path), *stores)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    assert doc["complete"] is True
    assert set(doc["sections"]) == {"compare", "sweep", "ttl", "failure"}
    ttl = doc["sections"]["ttl"]
    assert set(ttl["expiry"]) == {"postgres", "redis-atomic"}  # the --stores of compare
    assert ttl["expiry"]["postgres"]["sessions"] == 20  # the (shrunk) ttl options compare built
    claims = _claims(doc)
    measured = {k for k, c in claims.items() if c["verdict"] != "not measured"}
    # install is measured only where compare starts the servers (here they are external)
    # the short failure set: external servers are not crashed (fridgebench never signals what it did not
    # start), so it resets connections through the fault proxy: fault isolation, not crash recovery
    assert measured == {"performance", "auto_expiry", "memory_use", "scalability", "fault_isolation"}
    assert claims["failure_recovery"]["measured"] == "not measured by this command"
    cases = doc["sections"]["failure"]["cases"]
    assert {c["fault"] for c in cases} == {"reset"}
    assert {"redis-fallback", "pg-redis-cache"} <= {c["store"] for c in cases}
    assert claims["memory_use"]["command"] == "fridgebench ttl"
    assert load_results(next(tmp_path.iterdir())).sections.keys() == doc["sections"].keys()
    assert "Bytes per session" in res.stderr and "The seed's claims" in res.stderr


def test_compare_full_validates_the_ttl_options_before_any_server_starts(tmp_path: Path) -> None:
    """Options the ttl part cannot honour (here: more memory than this machine has) are refused
    with one line and exit 2 before provisioning: the unreachable stores prove none was touched
    (reaching them first would be exit 1, "cannot reach")."""
    res = _fb("compare", "--full", "--out", str(tmp_path), "--postgres-dsn", "postgresql://u:hunter2@127.0.0.1:1/x",
              "--redis-url", "redis://127.0.0.1:1/0", ttl="memory_counts=(10**12,)")
    assert res.returncode == 2, res.stderr
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "of memory, this machine has" in errors[0], res.stderr
    assert "Traceback" not in res.stderr and "hunter2" not in res.stderr
    assert "cannot reach" not in res.stderr
    assert not list(tmp_path.iterdir())
