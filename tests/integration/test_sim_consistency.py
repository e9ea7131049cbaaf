"""The consistency check finds each kind of difference, and none in a correct state."""

from __future__ import annotations

import pytest

from zdsync.rules import task_description
from zdsync.sim.base import Clock
from zdsync.sim.consistency import Difference, check, linked_ticket
from zdsync.sim.teamwork import TeamworkSim
from zdsync.sim.zendesk import ZendeskSim

ZD_URL = "https://sim.zendesk.example"
TEMPLATE = "[ZD-{id}] {subject}"


class World:
    """A Zendesk and a Teamwork simulator (not serving: the check uses the Python API)."""

    def __init__(self) -> None:
        clock = Clock(frozen=True, start=1_700_000_000.0)
        self.zd = ZendeskSim(clock=clock)
        self.tw = TeamworkSim(clock=clock)
        self.mapped_agent = self.zd.add_user("Alice", "alice@example.com", "agent")
        self.unmapped_agent = self.zd.add_user("Carol", "carol@example.com", "agent")
        self.customer = self.zd.add_user("Dan", "dan@example.com")
        project = self.tw.add_project("Support")
        self.alice = self.tw.add_person("Alice", "A", "alice@example.com")
        self.tw.add_to_project(project, self.alice)
        self.tasklist = self.tw.add_tasklist(project, "Tickets")
        self.other_list = self.tw.add_tasklist(project, "Other")
        self.mappings = {self.mapped_agent: self.alice}

    def ticket(self, subject: str | None = "Help", assignee: int | None = None,
               status: str = "new") -> int:
        return self.zd.create_ticket(subject, self.customer, self.customer, assignee,
                                     "open" if assignee and status == "new" else status)

    def task(self, ticket_id: int, name: str, assignees: tuple[int, ...] = (),
             tasklist: int | None = None) -> int:
        return self.tw.create_task(tasklist or self.tasklist, name,
                                   task_description(ZD_URL, ticket_id), assignees)

    def check(self) -> list[Difference]:
        return check(self.zd, self.tw, tasklist_id=self.tasklist, mappings=self.mappings,
                     title_template=TEMPLATE, zendesk_url=ZD_URL)

    def kinds(self) -> list[tuple[int | None, str]]:
        return [(d.ticket_id, d.kind) for d in self.check()]


@pytest.fixture
def world() -> World:
    return World()


def correct_world(w: World) -> World:
    """Every rule exercised once, with Teamwork exactly as the rules say."""
    open_mapped = w.ticket("Printer", w.mapped_agent)
    w.task(open_mapped, f"[ZD-{open_mapped}] Printer", (w.alice,))
    open_unmapped = w.ticket(None, w.unmapped_agent)
    w.task(open_unmapped, f"[ZD-{open_unmapped}] (no subject)")
    solved = w.ticket("Done", w.mapped_agent)
    w.zd.update_ticket(solved, status="solved")
    w.tw.complete_task(w.task(solved, f"[ZD-{solved}] Done", (w.alice,)))
    deleted = w.ticket("Spam")
    w.zd.delete_ticket(deleted)
    w.tw.delete_task(w.task(deleted, f"[ZD-{deleted}] Spam"))  # trashed tasks do not count
    closed = w.ticket("Old", w.mapped_agent)
    w.zd.update_ticket(closed, status="solved")
    w.zd.update_ticket(closed, status="closed")
    merged_without_task = w.ticket("Dup")
    merged_with_task = w.ticket("Dup 2")
    target = w.ticket("Main", w.mapped_agent)
    w.task(target, f"[ZD-{target}] Main", (w.alice,))
    w.zd.merge(merged_without_task, target)
    w.zd.merge(merged_with_task, target)
    w.tw.complete_task(w.task(merged_with_task, f"[ZD-{merged_with_task}] Dup 2"))
    w.tw.create_task(w.tasklist, "A hand-made task", "no link here")  # not zdsync's
    w.task(999, "elsewhere", tasklist=w.other_list)  # another list is not checked
    return w


def test_a_correct_state_has_no_differences(world: World) -> None:
    assert correct_world(world).check() == []


def test_missing_and_duplicate(world: World) -> None:
    lonely = world.ticket("Lonely")
    twice = world.ticket("Twice")
    world.task(twice, f"[ZD-{twice}] Twice")
    world.task(twice, f"[ZD-{twice}] Twice")
    assert world.kinds() == [(lonely, "missing"), (twice, "duplicate")]


def test_wrong_title_assignee_and_completion(world: World) -> None:
    tid = world.ticket("Real subject", world.mapped_agent)
    task = world.task(tid, "stale title")
    world.tw.complete_task(task)
    diffs = world.check()
    assert [(d.ticket_id, d.kind) for d in diffs] == [
        (tid, "wrong_title"), (tid, "wrong_assignee"), (tid, "wrong_completion")]
    assert "stale title" in str(diffs[0]) and str(diffs[0]).startswith(f"ticket {tid}: ")
    world.tw.update_task(task, name=f"[ZD-{tid}] Real subject", assignee_ids=[world.alice])
    world.tw.uncomplete_task(task)
    assert world.check() == []
    # an unmapped assignee means "Anyone": a task assigned to someone is wrong
    world.zd.update_ticket(tid, assignee_id=world.unmapped_agent)
    assert world.kinds() == [(tid, "wrong_assignee")]


def test_unassigned_ticket_goes_to_the_mapped_submitter(world: World) -> None:
    tid = world.zd.create_ticket("By agent", world.customer, world.mapped_agent)
    world.task(tid, f"[ZD-{tid}] By agent")
    assert world.kinds() == [(tid, "wrong_assignee")]


def test_unexpected_tasks_for_deleted_and_closed_tickets(world: World) -> None:
    deleted = world.ticket("Gone")
    world.task(deleted, f"[ZD-{deleted}] Gone")
    world.zd.delete_ticket(deleted)
    closed = world.ticket("Closed", world.mapped_agent)
    world.zd.update_ticket(closed, status="solved")
    world.zd.update_ticket(closed, status="closed")
    world.task(closed, f"[ZD-{closed}] Closed", (world.alice,))
    assert world.kinds() == [(deleted, "unexpected"), (closed, "unexpected")]


def test_merged_ticket_task_must_be_completed_but_may_be_absent(world: World) -> None:
    source, target = world.ticket("Dup"), world.ticket("Main")
    world.task(target, f"[ZD-{target}] Main")
    world.zd.merge(source, target)
    assert world.check() == []
    world.task(source, f"[ZD-{source}] Dup")
    assert world.kinds() == [(source, "wrong_completion")]


def test_orphans(world: World) -> None:
    world.task(4242, "[ZD-4242] who?")
    world.tw.create_task(world.tasklist, "foreign",
                         task_description("https://other.zendesk.com", world.ticket("x")))
    diffs = world.check()
    kinds = sorted(d.kind for d in diffs)
    assert kinds == ["missing", "orphan", "orphan"]
    assert {d.ticket_id for d in diffs if d.kind == "orphan"} == {4242, None}


def test_linked_ticket_matches_exactly() -> None:
    assert linked_ticket(task_description(ZD_URL, 12), ZD_URL) == (12, True)
    assert linked_ticket(task_description(ZD_URL + "/", 12), ZD_URL) == (12, True)
    assert linked_ticket(f"Zendesk ticket: {ZD_URL}/agent/tickets/12x", ZD_URL) == (None, True)
    assert linked_ticket(f"see {ZD_URL}/agent/tickets/12", ZD_URL) == (None, False)
