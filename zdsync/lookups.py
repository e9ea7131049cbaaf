"""Names read in batches and cached: what descriptions show and what tags are called.

A route's description may show the requester's name and e-mail and the group's name;
tags are written to Teamwork by id. Reading those per ticket would cost a request per
ticket, so they are read in batches (requesters with ``users/show_many``, 100 ids a
request, before a batch of tickets is reconciled; groups and tags as whole lists) and
reused for ``defaults.TEMPLATE_DATA_TTL_SECONDS``. A ticket whose names cannot be read
fails like any API error (the retry set takes it); a batch read that failed is not
repeated per ticket.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from zdsync import defaults
from zdsync.errors import ApiError, PermanentError, RetryableError
from zdsync.routes import Names
from zdsync.tickets import Ticket

log = logging.getLogger(__name__)


class ZendeskNames:
    """Requester names and e-mails, and group names, for descriptions."""

    def __init__(self, zendesk: Any, clock: Callable[[], float] = time.monotonic,
                 ttl_seconds: float = defaults.TEMPLATE_DATA_TTL_SECONDS) -> None:
        self.zendesk = zendesk
        self.clock = clock
        self.ttl = ttl_seconds
        self._users: dict[int, tuple[float, str, str]] = {}  # id -> (read at, name, e-mail)
        self._failed: dict[int, str] = {}  # requester id -> why its batch read failed
        self._groups: dict[int, str] = {}
        self._groups_at: float | None = None
        self._groups_error: str | None = None
        self._lock = threading.RLock()  # the pass's workers read it at once

    def prefetch(self, tickets: Iterable[Ticket], *, groups: bool) -> None:
        """Read, in batches, the requesters of these tickets not read recently (and the
        groups, when ``groups``). Failures are kept for the tickets concerned."""
        with self._lock:
            self._prefetch(list(tickets), groups=groups)

    def _prefetch(self, tickets: list[Ticket], *, groups: bool) -> None:
        now = self.clock()
        missing = sorted({t.requester_id for t in tickets if t.requester_id is not None
                          and now - self._users.get(t.requester_id, (-1e18,))[0] > self.ttl})
        if missing:
            try:
                found = self.zendesk.users_by_ids(missing)
            except ApiError as exc:
                log.warning("could not read %d requester(s) for task descriptions: %s",
                            len(missing), exc)
                self._failed.update(dict.fromkeys(missing, str(exc)))
            else:
                for uid in missing:  # an id absent from the answer is a deleted user
                    user = found.get(uid)
                    self._users[uid] = (now, user.name if user else "",
                                        user.email if user else "")
                    self._failed.pop(uid, None)
        if groups and self._groups_stale(now, False):
            self._read_groups(now)

    def _groups_stale(self, now: float, unknown: bool) -> bool:
        """Read the groups again: never read, too old, or (at most once a minute) after a
        failed read or for a group id not among those read."""
        if self._groups_at is None or now - self._groups_at > self.ttl:
            return True
        return ((unknown or self._groups_error is not None)
                and now - self._groups_at > defaults.UNKNOWN_NAME_REREAD_SECONDS)

    def _read_groups(self, now: float) -> None:
        try:
            self._groups = {int(g["id"]): str(g.get("name") or "")
                            for g in self.zendesk.groups() if g.get("id") is not None}
            self._groups_error = None
        except ApiError as exc:
            log.warning("could not read the Zendesk groups for task descriptions: %s", exc)
            self._groups_error = str(exc)
        self._groups_at = now

    def names(self, ticket: Ticket, fields: frozenset[str]) -> Names:
        """What ``ticket``'s description shows (``fields``: the template's). Reads what
        a prefetch did not; raises ``RetryableError`` when it cannot be read."""
        with self._lock:
            return self._names(ticket, fields)

    def _names(self, ticket: Ticket, fields: frozenset[str]) -> Names:
        name = email = group = ""
        if fields & {"requester_name", "requester_email"} and ticket.requester_id is not None:
            uid = ticket.requester_id
            if uid not in self._users and uid not in self._failed:
                self._prefetch([ticket], groups=False)
            if uid in self._failed:
                raise RetryableError("zendesk", f"could not read requester {uid} for the task "
                                     f"description: {self._failed[uid]}")
            _, name, email = self._users[uid]
        if "group" in fields and ticket.group_id is not None:
            now = self.clock()
            if self._groups_stale(now, ticket.group_id not in self._groups):
                self._read_groups(now)
            if self._groups_error is not None:
                raise RetryableError("zendesk", "could not read the groups for the task "
                                     f"description: {self._groups_error}")
            group = self._groups.get(ticket.group_id, "")
        return Names(name, email, group)


class TeamworkTags:
    """Teamwork tag ids by name (tags are written by id), created when missing."""

    def __init__(self, teamwork: Any, clock: Callable[[], float] = time.monotonic,
                 ttl_seconds: float = defaults.TEMPLATE_DATA_TTL_SECONDS) -> None:
        self.teamwork = teamwork
        self.clock = clock
        self.ttl = ttl_seconds
        self._by_name: dict[str, int] = {}
        self._by_id: dict[int, str] = {}
        self._read_at: float | None = None
        self._lock = threading.RLock()  # workers share it: a missing tag is created once

    def _read(self) -> None:
        by_name: dict[str, int] = {}
        by_id: dict[int, str] = {}
        for tag in self.teamwork.tags():
            tag_id, name = int(tag["id"]), str(tag.get("name") or "")
            by_id[tag_id] = name
            if name.lower() not in by_name or tag_id < by_name[name.lower()]:
                by_name[name.lower()] = tag_id  # the oldest of a name (names repeat)
        self._by_name, self._by_id, self._read_at = by_name, by_id, self.clock()

    def _fresh(self) -> None:
        if self._read_at is None or self.clock() - self._read_at > self.ttl:
            self._read()

    def ids(self, names: Iterable[str]) -> list[int]:
        """The ids of these tags, each created if no tag has its name (any case)."""
        with self._lock:
            return self._ids(names)

    def _ids(self, names: Iterable[str]) -> list[int]:
        self._fresh()
        ids = []
        for name in names:
            if name.lower() not in self._by_name:
                self._read_at = None  # a create whose answer was lost is found next time
                try:
                    tag_id = self.teamwork.create_tag(name)
                except PermanentError as exc:
                    # Someone made it since the last read: Teamwork may answer 409 rather
                    # than the existing tag (unknown). Read the tags again.
                    if exc.status != 409:
                        raise
                    self._read()
                    if name.lower() not in self._by_name:
                        raise
                    ids.append(self._by_name[name.lower()])
                    continue
                log.info("created Teamwork tag %r (%s)", name, tag_id)
                self._by_name[name.lower()], self._by_id[tag_id] = tag_id, name
                self._read_at = self.clock()
            ids.append(self._by_name[name.lower()])
        return ids

    def names(self, tag_ids: Iterable[int]) -> tuple[str, ...]:
        """The names of these tags, sorted, as ``rules.task_tags`` gives a ticket's; an id
        still unknown after a fresh read shows as ``#id`` (so it differs from any name)."""
        tag_ids = list(tag_ids)
        if not tag_ids:
            return ()
        with self._lock:
            return self._names(tag_ids)

    def _names(self, tag_ids: list[int]) -> tuple[str, ...]:
        self._fresh()
        read_at = self._read_at or 0.0
        if any(t not in self._by_id for t in tag_ids) \
                and self.clock() - read_at > defaults.UNKNOWN_NAME_REREAD_SECONDS:
            self._read()
        return tuple(sorted({self._by_id.get(t, f"#{t}").lower() for t in tag_ids}))
