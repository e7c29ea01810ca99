"""What a ``fridgebench failure`` run does: its options, the faults it knows, and the cases it plans.

A *case* is one store under one fault, in one durability mode of the faulted server, with one
client behaviour (and, for ``memory-full``, one ``maxmemory-policy``). The matrix is pruned where
a dimension cannot change the outcome: durability modes only multiply the faults that lose data
when the process goes (crash, crash-backend, restart); client timeouts only multiply the faults
where a request can wait (pause, blackhole, latency). Everything else runs in the first mode and
with the first client, and the plan says so.

Every option is checked here, before any server starts: an unknown fault, a durability mode no
chosen store has, ``--down 0``, a fault that cannot act on an external store, commands given for
nothing -- each one line and exit status 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from fridgebench.errors import UsageError
from fridgebench.faults.durability import DEFAULT_MODES, MODES, modes_for
from fridgebench.faults.memory import POLICIES
from fridgebench.stores import STORE_NAMES, ClientOptions
from fridgebench.workload.model import Scenario

Kind = Literal["postgres", "redis"]


@dataclass(frozen=True)
class FaultSpec:
    name: str
    kinds: frozenset[str]  # servers it can act on
    family: Literal["process", "network", "memory"]
    durability_matters: bool  # run under every chosen durability mode
    timeouts_matter: bool  # run with every chosen client behaviour
    external: Literal["commands", "yes", "config-set", "no"]  # how it acts on an external server
    what: str


FAULTS: dict[str, FaultSpec] = {f.name: f for f in (
    FaultSpec("crash", frozenset({"postgres", "redis"}), "process", True, False, "commands",
              "SIGKILL the server (its whole process group), start it again after --down on the same data"),
    FaultSpec("crash-backend", frozenset({"postgres"}), "process", True, False, "no",
              "SIGKILL one PostgreSQL backend: PostgreSQL ends all backends and runs crash recovery itself"),
    FaultSpec("restart", frozenset({"postgres", "redis"}), "process", True, False, "no",
              "clean shutdown, start again after --down"),
    FaultSpec("pause", frozenset({"postgres", "redis"}), "process", False, True, "no",
              "SIGSTOP the server for --down, then SIGCONT (a hung server: connections still accepted)"),
    FaultSpec("latency", frozenset({"postgres", "redis"}), "network", False, True, "yes",
              "every reply delayed by --latency-ms ± --jitter-ms for --down, through the fault proxy"),
    FaultSpec("reset", frozenset({"postgres", "redis"}), "network", False, False, "yes",
              "every connection reset (TCP RST) and new ones reset for --down, through the fault proxy"),
    FaultSpec("blackhole", frozenset({"postgres", "redis"}), "network", False, True, "yes",
              "connections accepted, nothing answered for --down, through the fault proxy"),
    FaultSpec("refuse", frozenset({"postgres", "redis"}), "network", False, False, "yes",
              "the port closed (connections refused, open ones closed) for --down, through the fault proxy"),
    FaultSpec("memory-full", frozenset({"redis"}), "memory", False, False, "config-set",
              "Redis maxmemory set below the data set for --down, under each --maxmemory-policy"),
)}

DEFAULT_FAULTS = ("crash", "pause")
DEFAULT_STORES = ("postgres", "redis-atomic", "redis-fallback", "pg-redis-cache")
# the server each store's faults act on: the seed's claims are about Redis failing under the
# two-server stores, and about each store's own server otherwise
FAULT_TARGET: dict[str, Kind] = {"postgres": "postgres", "redis-seed": "redis", "redis-atomic": "redis",
                                 "redis-fallback": "redis", "pg-redis-cache": "redis"}
SERVER_NAME = {"postgres": "PostgreSQL", "redis": "Redis"}


@dataclass(frozen=True)
class FailureOptions:
    scenario: Scenario  # its load section sets rate, concurrency, warm-up and the measured seconds
    faults: tuple[str, ...] = DEFAULT_FAULTS
    stores: tuple[str, ...] = DEFAULT_STORES
    durability: tuple[str, ...] = ()  # () -> DEFAULT_MODES per server kind
    clients: tuple[ClientOptions, ...] = (ClientOptions.with_timeout(1.0, 1),)
    down_s: float = 2.0
    at_s: float = 1.5  # seconds into the measured window when the fault is injected
    latency_ms: float = 100.0
    jitter_ms: float = 20.0
    policies: tuple[str, ...] = POLICIES
    memory_fraction: float = 0.3
    kill_cmd: str | None = None
    start_cmd: str | None = None
    cmd_timeout_s: float = 60.0
    ready_timeout_s: float = 60.0
    allow_config_set: bool = False
    measure_proxy: bool = True

    @property
    def duration_s(self) -> float:
        return float(self.scenario.load.duration_seconds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "faults": list(self.faults), "stores": list(self.stores), "durability": list(self.durability),
            "clients": [c.to_dict() for c in self.clients], "down_s": self.down_s, "at_s": self.at_s,
            "measured_s": self.duration_s, "warmup_s": self.scenario.load.warmup_seconds,
            "rate_per_s": self.scenario.load.rate, "concurrency": self.scenario.load.concurrency,
            "sessions": self.scenario.population.sessions, "ttl_s": self.scenario.ttl_seconds,
            "latency_ms": self.latency_ms, "jitter_ms": self.jitter_ms, "maxmemory_policies": list(self.policies),
            "memory_fraction": self.memory_fraction, "kill_cmd": self.kill_cmd, "start_cmd": self.start_cmd,
            "cmd_timeout_s": self.cmd_timeout_s, "ready_timeout_s": self.ready_timeout_s,
        }


@dataclass(frozen=True)
class Case:
    store: str
    fault: str
    target: Kind
    mode: str  # durability mode of the faulted server ("external" for an external one)
    client: ClientOptions
    policy: str | None = None  # memory-full's maxmemory-policy

    @property
    def id(self) -> str:
        c = "seed-client" if self.client.timeout_s is None else f"t{self.client.timeout_s:g}s-r{self.client.retries}"
        parts = [self.store, self.fault + (f"-{self.policy}" if self.policy else ""), self.mode, c]
        return re.sub(r"[^A-Za-z0-9_.-]", "_", ".".join(parts))

    def label(self) -> str:
        extra = f" {self.policy}" if self.policy else ""
        client = "seed client (no timeout)" if self.client.timeout_s is None else (
            f"timeout {self.client.timeout_s:g} s, {self.client.retries} retr{'y' if self.client.retries == 1 else 'ies'}")
        return f"{self.store} × {self.fault}{extra} [{SERVER_NAME[self.target]} {self.mode}; {client}]"


@dataclass
class Plan:
    cases: list[Case]
    modes: dict[str, tuple[str, ...]]  # per server kind
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def servers(self) -> list[tuple[Kind, str]]:
        """Every (kind, mode) a case needs, the faulted ones and the PostgreSQL of two-server stores."""
        from fridgebench.stores import TWO_SERVER_STORES

        need: dict[tuple[Kind, str], None] = {}
        for c in self.cases:
            need[(c.target, c.mode)] = None
            if c.store in TWO_SERVER_STORES:
                other: Kind = "postgres" if c.target == "redis" else "redis"
                need[(other, self.modes[other][0])] = None
        return list(need)


def parse_faults(names: list[str]) -> tuple[str, ...]:
    out = []
    for raw in names:
        for n in (x.strip() for x in raw.split(",")):
            if not n:
                continue
            if n not in FAULTS:
                raise UsageError(f"unknown fault {n!r}", hint=f"choose from: {', '.join(FAULTS)}")
            out.append(n)
    return tuple(dict.fromkeys(out)) or DEFAULT_FAULTS


def parse_clients(value: str, retries: int) -> tuple[ClientOptions, ...]:
    out = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if part.lower() in ("none", "seed"):
            out.append(ClientOptions.seed_defaults())
            continue
        try:
            t = float(part)
        except ValueError:
            raise UsageError(f"--client-timeout takes seconds or `none`, got {part!r}",
                             hint="e.g. --client-timeout 1 or --client-timeout 1,none") from None
        if not 0 < t <= 600:
            raise UsageError(f"--client-timeout must be between 0 and 600 seconds (or `none`), got {part}")
        out.append(ClientOptions.with_timeout(t, retries))
    if not out:
        raise UsageError("--client-timeout is empty", hint="e.g. --client-timeout 1 or --client-timeout 1,none")
    return tuple(dict.fromkeys(out))


def plan(opts: FailureOptions, external: frozenset[str] = frozenset()) -> Plan:
    """The cases to run, or :class:`UsageError` for options that cannot make sense; ``external``:
    the server kinds given as external URLs."""
    _check_numbers(opts)
    usable = ", ".join(FAULT_TARGET)
    for s in opts.stores:
        if s in STORE_NAMES and s not in FAULT_TARGET:  # the app path keeps the app's own client settings
            raise UsageError(f"--stores {s}: failure drives stores whose client timeouts and retries it sets "
                             "(--client-timeout, --retries); the app-path stores keep the app's own",
                             hint=f"use a comma list of: {usable}")
        if s not in STORE_NAMES:
            raise UsageError(f"unknown store {s!r} in --stores", hint=f"use a comma list of: {usable}")
    if not opts.stores:
        raise UsageError("--stores is empty", hint=f"use a comma list of: {usable}")
    targets = {FAULT_TARGET[s] for s in opts.stores}
    modes = _modes(opts, targets, external)
    cases: list[Case] = []
    skipped: list[dict[str, str]] = []
    for store in opts.stores:
        k = FAULT_TARGET[store]
        for fault in opts.faults:
            spec = FAULTS[fault]
            if k not in spec.kinds:
                skipped.append({"store": store, "fault": fault, "why": f"{fault} acts on "
                                f"{' or '.join(SERVER_NAME[x] for x in sorted(spec.kinds))}; {store}'s faults act on "
                                f"{SERVER_NAME[k]}"})
                continue
            if k in external:
                _check_external(spec, k, opts)
            ms = modes[k] if spec.durability_matters else modes[k][:1]
            cl = opts.clients if spec.timeouts_matter else opts.clients[:1]
            pols: tuple[str | None, ...] = tuple(opts.policies) if fault == "memory-full" else (None,)
            cases += [Case(store, fault, k, m, c, p) for m in ms for c in cl for p in pols]
    if not cases:
        why = "; ".join(f"{s['store']} × {s['fault']}: {s['why']}" for s in skipped[:3])
        raise UsageError(f"nothing to run: {why}", hint="pick faults that act on the chosen stores' servers")
    notes = []
    if any(not FAULTS[f].durability_matters for f in opts.faults) and any(len(v) > 1 for v in modes.values()):
        notes.append("durability modes multiply crash, crash-backend and restart only: the other faults keep the "
                     "process and its memory, so they run in the first mode of each server")
    if len(opts.clients) > 1 and any(not FAULTS[f].timeouts_matter for f in opts.faults):
        notes.append("client timeouts multiply pause, blackhole and latency only: elsewhere requests fail at once, "
                     "so those faults run with the first --client-timeout")
    _check_commands(opts, cases, external)
    return Plan(cases, modes, skipped, notes)


def _check_numbers(opts: FailureOptions) -> None:
    if not opts.down_s > 0:
        raise UsageError(f"--down must be more than 0 seconds, got {opts.down_s:g}",
                         hint="how long the server stays crashed, paused or cut off, e.g. --down 2")
    if opts.down_s > 3600:
        raise UsageError(f"--down is at most 3600 seconds, got {opts.down_s:g}")
    if not opts.at_s >= 0:
        raise UsageError(f"--at must be 0 or more seconds, got {opts.at_s:g}")
    left = opts.duration_s - opts.at_s - opts.down_s
    if left < 1.0:
        raise UsageError(f"--duration {opts.duration_s:g} leaves {max(left, 0):g} s after the heal (fault at "
                         f"{opts.at_s:g} s, down {opts.down_s:g} s): the run must go on to see the recovery",
                         hint=f"use --duration {opts.at_s + opts.down_s + 3:g} or more")
    if opts.latency_ms < 0 or opts.jitter_ms < 0 or opts.latency_ms > 600_000:
        raise UsageError("--latency-ms and --jitter-ms must be between 0 and 600000")
    if not 0 < opts.memory_fraction < 1:
        raise UsageError(f"--memory-fraction must be between 0 and 1, got {opts.memory_fraction:g}")
    for p in opts.policies:
        if p not in POLICIES:
            raise UsageError(f"unknown --maxmemory-policy {p!r}", hint=f"choose from: {', '.join(POLICIES)}")
    if opts.cmd_timeout_s <= 0 or opts.ready_timeout_s <= 0:
        raise UsageError("--cmd-timeout and --ready-timeout must be more than 0 seconds")
    if opts.scenario.load.model != "open":
        raise UsageError(f"scenario {opts.scenario.name} is closed-loop; failure drives an open loop (a fixed "
                         "arrival rate keeps arriving while the server is down)", hint="use an open-loop scenario")


def _modes(opts: FailureOptions, targets: set[str], external: frozenset[str]) -> dict[str, tuple[str, ...]]:
    given: dict[str, list[str]] = {"postgres": [], "redis": []}
    for m in opts.durability:
        if m not in MODES:
            raise UsageError(f"unknown durability mode {m!r}", hint="Redis: none, aof-everysec, aof-always, rdb; "
                                                                    "PostgreSQL: sync, async")
        kind = MODES[m].kind
        if kind not in targets:
            stores = ", ".join(opts.stores)
            raise UsageError(f"--durability {m}: a {SERVER_NAME[kind]} mode, but no chosen store's faults act on "
                             f"{SERVER_NAME[kind]} (stores: {stores})",
                             hint=f"{SERVER_NAME[kind]} modes apply to "
                                  f"{', '.join(s for s, k in FAULT_TARGET.items() if k == kind)}")
        if kind in external:
            raise UsageError(f"--durability {m}: the {SERVER_NAME[kind]} server is external; fridgebench cannot "
                             "choose its durability (its settings are read and reported)",
                             hint=f"leave --durability out for {SERVER_NAME[kind]}, or let fridgebench start it")
        given[kind].append(m)
    out: dict[str, tuple[str, ...]] = {}
    for kind in ("postgres", "redis"):
        out[kind] = ("external",) if kind in external else tuple(dict.fromkeys(given[kind])) or DEFAULT_MODES[kind]
    for kind in ("postgres", "redis"):
        for m in out[kind]:
            if m != "external" and m not in modes_for(kind):
                raise UsageError(f"--durability {m} is not a {SERVER_NAME[kind]} mode")
    return out


def _check_external(spec: FaultSpec, kind: str, opts: FailureOptions) -> None:
    srv = SERVER_NAME[kind]
    flag = "--postgres-dsn" if kind == "postgres" else "--redis-url"
    if spec.external == "no":
        raise UsageError(f"{spec.name} needs a {srv} server fridgebench started: the one at {flag} is external, and "
                         "fridgebench never signals a process it did not start",
                         hint=f"drop {flag} for this fault, or use crash with --kill-cmd/--start-cmd, or a network "
                              "fault (latency, reset, blackhole, refuse)")
    if spec.external == "commands" and not (opts.kill_cmd and opts.start_cmd):
        raise UsageError(f"{spec.name} on the external {srv} ({flag}) needs --kill-cmd and --start-cmd: fridgebench "
                         "never signals a process it did not start",
                         hint="e.g. --kill-cmd 'kubectl delete pod redis-master-0' --start-cmd 'kubectl wait "
                              "--for=condition=Ready pod/redis-master-0 --timeout=120s'")
    if spec.external == "config-set" and not opts.allow_config_set:
        raise UsageError(f"memory-full reconfigures the external {srv} (CONFIG SET maxmemory, restored afterwards)",
                         hint="pass --allow-config-set if that server is yours to reconfigure, or let fridgebench "
                              "start one")


def _check_commands(opts: FailureOptions, cases: list[Case], external: frozenset[str]) -> None:
    if bool(opts.kill_cmd) != bool(opts.start_cmd):
        raise UsageError("--kill-cmd and --start-cmd go together", hint="give both (what kills the external "
                                                                        "server, and what starts it again)")
    if not opts.kill_cmd:
        return
    crashed = {c.target for c in cases if c.fault == "crash" and c.target in external}
    if not crashed:
        raise UsageError("--kill-cmd / --start-cmd act on an external server (--redis-url / --postgres-dsn) under "
                         "the crash fault, and no crash case runs on one",
                         hint="servers fridgebench starts are signalled directly; add `crash` and an external URL")
    if len(crashed) > 1:
        raise UsageError("crash on both external servers: --kill-cmd / --start-cmd can name only one",
                         hint="run the PostgreSQL and the Redis stores in separate runs (--stores)")
