"""The master's sequence: one store after another, each measured alone, then the results.

Runs inside the Locust master (or the only process of a local run) as a greenlet, driven by the
locustfile's load shape: :meth:`Conductor.tick` tells Locust how many users of which store to
run, the greenlet does everything else in order. First, unless ``fridgebench load``'s provisioning
did it already (:data:`~fridgebench.load.settings.ENV_PREPARED`), the stores are checked exactly
as every other command checks them (:mod:`fridgebench.stores.existing`): data fridgebench did not
write is refused before anything is written, unless ``FRIDGEBENCH_EXISTING`` is ``reuse`` (left
as it is) or ``reset`` (deleted first, and counted). Then per store:

1. load the scenario's population under the run's salted ids (as ``compare`` does), recording them;
2. send every worker the plan (scenario, pacing, the id salt), snapshot the server's own counters;
3. start the users at the spawn rate, wait until all run, warm up;
4. measure whole wall-clock seconds ``[t0, t1)``, marking them on every process (CPU windows);
5. stop the users (each finishes its request), collect every worker's final report (a barrier:
   nothing in flight is lost), snapshot the counters again;
6. read back every session an acknowledged add touched (lost updates), then delete exactly what
   the run wrote: the population, every session any user created, every recipe cache key a user's
   ``SET ... NX`` created — by id and key, never a pattern delete.

A run that fails, or is interrupted (:meth:`Conductor.interrupt`: Ctrl-C / SIGTERM), stops the users,
collects the workers' last reports and deletes what it wrote in the same way, within bounds.

Then the results document, ``.hlog`` files, ``intervals.csv`` and Locust's own CSV and HTML
report are written to ``$FRIDGEBENCH_REPORTS/<run id>/`` — ``results.json`` last, atomically, and
only when every store finished (an interrupted run leaves its ``INCOMPLETE`` marker).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import secrets
import sys
import time
import traceback
from datetime import datetime, timezone
from typing import Any, Callable

import gevent
import gevent.event
import psutil

from fridgebench.config import mask_text
from fridgebench.errors import ExitStatus, FridgebenchError, Interrupted, StoreUnavailable, UsageError
from fridgebench.load.plan import OpSource, Plan
from fridgebench.load.recorder import Aggregate, Recorder
from fridgebench.load.settings import LoadSettings
from fridgebench.load.summary import MEASUREMENT_NOTE, Phase, store_section
from fridgebench.load.sync_stores import StoreAdmin
from fridgebench.measure.results import Environment, ResultsDocument, RunDirectory, new_run_id
from fridgebench.measure.summary import hdr_log_text
from fridgebench.stores import servers_needed
from fridgebench.stores._redis_base import RECIPE_TTL_S
from fridgebench.stores.correctness import count_lost_updates

log = logging.getLogger("fridgebench.load")

MSG_PLAN, MSG_MARK, MSG_FLUSH, MSG_REPORT, MSG_ERROR = "fb_plan", "fb_mark", "fb_flush", "fb_report", "fb_error"
SPAWN_GRACE_S = 60.0  # beyond users / spawn rate, before "users did not start" is an error
FLUSH_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0  # a stopping user finishes its request; Locust kills it after this
# after a failure or an interrupt: stop the users, collect the workers' last reports, delete what the run wrote
CLEANUP_STOP_S, CLEANUP_FLUSH_S, CLEANUP_DISCARD_S = 15.0, 10.0, 30.0
CLEANUP_TIMEOUT_S = CLEANUP_STOP_S + CLEANUP_FLUSH_S + CLEANUP_DISCARD_S + 5.0

Emit = Callable[[dict[str, Any]], None]


class Aborted(FridgebenchError):
    """A worker reported an error that makes the run meaningless (e.g. it cannot reach a store)."""


class _MaskingFormatter(logging.Formatter):
    """Whatever a log line holds (a traceback, a driver's error), its passwords are masked."""

    def __init__(self, inner: logging.Formatter | None) -> None:
        super().__init__()
        self.inner = inner or logging.Formatter()

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(self.inner.format(record))


def mask_log_handlers() -> None:
    """Wrap the formatter of every handler Locust set up (root and ``locust`` loggers)."""
    for logger in (logging.getLogger(), logging.getLogger("locust")):
        for h in logger.handlers:
            if not isinstance(h.formatter, _MaskingFormatter):
                h.setFormatter(_MaskingFormatter(h.formatter))


def log_emitter(event: dict[str, Any]) -> None:
    """Progress as log lines (plain ``locust -f`` runs, Kubernetes pods); measuring: every 10 s."""
    if event["type"] == "progress" and event["second"] % 10 and event["second"] != event["of"]:
        return
    text = event.get("text") or json.dumps(event, ensure_ascii=False)
    (log.error if event["type"] == "error" else log.info)("fridgebench: %s", text)


def stdout_emitter(event: dict[str, Any]) -> None:
    """Progress as one JSON line per event on stdout, read by ``fridgebench load``."""
    sys.stdout.write("FBEVENT " + json.dumps(event, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


class Conductor:
    def __init__(self, environment: Any, settings: LoadSettings, *, users: int, spawn_rate: float,
                 ops: OpSource, recorder: Recorder | None, emit: Emit) -> None:
        self.env = environment
        self.settings = settings
        self.users = users
        self.spawn_rate = spawn_rate
        self.ops = ops
        self.recorder = recorder  # the local process's (None on a master: workers record)
        self.emit = emit
        self.aggregate = Aggregate()
        self.target: tuple[int, float, list[Any] | None] = (0, spawn_rate, None)
        self.done = False
        self.exit_status: int | None = None
        self.results_path: str | None = None
        self.error: str | None = None
        self.plan: Plan | None = None
        self.user_classes: dict[str, Any] = {}
        self._greenlet: gevent.Greenlet | None = None
        self._started = gevent.event.Event()
        self._flushed: dict[int, set[str]] = {}
        self._abort: FridgebenchError | None = None
        self.rundir: RunDirectory | None = None
        self.id_salt = secrets.randbits(128)  # the run's session ids: never a foreign session's
        self._current: tuple[int, str, StoreAdmin] | None = None  # the store holding what the run wrote
        self.finished = gevent.event.Event()  # the sequence is over, what it wrote deleted

    @property
    def runner(self) -> Any:
        return self.env.runner

    @property
    def distributed(self) -> bool:
        return self.recorder is None

    # -- Locust's side -------------------------------------------------------------------------
    def tick(self) -> tuple[int, float, list[Any] | None] | None:
        """The load shape's answer: block until the first phase is ready, then report the target;
        None once the results are written (or the run failed): Locust then quits (headless)."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)
        self._started.wait()
        return None if self.done else self.target

    def worker_name(self, client_id: str) -> str:
        return f"worker {self.runner.get_worker_index(client_id)}"

    def _merge(self, client_id: str, payload: dict[str, Any]) -> None:
        try:
            self.aggregate.merge(self.worker_name(client_id), payload)
        except (ValueError, KeyError, TypeError) as err:  # another fridgebench version on that worker
            self._abort = Aborted(f"{self.worker_name(client_id)} sent measurements this master cannot read: {err}")

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        payload = data.get("fridgebench")
        if payload is not None:
            self._merge(client_id, payload)

    def on_report_message(self, environment: Any, msg: Any, **_: Any) -> None:
        data = msg.data
        self._merge(msg.node_id, data["payload"])
        self._flushed.setdefault(int(data["phase"]), set()).add(msg.node_id)

    def on_error_message(self, environment: Any, msg: Any, **_: Any) -> None:
        self._abort = Aborted(f"{self.worker_name(msg.node_id)}: {msg.data.get('message')}")

    def interrupt(self) -> bool:
        """Ctrl-C / SIGTERM: end the sequence at its next step, stop the users and delete what the
        run wrote. True when that is underway (wait on :attr:`finished`, at most
        :data:`CLEANUP_TIMEOUT_S`); False when the sequence never started or is over."""
        if self._greenlet is None or self._greenlet.dead:
            return False
        if self._abort is None:
            self._abort = Interrupted("interrupted")
        return True

    def on_worker_connect(self, client_id: str, **_: Any) -> None:
        """A worker joining mid-phase gets the current plan before any user."""
        if self.plan is not None:
            self._send_plan(self.plan, client_id)

    # -- the sequence ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._sequence()
            self.exit_status = int(ExitStatus.OK)
        except FridgebenchError as err:
            self._fail(str(err), err.exit_status)
        except gevent.GreenletExit:
            raise
        except Exception as err:  # a bug: one line here, the traceback in the log
            log.error("fridgebench: unexpected error\n%s", traceback.format_exc())
            self._fail(f"unexpected {type(err).__name__}: {err}", ExitStatus.ERROR, see_log=True)
        finally:
            try:
                if self._current is not None:  # failed or interrupted mid-store
                    self._clean_up_after_failure(*self._current)
            finally:
                self.target = (0, self.target[1], self.target[2])
                if self.exit_status != ExitStatus.OK or self.settings.after_run == "exit":
                    self.done = True
                self._started.set()
                self.finished.set()

    def _fail(self, message: str, status: int, *, see_log: bool = False) -> None:
        self.error = mask_text(message)
        self.exit_status = int(status)
        self.env.process_exit_code = int(status)
        self.emit({"type": "error", "status": int(status), "text": self.error, "see_log": see_log})

    def _sequence(self) -> None:
        s = self.settings
        sc = s.scenario
        admins = {name: StoreAdmin(name, postgres_dsn=s.postgres_dsn, redis_url=s.redis_url) for name in s.stores}
        self._prepare_stores(admins)
        started = datetime.now(timezone.utc)
        run_id = s.run_id or new_run_id("load")
        self.rundir = RunDirectory(s.reports, run_id)
        self.rundir.__enter__()
        servers = s.servers if s.servers is not None else _describe_servers(s)
        base = dict(command="load", run_id=run_id, started_at=started,
                    environment=Environment.capture(servers=servers, event_loop="gevent (Locust)"),
                    scenario=sc.model_dump(), seed=sc.seed)
        ResultsDocument(**base)  # validate early
        self.emit({"type": "run", "run_id": run_id, "path": str(self.rundir.path),
                   "text": f"run {run_id}: {len(s.stores)} store(s), {self.users} users, "
                           f"{'offered ' + format(s.offered_rate, 'g') + ' ops/s' if s.offered_rate else 'back to back'}"})
        population = self.ops.population(sc, self.id_salt)
        stores: dict[str, Any] = {}
        warnings: list[str] = []
        measurements = {}
        for i, name in enumerate(s.stores):
            section, m, w = self._phase(i, name, admins[name], population)
            stores[name] = section
            measurements[name] = m
            warnings += w
        section = {
            "measurement": MEASUREMENT_NOTE,
            "mode": "distributed" if self.distributed else "local",
            "locust_version": _locust_version(),
            "users": self.users, "spawn_rate_per_s": self.spawn_rate,
            "offered_rate_per_s": s.offered_rate,
            "stores": stores,
        }
        self._write(base, section, measurements, warnings)

    def _prepare_stores(self, admins: dict[str, StoreAdmin]) -> None:
        """Before anything runs: every server the stores need is configured and answers, PostgreSQL has
        a connection for every user (one each, like app workers), and — unless ``fridgebench load``'s
        provisioning did it — the data already there is refused, left (``reuse``) or deleted
        (``reset``) exactly as every other command does it, and the schema and catalogue are in place."""
        s = self.settings
        need = servers_needed(s.stores, recipes=s.has_recipes)
        if "postgres" in need and not s.postgres_dsn:
            raise UsageError("the scenario looks up recipes, which the Redis stores' cache reads from PostgreSQL "
                             "on a miss: set FRIDGEBENCH_POSTGRES_DSN (or --postgres-dsn)")
        pg = admins.get("postgres") or (StoreAdmin("postgres", postgres_dsn=s.postgres_dsn, redis_url=None)
                                        if "postgres" in need else None)
        rd = next((a for a in admins.values() if a.kind == "redis"), None)  # the Redis stores share one db
        servers = [a for a in (rd, pg) if a is not None]
        if not s.prepared and s.existing == "refuse":
            for a in servers:  # step 1, read-only: nothing is written to any store before all are checked
                a.refuse_existing()
        if pg is not None:
            free = pg.max_connections()
            if free is not None and self.users > free:
                raise StoreUnavailable(
                    f"{self.users} users need {self.users} PostgreSQL connections (one each, like app workers); "
                    f"the server has {free} free (max_connections)",
                    hint="lower --users, or raise max_connections on the server")
        for a in servers:
            if s.prepared:  # provisioning checked and prepared it; still one clear line if it is gone
                a.ping()
                continue
            for line in a.prepare(s.existing):  # step 2: reset / reuse, and PostgreSQL's schema
                self.emit({"type": "note", "text": line})

    def _discard(self, name: str, admin: StoreAdmin) -> None:
        """Delete exactly what the run wrote to ``name``'s store: the population (recorded when it was
        loaded), every session a user created and every recipe cache key a user created, as the
        processes reported them."""
        admin.written.bulk(self.aggregate.created_sessions(name))
        now = time.time()
        for key, created in self.aggregate.cache_keys.get(name, ()):
            admin.written.cache_key(key, RECIPE_TTL_S - (now - created))  # its TTL runs out then
        removed = admin.discard_written()
        self._current = None
        cache = f" and {removed.cache_keys:,} recipe cache keys" if removed.cache_keys else ""
        self.emit({"type": "phase", "store": name, "step": "clean",
                   "text": f"{name}: deleted the {removed.sessions:,} sessions{cache} it had written (by id)"})

    def _clean_up_after_failure(self, phase: int, name: str, admin: StoreAdmin) -> None:
        """The run failed or was interrupted while ``name``'s store held what it wrote: stop the users,
        collect every process's last report (the sessions its users created), delete it all. Bounded;
        what cannot be deleted is said."""
        try:
            if self.runner.user_count:
                self.target = (0, max(self.spawn_rate, float(min(self.users, 100))), [self.user_classes[name]])
                self._started.set()
                deadline = time.monotonic() + CLEANUP_STOP_S
                while self.runner.user_count and time.monotonic() < deadline:
                    gevent.sleep(0.05)
            self._flush(phase, timeout_s=CLEANUP_FLUSH_S)
        except Exception:  # noqa: BLE001 - the deletion below matters more
            log.warning("fridgebench: stopping the users after the failure: %s", traceback.format_exc())
        try:
            with gevent.Timeout(CLEANUP_DISCARD_S):
                self._discard(name, admin)
        except (Exception, gevent.Timeout) as err:  # noqa: BLE001 - said, not raised over the run's own error
            left = len(admin.written)
            self.emit({"type": "phase", "store": name, "step": "clean",
                       "text": mask_text(f"{name}: could not delete the {left:,} sessions and cache keys this run "
                                         f"wrote ({type(err).__name__}: {err}); they stay (Redis: until their TTL)")})

    def _phase(self, i: int, name: str, admin: StoreAdmin, population: list[tuple[str, list[str]]]):  # type: ignore[no-untyped-def]
        s = self.settings
        sc = s.scenario
        cls = self.user_classes[name]
        self.emit({"type": "phase", "store": name, "step": "populate",
                   "text": f"{name}: loading {len(population):,} sessions"})
        t = time.perf_counter()
        self._current = (i, name, admin)
        admin.bulk_load(population, sc.ttl_seconds)  # the ids are recorded first
        populate_s = time.perf_counter() - t
        plan = Plan(phase=i, store=name, scenario=sc.model_dump(), users=self.users, offered_rate=s.offered_rate,
                    id_salt=self.id_salt)
        self.plan = plan
        if self.distributed:
            for client_id in list(self.runner.clients):
                self._send_plan(plan, client_id)
        else:
            self.ops.apply(plan)
        before = admin.settled_counters()
        self.emit({"type": "phase", "store": name, "step": "ramp-up",
                   "text": f"{name}: loaded in {populate_s:.1f} s; starting {self.users} users at {self.spawn_rate:g}/s"})
        t_spawn = time.time()
        self.target = (self.users, self.spawn_rate, [cls])
        self._started.set()
        self._wait(lambda: self.runner.user_count >= self.users, self.users / self.spawn_rate + SPAWN_GRACE_S,
                   lambda: f"only {self.runner.user_count} of {self.users} {name} users started")
        ramp_up = time.time() - t_spawn
        self.emit({"type": "phase", "store": name, "step": "warm-up",
                   "text": f"{name}: {self.users} users running after {ramp_up:.1f} s; warming up {s.warmup_s:g} s"})
        self._sleep_until(time.time() + s.warmup_s)
        t0 = math.ceil(time.time())
        seconds = max(1, int(round(s.duration_s)))
        t1 = t0 + seconds
        self._sleep_until(t0)
        host0 = psutil.cpu_times()
        me = psutil.Process()
        cpu0 = sum(me.cpu_times()[:2])
        self._mark(name, "measure_start")
        locust_warned = bool(getattr(self.runner, "cpu_warning_emitted", False))
        for k in range(seconds):
            self._sleep_until(t0 + k + 1)
            st = self.runner.stats.total  # on a master: as of the workers' last report (every 3 s)
            self.emit({"type": "progress", "store": name, "second": k + 1, "of": seconds,
                       "rate": round(st.current_rps, 1), "errors": st.num_failures,
                       "text": f"{name}: measuring {k + 1}/{seconds} s"})
        self._mark(name, "measure_end")
        host_cpu = _busy_percent(host0, psutil.cpu_times())
        master_cpu = {"cpu_seconds": round(sum(me.cpu_times()[:2]) - cpu0, 3), "wall_seconds": seconds}
        master_cpu["cpu_percent"] = round(100 * master_cpu["cpu_seconds"] / seconds, 1)
        locust_warned = locust_warned or bool(getattr(self.runner, "cpu_warning_emitted", False)) \
            or bool(getattr(self.runner, "worker_cpu_warning_emitted", False))
        self.emit({"type": "phase", "store": name, "step": "stop", "text": f"{name}: measured {seconds} s; stopping users"})
        self.target = (0, max(self.spawn_rate, float(min(self.users, 100))), [cls])
        self._wait(lambda: self.runner.user_count == 0, STOP_TIMEOUT_S + SPAWN_GRACE_S,
                   lambda: f"{self.runner.user_count} {name} users did not stop")
        missing = self._flush(i)
        after = admin.settled_counters()
        correctness = self._correctness(name, admin)
        self._discard(name, admin)
        phase = Phase(store=name, users=self.users, spawn_rate=self.spawn_rate, offered_rate=s.offered_rate,
                      window=(t0, t1), ramp_up_s=ramp_up, warmup_s=s.warmup_s, populate_s=populate_s,
                      counters_before=before, counters_after=after, correctness=correctness,
                      locust_requests=_locust_requests(self.runner.stats, name), host_cpu_percent=host_cpu,
                      master_cpu=master_cpu, locust_cpu_warning=locust_warned, missing_reports=missing)
        section, m, warnings = store_section(self.aggregate, phase)
        if missing:
            warnings.append(f"{name}: sessions the users of {', '.join(missing)} created in their last seconds may "
                            "not have been reported, so not deleted: they stay (Redis: until their TTL)")
        o = m.overall
        self.emit({"type": "store_done", "store": name,
                   "text": f"{name}: {o['achieved_rate_per_s']:,.0f} ops/s, p50 {o['latency_service'].get('p50_us', '-')} µs, "
                           f"p99 {o['latency_service'].get('p99_us', '-')} µs, {o['errors']} errors, "
                           f"{correctness['lost_updates']} lost updates; {section['generator']['verdict']}"})
        return section, m, warnings

    # -- helpers ------------------------------------------------------------------------------------
    def _check_abort(self) -> None:
        if self._abort is not None:
            raise self._abort
        if self.recorder is not None and self.recorder.connect_errors:
            store, (n, sample) = next(iter(self.recorder.connect_errors.items()))
            raise StoreUnavailable(f"{n} {store} user(s) could not connect: {sample}")

    def _wait(self, cond: Callable[[], bool], timeout_s: float, what: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout_s
        while not cond():
            self._check_abort()
            if time.monotonic() > deadline:
                raise StoreUnavailable(f"{what()} within {timeout_s:.0f} s",
                                       hint="see the Locust log for the users' errors")
            gevent.sleep(0.05)
        self._check_abort()

    def _sleep_until(self, t: float) -> None:
        while True:
            self._check_abort()
            d = t - time.time()
            if d <= 0:
                return
            gevent.sleep(min(d, 0.2))

    def _send_plan(self, plan: Plan, client_id: str) -> None:
        index = self.runner.get_worker_index(client_id)
        data = {**plan.to_dict(), "stream": index}
        self.runner.send_message(MSG_PLAN, data, client_id)

    def _mark(self, store: str, what: str) -> None:
        if self.distributed:
            self.runner.send_message(MSG_MARK, {"store": store, "what": what})
        else:
            assert self.recorder is not None
            self.recorder.mark(store, what)

    def _flush(self, phase: int, timeout_s: float = FLUSH_TIMEOUT_S) -> list[str]:
        """Every process's last measurements, before anything is computed; returns who never answered."""
        if not self.distributed:
            assert self.recorder is not None
            self.aggregate.merge("local", self.recorder.take())
            return []
        expected = set(self.runner.clients)
        self.runner.send_message(MSG_FLUSH, {"phase": phase})
        deadline = time.monotonic() + timeout_s
        while not expected <= self._flushed.get(phase, set()) and time.monotonic() < deadline:
            gevent.sleep(0.05)
        return sorted(self.worker_name(c) for c in expected - self._flushed.get(phase, set()))

    def _correctness(self, name: str, admin: StoreAdmin) -> dict[str, Any]:
        logged = self.aggregate.mutations.get(name, [])
        touched = sorted({op.session_id for op in logged if op.kind == "add" and op.ok})
        final = admin.read_back(touched)
        res = count_lost_updates(logged, final)
        return {"adds_checked": res.adds_checked, "lost_updates": res.lost_updates,
                "loss_rate": round(res.loss_rate, 6), "sessions_checked": res.sessions_checked,
                "sessions_missing": res.sessions_missing, "examples": [list(e) for e in res.examples],
                "mutations_logged": len(logged),
                "clock": "wall clock (time.time) of each process: across machines the check assumes synchronised clocks"}

    def _write(self, base: dict[str, Any], section: dict[str, Any], measurements: dict[str, Any],
               warnings: list[str]) -> None:
        rd = self.rundir
        assert rd is not None
        for name, m in measurements.items():
            t0 = m.overall["measured_from_epoch"]
            for op in m.histograms:
                rd.write_text_atomic(f"{name}.{op}.hlog", hdr_log_text(
                    m, op, t0, name, what="latency from the actual send (Locust, closed loop)"))
        rd.write_text_atomic("intervals.csv", _intervals_csv(section))
        for fname, text in _locust_reports(self.env).items():
            rd.write_text_atomic(fname, text)
        doc = ResultsDocument(**base, finished_at=datetime.now(timezone.utc), complete=True,
                              sections={"load": section}, warnings=warnings)
        path = rd.finish(doc)
        self.results_path = str(path)
        self.emit({"type": "done", "path": str(path), "text": f"results: {path}"})
        if self.settings.events == "log":
            _render_to_log(doc.to_dict())


# --- module helpers ------------------------------------------------------------------------------

def _busy_percent(a: Any, b: Any) -> float | None:
    total = sum(b) - sum(a)
    idle = (b.idle + getattr(b, "iowait", 0)) - (a.idle + getattr(a, "iowait", 0))
    return round(100 * (1 - idle / total), 1) if total > 0 else None


def _locust_version() -> str:
    try:
        from locust import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover
        return "?"


def _locust_requests(stats: Any, store: str) -> dict[str, dict[str, int]]:
    """Locust's own count per operation (its statistics, merged from workers by Locust itself)."""
    out = {}
    for (name, method), entry in stats.entries.items():
        if method == store:
            out[name] = {"requests": int(entry.num_requests), "failures": int(entry.num_failures)}
    return out


def _describe_servers(s: LoadSettings) -> list[dict[str, Any]]:
    """The stores as this process sees them (a Kubernetes pod has no provisioning record)."""
    from fridgebench.config import mask_url
    from fridgebench.provision.probe import PG_DURABILITY, redis_probe
    from fridgebench.load.sync_stores import pg_connect

    out: list[dict[str, Any]] = []
    if s.postgres_dsn:
        with pg_connect(s.postgres_dsn) as conn:
            version = str(conn.execute("SHOW server_version").fetchone()[0]).split(" ")[0]  # type: ignore[index]
            durability = {k: conn.execute(f"SHOW {k}").fetchone()[0] for k in PG_DURABILITY}  # type: ignore[index]
        out.append({"kind": "postgres", "source": "external", "url": mask_url(s.postgres_dsn), "version": version,
                    "durability": durability})
    if s.redis_url:
        version, durability = redis_probe(s.redis_url)
        out.append({"kind": "redis", "source": "external", "url": mask_url(s.redis_url), "version": version,
                    "durability": durability})
    return out


def _intervals_csv(section: dict[str, Any]) -> str:
    lines = ["store,t_s,ops,errors,p50_us,p99_us,max_us"]
    for name, run in section["stores"].items():
        for iv in run["intervals"]:
            lines.append(f"{name},{iv['t_s']},{iv['ops']},{iv['errors']},{iv.get('p50_us', '')},"
                         f"{iv.get('p99_us', '')},{iv.get('max_us', '')}")
    return "\n".join(lines) + "\n"


def _locust_reports(environment: Any) -> dict[str, str]:
    """Locust's own statistics (whole run, ramp-up and warm-up included; whole milliseconds):
    its CSV files and its HTML report."""
    from locust import stats as lstats
    from locust.html import get_html_report

    out: dict[str, str] = {}
    writer = lstats.StatsCSV(environment, lstats.PERCENTILES_TO_REPORT)
    for fname, method in (("locust_stats.csv", writer.requests_csv), ("locust_failures.csv", writer.failures_csv),
                          ("locust_exceptions.csv", writer.exceptions_csv)):
        buf = io.StringIO()
        method(csv.writer(buf))
        out[fname] = buf.getvalue()
    out["locust_report.html"] = get_html_report(environment, show_download_link=False)
    return out


def _render_to_log(doc: dict[str, Any]) -> None:
    from rich.console import Console

    from fridgebench.report.terminal_load import render_load

    render_load(doc, Console(file=sys.stderr, width=140, highlight=False))
