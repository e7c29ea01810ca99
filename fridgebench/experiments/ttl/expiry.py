"""Expiry accuracy and sliding expiry, measured on one store.

Sessions are created through the store (create + add_ingredients, as the application does),
spread over a short window so their expiry instants are spread too. The intended expiry of
each session is read back from the server (Redis ``PEXPIRETIME``, PostgreSQL ``expires_at``)
and put on the local clock with the measured server-clock offset. Then, per session:

* **readable until** — a *probe* subset is read through the store's own ``get`` in a loop
  around its expiry; lag = first time ``get`` returned nothing − intended expiry. In Redis
  the read itself triggers lazy expiry, so probing changes what it measures: the probe subset
  is kept apart from the *control* subset, which nobody reads.
* **physically gone** — Redis: the ``expired`` keyspace notification for each control key
  (active expiry; ``notify-keyspace-events`` is set for the run and restored), plus
  ``INFO keyspace`` counts over time. PostgreSQL: the application's periodic cleanup job
  (the store's ``cleanup_expired``: ``DELETE ... WHERE expires_at < now()``) runs every
  ``cleanup_every_s``; a row is gone when the job that deleted it commits.
* **sliding expiry** — a separate set: half get an ingredient added between 30 % and 80 % of
  their TTL (which must refresh the TTL to a full period), half are left alone. Each is read
  just after its original expiry (touched: must be readable with the new ingredient;
  untouched: must be gone) and each touched one again just after its refreshed expiry (gone).
"""

from __future__ import annotations

import asyncio
import heapq
import math
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from fridgebench.errors import FridgebenchError
from fridgebench.experiments.ttl.common import dist, pg_clock, redis_clock, redis_db, session_ids
from fridgebench.stores import schema
from fridgebench.stores.base import SessionStore
from fridgebench.stores.scratch import require_scratch

Progress = Callable[[str], None]

#: how long stopping the experiment's own background tasks may take before they are left behind
STOP_TASKS_S = 5.0


