"""fridgebench's locustfile: fridge2fork session traffic against PostgreSQL and Redis, through Locust.

Run it with ``fridgebench load`` (which provisions the stores and reports), or with plain Locust::

    export FRIDGEBENCH_POSTGRES_DSN=postgresql://user:pass@db:5432/fridge2fork
    export FRIDGEBENCH_REDIS_URL=redis://cache:6379/0
    export FRIDGEBENCH_SCENARIO=read-heavy FRIDGEBENCH_STORES=postgres,redis-atomic
    locust -f fridgebench/load/locustfile.py --headless -u 200 -r 50
    # distributed: add --master --expect-workers 4 here, and run workers with --worker --master-host HOST

or in Kubernetes with the Locust Helm chart (``fridgebench helm`` writes its ConfigMaps: this file,
and ``lib/fridgebench.zip`` that it imports fridgebench from when fridgebench is not installed).

One ``User`` class per store, each user an app worker with its own connection (psycopg 3 or
sync redis-py: the clients that work under gevent), replaying the scenario's operations
(:mod:`fridgebench.load.plan`). The stores run one after another, each measured alone: the
load shape below hands control to :class:`fridgebench.load.conductor.Conductor` on the master.
Every request goes through Locust's ``request`` event; fridgebench's listener records it in µs
(:mod:`fridgebench.load.recorder`). Settings: :mod:`fridgebench.load.settings`.
"""

from __future__ import annotations

import os
import sys


def _bootstrap() -> None:
    """Mounted from a ConfigMap, fridgebench is not installed: import it from lib/fridgebench.zip
    (the chart mounts the lib ConfigMap at <locustfile dir>/lib). No symlink resolving: a ConfigMap
    file is a link into a hidden folder that the lib mount is not beside."""
    try:
        import fridgebench  # noqa: F401
    except ImportError:
        zipped = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "fridgebench.zip")
        if not os.path.isfile(zipped):
            raise ImportError(f"fridgebench is not installed and {zipped} is missing: "
                              "mount the lib ConfigMap that `fridgebench helm` writes") from None
        sys.path.insert(0, zipped)


_bootstrap()

import logging  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
from gevent import GreenletExit  # noqa: E402
from locust import LoadTestShape, User, events, task  # noqa: E402
from locust.exception import StopUser  # noqa: E402
from locust.runners import LocalRunner, MasterRunner, WorkerRunner  # noqa: E402

from fridgebench.config import ENV_POSTGRES_DSN, ENV_REDIS_URL, mask_text  # noqa: E402
from fridgebench.errors import FridgebenchError  # noqa: E402
from fridgebench.load import conductor as cond  # noqa: E402
from fridgebench.load.plan import OpSource, Plan  # noqa: E402
from fridgebench.load.recorder import MUTATIONS, NOT_FOUND, OK, Recorder  # noqa: E402
from fridgebench.load.settings import LoadSettings  # noqa: E402
from fridgebench.load.sync_stores import UserClient  # noqa: E402

log = logging.getLogger("fridgebench.load")
perf_counter = time.perf_counter


class _Process:
    """This Locust process's fridgebench state (one per process: master, worker or local)."""

    def __init__(self) -> None:
        self.ops = OpSource()
        self.recorder = Recorder()
        self.conductor: cond.Conductor | None = None
        self.runner: Any = None
        self.emit: cond.Emit = cond.log_emitter
        self.own_signals = False  # fridgebench's runner handles SIGTERM / SIGINT itself (plain locust: we do)

    @property
    def postgres_dsn(self) -> str | None:
        return os.environ.get(ENV_POSTGRES_DSN) or None

    @property
    def redis_url(self) -> str | None:
        return os.environ.get(ENV_REDIS_URL) or None

    def connect_failed(self, store: str, exc: BaseException) -> None:
        self.recorder.connect_error(store, exc)
        if isinstance(self.runner, WorkerRunner):
            self.runner.send_message(cond.MSG_ERROR, {"message": f"a {store} user cannot connect: {mask_text(str(exc))}"})


PROCESS = _Process()


