"""What zdsync keeps in Redis beside the records: the agent mappings, the retry set and
the queues of tickets to look at (webhook-announced, suspected, remapped agents).

Mixed into ``store.Store``, which names the keys (see its docstring for the layout);
apart here so that each kind of state reads on its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import redis

from zdsync import defaults, scripts
from zdsync.backoff import retry_delay

Op = list[str]
"""One Redis command for ``Store.write``: ``["hset", key, field, value]``; the extra
``["zremif", key, member, score]`` removes a member only if its score is still ``score``."""

MARK = "@store"
"""The hash field that holds the store identity in a key whose loss matters (a sorted
set holds ``@<identity>`` as a member, scored +inf): never a ticket or user id, and
skipped by every reader (``store.KEYS``)."""

HELD = "@held"
"""A field of ``users``: set while tasks keep the assignees Teamwork holds, because the
agent mappings were lost; it goes when a mapping is stored again (and with ``users``)."""

EVERY_AGENT = 0
"""Listed in ``remap`` when a hold of assignees ends: every task is re-planned (Zendesk
user ids are positive, so 0 names no agent)."""


@dataclass(frozen=True)
class RetryEntry:
    ticket_id: int
    attempts: int
    error: str
    next_at: float
    since: float


class KeySpace:
    """A Redis client and the prefix every zdsync key lives under."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.r = client
        self.prefix = prefix

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)


class Mappings(KeySpace):
    """Zendesk agent -> Teamwork person, and the agents whose tasks wait to be re-planned."""

    def mappings(self) -> dict[int, int]:
        return self.mappings_and_hold()[0]

    def mappings_and_hold(self) -> tuple[dict[int, int], bool]:
        """The mappings, and whether assignees are held (``HELD``): one round trip."""
        users = self.r.hgetall(self.key("users"))
        return ({int(k): int(v) for k, v in users.items() if not k.startswith("@")},
                HELD in users)

    def set_mappings(self, pairs: Mapping[int, int]) -> None:
        """Store mappings and mark the agents for re-planning of their open tickets. A
        mapping stored ends a hold of assignees (see ``users:held``): every task held
        meanwhile is re-planned then (``EVERY_AGENT``)."""
        if not pairs:
            return
        args = [repr(time.time()), str(EVERY_AGENT)]
        for zendesk_user, person in pairs.items():
            args += [str(zendesk_user), str(person)]
        self.r.register_script(scripts.SET_MAPPINGS)(
            keys=[self.key("users"), self.key("remap"), self.key("identity")], args=args)

    def merge_mappings(self, pairs: Mapping[int, int]) -> int:
        """Store those of ``pairs`` that differ from what is stored (a ``[users] file``
        wins for the agents it lists; others are kept); returns how many changed."""
        current = self.mappings()
        changes = {z: t for z, t in pairs.items() if current.get(z) != t}
        self.set_mappings(changes)
        return len(changes)

    def remove_mapping(self, zendesk_user_id: int) -> bool:
        """Forget a mapping (False, and nothing written, when there was none)."""
        return bool(self.r.register_script(scripts.UNMAP)(
            keys=[self.key("users"), self.key("remap")],
            args=[str(zendesk_user_id), repr(time.time()), str(EVERY_AGENT)]))

    def remapped(self) -> list[tuple[int, float]]:
        """(agent, when) for agents whose mapping changed and whose tickets wait to be
        re-planned. They stay listed until unlisted by ``dequeue_ops("remap", ...)``."""
        return [(int(a), s) for a, s in self.r.zrangebyscore(
            self.key("remap"), "-inf", "(+inf", withscores=True)]


