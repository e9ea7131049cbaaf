"""Everything zdsync remembers, in Redis (standalone or behind Sentinel).

What Redis holds is a cache of what was applied to Teamwork, not the truth: it can come
back empty, older (a failover, a restart that lost the last second) or be another store
altogether, and zdsync then observes Teamwork (see ``reconciler`` and ``rebuild``).

Keys, all under ``redis.key_prefix``, are listed in ``KEYS`` with what losing each one
costs. Redis can lose one key and keep the others (``maxmemory-policy allkeys-*``, a
partial restore, an operator's ``DEL``): every key whose loss matters carries the store's
identity inside it (``MARK`` as a hash field, ``@<identity>`` as a set member), so that
its absence is seen at the start of the next pass, in the round trip that reads the
identity, and repaired key by key (``recovery``). The others can go at any time.

Every write of the sync state goes through one script (``Store.write``) that refuses to
write unless the caller still holds the lease (a fencing token: a paused or deposed
leader cannot overwrite what its successor wrote) and stores a ticket's record only if
its snapshot is not older than the one stored (an older record never overwrites a newer
one, whoever writes it).

Every Redis command is retried on transient errors (connection, timeout, READONLY after a
failover, master not found) with bounded backoff; a pass that still fails keeps its cursor.
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from zdsync import defaults, scripts
from zdsync.config import RedisSettings
from zdsync.connection import Replication, connect
from zdsync.errors import Interrupted, LeaseLost
from zdsync.lease import SyncLock
from zdsync.packing import pack, unpack
from zdsync.queues import HELD, MARK, Mappings, Op, Queues, RetrySet
from zdsync.rules import MalformedTicket, Record, Ticket
from zdsync.times import epoch_or_none, iso_utc

log = logging.getLogger(__name__)

IDENTITY_VERSION = "2/"
"""Starts every identity written since keys carry it: an identity without it comes from a
store written before, whose keys are marked once, as they are (``Store.check_state``)."""


@dataclass(frozen=True)
class Key:
    """One kind of key: its Redis type, and what its loss costs. ``marked``: its loss
    matters, so it carries the identity (hashes as a field, sorted sets as a member)."""

    type: str
    marked: bool
    loss: str


KEYS: dict[str, Key] = {
    "identity": Key("string", False, "harmless: written again from the records' mark; "
                    "with that gone too, the links are rebuilt from Teamwork"),
    "redis_run": Key("string", False, "harmless: Redis's run id at the last pass; missing, "
                     "the next pass stores it again"),
    "rebuilt": Key("hash", False, "harmless: when the last rebuild ran (cursor show)"),
    "losses": Key("hash", False, "harmless: which keys were found lost, when (cursor show)"),
    "cursor": Key("hash", True, "the export resumes from the position the records prove "
                  "safe, never from now (recovery.resume_position)"),
    "tickets": Key("hash", True, "the links are rebuilt from Teamwork, keeping the other "
                   "keys (rebuild); its field @position copies the export position"),
    "users": Key("hash", True, "the mappings come back from [users] file; without one, "
                 "tasks keep their assignees (field @held) until mappings are stored"),
    "users:held": Key("string", False, "harmless: the hold of assignees before it moved "
                      "into users' @held field; moved there once, then deleted"),
    "remap": Key("zset", True, "every task is re-planned from the records (no reads)"),
    "suspect": Key("zset", True, "cannot be rebuilt: logged at ERROR with the command "
                   "that finds any drift (zdsync audit --repair)"),
    "retry": Key("zset", True, "tickets whose record says their last attempt failed (or "
                 "a write is in flight), and those in retry:info, are retried"),
    "retry:info": Key("hash", False, "harmless: a retried ticket's attempts start again "
                      "from one (a shorter backoff)"),
    "history:{id}": Key("list", False, "harmless: what tickets show lists; bounded, and "
                        "expires (HISTORY_TTL_SECONDS)"),
    "gone:{n}": Key("hash", False, "harmless: tombstones of closed and deleted tickets "
                    "(tombstone_ops); without one, a replayed snapshot older than the close "
                    "is reconciled as it is, and the close that follows it undoes that"),
    "tasklist:{p}:{n}": Key("string", False, "harmless: resolved again from Teamwork"),
    "lock:sync": Key("string", False, "harmless: the holder's next fenced write fails and "
                     "its pass stops; whoever takes the lease goes on (it has a TTL)"),
    "last_pass": Key("hash", False, "harmless: the summary of the last pass (cursor show)"),
    "fence": Key("string", False, "harmless: a counter written before WAIT"),
    "webhook:queue": Key("zset", False, "harmless: the export brings the same changes "
                         "at the next pass, only later"),
    "webhook:event:{id}": Key("string", False, "harmless: a duplicate delivery is handled "
                              "twice, which changes nothing (it has a TTL)"),
}
"""Every key zdsync writes (``{x}`` stands for a part that varies) and what losing it
costs; ``tests/unit/test_keys.py`` fails for a key written but not listed here."""

MARKED = tuple(name for name, k in KEYS.items() if k.marked)

POSITION = "@position"
"""A field of ``tickets``: the export position, copied with every move of the cursor."""


@dataclass(frozen=True)
class CursorState:
    cursor: str | None
    position: int | None  # epoch s of the newest change applied
    updated: float | None


@dataclass(frozen=True)
class StateCheck:
    """What a pass learns about the store before it trusts it."""

    identity: str | None  # None: empty, or never rebuilt: the links must be rebuilt
    restarted: bool  # Redis restarted or failed over since the last pass
    node: str  # the run id of the Redis process that answered
    lost: frozenset[str] = frozenset()  # marked keys (``KEYS``) found without the mark


@dataclass(frozen=True)
class Fence:
    """What a write of the sync state must still hold to be made.

    ``token``: the sync lease's (a paused or deposed leader writes nothing). ``node``: the
    run id of the Redis process the writer read its state from, or "" for any. During a
    Sentinel failover a client can talk to the old master and the new one at once (the
    old one takes writes for seconds, then loses them); pinned to one node, a pass never
    writes to the new master what it decided from the old one's state (a cursor past
    records that only the old master had, say). ``identity``: the store identity the
    records carried when the pass began, or "" for any: if Redis loses the records under
    a pass, its next write is refused, before any create that a lost record would have
    prevented."""

    token: str
    node: str = ""
    identity: str = ""


class NodeChanged(Interrupted):
    """The Redis master changed under a pass: it stops, the next one starts afresh."""


class RecordsLost(Interrupted):
    """Redis lost the records under a pass: it stops; the next one rebuilds them."""


class RedisFull(redis.RedisError):
    """Redis refused a write for lack of memory (``OOM command not allowed``)."""


def record_json(record: Record) -> str:
    return pack(record)


def is_tombstone(record: Record) -> bool:
    """A record ``Store.records`` made of a tombstone (real snapshots have ``updated_at``)."""
    return not record.ticket.updated_at and record.applied.task_id is None


class Store(Mappings, RetrySet, Queues):
    """The records, the cursor, the lease and what says whether the state can be trusted;
    mappings, retries and queues come from ``queues``."""

    def __init__(self, client: redis.Redis, prefix: str = "zdsync:", *,
                 replicated: bool = False) -> None:
        """``replicated``: the writes zdsync relies on across a failover (a write-in-flight
        mark, a page commit with its cursor) are checked to have reached a replica
        (``connection.Replication``). On with Sentinel, where a failover can discard what
        the old master acknowledged."""
        super().__init__(client, prefix)
        self.replication = Replication(client, self.key("fence"), replicated=replicated)
        self._write = client.register_script(scripts.WRITE)

    @classmethod
    def from_settings(cls, settings: RedisSettings) -> Store:
        return cls(connect(settings), settings.key_prefix, replicated=settings.use_sentinel)

    def ping(self) -> bool:
        return bool(self.r.ping())

    # -- the one fenced write ----------------------------------------------------------

    def write(self, fence: Fence | str, records: Sequence[Record] = (),
              ops: Iterable[Op] = (), *, replicate: bool = False) -> int:
        """Store records (each only if its snapshot is not older than the stored one) and
        run ``ops``, atomically, if ``fence`` still holds (a bare string: the lease token,
        on any node); else raise ``LeaseLost`` or ``NodeChanged`` and write nothing.
        Returns how many records were stored.

        ``replicate``: the caller relies on this write surviving a failover (see
        ``Replication.confirm``).
        """
        if isinstance(fence, str):
            fence = Fence(fence)
        ops = [[str(part) for part in op] for op in ops]
        if not records and not ops:
            return 0
        args: list[str] = [fence.token, fence.node, fence.identity, str(len(records))]
        for r in records:  # each record its own argument: no JSON inside JSON
            args += [str(r.ticket.id), str(r.ticket.generated_timestamp), r.ticket.updated_at,
                     record_json(r)]
        args.append(json.dumps(ops, separators=(",", ":")))
        try:
            stored = int(self._write(keys=[self.key("lock", "sync"), self.key("tickets")],
                                     args=args))
        except redis.exceptions.OutOfMemoryError as exc:
            raise RedisFull(
                f"Redis is full (maxmemory reached: {exc}); nothing was written and the "
                "cursor keeps its place: raise maxmemory or free memory (zdsync's keys must "
                "never be evicted: maxmemory-policy noeviction)") from exc
        if stored == -1:
            raise LeaseLost("the sync lease moved to another holder (or Redis lost it); "
                            "nothing was written")
        if stored == -2:
            self.replication.doubt()
            raise NodeChanged("the Redis master changed under this pass; nothing was "
                              "written; the next pass reads its state from the new master")
        if stored == -3:
            raise RecordsLost("Redis lost the ticket records during this pass; nothing was "
                              "written; the next pass rebuilds them from Teamwork")
        if replicate:
            self.replication.confirm()
        return stored

    # -- failovers, restarts and lost state --------------------------------------------

    def check_state(self, token: str, *, update: bool = True) -> StateCheck:
        """The store's identity, which marked keys lost their mark (``KEYS``), and whether
        Redis restarted or failed over since the last pass (its ``run_id`` changed): then
        the last writes before it may be lost, and recent records are in doubt (see
        ``Replication.in_doubt``). One round trip, plus a fenced write when the run id
        changed or the identity is written again (unless ``update`` is False: dry runs).

        An identity from before the marks (no ``IDENTITY_VERSION``) has its keys marked as
        they are: that store was trusted whole, as it always was. A lost identity is
        written again from the records' mark, when they have one."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.get(self.key("identity"))
            pipe.get(self.key("redis_run"))
            pipe.info("server")
            for name in MARKED:
                if KEYS[name].type == "hash":
                    pipe.hget(self.key(name), MARK)
                else:
                    pipe.zrangebyscore(self.key(name), "+inf", "+inf")
            identity, seen_run, info, *marks = pipe.execute()
        run_id = str(info.get("run_id", ""))
        restarted = seen_run is not None and seen_run != run_id
        if restarted:
            log.warning("Redis restarted or failed over since the last pass (run id %s, was "
                        "%s): its last writes may be lost", run_id[:8], seen_run[:8])
            self.replication.doubt()
        found = {name: mark if isinstance(mark, str) or mark is None else
                 next((m[1:] for m in mark if m.startswith("@")), None)
                 for name, mark in zip(MARKED, marks, strict=True)}
        ops: list[Op] = []
        if seen_run != run_id:
            ops.append(["set", self.key("redis_run"), run_id])
        lost: frozenset[str] = frozenset()
        if identity is None and found["tickets"]:
            identity = found["tickets"]  # the identity alone was lost
            ops.append(["set", self.key("identity"), identity])
        if identity is not None and not identity.startswith(IDENTITY_VERSION):
            identity = IDENTITY_VERSION + identity  # written before the marks: mark it
            ops += [["set", self.key("identity"), identity], *self.mark_ops(identity)]
            ops += self._unheld_ops()
        elif identity is not None:
            lost = frozenset(name for name, mark in found.items() if mark != identity)
        if ops and update:
            self.write(Fence(token, run_id), ops=ops)
        return StateCheck(identity=identity, restarted=restarted, node=run_id, lost=lost)

    def _unheld_ops(self) -> list[Op]:
        """Move a hold of assignees from ``users:held`` (before the marks) into ``users``."""
        if not self.r.exists(self.key("users", "held")):
            return []
        return [["hset", self.key("users"), HELD, "1"], ["del", self.key("users", "held")]]

    def mark_ops(self, identity: str, names: Iterable[str] = MARKED) -> list[Op]:
        """Write ``identity`` into these marked keys (replacing an older identity)."""
        ops: list[Op] = []
        for name in names:
            key = self.key(name)
            if KEYS[name].type == "hash":
                ops.append(["hset", key, MARK, identity])
            else:
                ops += [["zremrangebyscore", key, "+inf", "+inf"],
                        ["zadd", key, "+inf", "@" + identity]]
        return ops

    def claim_identity(self, fence: Fence | str, identity: str | None = None) -> str:
        """Write a new identity (or ``identity`` again) and mark every key with it: the
        links in this store now stand for Teamwork's."""
        if identity is None:
            stamp = iso_utc(time.time())
            identity = f"{IDENTITY_VERSION}{uuid.uuid4()} {socket.gethostname()} {stamp}"
        self.write(fence, ops=[["set", self.key("identity"), identity],
                               *self.mark_ops(identity)], replicate=True)
        return identity

    def note_losses(self, names: Iterable[str], now: float) -> Op:
        """Remember when these keys were found lost (``zdsync cursor show``)."""
        op = ["hset", self.key("losses")]
        for name in names:
            op += [name, repr(now)]
        return op

    def losses(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.r.hgetall(self.key("losses")).items()}

    def last_rebuild(self) -> dict[str, str]:
        return dict(self.r.hgetall(self.key("rebuilt")))

    # -- cursor ------------------------------------------------------------------------

    def cursor(self) -> CursorState:
        data = self.r.hgetall(self.key("cursor"))
        return CursorState(
            cursor=data.get("cursor") or None,
            position=int(data["position"]) if data.get("position") else None,
            updated=float(data["updated"]) if data.get("updated") else None,
        )

    def cursor_ops(self, cursor: str | None, position: int | None, now: float) -> list[Op]:
        """Move the cursor (a page's end) and/or the position; a missing one is kept. The
        position is copied into the records (``POSITION``): where the export resumes if
        the cursor alone is lost."""
        op = ["hset", self.key("cursor"), "updated", repr(now)]
        if cursor:
            op += ["cursor", cursor]
        if not position:
            return [op]
        op += ["position", str(int(position))]
        return [op, ["hset", self.key("tickets"), POSITION, str(int(position))]]

    def restart_export(self, fence: Fence | str, position: int) -> None:
        """Forget the export cursor and keep ``position`` (epoch s): with no cursor, the
        next pass starts a fresh export at the saved position (``zdsync cursor reset``)."""
        self.write(fence, ops=[["hdel", self.key("cursor"), "cursor"],
                               *self.cursor_ops(None, position, time.time())])

    def saved_position(self) -> int | None:
        """The export position copied into the records (``cursor_ops``)."""
        value = self.r.hget(self.key("tickets"), POSITION)
        return int(value) if value else None

    # -- records -----------------------------------------------------------------------

    def records(self, ticket_ids: Iterable[int]) -> dict[int, Record]:
        """The stored records of these tickets (a tombstone as a record of its version
        only: ``tombstone_ops``), in one round trip."""
        ids = list(dict.fromkeys(ticket_ids))
        if not ids:
            return {}
        buckets: dict[int, list[int]] = {}
        for tid in ids:
            buckets.setdefault(tid // defaults.TOMBSTONE_BUCKET_TICKETS, []).append(tid)
        with self.r.pipeline(transaction=False) as pipe:
            pipe.hmget(self.key("tickets"), ids)
            for bucket, members in buckets.items():
                pipe.hmget(self.key("gone", bucket),
                           [t % defaults.TOMBSTONE_BUCKET_TICKETS for t in members])
            raws, *graves = pipe.execute()
        versions = {tid: version for members, found in zip(buckets.values(), graves,
                                                           strict=True)
                    for tid, version in zip(members, found, strict=True) if version}
        out = {}
        for tid, raw in zip(ids, raws, strict=True):
            record = self._parse(tid, raw)
            if record is None and tid in versions:
                record = Record(Ticket(tid, "closed", generated_timestamp=int(versions[tid])))
            if record is not None:
                out[tid] = record
        return out

    def tombstone_ops(self, record: Record) -> list[Op] | None:
        """Replace a record by a tombstone, when its ticket is closed or deleted and has no
        task (none in flight, no retry due): the record goes, its version stays, a few
        bytes in a hash of ``TOMBSTONE_BUCKET_TICKETS`` tickets, so that a replay of an
        older snapshot still changes nothing (``rules.is_stale``). None: keep the record.

        Tombstones are never removed: the export is never rewound past one on its own
        (``REWIND_HORIZON_SECONDS``), but ``zdsync cursor reset`` can go back further,
        and at ~12 B each they cost less than deciding when one may go."""
        if (record.ticket.status not in ("closed", "deleted") or record.in_flight
                or record.failed or record.applied.task_id is not None):
            return None
        version = record.ticket.generated_timestamp or epoch_or_none(record.ticket.updated_at)
        if not version:
            return None
        tid = record.ticket.id
        return [["hdel", self.key("tickets"), str(tid)],
                ["hset", self.key("gone", tid // defaults.TOMBSTONE_BUCKET_TICKETS),
                 str(tid % defaults.TOMBSTONE_BUCKET_TICKETS), str(version)]]

    def record(self, ticket_id: int) -> Record | None:
        return self.records([ticket_id]).get(ticket_id)

    @staticmethod
    def _parse(ticket_id: int, raw: str | None) -> Record | None:
        if raw is None:
            return None
        try:
            return unpack(ticket_id, raw)
        except (ValueError, KeyError, TypeError, MalformedTicket) as exc:
            log.error("ticket %s: stored record unreadable (%s); treating as new", ticket_id, exc)
            return None

    def all_records(self) -> Iterator[Record]:
        for tid, raw in self.r.hscan_iter(self.key("tickets"), count=1000):
            if tid.startswith("@"):
                continue
            record = self._parse(int(tid), raw)
            if record is not None:
                yield record

    def delete_record(self, ticket_id: int) -> bool:
        """Forget a ticket (``zdsync tickets unlink``): an operator's act, not fenced."""
        with self.r.pipeline() as pipe:
            pipe.hdel(self.key("tickets"), str(ticket_id))
            pipe.zrem(self.key("retry"), str(ticket_id))
            pipe.hdel(self.key("retry:info"), str(ticket_id))
            return bool(pipe.execute()[0])

    def history_ops(self, ticket_id: int, lines: Sequence[str], now: float) -> list[Op]:
        if not lines:
            return []
        key = self.key("history", ticket_id)
        return [["lpush", key, *(json.dumps({"at": now, "what": line}) for line in lines)],
                ["ltrim", key, "0", str(defaults.HISTORY_LENGTH - 1)],
                ["expire", key, str(defaults.HISTORY_TTL_SECONDS)]]

    def history(self, ticket_id: int) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.r.lrange(self.key("history", ticket_id), 0, -1)]

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

    # -- the lease ---------------------------------------------------------------------

    def lock(self, name: str = "sync", ttl_seconds: float = defaults.LOCK_TTL_SECONDS) -> SyncLock:
        return SyncLock(self.r, self.key("lock", name), ttl_seconds)
