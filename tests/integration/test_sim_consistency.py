"""The consistency check finds each kind of difference, and none in a correct state."""

from __future__ import annotations

import pytest

from tests.world import TEMPLATE as WORLD_TEMPLATE
from zdsync.rules import task_description
from zdsync.sim import consistency
from zdsync.sim.adapter import session_for
from zdsync.sim.base import Clock
from zdsync.sim.consistency import Difference, check, check_routed, linked_ticket
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


# -- the judge states the rules itself -------------------------------------------------------


def test_the_check_imports_nothing_of_the_rules_it_judges() -> None:
    """Were it to ask the product what Teamwork should hold, a bug there would be judged
    by itself: the module imports only the simulators."""
    import ast
    from pathlib import Path

    import zdsync.sim.consistency as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    product = {name for name in imported if name and name.startswith("zdsync")}
    assert product == {"zdsync.sim.teamwork", "zdsync.sim.zendesk"}


@pytest.fixture
def passes(redis_client):
    from tests.world import make_inproc_world

    return make_inproc_world(redis_client.connection_pool.connection_kwargs["port"], "sc:")


def run_pass(world) -> None:
    world.exportable()
    summary = world.run_pass().run()
    assert summary.error is None and summary.failed == 0, summary.line()


def test_a_rules_bug_is_caught_although_the_rules_agree_with_teamwork(passes, monkeypatch):
    """A deliberate bug in the rules: an assignee without a mapping falls back to the
    submitter (the README: it goes to Anyone, "it is that agent's job, not the
    submitter's"). A pass applies the bug faithfully, so the buggy rules and Teamwork agree
    and a check built on ``rules.desired_task`` would have found nothing; this one says
    what is wrong."""
    from zdsync import rules

    world = passes
    real = rules.assignee_for

    def submitter_fallback(ticket, mappings):
        found = real(ticket, mappings)
        if found is None and ticket.submitter_id is not None:
            return mappings.get(ticket.submitter_id)
        return found

    monkeypatch.setattr(rules, "assignee_for", submitter_fallback)
    good = world.ticket("Mapped", assignee=world.agents[0], status="open")
    bad = world.ticket("Unmapped", assignee=world.unmapped, status="open")
    run_pass(world)
    [task] = world.tasks_for(bad)
    submitter_person = world.mappings[world.agents[0]]  # world.ticket's submitter: Ada
    assert [a["id"] for a in task["assignees"]] == [submitter_person]  # the bug, applied
    buggy = rules.desired_task(rules.Ticket.from_api(world.zendesk.ticket(bad)),
                               world.store().mappings(), WORLD_TEMPLATE)
    assert buggy.assignee == submitter_person  # the rules "agree" with Teamwork
    assert [(d.ticket_id, d.kind) for d in world.check()] == [(bad, "wrong_assignee")]
    assert good not in {d.ticket_id for d in world.check()}


def test_a_title_cut_in_the_wrong_place_is_caught(passes, monkeypatch):
    """Another deliberate bug: titles over 250 characters cut bluntly at 250 (no "…", and
    with a long enough template, through the id)."""
    from zdsync import rules

    world = passes
    monkeypatch.setattr(rules, "render_title", lambda ticket, template: template.format(
        id=ticket.id, subject=ticket.subject or "(no subject)", status=ticket.status)[:250])
    long = world.ticket("word " * 80, assignee=world.agents[0], status="open")
    short = world.ticket("Short", assignee=world.agents[0], status="open")
    run_pass(world)
    assert len(world.tasks_for(long)[0]["name"]) == 250
    diffs = world.check()
    assert [(d.ticket_id, d.kind) for d in diffs] == [(long, "wrong_title")]
    want = consistency.title(world.zendesk.ticket(long), WORLD_TEMPLATE)
    assert len(want) == 250 and want.startswith(f"[ZD#{long}] word") and want.endswith("…")
    assert diffs[0].detail.endswith(f"want {want!r}")  # the README's cut: in the subject
    assert short not in {d.ticket_id for d in diffs}


# -- with routes ---------------------------------------------------------------------------


