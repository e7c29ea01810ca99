"""What a load run needs to know, read from environment variables.

The same variables configure ``fridgebench load`` (which sets them for the Locust processes it
starts), a plain ``locust -f fridgebench/load/locustfile.py`` run, and a Kubernetes pod of the
Locust Helm chart (``loadtest.environment`` and a Secret), so all three run the same workload:

=============================  ============================================================
``FRIDGEBENCH_SCENARIO``       scenario name or path to a ``.toml`` (default session-lifecycle)
``FRIDGEBENCH_STORES``         comma list: postgres, redis-seed, redis-atomic (default: all)
``FRIDGEBENCH_DURATION``       measured seconds per store (default: the scenario's)
``FRIDGEBENCH_WARMUP``         seconds after all users started, excluded (default: the scenario's)
``FRIDGEBENCH_RATE``           offered total operations/s, paced per user; ``0``: back to back
                               (default: the scenario's open-loop rate; closed loop: back to back)
``FRIDGEBENCH_SESSIONS``       sessions loaded before each store's run (default: the scenario's)
``FRIDGEBENCH_SEED``           random seed (default: the scenario's)
``FRIDGEBENCH_POSTGRES_DSN``   PostgreSQL URL (secret: from a Kubernetes Secret)
``FRIDGEBENCH_REDIS_URL``      Redis URL (secret)
``FRIDGEBENCH_REPORTS``        folder for run directories (default ./reports)
``FRIDGEBENCH_RUN_ID``         the run directory's name (default: a new timestamped id)
``FRIDGEBENCH_EXISTING``       sessions / recipe cache keys already in a store: ``refuse``
                               (default), ``reuse`` (run beside them; delete only what this run
                               writes) or ``reset`` (delete them first) — ``--reuse`` / ``--reset``
``FRIDGEBENCH_AFTER_RUN``      ``exit`` (default) or ``idle``: keep the master up after writing
                               results (a Kubernetes Deployment restarts a master that exits)
=============================  ============================================================

Users and spawn rate are Locust's own options (``-u``/``--users``, ``-r``/``--spawn-rate``,
``LOCUST_USERS``/``LOCUST_SPAWN_RATE``); without them: the scenario's ``concurrency`` users.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from fridgebench.config import ENV_POSTGRES_DSN, ENV_REDIS_URL
from fridgebench.errors import UsageError
from fridgebench.stores import STORE_NAMES
from fridgebench.workload.model import Scenario, load_scenario

ENV_SCENARIO = "FRIDGEBENCH_SCENARIO"
ENV_STORES = "FRIDGEBENCH_STORES"
ENV_DURATION = "FRIDGEBENCH_DURATION"
ENV_WARMUP = "FRIDGEBENCH_WARMUP"
ENV_RATE = "FRIDGEBENCH_RATE"
ENV_SESSIONS = "FRIDGEBENCH_SESSIONS"
ENV_SEED = "FRIDGEBENCH_SEED"
ENV_REPORTS = "FRIDGEBENCH_REPORTS"
ENV_RUN_ID = "FRIDGEBENCH_RUN_ID"
ENV_EXISTING = "FRIDGEBENCH_EXISTING"
ENV_AFTER_RUN = "FRIDGEBENCH_AFTER_RUN"
ENV_SERVERS = "FRIDGEBENCH_SERVERS"  # set by `fridgebench load`: how it provisioned the stores (masked)
ENV_EVENTS = "FRIDGEBENCH_EVENTS"  # set by `fridgebench load`: "stdout" -> machine-readable progress lines
# set by `fridgebench load`: its provisioning already checked the stores for data fridgebench did not write
# (and applied --reuse / --reset, created the schema); without it the master does it itself
ENV_PREPARED = "FRIDGEBENCH_STORES_PREPARED"
EXISTING = ("refuse", "reuse", "reset")

DEFAULT_SCENARIO = "session-lifecycle"


# The stores that have a Locust User (sync clients that cooperate with gevent). The other stores
# (the app path's SQLAlchemy / redis.asyncio code, the failure experiments' composites) are asyncio
# code: `compare` and `failure` measure them.
LOAD_STORE_NAMES: tuple[str, ...] = ("postgres", "redis-seed", "redis-atomic")


def parse_stores(value: str, *, flag: str = "--stores") -> tuple[str, ...]:
    names = tuple(s.strip() for s in value.split(",") if s.strip())
    other = [s for s in names if s in STORE_NAMES and s not in LOAD_STORE_NAMES]
    if other:
        raise UsageError(f"{flag}: {', '.join(other)} has no Locust user (asyncio client code, measured by "
                         "`fridgebench compare`)", hint=f"load runs: {', '.join(LOAD_STORE_NAMES)}")
    bad = [s for s in names if s not in LOAD_STORE_NAMES]
    if bad or not names:
        raise UsageError(f"unknown store {', '.join(bad) or '(none)'} in {flag}",
                         hint=f"use a comma list of: {', '.join(LOAD_STORE_NAMES)}")
    return tuple(dict.fromkeys(names))


def _number(env: Mapping[str, str], name: str, kind: type, *, minimum: float, allow_equal: bool = True) -> Any:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a {'whole ' if kind is int else ''}number") from None
    if value < minimum or (value == minimum and not allow_equal):
        raise UsageError(f"{name}={raw!r} must be {'at least' if allow_equal else 'more than'} {minimum:g}")
    return value


@dataclass(frozen=True)
class LoadSettings:
    scenario: Scenario
    stores: tuple[str, ...]
    offered_rate: float | None  # total operations/s paced over all users; None: back to back
    postgres_dsn: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    reports: Path = Path("reports")
    run_id: str | None = None
    existing: str = "refuse"
    after_run: str = "exit"
    servers: list[dict[str, Any]] | None = None
    events: str = "log"
    prepared: bool = False  # the stores were checked and prepared by `fridgebench load`'s provisioning

    @property
    def duration_s(self) -> float:
        return float(self.scenario.load.duration_seconds)

    @property
    def warmup_s(self) -> float:
        return float(self.scenario.load.warmup_seconds)

    @property
    def has_recipes(self) -> bool:
        return self.scenario.mix.recipe > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "LoadSettings":
        """Read and validate every variable; a bad one is a :class:`UsageError` naming it."""
        env = os.environ if env is None else env
        stores = parse_stores(env.get(ENV_STORES) or ",".join(LOAD_STORE_NAMES), flag=ENV_STORES)
        duration = _number(env, ENV_DURATION, float, minimum=0, allow_equal=False)
        warmup = _number(env, ENV_WARMUP, float, minimum=0)
        rate = _number(env, ENV_RATE, float, minimum=0)
        sessions = _number(env, ENV_SESSIONS, int, minimum=1)
        seed = _number(env, ENV_SEED, int, minimum=-(2**63))
        sc = load_scenario(env.get(ENV_SCENARIO) or DEFAULT_SCENARIO).with_overrides(**{
            "load.duration_seconds": duration, "load.warmup_seconds": warmup,
            "population.sessions": sessions, "seed": seed})
        if rate is None:
            offered = sc.load.rate if sc.load.model == "open" else None
        else:
            offered = rate or None
        existing = env.get(ENV_EXISTING, "refuse") or "refuse"
        if existing not in EXISTING:
            raise UsageError(f"{ENV_EXISTING}={existing!r}: use refuse, reuse or reset")
        after = env.get(ENV_AFTER_RUN, "exit") or "exit"
        if after not in ("exit", "idle"):
            raise UsageError(f"{ENV_AFTER_RUN}={after!r}: use exit or idle")
        servers = None
        if env.get(ENV_SERVERS):
            try:
                servers = json.loads(env[ENV_SERVERS])
            except ValueError:
                raise UsageError(f"{ENV_SERVERS} is not JSON") from None
        return cls(scenario=sc, stores=stores, offered_rate=offered,
                   postgres_dsn=env.get(ENV_POSTGRES_DSN) or None, redis_url=env.get(ENV_REDIS_URL) or None,
                   reports=Path(env.get(ENV_REPORTS) or "reports"), run_id=env.get(ENV_RUN_ID) or None,
                   existing=existing, after_run=after, servers=servers,
                   events="stdout" if env.get(ENV_EVENTS) == "stdout" else "log",
                   prepared=env.get(ENV_PREPARED) == "1")

    def default_users(self) -> int:
        return int(self.scenario.load.concurrency)


def cli_env(*, scenario: str, stores: tuple[str, ...], duration: float | None, warmup: float | None,
            rate: float | None, sessions: int | None, seed: int | None) -> dict[str, str]:
    """The variables ``fridgebench load`` passes to its Locust processes for these options."""
    env = {ENV_SCENARIO: scenario, ENV_STORES: ",".join(stores)}
    for name, value in ((ENV_DURATION, duration), (ENV_WARMUP, warmup), (ENV_RATE, rate),
                        (ENV_SESSIONS, sessions), (ENV_SEED, seed)):
        if value is not None:
            env[name] = f"{value:g}" if isinstance(value, float) else str(value)
    return env
