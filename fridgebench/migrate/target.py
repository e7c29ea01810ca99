"""The Redis side: keys, the compare-and-set script, a raw pipelined writer, safety checks.

Keys: ``session:{id}`` holds exactly the seed's JSON. What migrate knows about a session it wrote
lives beside it:

* **ownership sets** ``fridgebench:migrate:owned:NN`` (``NN`` = :func:`owner_bucket`, 64 of them)
  hold the id of every session the backfill wrote. The backfill adds a whole batch with one
  ``SADD`` per set touched (a key per session would double the backfill's Redis work; measured:
  +3.0 us/session for a key, +0.5 for a set member); each set's ``PEXPIREAT`` is raised (``NX``,
  then ``GT``) to the latest expiry among its sessions, so no key is ever without an expiry. 64
  sets rather than one so that an expiring (or unlinked) set frees tens of thousands of members at
  a time, not millions in one blocking step.
* the **version key** ``fridgebench:migrate:v:{id}`` holds the version of the PostgreSQL state
  Redis holds, with the session's PXAT (it vanishes with the session). The applier writes it for
  every change it applies; the backfill writes it only for a session whose version is above the
  epoch (it changed between capture install and the snapshot). A deleted session leaves its
  version key as a tombstone for ``TOMBSTONE_MS`` so an older state arriving late cannot
  resurrect it.

So a session's version in Redis is its version key, else the epoch if it is in its ownership set
(``read_versions``, ``APPLY_LUA``). A ``session:*`` key with neither was not written by migrate
("foreign").

A backfill batch is the ``SADD``s first, then the ``SET``s: a crash between them leaves ownership
without a session (harmless), never a session key that looks foreign. The backfill needs no
compare: it is the only writer while it runs (the applier starts after it, and one advisory lock
per source database keeps a second migrate out). Every change the applier writes goes through
``APPLY_LUA``: compare version, then write or delete, atomically.
"""

from __future__ import annotations

import socket
import time
import zlib
from dataclasses import dataclass
from typing import Sequence

import redis

from fridgebench.config import mask_text, mask_url
from fridgebench.connection_errors import store_error
from fridgebench import urls
from fridgebench.errors import MigrationRefused, StoreUnavailable, UsageError

SESSION_PREFIX = b"session:"
VERSION_PREFIX = b"fridgebench:migrate:v:"
OWNER_PREFIX = b"fridgebench:migrate:owned:"
OWNER_BUCKETS = 64
TOMBSTONE_MS = 48 * 3600 * 1000
MIN_REDIS = (7, 0)  # PEXPIREAT NX/GT, PEXPIRETIME


def owner_bucket(sid: bytes) -> int:
    """Which ownership set holds ``sid`` (UTF-8): CRC-32 mod 64, even whatever the ids look like
    (a shared prefix or suffix). Only Python computes it: the Lua script is handed the set's key."""
    return zlib.crc32(sid) % OWNER_BUCKETS


def owner_set(bucket: int) -> bytes:
    return OWNER_PREFIX + b"%02d" % bucket


def owner_key(sid: str) -> bytes:
    return owner_set(owner_bucket(sid.encode()))


def owner_keys() -> list[bytes]:
    return [owner_set(i) for i in range(OWNER_BUCKETS)]


def by_owner_set(sids: Sequence[bytes]) -> dict[int, list[bytes]]:
    """``sids`` (UTF-8) grouped by ownership bucket, in their order within each group."""
    crc32 = zlib.crc32
    groups: dict[int, list[bytes]] = {}
    for b in sids:
        g = groups.get(k := crc32(b) % OWNER_BUCKETS)
        if g is None:
            groups[k] = [b]
        else:
            g.append(b)
    return groups


def version_in_redis(version_key_value: bytes | None, owned: bool, epoch: int) -> int | None:
    """A session's version as Redis holds it: its version key, else ``epoch`` when the backfill
    wrote it (its ownership set holds it), else None (a foreign key, or none)."""
    if version_key_value is not None:
        return int(version_key_value)
    return epoch if owned else None


