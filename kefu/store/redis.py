""":class:`RedisHotState`: turn logs, leases, locks and the context cache in Redis, shared by every worker.

Key layout (Redis Cluster safe: all keys a script or transaction touches share one hash tag)::

    {prefix}:turn:{<turn_id>}:meta     hash  turn_id session_id user_id created_at finished seq
    {prefix}:turn:{<turn_id>}:log      stream, entry ids 0-<seq>, fields t (type) and d (data)
    {prefix}:turn:{<turn_id>}:lease    string owner, PX lease
    {prefix}:turn:{<turn_id>}:cancel   string, present once cancel was requested
    {prefix}:session:{<session_id>}:lock   string turn id, PX lease
    {prefix}:session:{<session_id>}:turn   string id of the turn that began in the session and has not released it
    {prefix}:session:{<session_id>}:ctx    list: a header (the owner's user id), then orjson messages, oldest first
    {prefix}:job:{<name>}:lock         string holder, PX lease (one process at a time runs a background job)
    {prefix}:running-turns             sorted set: turns begun and not released, scored by lease expiry (epoch s)

Each method is one round trip. The process producing a turn also keeps a local mirror of its log, so
readers in the same process (the usual case: the request that started the turn) are woken in memory
instead of holding a blocking ``XREAD`` each.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import NoScriptError
from redis.typing import KeyT, StreamIdT

from kefu.store.base import ContextMessage, ContextWindow, LogEntry, TurnMeta
from kefu.store.memory import LocalTurnLog

logger = logging.getLogger(__name__)

# KEYS meta, log. ARGV ttl_ms, finished (0/1), append token, then type, data pairs.
# The token (unique per call) makes a retried append (reply lost, client retried) answer the seq it got the
# first time instead of appending the events twice.
_APPEND = """
local state = redis.call('HMGET', KEYS[1], 'finished', 'seq', 'token')
if not state[2] then return false end
if state[3] == ARGV[3] then return tonumber(state[2]) end
if state[1] ~= '0' then return false end
local seq = tonumber(state[2])
for i = 4, #ARGV, 2 do
  seq = seq + 1
  redis.call('XADD', KEYS[2], '0-' .. seq, 't', ARGV[i], 'd', ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'seq', seq, 'finished', ARGV[2], 'token', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return seq
"""

# KEYS meta, log, cancel, lease. ARGV ttl_ms, lease_ms, owner, finished (0/1), turn_id, session_id, user_id,
# created_at, append token, then type, data pairs. create_turn and append in one script (the session lock, in
# another hash slot, is taken by _BEGIN_LOCK in the same pipeline).
_BEGIN_TURN = """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
local seq = 0
for i = 10, #ARGV, 2 do
  seq = seq + 1
  redis.call('XADD', KEYS[2], '0-' .. seq, 't', ARGV[i], 'd', ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'turn_id', ARGV[5], 'session_id', ARGV[6], 'user_id', ARGV[7], 'created_at', ARGV[8],
  'finished', ARGV[4], 'seq', seq, 'token', ARGV[9])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if seq > 0 then redis.call('PEXPIRE', KEYS[2], ARGV[1]) end
redis.call('SET', KEYS[4], ARGV[3], 'PX', ARGV[2])
return seq
"""

# KEYS lease, cancel. ARGV owner, lease_ms.
_RENEW_TURN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('EXISTS', KEYS[2])
"""

# KEYS lock. ARGV turn_id, lease_ms.
_RENEW_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS lock. ARGV turn_id, lease_ms. Re-entrant, so a retried acquire by the same turn succeeds.
_ACQUIRE = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS lock, turn. ARGV turn_id, lease_ms, ttl_ms. _ACQUIRE for a turn: a session whose lock lapsed while its turn
# never ended (the process died) stays that turn's until someone closes it, so its answer is stored first.
_BEGIN_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return holder end
local unended = redis.call('GET', KEYS[2])
if not holder and unended and unended ~= ARGV[1] then return unended end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
return false
"""

# KEYS lock, turn. ARGV turn_id.
_RELEASE_SESSION = """
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS ctx. ARGV max_messages, ttl_ms, messages... Only extends a window that is cached: appending to an
# expired (or evicted) window would cache a partial history. Element 0 is a header (the owner's user id) so that
# an empty window still exists; trimming turns the last dropped message into the new header.
_PUSH_CONTEXT = """
local head = redis.call('LINDEX', KEYS[1], 0)
if not head then return 0 end
if #ARGV > 2 then redis.call('RPUSH', KEYS[1], unpack(ARGV, 3)) end
local excess = redis.call('LLEN', KEYS[1]) - 1 - tonumber(ARGV[1])
if excess > 0 then
  redis.call('LSET', KEYS[1], excess, head)
  redis.call('LTRIM', KEYS[1], excess, -1)
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""

# How long a blocking XREAD may overrun its BLOCK time before the reader gives up on the connection.
_BLOCK_MARGIN = 5.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


@dataclass(slots=True)
class _Mirror:
    log: LocalTurnLog
    touched: float


def redis_client(url: str, *, max_connections: int = 200, pool_timeout: float = 10.0) -> Redis:
    """A client for ``url`` whose pool makes a command wait for a free connection (up to ``pool_timeout`` s).

    redis-py's default pool fails a command at once with ``MaxConnectionsError`` when its 100 connections are
    busy; under a burst of turns that ended running turns mid-way (they could not append, finish or release).
    """
    return Redis.from_pool(BlockingConnectionPool.from_url(url, max_connections=max_connections, timeout=pool_timeout))


class RedisHotState:
    """:class:`~kefu.store.base.HotState` in Redis (standalone, Sentinel or Cluster-compatible keys).

    ``client`` is used for ordinary commands; blocking ``XREAD`` calls get a pool of their own (up to
    ``max_blocking_readers`` connections, one per waiting reader in another process's turn) so that
    waiting readers never starve the commands of running turns. The client passed in stays the caller's
    to close; :meth:`from_url` makes one that :meth:`aclose` closes.
    """

    def __init__(
        self,
        client: Redis,
        prefix: str = "kefu",
        turn_log_ttl: int = 3600,
        *,
        max_blocking_readers: int = 2000,
        mirror_grace: float = 5.0,
    ) -> None:
        if "{" in prefix or "}" in prefix:
            raise ValueError("the Redis key prefix must not contain braces (they mark hash tags)")
        self._client = client
        self._owns_client = False
        self._prefix = prefix
        self.turn_log_ttl = turn_log_ttl
        self._ttl_ms = turn_log_ttl * 1000
        pool = client.connection_pool
        # No socket timeout: BLOCK bounds the server's reply, _BLOCK_MARGIN bounds a dead connection.
        self._blocking = Redis.from_pool(
            BlockingConnectionPool(
                max_connections=max_blocking_readers,
                timeout=None,
                connection_class=pool.connection_class,
                **{**pool.connection_kwargs, "socket_timeout": None},
            )
        )
        self._append = client.register_script(_APPEND)
        self._renew_turn = client.register_script(_RENEW_TURN)
        self._renew_lock = client.register_script(_RENEW_LOCK)
        self._acquire = client.register_script(_ACQUIRE)
        self._begin_turn = client.register_script(_BEGIN_TURN)
        self._release = client.register_script(_RELEASE)
        self._begin_lock = client.register_script(_BEGIN_LOCK)
        self._release_session = client.register_script(_RELEASE_SESSION)
        self._push_context = client.register_script(_PUSH_CONTEXT)
        self._instance = uuid.uuid4().hex
        self._append_count = itertools.count()
        self._mirrors: dict[str, _Mirror] = {}
        self._mirror_grace = mirror_grace
        self._next_mirror_sweep = time.monotonic() + 60.0

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str = "kefu",
        *,
        turn_log_ttl: int = 3600,
        max_blocking_readers: int = 2000,
        mirror_grace: float = 5.0,
        max_connections: int = 200,
        pool_timeout: float = 10.0,
    ) -> RedisHotState:
        """A store with its own client for ``url`` (closed by :meth:`aclose`); see :func:`redis_client`."""
        state = cls(
            redis_client(url, max_connections=max_connections, pool_timeout=pool_timeout),
            prefix,
            turn_log_ttl,
            max_blocking_readers=max_blocking_readers,
            mirror_grace=mirror_grace,
        )
        state._owns_client = True
        return state

    # --- keys ---

    def _turn_key(self, turn_id: str, part: str) -> str:
        return f"{self._prefix}:turn:{{{turn_id}}}:{part}"

    def _session_key(self, session_id: str, part: str) -> str:
        return f"{self._prefix}:session:{{{session_id}}}:{part}"

    @property
    def _running_key(self) -> str:
        return f"{self._prefix}:running-turns"

    def _job_key(self, name: str) -> str:
        return f"{self._prefix}:job:{{{name}}}:lock"

    # --- turn log ---

    async def create_turn(self, meta: TurnMeta, *, owner: str, lease_seconds: float) -> None:
        meta_key = self._turn_key(meta.turn_id, "meta")
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(self._turn_key(meta.turn_id, "log"), self._turn_key(meta.turn_id, "cancel"))
        pipe.hset(
            meta_key,
            mapping={
                "turn_id": meta.turn_id,
                "session_id": meta.session_id,
                "user_id": meta.user_id,
                "created_at": repr(meta.created_at),
                "finished": 0,
                "seq": 0,
            },
        )
        pipe.pexpire(meta_key, self._ttl_ms)
        pipe.set(self._turn_key(meta.turn_id, "lease"), owner, px=_ms(lease_seconds))
        await pipe.execute()
        now = time.monotonic()
        self._sweep_mirrors(now)
        self._mirrors[meta.turn_id] = _Mirror(LocalTurnLog(), now)

    async def begin_turn(
        self, meta: TurnMeta, events: Sequence[tuple[str, str]], *, owner: str, lease_seconds: float
    ) -> str | None:
        lease_ms = _ms(lease_seconds)
        lock_key, unended_key = (self._session_key(meta.session_id, part) for part in ("lock", "turn"))
        turn_keys = [self._turn_key(meta.turn_id, part) for part in ("meta", "log", "cancel", "lease")]
        args: list[str | int] = [self._ttl_ms, lease_ms, owner, 0, meta.turn_id, meta.session_id]
        args += (meta.user_id, repr(meta.created_at), f"{self._instance}:{next(self._append_count)}")
        for event_type, data in events:
            args += (event_type, data)
        # Two scripts (the lock and the turn live in different hash slots) in one pipeline: one round trip.
        for attempt in range(2):
            pipe = self._client.pipeline(transaction=False)
            pipe.evalsha(self._begin_lock.sha, 2, lock_key, unended_key, meta.turn_id, lease_ms, self._ttl_ms)
            pipe.evalsha(self._begin_turn.sha, 4, *turn_keys, *args)
            pipe.zadd(self._running_key, {meta.turn_id: time.time() + lease_seconds})
            holder, created, _ = await pipe.execute(raise_on_error=False)
            failures = [r for r in (holder, created) if isinstance(r, Exception)]
            if not failures:
                break
            if attempt == 0 and all(isinstance(r, NoScriptError) for r in failures):
                await self._client.script_load(_BEGIN_LOCK)
                await self._client.script_load(_BEGIN_TURN)
                continue
            raise failures[0]
        if holder is not None:
            # Someone else's turn runs in the session: undo this one (rare; costs a second round trip).
            pipe = self._client.pipeline(transaction=False)
            pipe.delete(*turn_keys)
            pipe.zrem(self._running_key, meta.turn_id)
            await pipe.execute()
            return _text(holder)
        now = time.monotonic()
        self._sweep_mirrors(now)
        mirror = _Mirror(LocalTurnLog(), now)
        if events:
            mirror.log.extend(events, finished=False)
        self._mirrors[meta.turn_id] = mirror
        return None

    async def get_turn(self, turn_id: str) -> TurnMeta | None:
        raw = await self._client.hgetall(self._turn_key(turn_id, "meta"))
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        return TurnMeta(
            turn_id=fields["turn_id"],
            session_id=fields["session_id"],
            user_id=fields["user_id"],
            created_at=float(fields["created_at"]),
            finished=fields["finished"] == "1",
            last_seq=int(fields["seq"]),
        )

    async def append(self, turn_id: str, events: Sequence[tuple[str, str]], *, final: bool = False) -> int | None:
        finished = final
        args: list[str | int] = [self._ttl_ms, int(finished), f"{self._instance}:{next(self._append_count)}"]
        for event_type, data in events:
            args += (event_type, data)
        result = await self._append(keys=[self._turn_key(turn_id, "meta"), self._turn_key(turn_id, "log")], args=args)
        mirror = self._mirrors.get(turn_id)
        if result is None:
            if mirror is not None:
                self._retire_mirror(turn_id, mirror, grace=0.0)
            return None
        seq = int(result)
        if mirror is not None:
            if mirror.log.last_seq + len(events) == seq:
                mirror.log.extend(events, finished=finished)
                mirror.touched = time.monotonic()
                if finished:
                    self._retire_mirror(turn_id, mirror, grace=self._mirror_grace)
            else:
                # Someone else appended too: the mirror would have a gap, so readers go to Redis.
                self._retire_mirror(turn_id, mirror, grace=0.0)
        return seq

    async def read(self, turn_id: str, after: int, timeout: float) -> list[LogEntry]:
        mirror = self._mirrors.get(turn_id)
        if mirror is not None and after >= mirror.log.base:
            return await mirror.log.read(after, timeout)
        streams: dict[KeyT, StreamIdT] = {self._turn_key(turn_id, "log"): f"0-{max(after, 0)}"}
        if timeout <= 0:
            reply = await self._client.xread(streams)
        else:
            try:
                async with asyncio.timeout(timeout + _BLOCK_MARGIN):
                    reply = await self._blocking.xread(streams, block=_ms(timeout))
            except TimeoutError:
                logger.warning("blocking XREAD of turn %s overran its timeout; treating it as empty", turn_id)
                return []
        return _parse_xread(reply)

    async def forget_turns(self, turn_ids: Sequence[str]) -> int:
        if not turn_ids:
            return 0
        for turn_id in turn_ids:
            mirror = self._mirrors.get(turn_id)
            if mirror is not None:
                self._retire_mirror(turn_id, mirror, grace=0.0)
        # One DEL per turn (its keys share a hash slot), all in one round trip.
        pipe = self._client.pipeline(transaction=False)
        for turn_id in turn_ids:
            pipe.delete(*(self._turn_key(turn_id, part) for part in ("meta", "log", "lease", "cancel")))
        pipe.zrem(self._running_key, *turn_ids)
        deleted = await pipe.execute()
        return sum(1 for count in deleted[:-1] if count)

    def _retire_mirror(self, turn_id: str, mirror: _Mirror, *, grace: float) -> None:
        if not mirror.log.finished:
            mirror.log.extend((), finished=True)  # wakes readers; they continue from Redis
        if grace <= 0:
            self._drop_mirror(turn_id, mirror)
        else:
            asyncio.get_running_loop().call_later(grace, self._drop_mirror, turn_id, mirror)

    def _drop_mirror(self, turn_id: str, mirror: _Mirror) -> None:
        if self._mirrors.get(turn_id) is mirror:
            del self._mirrors[turn_id]

    def _sweep_mirrors(self, now: float) -> None:
        # Mirrors of turns that never finished (the producer gave up) would otherwise stay forever.
        if now < self._next_mirror_sweep:
            return
        self._next_mirror_sweep = now + 60.0
        stale = [turn_id for turn_id, m in self._mirrors.items() if now - m.touched > self.turn_log_ttl]
        for turn_id in stale:
            self._retire_mirror(turn_id, self._mirrors[turn_id], grace=0.0)

    # --- leases and cancellation ---

    async def renew_lease(self, turn_id: str, session_id: str, *, owner: str, lease_seconds: float) -> bool:
        lease_ms = _ms(lease_seconds)
        lease_keys = (self._turn_key(turn_id, "lease"), self._turn_key(turn_id, "cancel"))
        lock_key = self._session_key(session_id, "lock")
        # Two scripts (the keys live in different hash slots) in one pipeline: one round trip.
        for attempt in range(2):
            pipe = self._client.pipeline(transaction=False)
            pipe.evalsha(self._renew_turn.sha, 2, *lease_keys, owner, lease_ms)
            pipe.evalsha(self._renew_lock.sha, 1, lock_key, turn_id, lease_ms)
            # XX: a turn closed meanwhile (released) is not listed again. The sweeper checks the lease itself.
            pipe.zadd(self._running_key, {turn_id: time.time() + lease_seconds}, xx=True)
            cancelled, renewed, _ = await pipe.execute(raise_on_error=False)
            failures = [r for r in (cancelled, renewed) if isinstance(r, Exception)]
            if not failures:
                return bool(cancelled)
            if attempt == 0 and all(isinstance(r, NoScriptError) for r in failures):
                # The server lost its script cache (restart, failover): load and try once more.
                await self._client.script_load(_RENEW_TURN)
                await self._client.script_load(_RENEW_LOCK)
                continue
            raise failures[0]
        raise AssertionError("unreachable")

    async def lease_alive(self, turn_id: str) -> bool:
        return bool(await self._client.exists(self._turn_key(turn_id, "lease")))

    async def lapsed_turns(self, *, limit: int) -> list[str]:
        now = time.time()
        pipe = self._client.pipeline(transaction=False)
        # Entries whose logs have expired (their turn's release never came) have nothing left to close.
        pipe.zremrangebyscore(self._running_key, "-inf", now - self.turn_log_ttl)
        pipe.zrangebyscore(self._running_key, "-inf", now, start=0, num=limit)
        _, lapsed = await pipe.execute()
        return [_text(turn_id) for turn_id in lapsed]

    async def request_cancel(self, turn_id: str) -> None:
        await self._client.set(self._turn_key(turn_id, "cancel"), 1, px=self._ttl_ms)

    # --- per-session lock ---

    async def acquire_session(self, session_id: str, turn_id: str, *, lease_seconds: float) -> str | None:
        holder = await self._acquire(keys=[self._session_key(session_id, "lock")], args=[turn_id, _ms(lease_seconds)])
        return None if holder is None else _text(holder)

    async def release_session(self, session_id: str, turn_id: str) -> None:
        keys = [self._session_key(session_id, "lock"), self._session_key(session_id, "turn")]
        # The script and the running-turns entry (another hash slot) in one pipeline: one round trip.
        for attempt in range(2):
            pipe = self._client.pipeline(transaction=False)
            pipe.evalsha(self._release_session.sha, 2, *keys, turn_id)
            pipe.zrem(self._running_key, turn_id)
            released, _ = await pipe.execute(raise_on_error=False)
            if not isinstance(released, Exception):
                return
            if attempt == 0 and isinstance(released, NoScriptError):
                await self._client.script_load(_RELEASE_SESSION)
                continue
            raise released

    # --- background job locks ---

    async def acquire_job(self, name: str, holder: str, *, lease_seconds: float) -> bool:
        taken_by = await self._acquire(keys=[self._job_key(name)], args=[holder, _ms(lease_seconds)])
        return taken_by is None

    async def release_job(self, name: str, holder: str) -> None:
        await self._release(keys=[self._job_key(name)], args=[holder])

    # --- context cache ---

    async def get_context(self, session_id: str) -> list[ContextMessage] | None:
        window = await self.get_window(session_id)
        return None if window is None else window.messages

    async def get_window(self, session_id: str) -> ContextWindow | None:
        items = await self._client.lrange(self._session_key(session_id, "ctx"), 0, -1)
        if not items:
            return None
        messages = []
        for item in items[1:]:
            obj = orjson.loads(item)
            messages.append(ContextMessage(role=obj["role"], content=obj["content"]))
        return ContextWindow(_text(items[0]), messages)

    async def push_context(
        self, session_id: str, messages: Sequence[ContextMessage], *, max_messages: int, ttl: int
    ) -> None:
        """Append to the cached window; a no-op when nothing is cached (the caller reloads it from SQL)."""
        args: list[int | bytes] = [max(max_messages, 0), ttl * 1000]
        args += (_dump(m) for m in messages)
        await self._push_context(keys=[self._session_key(session_id, "ctx")], args=args)

    async def set_context(
        self, session_id: str, messages: Sequence[ContextMessage], *, max_messages: int, ttl: int, owner: str = ""
    ) -> None:
        key = self._session_key(session_id, "ctx")
        kept = list(messages)[-max_messages:] if max_messages > 0 else []
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(key)
        pipe.rpush(key, owner.encode(), *(_dump(m) for m in kept))
        pipe.expire(key, ttl)
        await pipe.execute()

    async def clear_session(self, session_id: str) -> None:
        await self._client.delete(*(self._session_key(session_id, part) for part in ("ctx", "lock", "turn")))

    # --- lifecycle ---

    async def ping(self) -> None:
        await self._client.ping()

    async def aclose(self) -> None:
        for turn_id, mirror in list(self._mirrors.items()):
            self._retire_mirror(turn_id, mirror, grace=0.0)
        await self._blocking.aclose()
        if self._owns_client:
            await self._client.aclose()


def _dump(message: ContextMessage) -> bytes:
    return orjson.dumps({"role": message.role, "content": message.content})


def _parse_xread(reply: Any) -> list[LogEntry]:
    if not reply:
        return []
    # RESP2: [[key, entries]]; RESP3: {key: [entries]}.
    if isinstance(reply, dict):
        (entries,) = reply.values()
        if entries and isinstance(entries[0], list):
            entries = entries[0]
    else:
        entries = reply[0][1]
    events = []
    for entry_id, fields in entries:
        decoded = {_text(k): _text(v) for k, v in fields.items()}
        events.append(LogEntry(seq=int(_text(entry_id).partition("-")[2]), type=decoded["t"], data=decoded["d"]))
    return events
