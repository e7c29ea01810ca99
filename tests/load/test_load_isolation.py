"""Locust (and the gevent monkey-patching it does on import) never reaches the CLI or the asyncio engine."""

from __future__ import annotations

import subprocess
import sys

PROBE = r"""
import asyncio, sys
import fridgebench.cli                      # every command registered, `load` and `helm` included
from typer.testing import CliRunner
from fridgebench.cli import app
assert CliRunner().invoke(app, ["load", "--help"]).exit_code == 0
assert CliRunner().invoke(app, ["helm", "--help"]).exit_code == 0
import fridgebench.load, fridgebench.load.run, fridgebench.load.settings, fridgebench.load.supervisor
import fridgebench.load.manifests, fridgebench.report.terminal_load
from fridgebench.engine.driver import install_event_loop_policy, run
from fridgebench.workload.generator import Op
from fridgebench.workload.model import Load
install_event_loop_policy()

async def noop(op):
    await asyncio.sleep(0)
    return True

async def main():
    ops = iter([Op("get", "s")] * 10_000)
    log, _ = await run(noop, ops, Load(model="open", rate=2000, warmup_seconds=0, duration_seconds=0.3), seed=1)
    return len(log)

assert asyncio.run(main()) > 100
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("gevent", "locust", "greenlet", "zmq"))
print("IMPORTED", bad)
"""


def test_cli_and_engine_never_import_locust_or_gevent() -> None:
    res = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "IMPORTED []" in res.stdout, res.stdout


def test_the_probe_would_see_it() -> None:
    """The check can fail: importing the locustfile's package side does bring gevent in."""
    res = subprocess.run([sys.executable, "-c", "import sys, fridgebench.load.conductor; "
                          "print(sorted(m for m in sys.modules if m.split('.')[0] == 'gevent')[:1])"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "['gevent']" in res.stdout
