"""Everything zdsync remembers, in Redis (standalone or behind Sentinel).

What Redis holds is a cache of what was applied to Teamwork, not the truth: it can come
back empty, older (a failover, a restart that lost the last second) or be another store
altogether, and zdsync then observes Teamwork (see ``reconciler`` and ``rebuild``).

Keys, all under ``redis.key_prefix``:

- ``identity``          string: written once, after the first rebuild; missing or changed
                        means the state was lost (see ``rebuild``)
- ``redis_run``         string: Redis's ``run_id`` at the last pass: a change means Redis
                        restarted or failed over, and its last writes may be lost
- ``rebuilt``           hash: when and what the last rebuild found (``zdsync cursor show``)
- ``cursor``            hash: ``cursor`` (Zendesk export cursor), ``position`` (epoch s of
                        the newest ticket change applied), ``updated`` (epoch s)
- ``tickets``           hash: ticket id -> record JSON (last snapshot + applied task state)
- ``users``             hash: Zendesk user id -> Teamwork person id
- ``users:held``        string: set by a rebuild that found no mappings: existing tasks keep
                        their assignees until a mapping is stored again
- ``remap``             sorted set: Zendesk user ids whose mapping changed, scored by when
- ``suspect``           sorted set: tickets a deposed leader may have written to after it
                        lost its lease: observed in Teamwork by the next pass
- ``retry``             sorted set: ticket id scored by the time of its next attempt
- ``retry:info``        hash: ticket id -> JSON {attempts, error, since}
- ``history:{id}``      list: the ticket's recent actions, newest first, bounded
- ``tasklist:{p}:{n}``  string: the id of task list ``n`` in project ``p``
- ``lock:sync``         string: the sync lease token (see ``lease.SyncLock``)
- ``last_pass``         hash: summary of the last completed pass
- ``fence``             counter written before WAIT, to check replication (Sentinel only)
- ``webhook:queue``     sorted set: ticket ids a webhook announced, scored by arrival
- ``webhook:event:{id}`` string: a webhook event id seen recently (duplicate deliveries)

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
from zdsync.queues import Mappings, Op, Queues, RetrySet
from zdsync.rules import MalformedTicket, Record
from zdsync.times import iso_utc

log = logging.getLogger(__name__)





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


@dataclass(frozen=True)
class Fence:
    """What a write of the sync state must still hold to be made.

    ``token``: the sync lease's (a paused or deposed leader writes nothing). ``node``: the
    run id of the Redis process the writer read its state from, or "" for any. During a
    Sentinel failover a client can talk to the old master and the new one at once (the
    old one takes writes for seconds, then loses them); pinned to one node, a pass never
    writes to the new master what it decided from the old one's state (a cursor past
    records that only the old master had, say)."""

    token: str
    node: str = ""


class NodeChanged(Interrupted):
    """The Redis master changed under a pass: it stops, the next one starts afresh."""


def record_json(record: Record) -> str:
    return json.dumps(record.to_json(), separators=(",", ":"))


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
        args: list[str] = [fence.token, fence.node, str(len(records))]
        for r in records:  # each record its own argument: no JSON inside JSON
            args += [str(r.ticket.id), str(r.ticket.generated_timestamp), r.ticket.updated_at,
                     record_json(r)]
        args.append(json.dumps(ops, separators=(",", ":")))
        stored = int(self._write(keys=[self.key("lock", "sync"), self.key("tickets")],
                                 args=args))
        if stored == -1:
            raise LeaseLost("the sync lease moved to another holder (or Redis lost it); "
                            "nothing was written")
        if stored == -2:
            self.replication.doubt()
            raise NodeChanged("the Redis master changed under this pass; nothing was "
                              "written; the next pass reads its state from the new master")
        if replicate:
            self.replication.confirm()
        return stored

    # -- failovers, restarts and lost state --------------------------------------------

    def check_state(self, token: str, *, update: bool = True) -> StateCheck:
        """The store's identity, and whether Redis restarted or failed over since the last
        pass (its ``run_id`` changed): then the last writes before it may be lost, and
        recent records are in doubt (see ``Replication.in_doubt``). One round trip, plus a
        fenced write when the run id changed (unless ``update`` is False: dry runs)."""
        with self.r.pipeline(transaction=False) as pipe:
            pipe.get(self.key("identity"))
            pipe.get(self.key("redis_run"))
            pipe.info("server")
            identity, seen_run, info = pipe.execute()
        run_id = str(info.get("run_id", ""))
        restarted = seen_run is not None and seen_run != run_id
        if restarted:
            log.warning("Redis restarted or failed over since the last pass (run id %s, was "
                        "%s): its last writes may be lost", run_id[:8], seen_run[:8])
            self.replication.doubt()
        if seen_run != run_id and update:
            self.write(Fence(token, run_id), ops=[["set", self.key("redis_run"), run_id]])
        return StateCheck(identity=identity, restarted=restarted, node=run_id)

    def claim_identity(self, fence: Fence | str) -> str:
        """Write a new identity: the links in this store now stand for Teamwork's."""
        stamp = iso_utc(time.time())
        identity = f"{uuid.uuid4()} {socket.gethostname()} {stamp}"
        self.write(fence, ops=[["set", self.key("identity"), identity]], replicate=True)
        return identity

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
        """Move the cursor (a page's end) and/or the position; a missing one is kept."""
        op = ["hset", self.key("cursor"), "updated", repr(now)]
        if cursor:
            op += ["cursor", cursor]
        if position:
            op += ["position", str(int(position))]
        return [op]

    def restart_export(self, fence: Fence | str, position: int) -> None:
        """Forget the export cursor and keep ``position`` (epoch s): with no cursor, the
        next pass starts a fresh export at the saved position (``zdsync cursor reset``)."""
        self.write(fence, ops=[["del", self.key("cursor")],
                               *self.cursor_ops(None, position, time.time())])

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
                ["ltrim", key, "0", str(defaults.HISTORY_LENGTH - 1)]]

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
