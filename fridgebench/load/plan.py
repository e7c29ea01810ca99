"""One store's phase as the master announces it, and what each Locust process makes of it.

The master sends every worker a :class:`Plan` before it starts that store's users (Locust
delivers a worker's messages in order, so the plan is in place before the spawn). The plan
carries the scenario the master validated — workers use the master's, not their own — and the
per-user pacing. Credentials never travel with it: each process reads its own
``FRIDGEBENCH_POSTGRES_DSN`` / ``FRIDGEBENCH_REDIS_URL``.

Operations: every process replays the scenario's deterministic stream
(:meth:`fridgebench.workload.generator.Workload.ops`) over the same population, shared by its
users. Process 0 (a local run, or the first worker) replays exactly ``compare``'s sequence for
the scenario's seed; worker *i* replays a stream of seed + i × 1,000,003 — the same operation
mix, key popularity over the same population, ingredient choices — so workers do not send
identical operations.

Session ids: every process salts them with the run's ``id_salt``, chosen by the master and sent in
the plan (:class:`fridgebench.workload.generator.Workload`), so all processes agree on the
population's ids and no id of the run collides with a session already in the store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterator

from fridgebench.workload.generator import Op, Workload
from fridgebench.workload.model import Scenario

STREAM_STRIDE = 1_000_003


@dataclass(frozen=True)
class Plan:
    phase: int
    store: str
    scenario: dict[str, Any]  # Scenario.model_dump() of the master's scenario
    users: int
    offered_rate: float | None  # total over all users; None: back to back
    stream: int = 0  # which operation stream this process replays (worker index)
    id_salt: int = 0  # the run's session-id salt (128 bits: travels as hex, msgpack stops at 64)

    @property
    def rate_per_user(self) -> float | None:
        return self.offered_rate / self.users if self.offered_rate else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "id_salt": format(self.id_salt, "x")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Plan":
        return cls(**{k: data[k] for k in ("phase", "store", "scenario", "users", "offered_rate", "stream")},
                   id_salt=int(data["id_salt"], 16))


class OpSource:
    """The operations this process's users share for the current plan (greenlets take turns:
    ``next()`` on the generator never yields to another greenlet midway)."""

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self._ops: Iterator[Op] | None = None
        self._population: tuple[Any, list[tuple[str, list[str]]]] | None = None
        self.pace: Callable[[Any], float] = lambda user: 0.0

    def population(self, scenario: Scenario, id_salt: int) -> list[tuple[str, list[str]]]:
        """The scenario's population under the run's salt (deterministic; computed once per run)."""
        key = (scenario.seed, scenario.population, scenario.name, id_salt)
        if self._population is None or self._population[0] != key:
            self._population = (key, Workload.from_catalogue(scenario, id_salt=id_salt).population())
        return self._population[1]

    def apply(self, plan: Plan) -> None:
        from locust import constant, constant_throughput

        sc = Scenario.model_validate(plan.scenario)
        population = self.population(sc, plan.id_salt)
        stream_sc = sc if plan.stream == 0 else sc.model_copy(update={"seed": sc.seed + plan.stream * STREAM_STRIDE})
        self._ops = Workload.from_catalogue(stream_sc, id_salt=plan.id_salt).ops(population)
        r = plan.rate_per_user
        self.pace = constant_throughput(r) if r else constant(0)
        self.plan = plan

    def next_op(self) -> Op:
        if self._ops is None:
            raise RuntimeError("no plan from the master yet: a user started before its store's phase")
        return next(self._ops)