async def _stop_tasks(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` and wait for them, at most :data:`STOP_TASKS_S`: a task whose client swallows
    the cancellation (or waits on a reply that never comes) must not hold the whole run."""
    for t in tasks:
        t.cancel()
    pending = [t for t in tasks if not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=STOP_TASKS_S)
    for t in tasks:
        if t.done() and not t.cancelled():
            t.exception()  # retrieved: an error of a cancelled helper is not news


@dataclass(frozen=True)
class ExpiryParams:
    sessions: int
    ttl_s: int
    ingredients: int
    seed: int
    cleanup_every_s: float  # PostgreSQL: the simulated application cleanup job's period
    spread_s: float  # creations are spread over this window
    id_salt: int = 0  # XORed into the session ids (per run: no collision with sessions already there)
    # Redis: may keyspace notifications be switched on (CONFIG SET, server-wide, restored after)? Not on a
    # server fridgebench did not start unless the user allowed it; without them removal is only sampled
    configure_redis: bool = True


# --------------------------------------------------------------------------------------------
# observers of physical removal


class RedisObserver:
    """Keyspace notifications (``expired`` events) + ``INFO keyspace`` sampling."""

    how = "active expiry, timed by 'expired' keyspace notifications"

    def __init__(self, url: str, store: SessionStore, *, configure: bool = True) -> None:
        self.url = url
        self.store = store
        self.configure = configure
        self.removed: dict[str, float] = {}
        self.timeline: list[tuple[float, int, int]] = []
        self.warnings: list[str] = []
        self.notifications = False
        self._old_flags: str | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._keymap: dict[bytes, str] = {}
        self.clock: dict[str, float] = {}

    def _key(self, sid: str) -> str:
        key = getattr(self.store, "key", None)
        return key(sid) if callable(key) else f"session:{sid}"

    async def start(self, tracked: list[str]) -> None:
        self.r = aioredis.from_url(self.url)
        self.db = redis_db(self.url)
        self.clock = await redis_clock(self.r)
        self._keymap = {self._key(s).encode(): s for s in tracked}
        try:
            old = (await self.r.config_get("notify-keyspace-events")).get("notify-keyspace-events", "")
            old = old.decode() if isinstance(old, bytes) else str(old)
            self._old_flags = old
            flags = old
            if "E" not in flags:
                flags += "E"
            if "x" not in flags and "A" not in flags:
                flags += "x"
            if flags != old and not self.configure:
                self.warnings.append(
                    f"keyspace notifications are off on this Redis (notify-keyspace-events={old!r}) and fridgebench "
                    "does not change the configuration of a server it did not start (CONFIG SET is server-wide): "
                    "physical removal is sampled (INFO keyspace), not timed per key — --allow-config-set switches "
                    "them on for the run and restores the setting after")
                self._old_flags = None
            else:
                if flags != old:
                    await self.r.config_set("notify-keyspace-events", flags)
                self.pubsub = self.r.pubsub()
                await self.pubsub.subscribe(f"__keyevent@{self.db}__:expired")
                self.notifications = True
                self._tasks.append(asyncio.create_task(self._listen()))
        except ResponseError as err:  # CONFIG disabled (managed Redis): sample counts only
            self.warnings.append(f"keyspace notifications unavailable ({err}); physical removal not timed per key")
            self._old_flags = None
        self._tasks.append(asyncio.create_task(self._sample_info()))

    async def _listen(self) -> None:
        while not self._stopping:
            msg = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is None:
                continue
            t = time.time()
            sid = self._keymap.get(msg.get("data"))  # type: ignore[arg-type]
            if sid is not None and sid not in self.removed:
                self.removed[sid] = t

    async def _sample_info(self) -> None:
        name = f"db{self.db}"
        while not self._stopping:
            info = await self.r.info("keyspace")
            t = time.time()
            d = info.get(name) or {}
            self.timeline.append((t, int(d.get("keys", 0)), int(d.get("expires", 0))))
            await asyncio.sleep(0.05)

    async def intended(self, sids: list[str]) -> dict[str, float]:
        """Absolute expiry of each session, on the local clock (missing/immortal keys omitted)."""
        out: dict[str, float] = {}
        off = self.clock["offset_s"]
        for start in range(0, len(sids), 1000):
            chunk = sids[start:start + 1000]
            async with self.r.pipeline(transaction=False) as pipe:
                for s in chunk:
                    pipe.execute_command("PEXPIRETIME", self._key(s))
                try:
                    vals = await pipe.execute()
                    for s, v in zip(chunk, vals):
                        if isinstance(v, int) and v > 0:
                            out[s] = v / 1000.0 - off
                    continue
                except ResponseError:  # Redis < 7.0: PTTL relative to now
                    pass
            t0 = time.time()
            async with self.r.pipeline(transaction=False) as pipe:
                for s in chunk:
                    pipe.pttl(self._key(s))
                vals = await pipe.execute()
            t1 = time.time()
            for s, v in zip(chunk, vals):
                if isinstance(v, int) and v >= 0:
                    out[s] = (t0 + t1) / 2 + v / 1000.0
        return out

    async def stop(self) -> None:
        self._stopping = True  # the loops end even if a cancellation is lost inside the client
        await _stop_tasks(self._tasks)
        try:
            if self.notifications:
                # bounded: PubSub.aclose() can hang in the writer's wait_closed (redis-py#3941); then the
                # connection is dropped without waiting, as that workaround does
                try:
                    await asyncio.wait_for(self._close_pubsub(), timeout=5.0)
                except (asyncio.TimeoutError, OSError, RedisError):
                    conn = self.pubsub.connection
                    if conn is not None:
                        await conn.disconnect(nowait=True)
            if self._old_flags is not None:
                await self.r.config_set("notify-keyspace-events", self._old_flags)
        finally:
            await self.r.aclose()

    async def _close_pubsub(self) -> None:
        await self.pubsub.unsubscribe()
        await self.pubsub.aclose()

    def summary(self, t_ref: float) -> dict[str, Any]:
        pts = self.timeline
        step = max(1, len(pts) // 120)
        base = pts[0][1] if pts else 0
        peak = max((k for _, k, _ in pts), default=0)
        back: float | None = None
        peak_seen = False
        for t, k, _ in pts:
            if k == peak:
                peak_seen = True
            if peak_seen and k <= base:
                back = t
                break
        return {
            "notifications": self.notifications,
            "keyspace_timeline": [[round(t - t_ref, 3), k, e] for t, k, e in pts[::step]],
            "keys_before": base,
            "keys_peak": peak,
            "keys_back_to_baseline_after_last_expiry_s": None if back is None else round(back - t_ref, 3),
        }


class PgObserver:
    """The application's cleanup job, run every ``interval`` s; row existence checked after each run."""

    def __init__(self, dsn: str, store: SessionStore, interval: float) -> None:
        self.dsn = dsn
        self.store = store
        self.interval = interval
        self.removed: dict[str, float] = {}
        self.runs: list[dict[str, float]] = []
        self.warnings: list[str] = []
        self.clock: dict[str, float] = {}
        self.how = f"application cleanup job (DELETE ... WHERE expires_at < now()) every {interval:.3g} s"
        self._task: asyncio.Task[None] | None = None

    async def start(self, tracked: list[str]) -> None:
        self.conn = await asyncpg.create_pool(self.dsn, min_size=1, max_size=3)
        try:
            await require_scratch(self.conn)  # the cleanup job deletes every expired row of its table
        except BaseException:
            await self.conn.close()
            raise
        self.clock = await pg_clock(self.conn)
        self.tracked = list(tracked)
        self.due: dict[str, float] = {}
        self._task = asyncio.create_task(self._job())

    def set_intended(self, intended: dict[str, float]) -> None:
        self.due = {s: intended[s] for s in self.tracked if s in intended}

    async def _job(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            expired_present = int(await self.conn.fetchval(
                "SELECT count(*) FROM user_fridge_sessions WHERE expires_at <= now()"))
            t0 = time.time()
            n = await self.store.cleanup_expired()
            t1 = time.time()
            self.runs.append({"t": t1, "duration_s": t1 - t0, "deleted": n, "expired_rows_before": expired_present})
            pending = [s for s, due in self.due.items() if due <= t1 and s not in self.removed]
            if pending:
                rows = await self.conn.fetch(
                    "SELECT session_id FROM user_fridge_sessions WHERE session_id = ANY($1::text[])", pending)
                still = {r["session_id"] for r in rows}
                for s in pending:
                    if s not in still:
                        self.removed[s] = t1

    async def intended(self, sids: list[str]) -> dict[str, float]:
        rows = await self.conn.fetch(
            "SELECT session_id, extract(epoch FROM expires_at)::float8 AS e FROM user_fridge_sessions "
            "WHERE session_id = ANY($1::text[])", sids)
        off = self.clock["offset_s"]
        return {r["session_id"]: float(r["e"]) - off for r in rows}

    async def stop(self) -> None:
        if self._task is not None:
            await _stop_tasks([self._task])
        try:  # close() waits for every connection to be released: a job left behind would hold it
            await asyncio.wait_for(self.conn.close(), timeout=STOP_TASKS_S)
        except asyncio.TimeoutError:
            self.conn.terminate()

    def summary(self, t_ref: float) -> dict[str, Any]:
        return {
            "cleanup_every_s": self.interval,
            "cleanup_runs": len(self.runs),
            "cleanup_run_ms": dist(r["duration_s"] * 1000 for r in self.runs),
            # how far apart the job's runs really finished (its period, plus its own time and any
            # delay of a busy machine): a row is removed by the first run after its expiry, so its
            # removal lag is at most one gap plus one run
            "cleanup_gap_ms": dist((b["t"] - a["t"]) * 1000 for a, b in zip(self.runs, self.runs[1:])),
            "rows_deleted_by_cleanup": int(sum(r["deleted"] for r in self.runs)),
            "max_expired_rows_waiting_for_cleanup": max((int(r["expired_rows_before"]) for r in self.runs), default=0),
        }


# --------------------------------------------------------------------------------------------


async def _create_spread(store: SessionStore, order: list[str], initial: dict[str, list[str]], ttl: int,
                         spread_s: float, observer: RedisObserver | PgObserver) -> dict[str, float]:
    """Create the sessions in chunks spread over ``spread_s``; each chunk's intended expiries are read
    back right after it is written (not once at the end: with a TTL as short as the spread, the first
    sessions would expire before the last were created, on a busy machine)."""
    chunk = 20
    intended: dict[str, float] = {}
    n_chunks = max(1, math.ceil(len(order) / chunk))
    t0 = time.monotonic()

    async def one(sid: str) -> None:
        await store.create(sid, ttl)
        if initial[sid]:
            await store.add_ingredients(sid, initial[sid], ttl)

    for i in range(n_chunks):
        delay = t0 + spread_s * i / n_chunks - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        part = order[i * chunk:(i + 1) * chunk]
        await asyncio.gather(*(one(s) for s in part))
        intended.update(await observer.intended(part))
    return intended


def stall_budget_s(p: ExpiryParams) -> float:
    """How long one expiry measurement may take before it is called stalled: its own schedule
    (creation spread, two TTLs for the sliding checks, the drain) three times over, plus a minute."""
    return 60.0 + 3 * (p.spread_s + 2 * p.ttl_s + max(3.0, float(p.ttl_s)) + 2 * p.cleanup_every_s) + 0.01 * p.sessions


async def measure_expiry(store: SessionStore, *, postgres_dsn: str, redis_url: str, params: ExpiryParams,
                         progress: Progress | None = None) -> dict[str, Any]:
    """See the module docstring. A measurement that makes no progress within :func:`stall_budget_s`
    (a server that stopped answering mid-run) ends with an error naming the store; its cause is the
    stalled wait, in the traceback ``--debug`` shows."""
    budget = stall_budget_s(params)
    deadline = asyncio.timeout(budget)
    try:
        async with deadline:
            return await _measure_expiry(store, postgres_dsn=postgres_dsn, redis_url=redis_url, params=params,
                                         progress=progress)
    except TimeoutError as err:
        if not deadline.expired():  # some other wait's timeout: not this budget's
            raise
        raise FridgebenchError(
            f"{store.name}: the expiry measurement did not finish within {budget:.0f} s (its schedule needs "
            f"about a third of that)", hint="check that the server still answers; --debug shows where it waited",
        ) from err


async def _measure_expiry(store: SessionStore, *, postgres_dsn: str, redis_url: str, params: ExpiryParams,
                          progress: Progress | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    p = params
    rng = random.Random(f"{p.seed}-{store.name}")
    catalogue = [i.name for i in schema.ingredients()]
    ids = session_ids(p.sessions, rng, p.id_salt)
    n_slide = min(500, max(4, p.sessions // 5))
    n_slide -= n_slide % 2
    n_probe = min(250, max(2, (p.sessions - n_slide) // 10))
    slide, probe, control = ids[:n_slide], ids[n_slide:n_slide + n_probe], ids[n_slide + n_probe:]
    touched, idle = slide[0::2], slide[1::2]
    touched_set = set(touched)
    initial = {s: rng.sample(catalogue, p.ingredients) for s in ids}
    extra = {}
    for s in touched:
        have = set(initial[s])
        extra[s] = next(n for n in rng.sample(catalogue, len(catalogue)) if n not in have)

    observer: RedisObserver | PgObserver
    if store.kind == "redis":
        observer = RedisObserver(redis_url, store, configure=p.configure_redis)
    else:
        observer = PgObserver(postgres_dsn, store, p.cleanup_every_s)
    margin = min(0.2, 0.1 * p.ttl_s)
    await observer.start(probe + control)
    t_start = time.time()
    try:
        order = ids[:]
        rng.shuffle(order)
        say(f"{store.name}: creating {p.sessions} sessions ({p.ingredients} ingredients each, TTL {p.ttl_s} s)")
        intended = await _create_spread(store, order, initial, p.ttl_s, p.spread_s, observer)
        created_in = time.time() - t_start
        if isinstance(observer, PgObserver):
            observer.set_intended(intended)
        lost_before_observed = [s for s in ids if s not in intended]

        # -- sliding expiry: a little scheduler of touches and checks ---------------------
        violations = {"touch_rejected": 0, "touched_lost": 0, "touched_missing_ingredient": 0,
                      "untouched_survived": 0, "touched_never_expired": 0}
        # A touch or a check that ran too late to tell anything (a busy machine delayed it past the
        # instant that decides it) is counted here, never as a violation of the store: a touch that
        # only finished after the session's expiry may rightly be refused; a touched session read
        # only after its refreshed expiry may rightly be gone.
        late = {"touch": 0, "check": 0}
        refreshed_at: dict[str, float] = {}
        eps = observer.clock.get("rtt_s", 0.0) + 0.005  # the local/server clock offset's uncertainty
        touch_before_expiry_s: list[float] = []
        heap: list[tuple[float, str, str]] = []
        for s in touched:
            if s in intended:
                heapq.heappush(heap, (intended[s] - p.ttl_s + rng.uniform(0.3, 0.8) * p.ttl_s, "touch", s))
        for s in slide:
            if s in intended:
                heapq.heappush(heap, (intended[s] + margin, "check1", s))
        latest = [max(intended.values(), default=time.time())]

        async def sliding() -> None:
            while heap:
                now = time.time()
                if heap[0][0] > now:
                    await asyncio.sleep(min(heap[0][0] - now, 0.05))
                    continue
                due: dict[str, list[str]] = {"touch": [], "check1": [], "check2": []}
                while heap and heap[0][0] <= now:
                    _, kind, s = heapq.heappop(heap)
                    due[kind].append(s)
                if due["touch"]:
                    ts = time.time()
                    oks = await asyncio.gather(*(store.add_ingredients(s, [extra[s]], p.ttl_s) for s in due["touch"]))
                    te = time.time()
                    for s, ok in zip(due["touch"], oks):
                        touch_before_expiry_s.append(intended[s] - ts)
                        if not ok:
                            if te < intended[s] - eps:  # refused while the session was surely live
                                violations["touch_rejected"] += 1
                            else:
                                late["touch"] += 1
                    refreshed = await observer.intended([s for s, ok in zip(due["touch"], oks) if ok])
                    refreshed_at.update(refreshed)
                    for s, t in refreshed.items():
                        heapq.heappush(heap, (t + margin, "check2", s))
                        latest[0] = max(latest[0], t)
                for kind in ("check1", "check2"):
                    if not due[kind]:
                        continue
                    got = await asyncio.gather(*(store.get(s) for s in due[kind]))
                    t1 = time.time()
                    for s, sess in zip(due[kind], got):
                        if kind == "check2":
                            if sess is not None:
                                violations["touched_never_expired"] += 1
                        elif s in touched_set:
                            if s not in refreshed_at:
                                pass  # its touch was refused (counted above, as a violation or as late)
                            elif sess is None:
                                if t1 < refreshed_at[s] - eps:  # gone though read before its refreshed expiry
                                    violations["touched_lost"] += 1
                                else:
                                    late["check"] += 1
                            elif extra[s] not in sess.ingredients:
                                violations["touched_missing_ingredient"] += 1
                        elif sess is not None:
                            violations["untouched_survived"] += 1

        # -- readability probe -----------------------------------------------------------
        gone: dict[str, float] = {}
        periods: list[float] = []

        async def probe_loop() -> None:
            alive = {s for s in probe if s in intended}
            last = None
            while alive:
                now = time.time()
                due = [s for s in alive if intended[s] <= now + 0.25]
                if not due:
                    await asyncio.sleep(0.01)
                    last = None
                    continue
                t0 = time.time()
                got = await asyncio.gather(*(store.get(s) for s in due))
                t1 = time.time()
                for s, sess in zip(due, got):
                    if sess is None:
                        gone[s] = (t0 + t1) / 2
                        alive.discard(s)
                if last is not None:
                    periods.append(t1 - last)
                last = t1
                await asyncio.sleep(0.002)

        drain = max(3.0, float(p.ttl_s)) if store.kind == "redis" else 2 * p.cleanup_every_s + 1.0
        say(f"{store.name}: watching expiry (created in {created_in:.1f} s)")
        tasks = [asyncio.create_task(sliding()), asyncio.create_task(probe_loop())]
        try:
            while True:
                await asyncio.sleep(0.05)
                done_tasks = all(t.done() for t in tasks)
                for t in tasks:
                    if t.done() and t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
                all_removed = all(s in observer.removed for s in control if s in intended)
                if done_tasks and (all_removed or (store.kind == "redis" and not observer.notifications)):
                    break
                if time.time() > latest[0] + drain:
                    break
        finally:
            await _stop_tasks(tasks)
        # let the last notifications arrive
        await asyncio.sleep(0.1)
    finally:
        await observer.stop()

    t_last_control = max((intended[s] for s in control if s in intended), default=time.time())
    readable_lag = [(gone[s] - intended[s]) * 1000 for s in probe if s in gone and s in intended]
    removed_lag = [(observer.removed[s] - intended[s]) * 1000 for s in control
                   if s in observer.removed and s in intended]
    probe_removed = [(observer.removed[s] - intended[s]) * 1000 for s in probe
                     if s in observer.removed and s in intended]
    remaining_after: dict[str, int] = {}
    for dt in (0.0, 0.1, 0.5, 1.0, 2.0):
        cutoff = t_last_control + dt
        remaining_after[f"+{dt:g}s"] = sum(1 for s in control if s in intended
                                            and not (s in observer.removed and observer.removed[s] <= cutoff))
    out: dict[str, Any] = {
        "store": store.name,
        "kind": store.kind,
        "sessions": p.sessions,
        "ttl_s": p.ttl_s,
        "ingredients": p.ingredients,
        "groups": {"control": len(control), "probe": len(probe), "sliding_touched": len(touched),
                   "sliding_untouched": len(idle)},
        "created_in_s": round(created_in, 3),
        "expired_before_observed": len(lost_before_observed),
        "clock": {"offset_ms": round(observer.clock["offset_s"] * 1000, 3),
                  "rtt_ms": round(observer.clock["rtt_s"] * 1000, 3)},
        "readable_lag_ms": dist(readable_lag),
        "readable_resolution_ms": dist(x * 1000 for x in periods),
        "readable_never_gone": sum(1 for s in probe if s in intended and s not in gone),
        "removed_how": observer.how,
        "removed_lag_ms": dist(removed_lag),
        "removed_not_observed": sum(1 for s in control if s in intended and s not in observer.removed),
        "control_remaining_after_last_expiry": remaining_after,
        "sliding": {"touched": len(touched), "untouched": len(idle), "violations": violations,
                    "total_violations": int(sum(violations.values())),
                    "too_late_to_judge": late,
                    "touch_before_expiry_s": dist(touch_before_expiry_s)},
        "duration_s": round(time.time() - t_start, 3),
        "warnings": list(observer.warnings),
    }
    if late["touch"] or late["check"]:
        out["warnings"].append(
            f"{late['touch']} sliding-expiry touches and {late['check']} checks ran too late to judge "
            "(this machine delayed them past the instant that decides them); they are not counted as violations")
    if store.kind == "redis":
        out["probe_lazy_removed_lag_ms"] = dist(probe_removed)
    out.update(observer.summary(t_last_control))
    return out