def batch_commands(ids: Sequence[str], values: Sequence[bytes], pxats: Sequence[int],
                   versions: Sequence[int] | None, epoch: int) -> tuple[bytes, int, bytes, int]:
    """The RESP of one backfill batch, in two parts, each with its number of replies:

    1. ``ownership``: one MULTI/EXEC holding, per ownership set the batch touches, ``SADD`` of its
       ids, ``PEXPIREAT NX`` (a new set) and ``PEXPIREAT GT`` (only ever extended) to the latest
       expiry in the batch -- a set never exists without an expiry covering every member;
    2. ``writes``: per session whose version is above ``epoch``, ``SET fridgebench:migrate:v:{id}
       version PXAT``; per session, ``SET session:{id} value PXAT`` -- ``values`` are the JSON bytes
       PostgreSQL rendered, ``pxats`` the expiry in epoch milliseconds.

    The caller sends the writes only once Redis acknowledged the ownership: a session key never
    exists without its ownership, even when Redis refuses commands part-way (``-OOM`` under
    ``maxmemory``: with both parts sent at once, refused SADDs followed by SETs that got through
    once memory dipped left keys the next run took for foreign ones). A refused or missing write
    leaves only an ownership entry for a key that is not there, which vouches for nothing; the
    batch is not checkpointed and is written again. The writes are a plain pipeline, not a
    transaction, so Redis keeps serving other clients between them.
    """
    if not ids:
        return b"", 0, b"", 0
    bs = [sid.encode() for sid in ids]
    if 10 ** 12 <= min(pxats) and max(pxats) < 10 ** 13:  # 2001..2286: 13 digits, one format
        fmt = b"*5\r\n$3\r\nSET\r\n$%d\r\nsession:%s\r\n$%d\r\n%s\r\n$4\r\nPXAT\r\n$13\r\n%d\r\n"
        sets = [fmt % (len(b) + 8, b, len(v), v, px) for b, v, px in zip(bs, values, pxats)]
    else:
        sets = [b"*5\r\n$3\r\nSET\r\n$%d\r\nsession:%s\r\n$%d\r\n%s\r\n$4\r\nPXAT\r\n$%d\r\n%s\r\n"
                % (len(b) + 8, b, len(v), v, len(pb), pb)
                for b, v, pb in zip(bs, values, (b"%d" % px for px in pxats))]
    vsets: list[bytes] = []
    if versions is not None:
        for b, ver, px in zip(bs, versions, pxats):
            if ver > epoch:
                vb, pb = b"%d" % ver, b"%d" % px
                vsets.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s%s\r\n$%d\r\n%s\r\n$4\r\nPXAT\r\n$%d\r\n%s\r\n"
                             % (len(b) + len(VERSION_PREFIX), VERSION_PREFIX, b, len(vb), vb, len(pb), pb))
    px = b"%d" % max(pxats)
    tail = b"\r\n$%d\r\n%s\r\n$2\r\n" % (len(px), px)
    own: list[bytes] = [b"*1\r\n$5\r\nMULTI\r\n"]
    groups = by_owner_set(bs)
    for bucket, members in groups.items():
        key = owner_set(bucket)
        head = b"$%d\r\n%s" % (len(key), key)
        own.append(b"*%d\r\n$4\r\nSADD\r\n%s\r\n" % (2 + len(members), head))
        own += [b"$%d\r\n%s\r\n" % (len(m), m) for m in members]
        own.append(b"*4\r\n$9\r\nPEXPIREAT\r\n" + head + tail + b"NX\r\n")
        own.append(b"*4\r\n$9\r\nPEXPIREAT\r\n" + head + tail + b"GT\r\n")
    own.append(b"*1\r\n$4\r\nEXEC\r\n")
    queued = 3 * len(groups)
    # reply lines: +OK, +QUEUED per command, then EXEC's array header and one line per result;
    # then one line per write
    return b"".join(own), 1 + queued + 1 + queued, b"".join(vsets + sets), len(vsets) + len(sets)