class _StoreUser(User):
    """An app worker with its own connection to one store, sending one operation per task."""

    abstract = True
    store = ""

    def wait_time(self) -> float:  # type: ignore[override]
        return PROCESS.ops.pace(self)

    def on_start(self) -> None:
        self.store_client: UserClient | None = None
        plan = PROCESS.ops.plan
        try:
            if plan is None:
                raise RuntimeError("no plan from the master")
            self.store_client = UserClient(self.store, postgres_dsn=PROCESS.postgres_dsn, redis_url=PROCESS.redis_url,
                                           ttl_s=int(plan.scenario["ttl_seconds"]),
                                           on_cache_key=lambda key: PROCESS.recorder.cache_key_created(self.store, key))
        except (FridgebenchError, RuntimeError) as exc:
            PROCESS.connect_failed(self.store, exc)
            raise StopUser() from None

    def on_stop(self) -> None:
        client, self.store_client = getattr(self, "store_client", None), None
        if client is not None:
            PROCESS.recorder.cache_result(self.store, client.cache_hits, client.cache_misses)
            client.close()

    @task
    def operation(self) -> None:
        client = self.store_client
        assert client is not None
        op = PROCESS.ops.next_op()
        start = time.time()
        t = perf_counter()
        result, exc = OK, None
        try:
            result = OK if client.execute(op) else NOT_FOUND
        except GreenletExit:  # killed mid-request (stop timeout, quit): may or may not have been applied
            if op.kind in MUTATIONS:
                PROCESS.recorder.log_mutation(self.store, op, start, time.time(), False)
            raise
        except Exception as e:  # an error is a measurement, not a crash
            exc = e
        elapsed = perf_counter() - t
        self.environment.events.request.fire(request_type=self.store, name=op.kind, response_time=elapsed * 1000.0,
                                             response_length=0, response=None, exception=exc,
                                             context={"fb": (start, result, op)})


class PostgresUser(_StoreUser):
    """fridge2fork's schema, psycopg 3, one prepared statement per operation."""

    store = "postgres"


class RedisSeedUser(_StoreUser):
    """The seed's code as written: GET -> modify -> SETEX (a read-modify-write race)."""

    store = "redis-seed"


class RedisAtomicUser(_StoreUser):
    """The seed's format and TTL, atomic updates (Lua)."""

    store = "redis-atomic"


USER_CLASSES: dict[str, type[_StoreUser]] = {c.store: c for c in (PostgresUser, RedisSeedUser, RedisAtomicUser)}


class FridgebenchPhases(LoadTestShape):
    """One store at a time, each with every user; the conductor decides when (it reads -u / -r)."""

    use_common_options = True

    def tick(self) -> Any:
        c = PROCESS.conductor
        return None if c is None else c.tick()


# --- wiring, once Locust made its runner ----------------------------------------------------------

def _users_and_rate(environment: Any, settings: LoadSettings) -> tuple[int, float]:
    opts = environment.parsed_options
    users = getattr(opts, "num_users", None) or settings.default_users()
    rate = getattr(opts, "spawn_rate", None) or float(min(users, 100))
    return int(users), float(rate)


