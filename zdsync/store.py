"""Everything zdsync remembers, in Redis (standalone or behind Sentinel).

Keys, all under ``redis.key_prefix``:

- ``cursor``            hash: ``cursor`` (Zendesk export cursor), ``position`` (epoch s of
                        the newest ticket change applied), ``updated`` (epoch s)
- ``tickets``           hash: ticket id -> record JSON (last snapshot + applied task state)
- ``users``             hash: Zendesk user id -> Teamwork person id
- ``remap``             sorted set: Zendesk user ids whose mapping changed, scored by when
- ``retry``             sorted set: ticket id scored by the time of its next attempt
- ``retry:info``        hash: ticket id -> JSON {attempts, error, since}
- ``history:{id}``      list: the ticket's recent actions, newest first, bounded
- ``tasklist:{p}:{n}``  string: the id of task list ``n`` in project ``p``
- ``lock:sync``         string: the sync lock token (see ``SyncLock``)
- ``last_pass``         hash: summary of the last completed pass
- ``fence``             counter written before WAIT, to check replication (Sentinel only)
- ``webhook:queue``     sorted set: ticket ids a webhook announced, scored by arrival
- ``webhook:event:{id}`` string: a webhook event id seen recently (duplicate deliveries)

Every Redis command is retried on transient errors (connection, timeout, READONLY after a
failover, master not found) with bounded backoff; a pass that still fails keeps its cursor.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from zdsync import defaults
from zdsync.config import RedisSettings
from zdsync.errors import LockHeld
from zdsync.rules import MalformedTicket, Record

log = logging.getLogger(__name__)

REDIS_RETRY_ATTEMPTS = 8
"""Retries of one Redis command: with the backoff below, about 10 s, a Sentinel failover."""
REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
REPLICA_WAIT_MS = 250
"""How long a write zdsync relies on may take to reach a replica (Sentinel only)."""

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_ENQUEUE = """
if ARGV[3] ~= '' then
  if not redis.call('set', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then
    return 0
  end
end
redis.call('zadd', KEYS[1], ARGV[2], ARGV[1])
return 1
"""
_DEQUEUE = """
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('zscore', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('zrem', KEYS[1], ARGV[i])
  end
end
return removed
"""
_UNMAP = """
if redis.call('hdel', KEYS[1], ARGV[1]) == 1 then
  redis.call('zadd', KEYS[2], ARGV[2], ARGV[1])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


def connect(settings: RedisSettings, *, attempts: int = REDIS_RETRY_ATTEMPTS,
            timeout_seconds: float = REDIS_SOCKET_TIMEOUT_SECONDS) -> redis.Redis:
    """A client for the configured Redis; Sentinel re-discovers the master on reconnect.

    Health probes use ``attempts=0`` and a short timeout: a probe must answer quickly.
    """
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), attempts)
    common: dict[str, Any] = dict(
        db=settings.db,
        password=settings.password.reveal() if settings.password else None,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ReadOnlyError],
        decode_responses=True,
    )
    if settings.use_sentinel:
        assert settings.sentinel_hosts
        sentinel_kwargs = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
        if settings.password:
            sentinel_kwargs["password"] = settings.password.reveal()
        sentinel = Sentinel(list(settings.sentinel_hosts), sentinel_kwargs=sentinel_kwargs)
        return sentinel.master_for(settings.sentinel_master, **common)
    return redis.Redis(host=settings.host, port=settings.port, **common)


@dataclass(frozen=True)
class CursorState:
    cursor: str | None
    position: int | None  # epoch s of the newest change applied
    updated: float | None


@dataclass(frozen=True)
class RetryEntry:
    ticket_id: int
    attempts: int
    error: str
    next_at: float
    since: float


