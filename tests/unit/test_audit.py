"""Drift between live tasks and what the rules imply (pure)."""

from __future__ import annotations

from dataclasses import replace

from zdsync.audit import DriftKind, compare, find_drift, repair_input
from zdsync.routes import Routing
from zdsync.rules import Applied, Record, Ticket
from zdsync.tasks import Task

T = "[ZD#{id}] {subject}"
MAP = {100: 7, 101: 8}


def record(status="open", task_id=50, assignee_id=100, tags=(), pending=False):
    ticket = Ticket(1, status, "s", assignee_id, None, tuple(tags))
    applied = Applied(task_id, "[ZD#1] s", MAP.get(assignee_id), status == "solved") \
        if task_id else Applied()
    return Record(ticket, applied, in_flight="create" if pending else None)


def task(name="[ZD#1] s", assignees=(7,), status="new", tid=50):
    return Task(tid, name, "", tuple(assignees), status, 3)


def kinds(finding):
    return [d.kind for d in finding.drifts] if finding else []


def test_in_sync_is_no_drift():
    assert compare(record(), task(), MAP, T) is None
    assert compare(record("solved"), task(status="completed"), MAP, T) is None


def test_each_kind_of_drift():
    assert kinds(compare(record(), None, MAP, T)) == [DriftKind.GONE]
    pending = compare(record(task_id=None, pending=True), None, MAP, T)
    assert kinds(pending) == [DriftKind.NO_TASK] and "create was attempted" in \
        pending.drifts[0].detail
    assert kinds(compare(record(task_id=None), None, MAP, T)) == [DriftKind.NO_TASK]
    assert kinds(compare(record("closed"), task(), MAP, T)) == [DriftKind.UNWANTED]
    assert kinds(compare(record(), task(status="completed"), MAP, T)) == [DriftKind.COMPLETED]
    assert kinds(compare(record("solved"), task(status="reopened"), MAP, T)) == \
        [DriftKind.REOPENED]
    assert kinds(compare(record(), task(name="x", assignees=()), MAP, T)) == \
        [DriftKind.ASSIGNEE, DriftKind.TITLE]
    assert kinds(compare(record(), task(assignees=(7, 8)), MAP, T)) == [DriftKind.ASSIGNEE]


def test_what_is_not_drift():
    # A merged ticket keeps a task if there is one but never needs one.
    assert compare(record("closed", tags=["closed_by_merge"]), None, MAP, T) is None
    # A closed ticket whose task is gone is exactly right.
    assert compare(record("closed"), None, MAP, T) is None


def test_find_drift_orders_by_ticket_and_repair_observes_what_was_read():
    """A recorded task that Teamwork no longer has is observed as gone ([]); a ticket
    with no recorded task is left for the reconciler to search (None)."""
    def numbered(r, ticket_id):
        return replace(r, ticket=replace(r.ticket, id=ticket_id))
    records = [numbered(record(task_id=51), 3), numbered(record(), 2),
               numbered(record(task_id=None, pending=True), 4), numbered(record(), 1)]
    tasks = {50: task(), 52: task(tid=52)}  # 51 is gone
    wrong = {50: task(assignees=(8,))}
    found = find_drift(records, wrong, MAP, Routing(()), T)
    assert [f.ticket_id for f in found] == [1, 2, 3, 4]
    # Ticket 2's title would be "[ZD#2] s": its task (named for ticket 1) drifted too.
    assert [f.ticket_id for f in find_drift(records, tasks, MAP, Routing(()), T)] == [2, 3, 4]
    observed, notes = repair_input(found, wrong)
    assert observed == {1: [wrong[50]], 2: [wrong[50]], 3: [], 4: None}
    assert notes[1] == "audit: assigned to person 8; should be person 7"
