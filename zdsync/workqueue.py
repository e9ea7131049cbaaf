"""One de-duplicating queue of ticket ids, fed by every source of work.

controller-runtime's work queue, in-process: a ticket queued twice before it is taken is
reconciled once (with the freshest snapshot), a ticket is never handed out twice at once,
and a ticket queued again while it is being reconciled is handed out once more after.
Webhooks go in the urgent lane, for latency. Pure data structure; thread-safe.

Each item also belongs to one or more ``Unit``s: the export page, webhook batch, retry
batch or mapping change that brought it. A unit's bookkeeping (a page's cursor, a webhook
batch's dequeue) is committed once every item of it is done.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from zdsync.rules import Ticket


@dataclass(eq=False)
class Unit:
    """A batch of work whose bookkeeping is committed once all its tickets are done."""

    kind: str  # "page", "webhook", "suspect", "retry", "remap", "fetch", "repair", "rebuild"
    data: Any = None  # what the commit needs: the page, the webhook scores, the agents
    remaining: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    succeeded: list[int] = field(default_factory=list)
    closed: bool = False  # every item of the unit has been added

    @property
    def complete(self) -> bool:
        return self.closed and self.remaining == 0


@dataclass
class Item:
    """What is known about one queued ticket."""

    ticket_id: int
    snapshot: Ticket | None = None  # the newest snapshot known (an export page)
    fresh: bool = False  # read the ticket afresh from Zendesk before reconciling it
    observed: list[Any] | None = None  # Teamwork's tasks for it, when already observed
    units: list[Unit] = field(default_factory=list)
    error: str | None = None  # it could not be read: it fails without being reconciled
    note: str | None = None  # the first line of its history (why it is here)
    suspect: bool = False  # a deposed leader may have written to its task: observe it

    def merge(self, other: Item) -> None:
        """Fold a later arrival for the same ticket into this one (it is then handled once:
        a unit the two share counts it once)."""
        if other.snapshot is not None and (
                self.snapshot is None or other.snapshot.version >= self.snapshot.version):
            self.snapshot = other.snapshot
        self.fresh = self.fresh or other.fresh
        self.suspect = self.suspect or other.suspect
        if other.observed is not None:
            self.observed = other.observed
        for unit in other.units:
            if unit in self.units:
                unit.remaining -= 1
            else:
                self.units.append(unit)


class WorkQueue:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._urgent: OrderedDict[int, Item] = OrderedDict()
        self._normal: OrderedDict[int, Item] = OrderedDict()
        self._in_flight: set[int] = set()
        self._again: dict[int, tuple[Item, bool]] = {}  # re-added while in flight

    def add(self, item: Item, *, urgent: bool = False) -> None:
        with self._lock:
            for unit in item.units:
                unit.remaining += 1
            tid = item.ticket_id
            if tid in self._in_flight:
                prior = self._again.get(tid)
                if prior is None:
                    self._again[tid] = (item, urgent)
                else:
                    prior[0].merge(item)
                    self._again[tid] = (prior[0], prior[1] or urgent)
                return
            self._put(item, urgent)

    def _put(self, item: Item, urgent: bool) -> None:
        tid = item.ticket_id
        queued = self._urgent.get(tid) or self._normal.get(tid)
        if queued is not None:
            queued.merge(item)
            if urgent and tid in self._normal:  # promote: a webhook is waiting on it
                self._urgent[tid] = self._normal.pop(tid)
            return
        (self._urgent if urgent else self._normal)[tid] = item

    def take(self, limit: int = 1) -> list[Item]:
        """Up to ``limit`` items, urgent first, now in flight until ``done``."""
        with self._lock:
            out: list[Item] = []
            for lane in (self._urgent, self._normal):
                while lane and len(out) < limit:
                    _, item = lane.popitem(last=False)
                    self._in_flight.add(item.ticket_id)
                    out.append(item)
            return out

    def take_fresh(self, limit: int) -> list[Item]:
        """Up to ``limit`` more items that are to be read afresh (urgent first), so that
        one ``show_many`` request reads them together."""
        with self._lock:
            out: list[Item] = []
            for lane in (self._urgent, self._normal):
                for tid in [t for t, i in lane.items() if i.fresh][:limit - len(out)]:
                    self._in_flight.add(tid)
                    out.append(lane.pop(tid))
            return out

    def done(self, item: Item, error: str | None = None) -> list[Unit]:
        """Mark an item handled (``error``: it failed and goes to the retry set). Returns
        the units that became complete with it."""
        with self._lock:
            self._in_flight.discard(item.ticket_id)
            again = self._again.pop(item.ticket_id, None)
            if again is not None:
                self._put(*again)
            completed = []
            for unit in item.units:
                unit.remaining -= 1
                if error is None:
                    unit.succeeded.append(item.ticket_id)
                else:
                    unit.failed[item.ticket_id] = error
                if unit.complete:
                    completed.append(unit)
            return completed

    def close(self, unit: Unit) -> bool:
        """Every item of ``unit`` has been added; True when it is complete already."""
        with self._lock:
            unit.closed = True
            return unit.complete

    def __len__(self) -> int:
        with self._lock:
            return len(self._urgent) + len(self._normal) + len(self._again)

    def queued(self) -> Iterable[int]:
        with self._lock:
            return [*self._urgent, *self._normal]