class Store:
    def __init__(self, client: redis.Redis, prefix: str = "zdsync:", *,
                 replicated: bool = False) -> None:
        """``replicated``: the writes zdsync relies on across a failover (a create's intent,
        a page commit with its cursor) are checked to have reached a replica; when one did
        not, creates search Teamwork first for a while (``writes_in_doubt``). On with
        Sentinel, where a failover can discard what the old master acknowledged."""
        self.r = client
        self.prefix = prefix
        self.replicated = replicated
        self._doubt_until = 0.0

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> Store:
        return cls(connect(settings), settings.key_prefix, replicated=settings.use_sentinel)

    def follow_master(self) -> None:
        """With Sentinel, ask where the master is now; idle connections to a deposed master
        are dropped (redis-py asks only when it opens a connection or hears READONLY, and a
        deposed master may accept writes for seconds before Sentinel demotes it)."""
        pool = self.r.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            before = pool.proxy.master_address
            after = pool.get_master_address()
            if before is not None and after != before:
                log.warning("Redis master moved from %s to %s", before, after)
                self._doubt()

    def _fence(self) -> None:
        """Check that a replica holds every write made so far (a no-op unless replicated).

        WAIT counts the writes of its own connection, so it follows a write of its own on
        the same connection; that write comes after ours, so its acknowledgement covers
        ours. Without an acknowledgement the write may not survive a failover, and recent
        writes are in doubt (see ``writes_in_doubt``). While they are, creates look before
        they leap anyway, so the check (and its wait) is skipped.
        """
        if not self.replicated or self.writes_in_doubt():
            return
        with self.r.pipeline(transaction=False) as pipe:
            pipe.incr(self.key("fence"))
            pipe.execute_command("WAIT", 1, REPLICA_WAIT_MS)
            _, acknowledged = pipe.execute()
        if int(acknowledged) < 1:
            self._doubt()

    def _doubt(self) -> None:
        if not self.writes_in_doubt():
            log.warning("recent Redis writes may be lost in a failover: for %.0f s, every "
                        "create first looks for an existing task", defaults.DOUBT_SECONDS)
        self._doubt_until = time.monotonic() + defaults.DOUBT_SECONDS

    def writes_in_doubt(self) -> bool:
        """True for a while after the master moved or a write reached no replica: a record
        may have vanished, so a ticket without one may already have a task."""
        return time.monotonic() < self._doubt_until

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    def ping(self) -> bool:
        return bool(self.r.ping())

    # -- cursor ------------------------------------------------------------------------

    def cursor(self) -> CursorState:
        data = self.r.hgetall(self.key("cursor"))
        return CursorState(
            cursor=data.get("cursor") or None,
            position=int(data["position"]) if data.get("position") else None,
            updated=float(data["updated"]) if data.get("updated") else None,
        )

    def set_cursor_fields(self, pipe: Any, cursor: str | None, position: int | None) -> None:
        values: dict[str, Any] = {"updated": time.time()}
        if cursor:
            values["cursor"] = cursor
        if position:
            values["position"] = position
        pipe.hset(self.key("cursor"), mapping=values)

    def reset_cursor(self) -> None:
        self.r.delete(self.key("cursor"))

    def restart_export(self, position: int) -> None:
        """Forget the export cursor and keep ``position`` (epoch s): with no cursor, the
        next pass starts a fresh export at the saved position (``zdsync cursor reset``)."""
        with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(self.key("cursor"))
            pipe.hset(self.key("cursor"), mapping={"position": int(position),
                                                   "updated": time.time()})
            pipe.execute()

    # -- records -----------------------------------------------------------------------

    def records(self, ticket_ids: Iterable[int]) -> dict[int, Record]:
        """The stored records of these tickets, in one round trip."""
        ids = list(dict.fromkeys(ticket_ids))
        if not ids:
            return {}
        out = {}
        for tid, raw in zip(ids, self.r.hmget(self.key("tickets"), ids), strict=True):
            record = self._parse(tid, raw)
            if record is not None:
                out[tid] = record
        return out

    def record(self, ticket_id: int) -> Record | None:
        return self.records([ticket_id]).get(ticket_id)

    @staticmethod
    def _parse(ticket_id: int, raw: str | None) -> Record | None:
        if raw is None:
            return None
        try:
            return Record.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, MalformedTicket) as exc:
            log.error("ticket %s: stored record unreadable (%s); treating as new", ticket_id, exc)
            return None

    def all_records(self) -> Iterator[Record]:
        for tid, raw in self.r.hscan_iter(self.key("tickets"), count=1000):
            record = self._parse(int(tid), raw)
            if record is not None:
                yield record

    def save_record(self, record: Record, *, replicated: bool = False) -> None:
        """Store one record; ``replicated`` waits for a replica (see ``_fence``)."""
        self.r.hset(self.key("tickets"), str(record.ticket.id), json.dumps(record.to_json()))
        if replicated:
            self._fence()

    def delete_record(self, ticket_id: int) -> bool:
        with self.r.pipeline() as pipe:
            pipe.hdel(self.key("tickets"), str(ticket_id))
            self._clear_retry(pipe, [ticket_id])
            return bool(pipe.execute()[0])

    def commit(
        self,
        records: Iterable[Record] = (),
        *,
        failed: Mapping[int, str] | None = None,
        succeeded: Iterable[int] = (),
        history: Mapping[int, list[str]] | None = None,
        refetch: Mapping[int, str] | None = None,
        cursor: tuple[str | None, int | None] | None = None,
        now: float | None = None,
        keep_refetch: bool = False,
    ) -> None:
        """Write a batch atomically (MULTI/EXEC): records, retry-set changes, history and,
        last, the cursor. The cursor therefore never moves without the work it covers.

        ``failed`` tickets are retried from their stored record; ``refetch`` tickets
        (unreadable, or never read) are read afresh from Zendesk when retried.
        ``keep_refetch``: the successes were planned from stored records, which are older
        than what a "read afresh" retry waits for, so such retries stay queued.
        """
        now = time.time() if now is None else now
        succeeded = list(succeeded)
        if keep_refetch and succeeded:
            infos = self.r.hmget(self.key("retry:info"), succeeded)
            succeeded = [t for t, raw in zip(succeeded, infos, strict=True)
                         if not (raw and json.loads(raw).get("refetch"))]
        failed = {**(failed or {}), **(refetch or {})}
        info = {}
        if failed:
            prior = self.r.hmget(self.key("retry:info"), list(failed))
            for (tid, error), raw in zip(failed.items(), prior, strict=True):
                old = json.loads(raw) if raw else {}
                attempts = int(old.get("attempts", 0)) + 1
                info[tid] = {"attempts": attempts, "error": error[:500],
                             "since": old.get("since", now),
                             "refetch": tid in (refetch or {})}
        with self.r.pipeline(transaction=True) as pipe:
            batch = {str(r.ticket.id): json.dumps(r.to_json()) for r in records}
            if batch:
                pipe.hset(self.key("tickets"), mapping=batch)
            for tid, data in info.items():
                pipe.zadd(self.key("retry"), {str(tid): now + retry_delay(data["attempts"])})
                pipe.hset(self.key("retry:info"), str(tid), json.dumps(data))
            self._clear_retry(pipe, [t for t in succeeded if t not in failed])
            for tid, lines in (history or {}).items():
                if lines:
                    key = self.key("history", tid)
                    pipe.lpush(key, *(json.dumps({"at": now, "what": line}) for line in lines))
                    pipe.ltrim(key, 0, defaults.HISTORY_LENGTH - 1)
            if cursor is not None:
                self.set_cursor_fields(pipe, *cursor)
            pipe.execute()
        if cursor is not None:
            self._fence()

    def history(self, ticket_id: int) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.r.lrange(self.key("history", ticket_id), 0, -1)]

    # -- agent mappings ----------------------------------------------------------------

    def mappings(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in self.r.hgetall(self.key("users")).items()}

    def set_mappings(self, pairs: Mapping[int, int]) -> None:
        """Store mappings and mark the agents for re-planning of their open tickets."""
        if not pairs:
            return
        with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(self.key("users"), mapping={str(k): str(v) for k, v in pairs.items()})
            pipe.zadd(self.key("remap"), {str(k): time.time() for k in pairs})
            pipe.execute()

    def remove_mapping(self, zendesk_user_id: int) -> bool:
        """Forget a mapping (False, and nothing written, when there was none)."""
        return bool(self.r.register_script(_UNMAP)(
            keys=[self.key("users"), self.key("remap")],
            args=[str(zendesk_user_id), repr(time.time())]))

    def remapped(self) -> list[tuple[int, float]]:
        """(agent, when) for agents whose mapping changed and whose tickets wait to be
        re-planned. They stay listed until ``remap_done``."""
        return [(int(a), s) for a, s in self.r.zrange(self.key("remap"), 0, -1,
                                                      withscores=True)]

    def remap_done(self, agents: list[tuple[int, float]]) -> None:
        """Unlist re-planned agents, unless their mapping changed again meanwhile."""
        self._dequeue("remap", agents)

    # -- retry set ---------------------------------------------------------------------

    def due_retries(self, now: float | None = None,
                    limit: int = 1000) -> list[tuple[int, bool]]:
        """(ticket id, read afresh?) of the retries due now, oldest first."""
        now = time.time() if now is None else now
        ids = self.r.zrangebyscore(self.key("retry"), "-inf", now, start=0, num=limit)
        if not ids:
            return []
        infos = self.r.hmget(self.key("retry:info"), ids)
        return [(int(t), bool(json.loads(raw).get("refetch")) if raw else True)
                for t, raw in zip(ids, infos, strict=True)]

    def retries(self) -> list[RetryEntry]:
        scored = self.r.zrange(self.key("retry"), 0, -1, withscores=True)
        if not scored:
            return []
        infos = self.r.hmget(self.key("retry:info"), [t for t, _ in scored])
        out = []
        for (tid, score), raw in zip(scored, infos, strict=True):
            data = json.loads(raw) if raw else {}
            out.append(RetryEntry(int(tid), int(data.get("attempts", 0)),
                                  data.get("error", ""), score, data.get("since", score)))
        return out

    def retry_depth(self) -> int:
        return int(self.r.zcard(self.key("retry")))

    def retry_now(self, ticket_ids: Iterable[int]) -> int:
        ids = [str(t) for t in ticket_ids]
        if not ids:
            return 0
        return int(self.r.zadd(self.key("retry"), dict.fromkeys(ids, 0), xx=True, ch=True))

    def queued_for_retry(self, ticket_ids: Iterable[int]) -> set[int]:
        """Which of these tickets are in the retry set (one round trip)."""
        ids = list(dict.fromkeys(ticket_ids))
        if not ids:
            return set()
        with self.r.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.zscore(self.key("retry"), str(tid))
            scores = pipe.execute()
        return {tid for tid, score in zip(ids, scores, strict=True) if score is not None}

    def drop_retries(self, ticket_ids: Iterable[int]) -> None:
        with self.r.pipeline(transaction=True) as pipe:
            self._clear_retry(pipe, list(ticket_ids))
            pipe.execute()

    def _clear_retry(self, pipe: Any, ticket_ids: list[int]) -> None:
        if ticket_ids:
            ids = [str(t) for t in ticket_ids]
            pipe.zrem(self.key("retry"), *ids)
            pipe.hdel(self.key("retry:info"), *ids)

    # -- task list and pass summary ----------------------------------------------------

    def tasklist_id(self, project_id: int, name: str) -> int | None:
        value = self.r.get(self.key("tasklist", project_id, name))
        return int(value) if value else None

    def forget_tasklist_id(self, project_id: int, name: str) -> None:
        self.r.delete(self.key("tasklist", project_id, name))

    def set_tasklist_id(self, project_id: int, name: str, tasklist_id: int) -> None:
        self.r.set(self.key("tasklist", project_id, name), str(tasklist_id))

    def save_last_pass(self, summary: Mapping[str, Any]) -> None:
        self.r.hset(self.key("last_pass"), mapping={k: str(v) for k, v in summary.items()})

    def last_pass(self) -> dict[str, str]:
        return dict(self.r.hgetall(self.key("last_pass")))

    # -- webhook queue -----------------------------------------------------------------

    WEBHOOK_EVENT_TTL_SECONDS = 86400
    """How long a webhook event id is remembered to drop duplicate deliveries."""

    def enqueue_webhook(self, ticket_id: int, event_id: str | None,
                        now: float | None = None) -> bool:
        """Queue a ticket for a fresh read; False for a duplicate delivery of an event.

        One atomic script: remember the event id (when there is one) and queue the ticket.
        A ticket queued twice before it is handled is handled once.
        """
        now = time.time() if now is None else now
        script = self.r.register_script(_ENQUEUE)
        return bool(script(keys=[self.key("webhook", "queue"),
                                 self.key("webhook", "event", event_id or "")],
                           args=[str(ticket_id), repr(now), event_id or "",
                                 self.WEBHOOK_EVENT_TTL_SECONDS]))

    def webhook_batch(self, limit: int = 100) -> list[tuple[int, float]]:
        """The oldest queued (ticket id, score) pairs; they stay queued until ``done``."""
        return [(int(t), s) for t, s in self.r.zrange(self.key("webhook", "queue"), 0,
                                                      limit - 1, withscores=True)]

    def webhooks_done(self, batch: list[tuple[int, float]]) -> None:
        """Unqueue handled tickets, unless re-queued meanwhile (their score changed)."""
        self._dequeue("webhook:queue", batch)

    def _dequeue(self, name: str, members: list[tuple[int, float]]) -> None:
        """Remove members of a sorted set whose score is still the one read."""
        if members:
            args: list[str] = []
            for member, score in members:
                args += [str(member), repr(score)]
            self.r.register_script(_DEQUEUE)(keys=[self.key(name)], args=args)

    def webhook_depth(self) -> int:
        return int(self.r.zcard(self.key("webhook", "queue")))

    # -- locks -------------------------------------------------------------------------

    def lock(self, name: str = "sync", ttl_seconds: float = defaults.LOCK_TTL_SECONDS) -> SyncLock:
        return SyncLock(self.r, self.key("lock", name), ttl_seconds)