class RetrySet(KeySpace):
    """Tickets whose last attempt failed, scored by the time of their next attempt."""

    def retry_ops(self, failed: Mapping[int, str], succeeded: Iterable[int],
                  now: float) -> list[Op]:
        """Queue failed tickets (backoff grows with their attempts) and unqueue succeeded
        ones. Reads the failed tickets' attempts: one round trip when any failed."""
        ops: list[Op] = []
        cleared = [str(t) for t in dict.fromkeys(succeeded) if t not in failed]
        if cleared:
            ops += [["zrem", self.key("retry"), *cleared],
                    ["hdel", self.key("retry:info"), *cleared]]
        if failed:
            prior = self.r.hmget(self.key("retry:info"), list(failed))
            for (tid, error), raw in zip(failed.items(), prior, strict=True):
                old = json.loads(raw) if raw else {}
                attempts = int(old.get("attempts", 0)) + 1
                info = {"attempts": attempts, "error": error[:500],
                        "since": old.get("since", now)}
                ops += [["zadd", self.key("retry"), repr(now + retry_delay(attempts)),
                         str(tid)],
                        ["hset", self.key("retry:info"), str(tid), json.dumps(info)]]
        return ops

    def due_retries(self, now: float | None = None, limit: int = 1000) -> list[int]:
        """The tickets whose retry is due now, oldest first."""
        now = time.time() if now is None else now
        return [int(t) for t in self.r.zrangebyscore(self.key("retry"), "-inf", now,
                                                     start=0, num=limit)]

    def retries(self) -> list[RetryEntry]:
        scored = self.r.zrangebyscore(self.key("retry"), "-inf", "(+inf", withscores=True)
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
        return int(self.r.zcount(self.key("retry"), "-inf", "(+inf"))

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
        ids = [str(t) for t in ticket_ids]
        if ids:
            with self.r.pipeline(transaction=True) as pipe:
                pipe.zrem(self.key("retry"), *ids)
                pipe.hdel(self.key("retry:info"), *ids)
                pipe.execute()


class Queues(KeySpace):
    """Tickets to handle first: announced by a webhook, or suspected of a late write."""

    def flag_suspects(self, ticket_ids: Iterable[int]) -> None:
        """Tickets a process may have written to in Teamwork after it lost its lease. Not
        fenced, on purpose: the one that knows it is the one without the lease. It only
        makes the next leader observe those tasks (``suspects``)."""
        ids = [str(t) for t in ticket_ids]
        if ids:
            self.r.zadd(self.key("suspect"), dict.fromkeys(ids, time.time()))

    def suspects(self, limit: int = 1000) -> list[tuple[int, float]]:
        """(ticket id, score) of the reported tickets, oldest first; they stay listed
        until ``dequeue_ops("suspect", ...)`` after they were observed."""
        return [(int(t), s) for t, s in self.r.zrangebyscore(
            self.key("suspect"), "-inf", "(+inf", start=0, num=limit, withscores=True)]

    def enqueue_webhook(self, ticket_id: int, event_id: str | None,
                        now: float | None = None) -> bool:
        """Queue a ticket for a fresh read; False for a duplicate delivery of an event.

        One atomic script: remember the event id (when there is one) and queue the ticket.
        A ticket queued twice before it is handled is handled once.
        """
        now = time.time() if now is None else now
        script = self.r.register_script(scripts.ENQUEUE_WEBHOOK)
        return bool(script(keys=[self.key("webhook", "queue"),
                                 self.key("webhook", "event", event_id or "")],
                           args=[str(ticket_id), repr(now), event_id or "",
                                 defaults.WEBHOOK_EVENT_TTL_SECONDS]))

    def webhook_batch(self, limit: int = 100) -> list[tuple[int, float]]:
        """The oldest queued (ticket id, score) pairs; they stay queued until dequeued."""
        return [(int(t), s) for t, s in self.r.zrange(self.key("webhook", "queue"), 0,
                                                      limit - 1, withscores=True)]

    def webhook_depth(self) -> int:
        return int(self.r.zcard(self.key("webhook", "queue")))

    def dequeue_ops(self, name: str, members: Iterable[tuple[int, float]]) -> list[Op]:
        """Unqueue handled members of ``webhook:queue``, ``remap`` or ``suspect``, unless
        re-queued meanwhile (their score changed)."""
        return [["zremif", self.key(name), str(m), repr(s)] for m, s in members]
