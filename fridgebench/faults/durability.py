"""Durability modes: the settings each server is started with, and what each promises.

A fault's data loss depends on the mode as much as on the store. Redis ``none`` is no persistence
at all; ``aof-everysec`` is the Bitnami chart's default (``appendonly yes``, ``save ""``);
``aof-always`` fsyncs before it replies; ``rdb`` is Redis's own default snapshots. PostgreSQL
``sync`` is its default (the WAL is flushed before a commit is acknowledged); ``async`` is
``synchronous_commit=off``.

What a *process* crash loses is measured (``fridgebench failure crash``). What an OS crash or a
power loss would lose cannot be produced on this machine (it would take the machine down, or a VM
and a power switch): it is stated here from each server's documentation, with the source, and
printed and stored next to the measurements -- never presented as measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REDIS_PERSISTENCE_DOC = "https://redis.io/docs/latest/operate/oss_and_stack/management/persistence/"
PG_ASYNC_COMMIT_DOC = "https://www.postgresql.org/docs/current/wal-async-commit.html"
PG_RELIABILITY_DOC = "https://www.postgresql.org/docs/current/wal-reliability.html"
BITNAMI_REDIS_VALUES = ("bitnami/redis chart 23.1.1, values.yaml `commonConfiguration` (appendonly yes, save \"\") "
                        "and templates/master/application.yaml (persistence.enabled: false -> an emptyDir /data)")

REDIS_DEFAULT_SAVE = "3600 1 300 100 60 10000"  # Redis 7 / Valkey's built-in save points


@dataclass(frozen=True)
class Mode:
    name: str
    kind: str  # "postgres" | "redis"
    settings: dict[str, str]  # passed on the server's command line
    what: str  # one line: what this mode is
    process_crash: str  # what a process crash (SIGKILL) may lose -- measured by `failure crash`
    os_crash: str  # what an OS crash / power loss may lose -- stated, not measured
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "settings": dict(self.settings), "what": self.what,
                "process_crash_promise": self.process_crash, "os_crash_or_power_loss_promise": self.os_crash,
                "source": self.source}


MODES: dict[str, Mode] = {m.name: m for m in (
    Mode("none", "redis", {"appendonly": "no", "save": ""},
         "no persistence: the data set lives in memory only",
         "everything: the server starts empty",
         "everything",
         REDIS_PERSISTENCE_DOC),
    Mode("aof-everysec", "redis", {"appendonly": "yes", "appendfsync": "everysec", "save": ""},
         "append-only file, fsync once a second (the Bitnami chart's default)",
         "nothing acknowledged: each write reaches the OS (write(2)) before its reply is sent, and the OS "
         "keeps it when only the process dies -- unless a slow disk made Redis postpone that write (up to 2 s)",
         "about the last second of writes (the AOF is fsynced once a second)",
         REDIS_PERSISTENCE_DOC),
    Mode("aof-always", "redis", {"appendonly": "yes", "appendfsync": "always", "save": ""},
         "append-only file, fsync before replying",
         "nothing acknowledged",
         "nothing acknowledged (fsync before the reply), if the disk honours fsync",
         REDIS_PERSISTENCE_DOC),
    Mode("rdb", "redis", {"appendonly": "no", "save": REDIS_DEFAULT_SAVE},
         f"snapshots at Redis's default save points ({REDIS_DEFAULT_SAVE}: after 1 h with 1 change, 5 min "
         "with 100, 1 min with 10,000)",
         "every write since the last snapshot (minutes of writes); a clean shutdown saves one first",
         "every write since the last snapshot",
         REDIS_PERSISTENCE_DOC),
    Mode("sync", "postgres", {"synchronous_commit": "on", "fsync": "on"},
         "PostgreSQL's default: a commit is acknowledged once its WAL is flushed",
         "nothing acknowledged: crash recovery replays the WAL",
         "nothing acknowledged, if the disk honours fsync (no volatile write cache)",
         f"{PG_RELIABILITY_DOC} ; {PG_ASYNC_COMMIT_DOC}"),
    Mode("async", "postgres", {"synchronous_commit": "off", "fsync": "on"},
         "synchronous_commit=off: a commit is acknowledged before its WAL is flushed",
         "commits acknowledged in the last moments (up to 3 x wal_writer_delay, 600 ms by default) whose WAL "
         "was still in shared memory: 'an immediate-mode shutdown is equivalent to a server crash'",
         "commits acknowledged in the last 3 x wal_writer_delay (600 ms by default); never corruption: recovery "
         "replays the WAL up to the last flushed record",
         PG_ASYNC_COMMIT_DOC),
)}

REDIS_MODES: tuple[str, ...] = tuple(n for n, m in MODES.items() if m.kind == "redis")
PG_MODES: tuple[str, ...] = tuple(n for n, m in MODES.items() if m.kind == "postgres")
# what answers the seed's row by default: the seed's two Redis pictures and PostgreSQL's default
DEFAULT_MODES: dict[str, tuple[str, ...]] = {"redis": ("none", "aof-everysec"), "postgres": ("sync",)}

SEED_DEPLOYMENT = (
    "The seed's Helm values set master.persistence.enabled: false but keep the chart's `appendonly yes` / "
    "`save \"\"`: Redis writes its AOF (fsync every second) to an emptyDir volume. A Redis process crash or "
    "container restart in the same pod replays that AOF (what `aof-everysec` measures here); a pod deletion, "
    "eviction, reschedule or node loss deletes the emptyDir and every session with it (what `none` measures "
    "here). Stated from the chart's configuration (" + BITNAMI_REDIS_VALUES + "), not measured on Kubernetes.")

SEED_DEPLOYMENT_SHORT = (
    "the seed's Helm values keep the Bitnami chart's `appendonly yes` on an emptyDir volume: a container restart keeps "
    "the sessions (as `aof-everysec` here), a pod deletion or node loss loses them all (as `none` here) -- from the "
    "chart's configuration, not measured")

NOT_PRODUCIBLE: tuple[dict[str, str], ...] = (
    {"fault": "OS crash / kernel panic", "why": "it would take this machine down with the measurement",
     "see": "each mode's os_crash_or_power_loss_promise"},
    {"fault": "power loss", "why": "no power switch here; the OS page cache would be lost with it",
     "see": "each mode's os_crash_or_power_loss_promise"},
    {"fault": "disk failure or a disk that ignores fsync", "why": "no such hardware here", "see": PG_RELIABILITY_DOC},
    {"fault": "pod deletion / node loss on Kubernetes", "why": "no cluster here", "see": SEED_DEPLOYMENT},
    {"fault": "a partition between two hosts", "why": "one machine; the fault proxy's blackhole is the loopback "
     "stand-in (connections stay open, nothing is answered)", "see": "fridgebench.faults.proxy"},
)


def modes_for(kind: str) -> tuple[str, ...]:
    return REDIS_MODES if kind == "redis" else PG_MODES
