"""The work queue: de-duplication, urgent lane, one hand-out at a time, unit completion."""

from __future__ import annotations

from zdsync.rules import Ticket
from zdsync.workqueue import Item, Unit, WorkQueue


def snap(tid: int, gts: int) -> Ticket:
    return Ticket(tid, "open", f"v{gts}", generated_timestamp=gts, updated_at=f"u{gts}")


def ids(items: list[Item]) -> list[int]:
    return [i.ticket_id for i in items]


def test_a_ticket_queued_twice_is_handed_out_once_with_the_newest_snapshot():
    q, unit = WorkQueue(), Unit("page")
    q.add(Item(1, snapshot=snap(1, 5), units=[unit]))
    q.add(Item(2, snapshot=snap(2, 5), units=[unit]))
    q.add(Item(1, snapshot=snap(1, 9), units=[unit]))
    q.add(Item(1, snapshot=snap(1, 7), units=[unit]))  # older: does not win
    assert not q.close(unit)
    first = q.take(10)
    assert ids(first) == [1, 2] and first[0].snapshot == snap(1, 9)
    assert q.take() == []
    assert q.done(first[0]) == []
    assert q.done(first[1]) == [unit]  # counted once per ticket, complete with the last
    assert unit.succeeded == [1, 2] and unit.failed == {}


def test_webhooks_go_first_and_promote_a_queued_ticket():
    q = WorkQueue()
    for tid in (1, 2, 3):
        q.add(Item(tid, units=[Unit("page")]))
    q.add(Item(9, fresh=True), urgent=True)
    q.add(Item(3, fresh=True), urgent=True)  # already queued as page work: moves up
    assert ids(q.take(5)) == [9, 3, 1, 2]


def test_a_ticket_in_flight_is_never_handed_out_twice_and_comes_back_after():
    q, page, hook = WorkQueue(), Unit("page"), Unit("webhook")
    q.add(Item(1, snapshot=snap(1, 1), units=[page]))
    [taken] = q.take()
    q.add(Item(1, fresh=True, units=[hook]), urgent=True)  # changed meanwhile
    q.add(Item(1, snapshot=snap(1, 2), units=[page]))
    assert q.take() == []  # not while the first run is in flight
    q.close(page)
    q.close(hook)
    assert q.done(taken, error="boom") == []  # the page still waits for the second run
    [again] = q.take()
    assert again.fresh and again.snapshot == snap(1, 2)
    assert set(q.done(again)) == {page, hook}
    assert page.failed == {1: "boom"} and page.succeeded == [1]


def test_take_fresh_gathers_fresh_reads_across_lanes_leaving_the_rest():
    q = WorkQueue()
    q.add(Item(1, snapshot=snap(1, 1)))
    q.add(Item(2, fresh=True))
    q.add(Item(3, fresh=True), urgent=True)
    q.add(Item(4, fresh=True))
    assert ids(q.take_fresh(2)) == [3, 2]
    assert ids(q.take(5)) == [1, 4]


def test_an_empty_unit_is_complete_when_closed():
    q, unit = WorkQueue(), Unit("retry")
    assert q.close(unit)
    assert len(q) == 0