# KEYS: s1, v1, o1, s2, v2, o2, ...   ARGV: overwrite, tombstone_ms, epoch, then per session: value|"" , pxat|"", version
# (o = the session's ownership set; the member is the id, i.e. the session key without "session:")
APPLY_LUA = r"""
local ow = ARGV[1] == '1'
local tomb = tonumber(ARGV[2])
local epoch = ARGV[3]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local w, st, fo, de = 0, 0, 0, 0
for k = 0, #KEYS / 3 - 1 do
  local sk, vk, ok = KEYS[3*k+1], KEYS[3*k+2], KEYS[3*k+3]
  local val, px, ver = ARGV[3*k+4], tonumber(ARGV[3*k+5]), tonumber(ARGV[3*k+6])
  local cur = redis.call('GET', vk)
  if (not cur) and redis.call('SISMEMBER', ok, string.sub(sk, 9)) == 1 then cur = epoch end
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
    except (redis.RedisError, OSError) as err:
        raise (store_error(err, "redis", url, "--to", connecting=True) or err) from None


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


class RawRedis:
    """A socket speaking RESP directly: the backfill's hot path frames commands itself.

    redis-py's per-command packing costs more than the whole write at 100k+ sessions/s; here a
    batch of sessions is one ``bytes`` built by joins, sent with one ``sendall``, and its replies
    are counted, not parsed one by one (see ``send``).
    """

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        t = urls.redis(url, "--to")  # the same reading of the URL as every other client (db, socket, TLS)
        if t.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(t.socket)
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((t.host, t.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if t.scheme == "rediss":  # redis-py's own context from the URL's ssl_* options, as LeanPool does
            from redis.asyncio.connection import SSLConnection

            ctx = SSLConnection(**t.ssl_options).ssl_context.get()  # type: ignore[arg-type]
            sock = ctx.wrap_socket(sock, server_hostname=t.host if ctx.check_hostname else None)
        self.sock = sock
        self._buf = b""
        pre: list[list[bytes]] = []
        if t.password:
            pre.append([b"AUTH"] + ([t.username.encode()] if t.username else []) + [t.password.encode()])
        if t.db != 0:
            pre.append([b"SELECT", str(t.db).encode()])
        if pre:
            self.send(b"".join(self.command(c) for c in pre), len(pre))

    @staticmethod
    def command(args: Sequence[bytes]) -> bytes:
        return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)

    def send(self, payload: bytes, replies: int) -> None:
        """Send a pipelined payload and wait for ``replies`` reply lines; raise on any ``-ERR``.

        Every reply the backfill gets is one line (``+OK``, ``+QUEUED``, ``:n``) or an array header
        followed by such lines (EXEC), so counting CRLFs counts replies; an error line ends the
        wait at once (an aborted EXEC would otherwise leave fewer lines than expected)."""
        self.write(payload)
        self.wait(replies)

    def write(self, payload: bytes) -> None:
        """Send a pipelined payload without waiting for its replies (see :meth:`wait`)."""
        self.sock.sendall(payload)

    def wait(self, replies: int) -> None:
        """Wait for ``replies`` reply lines of what was written; raise on any ``-ERR`` (see :meth:`send`)."""
        buf = self._buf
        while True:
            at = 0 if buf.startswith(b"-") else (buf.find(b"\n-") + 1 or -1)
            if at >= 0 and buf.find(b"\r\n", at) > 0:  # a whole error line (not a partial read of one)
                err = buf[at + 1:buf.find(b"\r\n", at)]
                raise StoreUnavailable(f"Redis refused a write: {err.decode(errors='replace')}",
                                       hint="fix the cause and run the same command again; it resumes")
            if at < 0 and buf.count(b"\r\n") >= replies:
                break
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise StoreUnavailable("Redis closed the connection during the backfill",
                                       hint="check the Redis log (maxmemory? restart?) and run the same command again")
            buf += chunk
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

    def __init__(self, r: redis.Redis, *, overwrite: bool, epoch: int) -> None:
        self.r = r
        self.overwrite = overwrite
        self.epoch = epoch
        self.script = r.register_script(APPLY_LUA)

    def apply(self, states: Sequence[tuple[str, str | None, int | None, int]]) -> ApplyCounts:
        """``(session_id, json or None when gone, pxat_ms or None, version)``, any number."""
        counts = ApplyCounts()
        for i in range(0, len(states), 500):
            chunk = states[i:i + 500]
            keys: list[bytes] = []
            args: list[bytes | str | int] = [b"1" if self.overwrite else b"0", TOMBSTONE_MS, self.epoch]
            for sid, val, px, ver in chunk:
                keys += [session_key(sid), version_key(sid), owner_key(sid)]
                args += [val.encode() if val is not None else b"", px if px is not None else b"", ver]
            w, st, fo, de = self.script(keys=keys, args=args)
            counts.add(ApplyCounts(int(w), int(st), int(fo), int(de)))
        return counts


# --- safety -----------------------------------------------------------------------------------



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
        """Foreign = neither in its ownership set nor holding a version key: one SMISMEMBER per set
        touched, then EXISTS only for the (rare) non-members -- a resumed run against a target
        holding 1M sessions checks them in seconds, not the ~20 s of two commands per key."""
        nonlocal foreign
        groups = by_owner_set([k[len(SESSION_PREFIX):] for k in keys])
        pipe = r.pipeline(transaction=False)
        for bucket, sids in groups.items():
            pipe.execute_command("SMISMEMBER", owner_set(bucket), *sids)
        rest = [sid for sids, flags in zip(groups.values(), pipe.execute()) for sid, f in zip(sids, flags) if not f]
        if not rest:
            return
        pipe = r.pipeline(transaction=False)
        for sid in rest:
            pipe.exists(VERSION_PREFIX + sid)
        for sid, has_version in zip(rest, pipe.execute()):
            if not has_version:
                foreign += 1
                if len(sample) < 5:
                    sample.append((SESSION_PREFIX + sid).decode(errors="replace"))

    if _version_tuple(version) < MIN_REDIS:  # check_safe refuses it; SMISMEMBER needs 6.2
        return TargetState(version, policy, maxmemory, int(info.get("used_memory", 0)), 0, 0, [])
    for key in r.scan_iter(match=b"session:*", count=5000):
        total += 1
        batch.append(key)
        if len(batch) >= 5000:
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
    if _version_tuple(state.version) < MIN_REDIS:
        raise MigrationRefused(
            f"Redis at {where} is version {state.version}; migrate needs {MIN_REDIS[0]}.{MIN_REDIS[1]} or newer "
            "(PEXPIREAT NX/GT, PEXPIRETIME)",
            hint="point --to at Redis 7 or newer (or Valkey)")
    if state.foreign_keys and not overwrite:
        raise MigrationRefused(
            f"Redis at {where} already holds {state.foreign_keys} session:* keys fridgebench did not write "
            f"(e.g. {state.sample_foreign[0]})",
            hint="point --to at an empty database, or pass --overwrite to replace them")
    hazards = []
    if state.policy != "noeviction":
        hazards.append(f"its eviction policy {state.policy!r} can evict sessions (migrated keys all have a TTL, "
                       "so volatile-* policies evict them too, and an evicted ownership set would make 1/64 of "
                       "the migrated sessions look foreign; use noeviction)")
    if state.maxmemory and state.maxmemory - state.used_memory < estimate_bytes:
        hazards.append(f"maxmemory {state.maxmemory} bytes leaves {max(0, state.maxmemory - state.used_memory)} free, "
                       f"below the estimated {estimate_bytes} bytes needed")
    if hazards and not force:
        raise MigrationRefused(f"Redis at {where} could drop sessions: {hazards[0]}",
                               hint="fix the Redis configuration, or pass --force to migrate anyway")
    warnings += [f"--force: {h}" for h in hazards]
    return warnings


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split(".")[:2])
    except ValueError:
        return (99,)  # unknown format: let the commands themselves decide


def estimate_memory(n_sessions: int, avg_value: float, avg_id: float) -> int:
    """Bytes Redis needs per session: the session key (value, key, dict and expiry entries) plus its
    member of an ownership set, jemalloc size classes included. (Measured with 36-byte ids and
    ~300-byte values: 376 B per session key, +95 B for the member.) Version keys come later, one
    per applied change, and are not in this estimate."""
    session = (avg_value + 16) + (avg_id + 8 + 16) + 56 + 24 + 16
    ownership = (avg_id + 16) + 48
    return int(n_sessions * (session + ownership))


def read_versions(r: redis.Redis, sids: Sequence[str], epoch: int) -> dict[str, int | None]:
    """Each session's version as Redis holds it: its version key, else ``epoch`` when the backfill
    wrote it (its ownership set holds it), else None."""
    pipe = r.pipeline(transaction=False)
    for sid in sids:
        pipe.get(version_key(sid))
        pipe.sismember(owner_key(sid), sid)
    got = pipe.execute()
    return {sid: version_in_redis(got[2 * i], bool(got[2 * i + 1]), epoch) for i, sid in enumerate(sids)}


def wait(seconds: float) -> None:
    time.sleep(seconds)
