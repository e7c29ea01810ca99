"""Deterministic operation streams: the same scenario and seed give the same sequence to every store.

The generator never looks at store responses; it keeps its own belief of which sessions exist
and what they hold, so removals name ingredients that were added and both stores replay an
identical sequence.

Session ids are uuid4-shaped and salted per :class:`Workload` (``id_salt``, random unless given):
a run's ids never collide with sessions already in a store (someone else's, or an earlier run's
with the same seed), while the seed alone fixes the sequence — the same seed gives the same
operations, the same kinds, sessions (by position), ingredients and recipes; only the ids differ.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import secrets
import uuid
from dataclasses import dataclass
from typing import Iterator, Sequence

from fridgebench.workload.model import OP_KINDS, Scenario


@dataclass(slots=True, frozen=True)
class Op:
    kind: str  # one of OP_KINDS
    session_id: str = ""
    names: tuple[str, ...] = ()
    recipe_id: int = 0


class Zipfian:
    """YCSB's zipfian generator (Gray et al.), with an incrementally grown zeta for growing n."""

    def __init__(self, n: int, s: float) -> None:
        self.s = s
        self.n = 0
        self.zetan = 0.0
        self.zeta2 = 1.0 + 0.5**s
        self._grow(n)

    def _grow(self, n: int) -> None:
        if n <= self.n:
            return
        s = self.s
        self.zetan += math.fsum(1.0 / (i**s) for i in range(self.n + 1, n + 1))
        self.n = n
        if s != 1.0:
            self.alpha = 1.0 / (1.0 - s)
            self.eta = (1 - (2.0 / n) ** (1 - s)) / (1 - self.zeta2 / self.zetan) if n > 1 else 1.0
        else:
            self.alpha = math.inf

    def rank(self, rng: random.Random, n: int) -> int:
        """A rank in [0, n): 0 is the most popular."""
        self._grow(n)
        u = rng.random()
        uz = u * self.zetan
        if uz < 1.0:
            return 0
        if uz < self.zeta2:
            return 1 if n > 1 else 0
        if self.s == 1.0:  # fall back to inverse-CDF by bisection on harmonic numbers (rare)
            target = uz
            lo, hi = 1, n
            while lo < hi:
                mid = (lo + hi) // 2
                if math.log(mid) + 0.5772156649 + 1 / (2 * mid) < target:
                    lo = mid + 1
                else:
                    hi = mid
            return min(lo - 1, n - 1)
        r = int(n * (self.eta * u - self.eta + 1) ** self.alpha)
        return min(max(r, 0), n - 1)


def _fnv(x: int) -> int:
    h = 0xCBF29CE484222325
    for _ in range(8):
        h ^= x & 0xFF
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
        x >>= 8
    return h


class Workload:
    """Population and operation stream for one scenario."""

    def __init__(
        self,
        scenario: Scenario,
        ingredient_names: Sequence[str],
        ingredient_weights: Sequence[float],
        recipe_ids: Sequence[int],
        recipe_weights: Sequence[float],
        *,
        id_salt: int | None = None,
    ) -> None:
        self.scenario = scenario
        # XORed into every id: changes the ids, never the random draws (so never the sequence)
        self.id_salt = secrets.randbits(128) if id_salt is None else id_salt
        self._names = list(ingredient_names)
        self._name_cum = list(itertools.accumulate(ingredient_weights))
        self._recipes = list(recipe_ids) or [0]
        self._recipe_cum = list(itertools.accumulate(recipe_weights)) or [1.0]
        weights = scenario.mix.weights()
        self._kinds = [k for k in OP_KINDS if weights[k] > 0]
        self._kind_cum = list(itertools.accumulate(weights[k] for k in self._kinds))

    @classmethod
    def from_catalogue(cls, scenario: Scenario, *, id_salt: int | None = None) -> "Workload":
        from fridgebench.stores import schema

        ings = schema.ingredients()
        recs = schema.recipes()
        return cls(scenario, [i.name for i in ings], [i.weight for i in ings],
                   [r.id for r in recs], [r.weight for r in recs], id_salt=id_salt)

    # -- helpers ------------------------------------------------------------------------
    def _session_id(self, rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128) ^ self.id_salt, version=4))

    def _pick_names(self, rng: random.Random, k: int, exclude: set[str] | frozenset[str] = frozenset()) -> list[str]:
        out: list[str] = []
        total = self._name_cum[-1]
        tries = 0
        while len(out) < k and tries < 20 * k + 20:
            tries += 1
            name = self._names[bisect.bisect_left(self._name_cum, rng.random() * total)]
            if name not in exclude and name not in out:
                out.append(name)
        return out

    # -- the population loaded before the run -------------------------------------------
    def population(self) -> list[tuple[str, list[str]]]:
        rng = random.Random(f"{self.scenario.seed}/population")
        lo, hi = self.scenario.population.ingredients
        return [(self._session_id(rng), self._pick_names(rng, rng.randint(lo, hi)))
                for _ in range(self.scenario.population.sessions)]

    # -- the operation stream -----------------------------------------------------------
    def ops(self, population: list[tuple[str, list[str]]] | None = None) -> Iterator[Op]:
        """An endless deterministic stream of operations (the caller takes what it needs)."""
        sc = self.scenario
        pop = population if population is not None else self.population()
        rng = random.Random(f"{sc.seed}/ops")
        ids = [sid for sid, _ in pop]
        held: dict[str, set[str]] = {sid: set(names) for sid, names in pop}
        dead: set[str] = set()
        zipf = Zipfian(max(len(ids), 1), sc.keys.zipf_s) if sc.keys.distribution != "uniform" else None
        dist = sc.keys.distribution
        add_lo, add_hi = sc.ingredients.per_add
        rm_lo, rm_hi = sc.ingredients.per_remove
        kinds, kind_cum = self._kinds, self._kind_cum
        kind_total = kind_cum[-1]
        recipe_total = self._recipe_cum[-1]

        def pick_session() -> str:
            n = len(ids)
            sid = ids[0]
            for _ in range(4):  # prefer live sessions; a dead one now and then is realistic
                if dist == "uniform" or zipf is None:
                    idx = rng.randrange(n)
                elif dist == "zipfian":
                    idx = _fnv(zipf.rank(rng, n)) % n
                else:  # latest: the newest sessions are the hottest
                    idx = n - 1 - zipf.rank(rng, n)
                sid = ids[idx]
                if sid not in dead:
                    break
            return sid

        while True:
            kind = kinds[bisect.bisect_left(kind_cum, rng.random() * kind_total)]
            if kind == "create" or not ids:
                sid = self._session_id(rng)
                ids.append(sid)
                held[sid] = set()
                yield Op("create", sid)
            elif kind == "recipe":
                rid = self._recipes[bisect.bisect_left(self._recipe_cum, rng.random() * recipe_total)]
                yield Op("recipe", recipe_id=rid)
            else:
                sid = pick_session()
                have = held.setdefault(sid, set())
                if kind == "add":
                    names = self._pick_names(rng, rng.randint(add_lo, add_hi), have)
                    have.update(names)
                    yield Op("add", sid, tuple(names))
                elif kind == "remove":
                    k = rng.randint(rm_lo, rm_hi)
                    pool = sorted(have)
                    names = rng.sample(pool, min(k, len(pool))) if pool else self._pick_names(rng, k)
                    have.difference_update(names)
                    yield Op("remove", sid, tuple(names))
                elif kind == "delete":
                    dead.add(sid)
                    have.clear()
                    yield Op("delete", sid)
                else:  # get, extend
                    yield Op(kind, sid)