ROUTES = [
    {"name": "billing", "match": {"tags_any": ["Billing"]}, "tasklist_name": "Other",
     "priority": True, "due_date": True, "tags": True,
     "description_template": "{subject} for {requester_name} <{requester_email}>"},
    {"name": "rest", "match": {"tags_none": "internal"}},
]


def routed(world: World, **overrides) -> list[tuple[int | None, str]]:
    settings = dict(routes=ROUTES, project_id=world.project, tasklist_id=world.tasklist,
                    tasklist_name="Zendesk", title_template=TEMPLATE, on_unmatch="keep",
                    mappings=world.mappings, zendesk_url=ZD_URL)
    settings.update(overrides)
    return [(d.ticket_id, d.kind) for d in check_routed(world.zd, world.tw, **settings)]


@pytest.fixture
def project(world: World) -> World:
    world.project = world.tw.tasklists()[0]["projectId"]  # type: ignore[attr-defined]
    return world


def test_routed_a_correct_state_and_each_field_it_carries(project: World) -> None:
    w = project
    tid = w.zd.create_ticket("Refund", w.customer, w.customer, w.mapped_agent, "open",
                             ["billing"], priority="urgent", type="task",
                             due_at="2026-03-04T23:30:00Z")
    want = consistency.description(w.zd.ticket(tid), ROUTES[0]["description_template"],
                                   consistency.Names("Dan", "dan@example.com"), ZD_URL)
    assert want == f"Zendesk ticket: {ZD_URL}/agent/tickets/{tid}\n\nRefund for Dan " \
                   "<dan@example.com>"
    task = w.tw.create_task(w.tasklist, f"[ZD-{tid}] Refund", want, (w.alice,))
    assert routed(w) == [(tid, "wrong_list"), (tid, "wrong_priority"),
                         (tid, "wrong_due_date"), (tid, "wrong_tags")]
    session = session_for(w.tw)  # priority, due date, tags: set as zdsync would
    tag = w.tw.add_tag("billing")
    answer = session.patch(f"https://tw.example/projects/api/v3/tasks/{task}.json",
                           auth=(w.tw.api_token, "X"), timeout=5,
                           json={"task": {"priority": "high", "dueAt": "2026-03-04",
                                          "tagIds": [tag], "tasklistId": w.other_list}})
    assert answer.status_code == 200, answer.text
    assert routed(w) == []
    w.tw.update_task(task, description=want + " (edited)")
    assert routed(w) == [(tid, "wrong_description")]


def test_routed_tickets_no_route_wants_follow_on_unmatch(project: World) -> None:
    w = project
    tid = w.zd.create_ticket("Internal", w.customer, w.customer, w.mapped_agent, "open",
                             ["internal"])
    task = w.task(tid, "whatever it is titled", ())
    assert routed(w, on_unmatch="keep") == []
    assert routed(w, on_unmatch="Complete") == [(tid, "wrong_completion")]
    assert routed(w, on_unmatch="delete") == [(tid, "unexpected")]
    w.tw.complete_task(task)
    assert routed(w, on_unmatch="complete") == []


def test_route_conditions_compare_in_any_case_and_all_must_hold() -> None:
    ticket = {"id": 1, "tags": ["vip", "billing"], "brand_id": 7, "group_id": None,
              "via": {"channel": "Email"}, "priority": "high", "type": None}
    matches = consistency.route_matches
    assert matches({"name": "all"}, ticket)
    assert matches({"match": {"tags_all": ["VIP", "billing"], "brand_id": [7, 8],
                              "via": "email"}}, ticket)
    assert not matches({"match": {"tags_any": "billing", "brand_id": 8}}, ticket)
    assert not matches({"match": {"group_id": 1}}, ticket)  # no group: never an id match
    assert not matches({"match": {"type": "task"}}, ticket)
    assert consistency.due_date({"type": "task", "due_at": "2026-03-04T23:30:00Z"}) \
        == "2026-03-04"
    assert consistency.due_date({"type": "question", "due_at": "2026-03-04T23:30:00Z"}) == ""
