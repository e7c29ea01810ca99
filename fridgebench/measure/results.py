"""The versioned results document every command writes, and its atomic, crash-safe writer.

Data flows one way: engine -> measure -> results file -> report/gate. Reports read results
files only. A run directory holds ``results.json`` only once the run finished; while running
(or after a crash / Ctrl-C) it holds ``results.json.partial`` and an ``INCOMPLETE`` marker, so no
half-written file is ever presented as complete.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import sys
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fridgebench import __version__
from fridgebench.config import mask_text
from fridgebench.errors import UsageError

SCHEMA_VERSION = "fridgebench.results/2"
# Every version this fridgebench reads (reports/README.md keeps the history). A document keeps the
# version it was written with; readers use .get() for fields a version added.
READABLE_VERSIONS = ("fridgebench.results/1", "fridgebench.results/2")
RESULTS_FILE = "results.json"
INCOMPLETE_MARKER = "INCOMPLETE"

Verdict = Literal["supported", "contradicted", "partly supported", "inconclusive", "not measured"]


class Claim(BaseModel):
    """One row of the seed's claims table, filled with what a run measured."""

    model_config = ConfigDict(frozen=True)

    # "fault_isolation" was added with `fridgebench failure`: documents without it still load
    key: Literal["performance", "install", "auto_expiry", "memory_use", "scalability", "failure_recovery",
                 "fault_isolation"]
    topic: str
    seed_postgres: str
    seed_redis: str
    measured: str = "not measured by this command"
    verdict: Verdict = "not measured"
    figures: dict[str, Any] = Field(default_factory=dict)
    command: str | None = None


class Environment(BaseModel):
    model_config = ConfigDict(frozen=True)

    hostname: str
    platform: str
    cpu_model: str
    cpu_count: int
    memory_bytes: int
    python: str
    fridgebench: str
    event_loop: str
    servers: list[dict[str, Any]] = Field(default_factory=list)

    @classmethod
    def capture(cls, servers: list[dict[str, Any]] | None = None, event_loop: str = "") -> "Environment":
        import psutil

        return cls(
            hostname=socket.gethostname(),
            platform=platform.platform(),
            cpu_model=_cpu_model(),
            cpu_count=os.cpu_count() or 0,
            memory_bytes=psutil.virtual_memory().total,
            python=sys.version.split()[0],
            fridgebench=__version__,
            event_loop=event_loop,
            servers=servers or [],
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


class RunGroup(BaseModel):
    """Where a run sits among repeats of one command (``compare --repeat N``): the gate reads the group."""

    model_config = ConfigDict(frozen=True)

    id: str  # the group folder's name
    index: int = Field(ge=0)  # 0-based repeat number
    count: int = Field(ge=1)
    order: list[str] = Field(default_factory=list)  # the order the stores ran in this repeat (ABBA...)


class ResultsDocument(BaseModel):
    """Immutable, validated on construction. ``sections`` holds each command's own payload.

    Version 2 added ``group`` and, in the compare section, per-interval p99 by operation and the
    warm-up's intervals; a version-1 document loads unchanged (those fields absent).
    """

    model_config = ConfigDict(frozen=True)

    schema_version: Literal["fridgebench.results/1", "fridgebench.results/2"] = SCHEMA_VERSION
    command: str
    run_id: str
    started_at: datetime
    finished_at: datetime | None = None
    complete: bool = False
    environment: Environment
    scenario: dict[str, Any] | None = None
    seed: int | None = None
    sections: dict[str, Any] = Field(default_factory=dict)
    claims: list[Claim] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    group: RunGroup | None = None

    @field_validator("started_at", "finished_at")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return v

    def to_json(self) -> str:
        # credentials never reach a results file, whatever a section holds
        return mask_text(self.model_dump_json(indent=2))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())


