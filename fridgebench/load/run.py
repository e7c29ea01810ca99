"""``fridgebench load``: provision the stores, run the Locust processes, return the results.

The library behind the thin CLI command. It validates every option before a server starts,
provisions like ``compare`` (:func:`fridgebench.provision.provisioned`: embedded, system binaries
or external URLs), then starts Locust in child processes (:mod:`.supervisor`): one local
process, or a master and ``processes`` workers, or only a master (workers on other machines
join it), or only workers (joining a master elsewhere). Locust's master writes the run folder
(:mod:`.conductor`); this process reads its ``results.json`` back.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from fridgebench.config import ENV_POSTGRES_DSN, ENV_REDIS_URL
from fridgebench.errors import StoreUnavailable, UsageError
from fridgebench.load import settings as st
from fridgebench.load.supervisor import Child, LoadFailed, Supervisor
from fridgebench.measure.results import ResultsDocument, load_results, new_run_id
from fridgebench.provision.base import ProvisionOptions

EventSink = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class LoadOptions:
    scenario: str = st.DEFAULT_SCENARIO
    stores: tuple[str, ...] = ("postgres", "redis-seed", "redis-atomic")
    duration: float | None = None
    warmup: float | None = None
    rate: float | None = None
    sessions: int | None = None
    seed: int | None = None
    users: int | None = None
    spawn_rate: float | None = None
    processes: int | None = None
    master: bool = False
    expect_workers: int = 1
    master_bind_host: str = "0.0.0.0"
    master_port: int = 5557
    worker: bool = False
    master_host: str | None = None
    connect_timeout: float = 60.0
    workers_timeout: float = 300.0
    web: bool = False
    web_port: int = 8089
    existing: str = "refuse"  # data already in a store: refuse, reuse (--reuse) or reset (--reset)
    out: Path = Path("reports")

    def validate(self) -> st.LoadSettings:
        """Every check that needs no server; returns the settings the Locust master will read."""
        if self.processes is not None and self.processes < 1:
            raise UsageError(f"--processes {self.processes}: must be at least 1 (Locust worker processes to start)",
                             hint="omit it for a single Locust process")
        if self.master and self.worker:
            raise UsageError("--master and --worker exclude each other", hint="one machine is the master, the others workers")
        if self.master and self.processes is not None:
            raise UsageError("--master starts no local workers", hint="start workers with `fridgebench load --worker`, "
                             "or use --processes N without --master for master + N workers here")
        if self.worker and not self.master_host:
            raise UsageError("--worker needs --master-host HOST", hint="the machine running `fridgebench load --master`")
        if self.master_host and not self.worker:
            raise UsageError("--master-host is for --worker", hint="add --worker")
        if self.web and self.worker:
            raise UsageError("--web is the master's", hint="drop --web on workers")
        if self.worker and self.existing != "refuse":
            raise UsageError(f"--{self.existing} is the master's (it prepares the stores)",
                             hint=f"drop --{self.existing} on workers; pass it to `fridgebench load --master`")
        if self.users is not None and self.users < 1:
            raise UsageError(f"--users {self.users}: must be at least 1")
        if self.spawn_rate is not None and self.spawn_rate <= 0:
            raise UsageError(f"--spawn-rate {self.spawn_rate:g}: must be more than 0 (users started per second)")
        if self.duration is not None and self.duration < 1:
            raise UsageError(f"--duration {self.duration:g}: must be at least 1 second (measured in whole seconds)")
        if self.expect_workers < 1:
            raise UsageError(f"--expect-workers {self.expect_workers}: must be at least 1")
        if not 0 < self.master_port < 65536:
            raise UsageError(f"--master-port {self.master_port}: not a port")
        if self.worker:
            return None  # type: ignore[return-value]  # the master's plan decides the workload
        return st.LoadSettings.from_env(self.scenario_env())

    def scenario_env(self) -> dict[str, str]:
        from fridgebench.workload.model import resolve

        path = resolve(self.scenario)  # an absolute path: the Locust processes may run elsewhere
        return st.cli_env(scenario=str(path.resolve()), stores=self.stores, duration=self.duration,
                          warmup=self.warmup, rate=self.rate, sessions=self.sessions, seed=self.seed)


def _user_args(o: LoadOptions) -> list[str]:
    out = []
    if o.users is not None:
        out += ["--users", str(o.users)]
    if o.spawn_rate is not None:
        out += ["--spawn-rate", f"{o.spawn_rate:g}"]
    return out


def main_error_expected(sup: Supervisor) -> bool:
    """True when the Locust processes stopped on an expected error (one clear line, nothing to read in the log)."""
    errs = [c.error for c in sup.children if c.error is not None]
    return bool(errs) and not any(e.get("see_log") for e in errs)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_workers(o: LoadOptions, *, postgres_dsn: str | None, redis_url: str | None, on_event: EventSink) -> None:
    """``--worker``: join a master elsewhere with ``processes`` (default 1) worker processes."""
    env = {"FRIDGEBENCH_EVENTS": "stdout"}
    if postgres_dsn:
        env[ENV_POSTGRES_DSN] = postgres_dsn
    if redis_url:
        env[ENV_REDIS_URL] = redis_url
    if not postgres_dsn and not redis_url:
        raise UsageError("a worker needs the stores' URLs (the same the master uses)",
                         hint="pass --postgres-dsn and --redis-url, or set FRIDGEBENCH_POSTGRES_DSN / FRIDGEBENCH_REDIS_URL")
    sup = Supervisor(env, on_event=on_event)
    ok = False
    try:
        args = ["--master-host", str(o.master_host), "--master-port", str(o.master_port),
                "--connect-timeout", f"{o.connect_timeout:g}", "--loglevel", "WARNING"]
        kids = [sup.start(f"worker-{i + 1}", "worker", args) for i in range(o.processes or 1)]
        for k in kids:
            code = sup.wait(k)
            if code != 0:
                err = k.error
                text = err.get("text") if err else f"exited with status {code} (log: {k.log_path})"
                raise LoadFailed(f"{k.name}: {text}", int(err.get("status", 1)) if err else 1)
        ok = True
    finally:
        sup.stop()
        if ok or main_error_expected(sup):
            sup.discard_logs()


def run_load(o: LoadOptions, popts: ProvisionOptions, *, on_event: EventSink,
             on_provision: Callable[[str], None]) -> tuple[ResultsDocument, Path]:
    """Provision, run Locust, return the results document and its path (the master wrote it)."""
    from fridgebench.provision import provisioned

    o.validate()  # every option checked before any server starts
    run_id = new_run_id("load")
    run_dir = o.out / run_id
    if o.master:
        Supervisor({}, on_event=on_event).require_free(o.master_port, o.master_bind_host)
    with provisioned(popts, on_event=on_provision) as ep:
        env = {**o.scenario_env(), st.ENV_REPORTS: str(o.out.resolve()), st.ENV_RUN_ID: run_id,
               st.ENV_EXISTING: o.existing, st.ENV_PREPARED: "1", "FRIDGEBENCH_EVENTS": "stdout",
               st.ENV_SERVERS: json.dumps([i.to_dict() for i in (ep.postgres, ep.redis) if i.url or i.pid])}
        if ep.postgres_dsn:
            env[ENV_POSTGRES_DSN] = ep.postgres_dsn
        if ep.redis_url:
            env[ENV_REDIS_URL] = ep.redis_url
        sup = Supervisor(env, on_event=on_event)
        done = False
        main: Child | None = None
        try:
            web = ["--web", "--web-port", str(o.web_port)] if o.web else []
            if o.processes is None and not o.master:
                main = sup.start("local", "local", [*_user_args(o), *web])
            else:
                port = o.master_port if o.master else _free_port()
                bind = o.master_bind_host if o.master else "127.0.0.1"
                expect = o.expect_workers if o.master else int(o.processes or 1)
                main = sup.start("master", "master", [*_user_args(o), *web, "--master-bind-host", bind,
                                                      "--master-port", str(port), "--expect-workers", str(expect),
                                                      "--workers-timeout", f"{o.workers_timeout:g}"])
                if o.master:
                    local = ep.postgres.source != "external" or ep.redis.source != "external"
                    on_event("master", {"type": "waiting", "text": (
                        f"waiting for {expect} worker(s): on each machine run `fridgebench load --worker "
                        f"--master-host {socket.gethostname()} --master-port {port}` with the same store URLs"
                        + ("; the stores fridgebench started listen on 127.0.0.1 only — workers on other "
                           "machines need --postgres-dsn/--redis-url reachable from them" if local else ""))})
                else:
                    for i in range(expect):
                        sup.start(f"worker-{i + 1}", "worker", ["--master-host", "127.0.0.1", "--master-port", str(port),
                                                                "--connect-timeout", f"{o.connect_timeout:g}"])
            try:
                code = sup.wait(main)
            except KeyboardInterrupt:
                if not (o.web and any(e.get("type") == "done" for e in main.events)):
                    raise
                code = 0  # --web: Ctrl-C is how one leaves Locust's UI; the results were written
            if code != 0:
                err = main.error
                keep = err is None or bool(err.get("see_log"))  # a bug, or a crash: the log says more
                where = run_dir if run_dir.is_dir() else sup.log_dir
                if err is not None:
                    raise LoadFailed(str(err.get("text")), int(err.get("status", 1)),
                                     hint=f"Locust's log: {where}" if keep else None)
                raise LoadFailed(f"the Locust {main.name} process exited with status {code}", code if code == 130 else 1,
                                 hint=f"see its log in {where}")
            done = True
        finally:
            sup.stop(first=main)  # the master first: it deletes what the run wrote; then the workers
            logs_at = sup.keep_logs(run_dir if run_dir.is_dir() else None)
            if logs_at == sup.log_dir and done is False and main_error_expected(sup):
                sup.discard_logs()
        if not done:  # pragma: no cover - raised above
            raise StoreUnavailable("the load run did not finish")
    return load_results(run_dir), run_dir / "results.json"
