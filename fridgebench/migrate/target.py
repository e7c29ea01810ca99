"""The Redis side: keys, the compare-and-set script, a raw pipelined writer, safety checks.

Keys: ``session:{id}`` holds exactly the seed's JSON; the companion ``fridgebench:migrate:v:{id}``
holds the version of the PostgreSQL state that value came from, with the same PXAT (it vanishes
with the session). A deleted session leaves its version key as a tombstone for ``TOMBSTONE_MS`` so
an older state arriving late cannot resurrect it.

Backfill writes are plain ``SET v PXAT`` then ``SET session PXAT`` (version first: a crash between
them leaves a tombstone-like version, never a session key that looks foreign). They need no
compare because the backfill is the only writer while it runs: the applier starts after it and
one advisory lock per source database keeps a second migrate out. Every change the applier
writes goes through ``APPLY_LUA``: compare version, then write or delete, atomically.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import unquote, urlsplit

import redis

from fridgebench.config import mask_text, mask_url
from fridgebench.errors import MigrationRefused, StoreUnavailable, UsageError

SESSION_PREFIX = b"session:"
VERSION_PREFIX = b"fridgebench:migrate:v:"
TOMBSTONE_MS = 48 * 3600 * 1000

# KEYS: s1, v1, s2, v2, ...   ARGV: overwrite, tombstone_ms, then per session: value|"" , pxat|"", version
APPLY_LUA = r"""
local ow = ARGV[1] == '1'
local tomb = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w, st, fo, de = 0, 0, 0, 0
for k = 0, #KEYS / 2 - 1 do
  local sk, vk = KEYS[2*k+1], KEYS[2*k+2]
  local val, px, ver = ARGV[3*k+3], tonumber(ARGV[3*k+4]), tonumber(ARGV[3*k+5])
  local cur = redis.call('GET', vk)
  if cur and tonumber(cur) > ver then
    st = st + 1
  elseif (not cur) and (not ow) and redis.call('EXISTS', sk) == 1 then
    fo = fo + 1
  elseif val == '' or px == nil or px <= now then
    redis.call('DEL', sk)
    redis.call('SET', vk, ver, 'PX', tomb)
    de = de + 1
  else
    redis.call('SET', vk, ver, 'PXAT', px)
    redis.call('SET', sk, val, 'PXAT', px)
    w = w + 1
  end