@events.init.add_listener
def _on_init(environment: Any, runner: Any = None, **_: Any) -> None:
    runner = runner or environment.runner
    PROCESS.runner = runner
    cond.mask_log_handlers()  # no password reaches a log line (Locust's or ours)
    settings_env = os.environ
    PROCESS.emit = cond.stdout_emitter if settings_env.get("FRIDGEBENCH_EVENTS") == "stdout" else cond.log_emitter
    rec = PROCESS.recorder
    environment.events.cpu_warning.add_listener(lambda **kw: setattr(rec, "cpu_warning", True))
    if not PROCESS.own_signals:
        gevent.signal_handler(signal.SIGINT, _on_sigint)
    if isinstance(runner, WorkerRunner):
        _wire_worker(environment, runner)
        return
    if not isinstance(runner, (LocalRunner, MasterRunner)):
        return
    try:
        settings = LoadSettings.from_env()
    except FridgebenchError as err:
        PROCESS.emit({"type": "error", "status": int(err.exit_status), "text": mask_text(str(err))})
        environment.process_exit_code = int(err.exit_status)
        runner.quit()
        return
    users, rate = _users_and_rate(environment, settings)
    if not environment.stop_timeout:
        environment.stop_timeout = cond.STOP_TIMEOUT_S  # stopping users finish their request first
    local = isinstance(runner, LocalRunner)
    if local:
        environment.events.request.add_listener(rec.on_request)
    c = cond.Conductor(environment, settings, users=users, spawn_rate=rate, ops=PROCESS.ops,
                       recorder=rec if local else None, emit=PROCESS.emit)
    c.user_classes = dict(USER_CLASSES)
    PROCESS.conductor = c
    if not PROCESS.own_signals:
        gevent.signal_handler(signal.SIGTERM, _on_sigterm)
    if not local:
        environment.events.worker_report.add_listener(c.on_worker_report)
        environment.events.worker_connect.add_listener(c.on_worker_connect)
        runner.register_message(cond.MSG_REPORT, c.on_report_message)
        runner.register_message(cond.MSG_ERROR, c.on_error_message)


def _on_sigint() -> None:
    """Plain ``locust``: Ctrl-C raises KeyboardInterrupt in the main greenlet only, where Locust waits
    for it (then fires ``quitting``: :func:`_on_quitting`). Python's own handler raises it in whatever
    greenlet runs at that instant -- often a user in the middle of a request, which then dies without
    logging it, so a session it had just created was never reported and stayed in the store."""
    hub = gevent.get_hub()
    hub.handle_system_error(KeyboardInterrupt, KeyboardInterrupt())


def _on_sigterm() -> None:
    """Plain ``locust --headless`` with a load shape has no SIGTERM handler while the test runs (it
    installs one afterwards), so a pod's termination would kill it outright and leave what the run
    wrote. Here the conductor stops the users, collects the workers' last reports and deletes it;
    the shape then ends and Locust exits 130. Nothing to clean up: SIGTERM's default, as before."""
    c = PROCESS.conductor
    if c is not None and c.interrupt():
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    """Plain ``locust`` stopped (Ctrl-C, SIGTERM) mid-run: before it stops the users and tells the
    workers to quit, let the conductor stop them itself, collect their last reports and delete what
    the run wrote (``fridgebench load``'s runner does the same on its own signal handler)."""
    c = PROCESS.conductor
    if c is not None and c.interrupt():
        c.finished.wait(cond.CLEANUP_TIMEOUT_S)


def _wire_worker(environment: Any, runner: Any) -> None:
    rec = PROCESS.recorder
    environment.events.request.add_listener(rec.on_request)

    def on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
        data["fridgebench"] = rec.take()

    def on_plan(environment: Any, msg: Any, **_: Any) -> None:
        try:
            PROCESS.ops.apply(Plan.from_dict(msg.data))
        except Exception as exc:  # noqa: BLE001 - told to the master, which stops the run
            runner.send_message(cond.MSG_ERROR, {"message": f"cannot apply the plan: {exc}"})
            return
        PROCESS.emit({"type": "plan", "store": msg.data["store"],
                      "text": f"{msg.data['store']}: stream {msg.data['stream']}, {msg.data['users']} users in all"})

    def on_mark(environment: Any, msg: Any, **_: Any) -> None:
        rec.mark(msg.data["store"], msg.data["what"])

    def on_flush(environment: Any, msg: Any, **_: Any) -> None:
        send_stats = getattr(runner, "_send_stats", None)
        if send_stats is not None:  # Locust's own statistics up to date too (and our delta rides along)
            send_stats()
        runner.send_message(cond.MSG_REPORT, {"phase": msg.data["phase"], "payload": rec.take()})

    environment.events.report_to_master.add_listener(on_report_to_master)
    runner.register_message(cond.MSG_PLAN, on_plan)
    runner.register_message(cond.MSG_MARK, on_mark)
    runner.register_message(cond.MSG_FLUSH, on_flush)