def retry_delay(attempts: int) -> float:
    """Backoff of a failing ticket: base * 2**(attempts-1), capped."""
    return min(defaults.RETRY_CAP_SECONDS, defaults.RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))


class SyncLock:
    """A lease in Redis with a random token and a TTL, renewed by a token-checking script.

    It keeps two passes (and two replicas) from working at once; it is an efficiency
    lock, not a correctness guarantee (Redis replication is asynchronous), so the
    reconciler stays idempotent. A background thread renews it every third of the TTL;
    ``lost`` is set when a renewal finds the lock gone or the TTL runs out unrenewed.
    ``held`` also turns false two thirds of a TTL after the last renewal was sent, even
    while a renewal hangs on a stalled Redis: by then a standby may take over, so the
    holder stops first (as controller-runtime's renew deadline does).

    The value is ``host:pid:random``, so "who holds it" can be told; the scripts compare
    the whole value.
    """

    def __init__(self, client: redis.Redis, key: str, ttl_seconds: float) -> None:
        self.r = client
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        self.lost = threading.Event()
        self._held = False
        self._valid_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def held(self) -> bool:
        return (self._held and not self.lost.is_set()
                and time.monotonic() < self._valid_until)

    def _validity_from(self, sent: float) -> None:
        self._valid_until = sent + self.ttl_ms / 1000 * 2 / 3

    def acquire(self) -> bool:
        sent = time.monotonic()
        if self.r.set(self.key, self.token, nx=True, px=self.ttl_ms):
            self._held = True
            self._validity_from(sent)
            self.lost.clear()
            self._start_keeper()
            return True
        return False

    def acquire_or_raise(self) -> SyncLock:
        if not self.acquire():
            holder = (self.r.get(self.key) or "?").rsplit(":", 1)[0]
            ttl = self.r.pttl(self.key) / 1000
            raise LockHeld(f"another zdsync process holds the lock {self.key}: {holder} "
                           f"(it expires {ttl:.0f} s after its holder stops renewing it)")
        return self

    def renew(self) -> bool:
        sent = time.monotonic()
        ok = bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        if ok:
            self._validity_from(sent)
        else:
            self.lost.set()
        return ok

    def _start_keeper(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._keep, name="zdsync-lock", daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        interval = self.ttl_ms / 3000
        deadline = time.monotonic() + self.ttl_ms / 1000
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    log.error("lost the lock %s", self.key)
                    return
                deadline = time.monotonic() + self.ttl_ms / 1000
            except redis.RedisError as exc:
                log.warning("could not renew the lock %s: %s", self.key, exc)
                if time.monotonic() >= deadline:
                    self.lost.set()
                    return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._held:
            try:
                self._release(keys=[self.key], args=[self.token])
            except redis.RedisError as exc:
                log.warning("could not release the lock %s (it expires by itself): %s",
                            self.key, exc)
        self._held = False
