"""Seeded, lifecycle-correct ticket activity for a :class:`ZendeskSim`.

Drives the simulator through what a help desk does all day (creates, comments, retitles,
reassignments between mapped and unmapped agents, solves, reopens, closes, merges,
deletes) so that the daemon's end state can be checked with :mod:`zdsync.sim.consistency`.
Only transitions Zendesk allows are made (docs/simulators.md cites the source), so the admin
methods never raise; a seed reproduces the same sequence on a fresh simulator.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from zdsync.sim.zendesk import ZendeskSim

OPEN = ("new", "open", "pending", "hold")
SUBJECTS = (
    "Printer on fire", "Cannot log in", "Invoice #{n} is wrong", "Refund request",
    "Password reset link expired", "App crashes on start", "Feature request: dark mode",
    "Shipping delayed", "Wrong item delivered", "API returns 500", "Über-long Ünïcode sübject ✓",
    "Question about [billing] & taxes", "",
)
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "create": 6, "comment": 8, "retitle": 2, "reassign": 4, "pend": 2, "solve": 4,
    "reopen": 2, "close": 2, "merge": 1, "delete": 1, "closed_edit": 1,
}

Ticket = dict[str, Any]


class ActivityGenerator:
    """Random but reproducible ticket life on a Zendesk simulator.

    ``mapped_agent_ids``/``unmapped_agent_ids`` are Zendesk agent ids with and without a
    Teamwork person; ``requester_ids`` are end-users (one is created when none is given).
    ``weights`` overrides the relative frequency of event kinds (see ``DEFAULT_WEIGHTS``).
    """

    def __init__(self, zendesk: ZendeskSim, *, seed: int = 0,
                 mapped_agent_ids: Sequence[int] = (), unmapped_agent_ids: Sequence[int] = (),
                 requester_ids: Sequence[int] = (),
                 weights: Mapping[str, float] | None = None) -> None:
        self.zendesk = zendesk
        self.rng = random.Random(seed)
        self.mapped = list(mapped_agent_ids)
        self.unmapped = list(unmapped_agent_ids)
        self.agents = self.mapped + self.unmapped
        if not self.agents:
            raise ValueError("at least one agent id is needed")
        self.requesters = list(requester_ids) or [
            zendesk.add_user("Customer", f"customer-{len(zendesk.users())}@example.com")
        ]
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown event kinds {sorted(unknown)}")
        self.events = 0
        self._actions: dict[str, Callable[[list[Ticket]], str | None]] = {
            "create": self._create, "comment": self._comment, "retitle": self._retitle,
            "reassign": self._reassign, "pend": self._pend, "solve": self._solve,
            "reopen": self._reopen, "close": self._close, "merge": self._merge,
            "delete": self._delete, "closed_edit": self._closed_edit,
        }

    # -- driving ----------------------------------------------------------------------

    def step(self) -> str:
        """Perform one random event; returns a short description of it."""
        tickets = self.zendesk.ticket_states()
        kinds = [k for k, w in self.weights.items() if w > 0]
        while kinds:
            kind = self.rng.choices(kinds, [self.weights[k] for k in kinds])[0]
            done = self._actions[kind](tickets)
            if done is not None:
                self.events += 1
                return done
            kinds.remove(kind)  # nothing eligible for this kind right now
        return self._create(tickets) or "nothing"

    def run(self, events: int) -> list[str]:
        return [self.step() for _ in range(events)]

    def run_for(self, seconds: float, rate_per_second: float,
                stop_event: threading.Event | None = None) -> int:
        """Perform events at ``rate_per_second`` (real time) for ``seconds`` or until
        ``stop_event`` is set; returns how many were made."""
        stop = stop_event or threading.Event()
        interval = 1.0 / rate_per_second
        deadline = time.monotonic() + seconds
        done = 0
        next_at = time.monotonic()
        while not stop.is_set() and time.monotonic() < deadline:
            self.step()
            done += 1
            next_at += interval
            stop.wait(max(0.0, min(next_at, deadline) - time.monotonic()))
        return done

    # -- helpers ----------------------------------------------------------------------

    def _pick(self, tickets: list[Ticket], statuses: Sequence[str]) -> Ticket | None:
        pool = [t for t in tickets if t["status"] in statuses]
        return self.rng.choice(pool) if pool else None

    def _subject(self) -> str | None:
        roll = self.rng.random()
        if roll < 0.05:
            return None
        if roll < 0.10:
            return "   "
        return self.rng.choice(SUBJECTS).format(n=self.rng.randint(1000, 9999))

    def _agent_other_than(self, current: int | None) -> int:
        choices = [a for a in self.agents if a != current] or self.agents
        return self.rng.choice(choices)

    # -- events -----------------------------------------------------------------------

    def _create(self, tickets: list[Ticket]) -> str:
        requester = self.rng.choice(self.requesters)
        by_agent = self.rng.random() < 0.5
        submitter = self.rng.choice(self.agents) if by_agent else requester
        assignee = self.rng.choice(self.agents) if self.rng.random() < 0.6 else None
        status = "open" if assignee is not None else "new"
        subject = self._subject()
        tid = self.zendesk.create_ticket(subject, requester, submitter, assignee, status,
                                         tags=self.rng.sample(["vip", "web", "mobile"], 1))
        return f"create #{tid} {subject!r} assignee={assignee} submitter={submitter}"

    def _comment(self, tickets: list[Ticket]) -> str | None:
        ticket = self._pick(tickets, (*OPEN, "solved"))
        if ticket is None:
            return None
        tid = ticket["id"]
        roll = self.rng.random()
        if roll < 0.4:
            priority = self.rng.choice(["low", "normal", "high", "urgent"])
            self.zendesk.update_ticket(tid, priority=priority)
            return f"priority #{tid} {priority}"
        if roll < 0.7:
            tag = self.rng.choice(["billing", "bug", "howto", "followup"])
            self.zendesk.update_ticket(tid, tags=[*ticket["tags"], tag])
            return f"tag #{tid} +{tag}"
        if ticket["status"] == "solved":
            self.zendesk.update_ticket(tid, comment="Thanks, all good.")  # private note
        else:
            self.zendesk.update_ticket(tid, comment="Any news on this?")
        return f"comment #{tid}"

    def _retitle(self, tickets: list[Ticket]) -> str | None:
        ticket = self._pick(tickets, (*OPEN, "solved", "closed"))  # closed: subject allowed
        if ticket is None:
            return None
        subject = self._subject()
        self.zendesk.update_ticket(ticket["id"], subject=subject)
        return f"retitle #{ticket['id']} {subject!r}"

    def _reassign(self, tickets: list[Ticket]) -> str | None:
        ticket = self._pick(tickets, (*OPEN, "solved"))
        if ticket is None:
            return None
        tid = ticket["id"]
        if ticket["status"] != "solved" and ticket["assignee_id"] is not None \
                and self.rng.random() < 0.2:
            self.zendesk.update_ticket(tid, assignee_id=None)
            return f"unassign #{tid}"
        agent = self._agent_other_than(ticket["assignee_id"])
        fields: dict[str, Any] = {"assignee_id": agent}
        if ticket["status"] == "new":
            fields["status"] = "open"
        self.zendesk.update_ticket(tid, **fields)
        return f"reassign #{tid} -> {agent}"

    def _pend(self, tickets: list[Ticket]) -> str | None:
        ticket = self._pick(tickets, ("open",))
        if ticket is None:
            return None
        status = self.rng.choice(["pending", "hold"])
        self.zendesk.update_ticket(ticket["id"], status=status)
        return f"{status} #{ticket['id']}"

    def _solve(self, tickets: list[Ticket]) -> str | None:
        ticket = self._pick(tickets, OPEN)
        if ticket is None:
            return None
        fields: dict[str, Any] = {"status": "solved"}
        if ticket["assignee_id"] is None:
            fields["assignee_id"] = self.rng.choice(self.agents)
        self.zendesk.update_ticket(ticket["id"], **fields)
        return f"solve #{ticket['id']}"

    def _reopen(self, tickets: list[Ticket]) -> str | None:
        ticket = self._pick(tickets, ("solved", "pending", "hold"))
        if ticket is None:
            return None
        self.zendesk.update_ticket(ticket["id"], status="open", comment="It broke again.")
        return f"reopen #{ticket['id']} from {ticket['status']}"

    def _close(self, tickets: list[Ticket]) -> str | None:
        ticket = self._pick(tickets, ("solved",))
        if ticket is None:
            return None
        self.zendesk.update_ticket(ticket["id"], status="closed")
        return f"close #{ticket['id']}"

    def _merge(self, tickets: list[Ticket]) -> str | None:
        source = self._pick(tickets, (*OPEN, "solved"))
        if source is None:
            return None
        targets = [t for t in tickets if t["status"] in OPEN and t["id"] != source["id"]]
        if not targets:
            return None
        target = self.rng.choice(targets)
        self.zendesk.merge(source["id"], target["id"])
        return f"merge #{source['id']} into #{target['id']}"

    def _delete(self, tickets: list[Ticket]) -> str | None:
        ticket = self._pick(tickets, (*OPEN, "solved", "closed"))
        if ticket is None:
            return None
        self.zendesk.delete_ticket(ticket["id"])
        return f"delete #{ticket['id']}"

    def _closed_edit(self, tickets: list[Ticket]) -> str | None:
        ticket = self._pick(tickets, ("closed",))
        if ticket is None:
            return None
        self.zendesk.update_ticket(ticket["id"], tags=[*ticket["tags"], "reviewed"])
        return f"tag closed #{ticket['id']}"