def new_run_id(command: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{command}-{uuid.uuid4().hex[:6]}"


def default_reports_root() -> Path:
    return Path(os.environ.get("FRIDGEBENCH_REPORTS", "reports"))


def check_reports_root(root: Path | str, flag: str = "--out") -> None:
    """Refuse, before anything starts, a reports folder no run directory can be written into: a
    file, a path through a file, a read-only or foreign folder. Creates nothing: a missing folder is
    checked through its nearest existing parent (it is created when the run starts)."""
    root = Path(root)
    example = f"{flag} ./reports" if flag.startswith("--") else "FRIDGEBENCH_REPORTS=./reports"
    hint = f"pass a folder fridgebench may write to (it is created if missing), e.g. {example}"
    probe = root
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == root else f"is inside {probe}, which is a file"
        raise UsageError(f"{flag} {root}: {where}, not a folder", hint=hint)
    try:  # the real test: permissions, a read-only filesystem, ACLs; created and gone at once
        with tempfile.TemporaryFile(dir=probe, prefix=".fridgebench-check-"):
            pass
    except OSError as err:
        what = "cannot write there" if probe == root else f"cannot create it in {probe}"
        raise UsageError(f"{flag} {root}: {what} ({err.strerror or err})", hint=hint) from None


class RunDirectory:
    """A run's output folder. Use as a context manager: complete on success, marked INCOMPLETE otherwise."""

    def __init__(self, root: Path | str, run_id: str) -> None:
        self.path = Path(root) / run_id
        self.run_id = run_id
        self._finished = False

    def __enter__(self) -> "RunDirectory":
        self.path.mkdir(parents=True, exist_ok=False)
        (self.path / INCOMPLETE_MARKER).write_text("this run did not finish; its figures are not a result\n")
        return self

    def file(self, name: str) -> Path:
        return self.path / name

    def write_text_atomic(self, name: str, text: str) -> Path:
        """Write ``name`` whole or not at all: through ``name.tmp``, removed if anything fails
        (a full disk, Ctrl-C), so no partial file is ever left behind under either name."""
        target = self.path / name
        tmp = target.with_name(target.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return target

    def write_partial(self, doc: ResultsDocument) -> None:
        """A snapshot while running (e.g. after each store); never named results.json."""
        self.write_text_atomic(RESULTS_FILE + ".partial", doc.to_json())

    def finish(self, doc: ResultsDocument) -> Path:
        if not doc.complete:
            raise ValueError("only a complete document may be written as results.json")
        path = self.write_text_atomic(RESULTS_FILE, doc.to_json())
        for stale in (RESULTS_FILE + ".partial", INCOMPLETE_MARKER):
            (self.path / stale).unlink(missing_ok=True)
        self._finished = True
        return path

    def __exit__(self, *exc: object) -> None:
        # Not finished: the INCOMPLETE marker stays; results.json was never written.
        return None


def load_results(path: Path | str) -> ResultsDocument:
    """Read and validate a results document (a file or a run directory)."""
    p = Path(path)
    if p.is_dir():
        if not (p / RESULTS_FILE).exists():
            why = "it did not finish" if (p / INCOMPLETE_MARKER).exists() else "it holds no results.json"
            raise UsageError(f"{p} is not a complete run: {why}", hint="point at a finished run's folder")
        p = p / RESULTS_FILE
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"no results file at {p}", hint="pass a run folder under reports/ or its results.json") from None
    except json.JSONDecodeError as err:
        raise UsageError(f"{p} is not valid JSON ({err.msg} at line {err.lineno})") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version not in READABLE_VERSIONS:
        raise UsageError(f"{p} has results format {version!r}; this fridgebench reads {', '.join(READABLE_VERSIONS)}",
                         hint=("it was written by a newer fridgebench: upgrade fridgebench to read it"
                               if _newer(version) else "is it a fridgebench results.json?"))
    try:
        return ResultsDocument.model_validate(data)
    except ValueError as err:  # pydantic's ValidationError: name the first bad field, in one line
        first = str(err).splitlines()
        raise UsageError(f"{p} is not a valid results document ({' '.join(first[1:3]).strip() or first[0]})",
                         hint="was it edited by hand? regenerate it with the command that wrote it") from None


def _newer(version: object) -> bool:
    """``fridgebench.results/N`` with N above every version this fridgebench reads."""
    if not isinstance(version, str) or not version.startswith("fridgebench.results/"):
        return False
    tail = version.rsplit("/", 1)[1]
    return tail.isdigit() and int(tail) > max(int(v.rsplit("/", 1)[1]) for v in READABLE_VERSIONS)