end
return {w, st, fo, de}
"""


def session_key(sid: str) -> bytes:
    return SESSION_PREFIX + sid.encode()


def version_key(sid: str) -> bytes:
    return VERSION_PREFIX + sid.encode()


def client(url: str, timeout: float = 5.0) -> redis.Redis:
    try:
        r = redis.Redis.from_url(url, socket_timeout=timeout * 6, socket_connect_timeout=timeout)
        r.ping()
        return r
    except ValueError as err:
        raise UsageError(f"--to {mask_url(url)} is not a Redis URL: {mask_text(str(err))}",
                         hint="use redis://host:port/db or rediss://...") from None
    except redis.AuthenticationError as err:
        raise StoreUnavailable(f"Redis at {mask_url(url)} refused the credentials: {mask_text(str(err))}",
                               hint="check the password in --to") from None
    except (redis.ConnectionError, redis.TimeoutError, OSError) as err:
        raise StoreUnavailable(f"cannot reach Redis at {mask_url(url)}: {mask_text(str(err))}",
                               hint="is the server running and the host/port right?") from None
    except redis.ResponseError as err:
        raise StoreUnavailable(f"Redis at {mask_url(url)} answered with an error: {mask_text(str(err))}",
                               hint="check --to") from None


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


class RawRedis:
    """A socket speaking RESP directly: the backfill's hot path frames commands itself.

    redis-py's per-command packing costs more than the whole write at 100k+ sessions/s; here a
    batch of sessions is one ``bytes`` built by joins, sent with one ``sendall``, and its replies
    (all single-line: ``+OK`` or ``-ERR``) are counted, not parsed one by one.
    """

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        u = urlsplit(url)
        host, port = u.hostname or "127.0.0.1", u.port or 6379
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if u.scheme == "rediss":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        self.sock = sock
        self._buf = b""
        pre: list[list[bytes]] = []
        if u.password:
            pre.append([b"AUTH"] + ([unquote(u.username).encode()] if u.username else []) + [unquote(u.password).encode()])
        db = (u.path or "/0").strip("/") or "0"
        if db != "0":
            pre.append([b"SELECT", db.encode()])
        if pre:
            self.send(b"".join(self.command(c) for c in pre), len(pre))

    @staticmethod
    def command(args: Sequence[bytes]) -> bytes:
        return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)

    def send(self, payload: bytes, replies: int) -> None:
        """Send a pipelined payload and wait for ``replies`` single-line replies; raise on ``-ERR``."""
        self.sock.sendall(payload)
        seen = 0
        buf = self._buf
        while True:
            seen = buf.count(b"\r\n")
            if seen >= replies:
                break
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise StoreUnavailable("Redis closed the connection during the backfill",
                                       hint="check the Redis log (maxmemory? restart?) and run the same command again")
            buf += chunk
        if b"-" in buf and any(line.startswith(b"-") for line in buf.split(b"\r\n")):
            err = next(line for line in buf.split(b"\r\n") if line.startswith(b"-"))
            raise StoreUnavailable(f"Redis refused a write: {err[1:].decode(errors='replace')}",
                                   hint="fix the cause and run the same command again; it resumes")
        self._buf = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


@dataclass
class ApplyCounts:
    written: int = 0
    stale: int = 0  # an older state than Redis already holds: not written (idempotence/ordering)
    foreign: int = 0  # a session key migrate did not write, and --overwrite not given
    deleted: int = 0

    def add(self, other: "ApplyCounts") -> None:
        self.written += other.written
        self.stale += other.stale
        self.foreign += other.foreign
        self.deleted += other.deleted


class Applier:
    """Writes session states through the compare-and-set script."""

    def __init__(self, r: redis.Redis, *, overwrite: bool) -> None:
        self.r = r
        self.overwrite = overwrite
        self.script = r.register_script(APPLY_LUA)

    def apply(self, states: Sequence[tuple[str, str | None, int | None, int]]) -> ApplyCounts:
        """``(session_id, json or None when gone, pxat_ms or None, version)``, any number."""
        counts = ApplyCounts()
        for i in range(0, len(states), 500):
            chunk = states[i:i + 500]
            keys: list[bytes] = []
            args: list[bytes | str | int] = [b"1" if self.overwrite else b"0", TOMBSTONE_MS]
            for sid, val, px, ver in chunk:
                keys += [session_key(sid), version_key(sid)]
                args += [val.encode() if val is not None else b"", px if px is not None else b"", ver]
            w, st, fo, de = self.script(keys=keys, args=args)
            counts.add(ApplyCounts(int(w), int(st), int(fo), int(de)))
        return counts


# --- safety -----------------------------------------------------------------------------------

SAFE_POLICIES = {"noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}


@dataclass
class TargetState:
    version: str
    policy: str
    maxmemory: int
    used_memory: int
    session_keys: int
    foreign_keys: int
    sample_foreign: list[str]


def inspect(r: redis.Redis, *, scan_limit: int | None = None) -> TargetState:
    info = r.info()
    version = str(info.get("redis_version", "?"))
    try:
        policy = str(r.config_get("maxmemory-policy").get("maxmemory-policy", "unknown"))
        maxmemory = int(r.config_get("maxmemory").get("maxmemory", 0) or 0)
    except redis.ResponseError:  # CONFIG disabled (managed Redis): fall back to INFO
        policy = str(info.get("maxmemory_policy", "unknown"))
        maxmemory = int(info.get("maxmemory", 0) or 0)
    total = foreign = 0
    sample: list[str] = []
    batch: list[bytes] = []

    def check(keys: list[bytes]) -> None:
        nonlocal foreign
        pipe = r.pipeline(transaction=False)
        for k in keys:
            pipe.exists(VERSION_PREFIX + k[len(SESSION_PREFIX):])
        for k, has in zip(keys, pipe.execute()):
            if not has:
                foreign += 1
                if len(sample) < 5:
                    sample.append(k.decode(errors="replace"))

    for key in r.scan_iter(match=b"session:*", count=2000):
        total += 1
        batch.append(key)
        if len(batch) >= 2000:
            check(batch)
            batch = []
        if scan_limit and total >= scan_limit:
            break
    if batch:
        check(batch)
    return TargetState(version, policy, maxmemory, int(info.get("used_memory", 0)), total, foreign, sample)


def check_safe(state: TargetState, *, estimate_bytes: int, overwrite: bool, force: bool, where: str) -> list[str]:
    """Raise :class:`MigrationRefused` on a hazard; return warnings for what ``--force`` let through."""
    warnings: list[str] = []
    if state.foreign_keys and not overwrite:
        raise MigrationRefused(
            f"Redis at {where} already holds {state.foreign_keys} session:* keys fridgebench did not write "
            f"(e.g. {state.sample_foreign[0]})",
            hint="point --to at an empty database, or pass --overwrite to replace them")
    hazards = []
    if state.policy not in SAFE_POLICIES:
        hazards.append(f"its eviction policy {state.policy!r} can evict sessions (migrated keys all have a TTL, "
                       "so even volatile-* policies evict them under pressure; use noeviction)")
    elif state.policy != "noeviction":
        warnings.append(f"eviction policy {state.policy!r} evicts keys with a TTL under memory pressure")
    if state.maxmemory and state.maxmemory - state.used_memory < estimate_bytes:
        hazards.append(f"maxmemory {state.maxmemory} bytes leaves {max(0, state.maxmemory - state.used_memory)} free, "
                       f"below the estimated {estimate_bytes} bytes needed")
    if hazards and not force:
        raise MigrationRefused(f"Redis at {where} could drop sessions: {hazards[0]}",
                               hint="fix the Redis configuration, or pass --force to migrate anyway")
    warnings += [f"--force: {h}" for h in hazards]
    return warnings


def estimate_memory(n_sessions: int, avg_value: float, avg_id: float) -> int:
    """Bytes Redis needs: two keys per session (value + version), jemalloc overheads included."""
    per = (avg_value + 16) + 2 * (avg_id + 32) + 2 * 56 + 24 + 16
    return int(n_sessions * per)


def wait(seconds: float) -> None:
    time.sleep(seconds)
