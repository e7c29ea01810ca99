"""Hand-built results for the seed's claims table: each claim row's verdict and wording, table-driven.

A claim row is judged from results only (data flows scenario -> engine -> measure -> results ->
claims), so its rules are tested without servers, over results built here from a few numbers:

- :func:`store_run` makes a real :class:`~fridgebench.experiments.compare.StoreRun`: an operation
  log is written the way the driver writes one (intended start, send, completion per operation),
  then turned into figures by the real :func:`~fridgebench.measure.summary.summarize` —
  histograms, per-second intervals, the noise figure — so ``compare_stores`` bootstraps real
  intervals and ``judge_claims`` reads what a run would have produced. Nothing is mocked.
- :func:`performance_claims` runs ``compare_stores`` -> ``fix_summary`` -> ``judge_claims`` over
  such runs, as ``run_compare`` does.
- :class:`ClaimCase` is one row of a table: how to build the claims, which row, the verdict, and
  the words a reader must (``says``) and must never (``never``) see in its ``measured`` text.
  :func:`check` asserts all of it. A new claim row (failure recovery, fault isolation) adds a list
  of cases with its own ``build`` and reuses :func:`check`.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

from fridgebench.engine.driver import OK, OpLog, RunWindow
from fridgebench.experiments.compare import StoreRun, compare_stores, fix_summary, judge_claims
from fridgebench.measure.results import Claim
from fridgebench.measure.summary import summarize
from fridgebench.provision.base import Endpoints, ServerInfo
from fridgebench.stores import store_path
from fridgebench.workload.generator import Op
from fridgebench.workload.model import load_scenario

# within each second, an operation's latencies spread symmetrically around that second's median
SPREAD = (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2)

Latency = float | Sequence[float]  # µs: the same median every second, or one median per second (cycled)


def _per_second(spec: Latency, seconds: int) -> list[float]:
    if isinstance(spec, (int, float)):
        return [float(spec)] * seconds
    return [float(x) for x in itertools.islice(itertools.cycle(spec), seconds)]


def store_run(name: str, *, seconds: int = 10, model: str = "open", rate: float = 1500.0,
              concurrency: int = 32, weights: dict[str, int] | None = None,
              server_io: dict[str, Any] | None = None, **latency_us: Latency) -> StoreRun:
    """A store's run from per-second median latencies (µs) per operation, e.g.
    ``store_run("postgres", get=250, add=[900, 1100])``. Each second holds :data:`SPREAD` around
    each operation's median, ``weights[op]`` times (default once): an operation's share of the mix."""
    specs = tuple((k, tuple(_per_second(v, seconds))) for k, v in latency_us.items())
    return _store_run(name, seconds, model, rate, concurrency, tuple(sorted((weights or {}).items())),
                      tuple(sorted((server_io or {}).items())) if server_io is not None else None, specs)


@functools.lru_cache(maxsize=None)  # HdrHistogram summaries cost ~0.1 s a store: many cases share a run
def _store_run(name: str, seconds: int, model: str, rate: float, concurrency: int, weights: tuple[tuple[str, int], ...],
               server_io: tuple[tuple[str, Any], ...] | None, specs: tuple[tuple[str, tuple[float, ...]], ...]) -> StoreRun:
    log = OpLog()
    t0 = 1000.0
    for s in range(seconds):
        for kind, medians in specs:
            lats = [medians[s] * f for f in SPREAD] * dict(weights).get(kind, 1)
            for j, lat in enumerate(lats):
                intended = t0 + s + (j + 0.5) / (len(lats) + 1)
                # + half a µs: the summary truncates to whole µs, and 100e-6 s may come back as 99.99999 µs
                log.append(Op(kind, f"s{s}-{j}"), intended, intended, intended + (lat + 0.5) / 1e6, OK)
    win = RunWindow(model=model, start=t0 - 1, measure_start=t0, measure_end=t0 + seconds,
                    offered_rate=rate if model == "open" else None, concurrency=concurrency,
                    late_threshold_s=float("inf"))
    extra: dict[str, Any] = {"path": store_path(name)}
    if server_io is not None:
        extra["server_io"] = dict(server_io)
    correctness = {"adds_checked": 0, "lost_updates": 0, "loss_rate": 0.0, "sessions_checked": 0,
                   "sessions_missing": 0, "examples": []}
    return StoreRun(name, summarize(log, win), correctness, populate_s=0.1, extra=extra)


def endpoints(*, pg_source: str = "embedded", redis_source: str = "embedded", pg_started_s: float | None = 2.5,
              redis_started_s: float | None = 0.2, unused: str | None = None) -> Endpoints:
    """What provisioning hands over (no server behind it: the claims only read these fields).
    ``unused``: the kind of store the run did not need (provisioning leaves it blank and external)."""
    pg = ServerInfo(kind="postgres", source=pg_source, url="postgresql://postgres@127.0.0.1:5432/x",  # type: ignore[arg-type]
                    durability={"fsync": "on", "synchronous_commit": "on"}, started_in_s=pg_started_s)
    rd = ServerInfo(kind="redis", source=redis_source, url="redis://127.0.0.1:6379/0",  # type: ignore[arg-type]
                    durability={"appendonly": "no", "save": ""}, started_in_s=redis_started_s)
    if unused == "postgres":
        pg = ServerInfo(kind="postgres", source="external", url="")
    elif unused == "redis":
        rd = ServerInfo(kind="redis", source="external", url="")
    return Endpoints(pg.url, rd.url, pg, rd)


def performance_claims(*runs: StoreRun, ep: Endpoints | None = None) -> list[Claim]:
    """What ``run_compare`` does after the stores ran: ratios and intervals, the fix's share, the claims."""
    by_name = {r.store: r for r in runs}
    comparisons = compare_stores(by_name, seed=42)
    return judge_claims(by_name, comparisons, ep or endpoints(), load_scenario("session-lifecycle"),
                        fix=fix_summary(by_name))


@dataclass(frozen=True)
class ClaimCase:
    """One row of a verdict table."""

    id: str
    build: Callable[[], Iterable[Claim]]  # the claims table a run (or a merge of runs) produced
    key: str  # the claim row under test
    verdict: str
    says: tuple[str, ...] = ()  # each must appear in the row's `measured` text
    never: tuple[str, ...] = ()  # none may appear (words that would mislead here)
    figures: dict[str, Any] = field(default_factory=dict)  # expected entries of the row's figures (top level)

    def __str__(self) -> str:
        return self.id


def check(case: ClaimCase) -> Claim:
    """Build the claims, find the row, assert its verdict, its words and figures; return it."""
    rows = {c.key: c for c in case.build()}
    row = rows[case.key]
    text = row.measured
    assert row.verdict == case.verdict, f"{case.id}: verdict {row.verdict!r}, expected {case.verdict!r} — {text}"
    for needle in case.says:
        assert needle in text, f"{case.id}: {needle!r} not in: {text}"
    for needle in case.never:
        assert needle not in text, f"{case.id}: {needle!r} should not be in: {text}"
    for k, v in case.figures.items():
        assert row.figures.get(k) == v, f"{case.id}: figures[{k!r}] = {row.figures.get(k)!r}, expected {v!r}"
    return row
