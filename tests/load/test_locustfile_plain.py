"""The locustfile under plain Locust, with no fridgebench CLI around it.

1. ``locust -f fridgebench/load/locustfile.py --headless`` (one process), configured by environment.
2. What a Kubernetes pod of the Locust chart runs: the files `fridgebench helm` writes into its
   ConfigMaps (main.py, lib/fridgebench.zip, lib/scenario.toml), fridgebench *not* importable
   (so it comes from the zip), a plain ``locust --master --headless`` and a ``locust --worker``,
   against the machine's PostgreSQL (an empty database: the master creates the schema) and a Redis
   started for the test: the check against Redis's own counters (INFO commandstats) reads the whole
   server's, which another test worker's commands to the machine's Redis would add to.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fridgebench.measure.results import load_results
from tests import procs
from tests.load.helpers import fb, locust_processes
from tests.servers import throwaway_redis
from tests.load.test_load_run import _assert_counts_agree

ROOT = Path(__file__).resolve().parents[2]

# Run Locust's own entry point with fridgebench's editable install hidden, as in a pod where only
# the ConfigMaps provide it; report where fridgebench was imported from.
LOCUST_WITHOUT_FRIDGEBENCH = """
import atexit, sys
sys.meta_path[:] = [f for f in sys.meta_path if not str(getattr(f, "__module__", "")).startswith("__editable__")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "editable" not in repr(h).lower()]
sys.path_importer_cache.clear()
atexit.register(lambda: print("FRIDGEBENCH_FROM", getattr(sys.modules.get("fridgebench"), "__file__", None), flush=True))
from locust.main import main
sys.argv = ["locust", *sys.argv[1:]]
main()
"""


def _locust(args: list[str], *, cwd: Path, env: dict[str, str], hide: bool) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-c", LOCUST_WITHOUT_FRIDGEBENCH, *args] if hide else [sys.executable, "-m", "locust", *args]
    return procs.popen(cmd, cwd=cwd, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def own_redis_url() -> Iterator[str]:
    """An external Redis no other test sends commands to (its counters are the run's alone)."""
    with throwaway_redis() as server:
        yield server.url(0)


def test_plain_locust_headless_runs_the_packaged_locustfile(tmp_path: Path, external_pg_dsn: str,
                                                            own_redis_url: str) -> None:
    env = {"FRIDGEBENCH_POSTGRES_DSN": external_pg_dsn, "FRIDGEBENCH_REDIS_URL": own_redis_url,
           "FRIDGEBENCH_SCENARIO": "read-heavy", "FRIDGEBENCH_STORES": "redis-seed", "FRIDGEBENCH_DURATION": "2",
           "FRIDGEBENCH_WARMUP": "0", "FRIDGEBENCH_SESSIONS": "500", "FRIDGEBENCH_REPORTS": str(tmp_path / "r")}
    proc = _locust(["-f", str(ROOT / "fridgebench/load/locustfile.py"), "--headless", "-u", "3", "-r", "3"],
                   cwd=ROOT, env=env, hide=False)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-3000:]
    doc = load_results(next((tmp_path / "r").iterdir())).to_dict()
    run = doc["sections"]["load"]["stores"]["redis-seed"]
    assert doc["sections"]["load"]["users"] == 3 and run["overall"]["offered_rate_per_s"] == 2000
    _assert_counts_agree("redis-seed", run, processes=1)
    assert "fridgebench: results:" in out  # progress as log lines
    assert "Response time percentiles" in out  # and Locust's own summary, as always


def test_a_pod_of_the_chart_master_and_worker_from_the_configmaps(tmp_path: Path, external_pg_dsn: str,
                                                                  own_redis_url: str) -> None:
    k8s = tmp_path / "k8s"
    res = fb("helm", "session-lifecycle", "--out", str(k8s), "--postgres-dsn", external_pg_dsn,
             "--redis-url", own_redis_url)
    assert res.returncode == 0, res.stderr
    mnt = tmp_path / "mnt" / "locust"  # the chart: the locustfile ConfigMap here, the lib one in ./lib
    (mnt / "lib").mkdir(parents=True)
    main = yaml.safe_load((k8s / "fridgebench-locustfile.configmap.yaml").read_text(encoding="utf-8"))
    (mnt / "main.py").write_text(main["data"]["main.py"], encoding="utf-8")
    lib = yaml.safe_load((k8s / "fridgebench-lib.configmap.yaml").read_text(encoding="utf-8"))
    (mnt / "lib" / "scenario.toml").write_text(lib["data"]["scenario.toml"], encoding="utf-8")
    (mnt / "lib" / "fridgebench.zip").write_bytes(base64.b64decode(lib["binaryData"]["fridgebench.zip"]))
    secret = yaml.safe_load((k8s / "fridgebench-stores.secret.yaml").read_text(encoding="utf-8"))["stringData"]
    results = tmp_path / "results"
    env = {**secret, "FRIDGEBENCH_SCENARIO": str(mnt / "lib" / "scenario.toml"), "FRIDGEBENCH_STORES": "redis-atomic,postgres",
           "FRIDGEBENCH_DURATION": "2", "FRIDGEBENCH_WARMUP": "0", "FRIDGEBENCH_SESSIONS": "500",
           "FRIDGEBENCH_REPORTS": str(results), "LOCUST_LOCUSTFILE": str(mnt / "main.py")}
    port = _free_port()
    worker = _locust(["--worker", "--master-port", str(port)], cwd=mnt, env=env, hide=True)
    try:
        master = _locust(["--master", "--headless", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                          "--expect-workers", "1", "--users", "4", "--spawn-rate", "4"], cwd=mnt, env=env, hide=True)
        out, _ = master.communicate(timeout=150)
        assert master.returncode == 0, out[-3000:]
        wout, _ = worker.communicate(timeout=30)  # the master tells it to quit
    finally:
        for p in (worker,):
            if p.poll() is None:
                p.kill()
    assert worker.returncode == 0, wout[-2000:]
    for text in (out, wout):  # both processes imported fridgebench from the ConfigMap's zip
        assert f"FRIDGEBENCH_FROM {mnt / 'lib' / 'fridgebench.zip'}" in text, text[-1500:]
    doc = load_results(next(results.iterdir())).to_dict()
    section = doc["sections"]["load"]
    assert section["mode"] == "distributed" and set(section["stores"]) == {"redis-atomic", "postgres"}
    for name, run in section["stores"].items():
        _assert_counts_agree(name, run, processes=1)
        assert run["correctness"]["lost_updates"] == 0
    servers = {s["kind"]: s for s in doc["environment"]["servers"]}  # described by the master itself
    assert servers["postgres"]["durability"]["fsync"] == "on" and servers["redis"]["version"]
    assert locust_processes(str(tmp_path)) == []
