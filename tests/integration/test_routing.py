"""Routes in whole passes: real Redis, the simulators in-process on a frozen clock.

Tickets go to their route's list, move when their route changes (one PATCH within a
project, the v1 move across projects, never a second task), follow ``sync.on_unmatch``
when no route wants them, carry priority, due date, tags and a description written only
when they differ, read the names their descriptions show in batches, and are found again
in every route's list by the rebuild and the lost-create search.
"""

from __future__ import annotations

import pytest

from tests.world import World, make_inproc_world

pytestmark = pytest.mark.usefixtures("teamwork_variants")  # every Teamwork variant

ROUTES = """
[[route]]
name = "billing"
match.tags_any = ["billing", "invoice"]
tasklist_name = "Billing"

[[route]]
name = "eu"
match.brand_id = 7
project_id = {eu_project}
tasklist_id = {eu_list}

[[route]]
name = "rest"
"""


@pytest.fixture
def world(redis_client) -> World:
    return make_inproc_world(redis_client.connection_pool.connection_kwargs["port"], "r:")


@pytest.fixture
def routed(world, tmp_path) -> World:
    eu_project = world.teamwork.add_project("Europe")
    for person in world.mappings.values():  # assignees must be on the route's project
        world.teamwork.add_to_project(eu_project, person)
    world.eu_list = world.teamwork.add_tasklist(eu_project, "EU tickets")  # type: ignore[attr-defined]
    world.use_routes(tmp_path / "routes.toml",
                     ROUTES.format(eu_project=eu_project, eu_list=world.eu_list))
    return world


def sync(world: World):
    world.exportable()
    summary = world.run_pass().run()
    assert summary.error is None and summary.failed == 0, summary.line()
    return summary


def writes(world: World) -> list[str]:
    return [f"{e.method} {e.route}" for e in world.teamwork.log.entries() if e.method != "GET"]


def list_named(world: World, name: str) -> int:
    return next(t["id"] for t in world.teamwork.tasklists() if t["name"] == name)


def test_each_ticket_goes_to_its_route_and_moves_when_the_route_changes(routed):
    w = routed
    plain = w.ticket("Printer", assignee=w.agents[0], status="open")
    billing = w.ticket("Refund", assignee=w.agents[0], status="open", tags=["invoice"])
    europe = w.ticket("Bonjour", assignee=w.agents[1], status="open", brand_id=7)
    sync(w)
    assert w.check_routed() == []
    billing_list = list_named(w, "Billing")  # looked up, created because missing
    assert [t["tasklistId"] for t in w.tasks_for(billing, everywhere=True)] == [billing_list]
    assert w.tasks_for(europe, everywhere=True)[0]["tasklistId"] == w.eu_list

    w.teamwork.log.clear()
    w.zendesk.update_ticket(plain, tags=["billing"])  # -> billing, same project
    w.zendesk.update_ticket(billing, tags=[], brand_id=7)  # -> eu, another project
    w.zendesk.update_ticket(europe, brand_id=1, subject="Bonjour encore")  # -> rest, retitled
    summary = sync(w)
    assert sorted(writes(w)) == sorted([
        "PATCH /projects/api/v3/tasks/{id}",  # plain: tasklistId only
        "PUT /tasks/{id}/move",  # billing: the v1 move, nothing else changed
        "PUT /tasks/{id}/move", "PATCH /projects/api/v3/tasks/{id}",  # europe: move, retitle
    ])
    assert summary.updated == 4 and summary.created == 0
    assert w.check_routed() == []
    assert w.teamwork.most_live_with_one_marker == 1  # never two live tasks
    record = w.store().record(billing)
    assert (record.route, record.applied.tasklist_id) == ("eu", w.eu_list)


def test_priority_due_date_and_tags_are_written_with_the_create_then_only_when_they_differ(
        world, tmp_path):
    w = world
    w.use_routes(tmp_path / "r.toml", '[[route]]\nname = "all"\npriority = true\n'
                 'due_date = true\ntags = true\n')
    t = w.ticket("Call back", assignee=w.agents[0], status="open", type="task",
                 priority="urgent", due_at="2026-12-01T15:00:00Z", tags=["vip", "phone"])
    sync(w)
    assert writes(w) == ["POST POST /projects/api/v3/tags", "POST POST /projects/api/v3/tags",
                         "POST POST /projects/api/v3/tasklists/{id}/tasks"]
    [task] = w.tasks_for(t)
    assert (task["priority"], task["dueDate"]) == ("high", "2026-12-01")
    assert w.teamwork.tag_names(task["id"]) == ["phone", "vip"]

    w.teamwork.log.clear()
    w.zendesk.update_ticket(t, comment="no change a task shows")
    sync(w)
    assert writes(w) == []
    w.zendesk.update_ticket(t, priority="normal", tags=["vip"], type="question")
    sync(w)
    assert writes(w) == ["PATCH /projects/api/v3/tasks/{id}"]  # one update, no tag made
    [task] = w.tasks_for(t)
    assert (task["priority"], task["dueDate"]) == ("medium", None)  # not a task: no due date
    assert w.teamwork.tag_names(task["id"]) == ["vip"]
    assert w.check_routed() == []


def test_descriptions_show_names_read_in_batches_not_per_ticket(world, tmp_path):
    w = world
    w.use_routes(tmp_path / "r.toml", '[[route]]\nname = "all"\ndescription_template = '
                 '"{subject}\\nFrom {requester_name} <{requester_email}> ({group})"\n')
    groups = [w.zendesk.add_group("Billing"), w.zendesk.add_group("Tech")]
    people = [w.zendesk.add_user(f"Customer {n}", f"c{n}@example.com") for n in range(3)]
    tickets = [w.zendesk.create_ticket(f"T{n}", people[n % 3], w.agents[0], w.agents[0],
                                       "open", group_id=groups[n % 2]) for n in range(30)]
    sync(w)
    assert w.zendesk.log.count("GET", path="/api/v2/users/show_many*") == 1
    assert w.zendesk.log.count("GET", path="/api/v2/groups*") == 1
    [task] = w.tasks_for(tickets[4])
    assert task["description"] == (f"Zendesk ticket: {w.zendesk_url}/agent/tickets/"
                                   f"{tickets[4]}\n\nT4\nFrom Customer 1 <c1@example.com> "
                                   "(Billing)")
    assert w.check_routed() == []
    w.zendesk.update_ticket(tickets[4], group_id=groups[1])  # the description changes
    w.teamwork.log.clear()
    sync(w)
    assert writes(w) == ["PATCH /projects/api/v3/tasks/{id}"]
    assert w.check_routed() == []


def test_names_that_cannot_be_read_fail_the_ticket_into_the_retry_set(world, tmp_path):
    w = world
    w.use_routes(tmp_path / "r.toml", '[[route]]\nname = "all"\n'
                 'description_template = "From {requester_name}"\n')
    tickets = [w.ticket(f"T{n}", assignee=w.agents[0], status="open") for n in range(3)]
    w.zendesk.faults.set(routes={"/api/v2/users/show_many"}, error_rate=1.0)
    w.exportable()
    summary = w.run_pass().run()
    assert summary.failed == 3 and summary.created == 0
    # one batch read was tried (with its retries), not one per ticket
    assert w.zendesk.log.count("GET", path="/api/v2/users/show_many*") <= 5
    assert {e.ticket_id for e in w.store().retries()} == set(tickets)
    w.zendesk.faults.reset()
    store = w.store()
    store.retry_now(tickets)
    sync(w)
    assert store.retry_depth() == 0 and w.check_routed() == []


@pytest.mark.parametrize("policy", ["keep", "complete", "delete"])
def test_a_ticket_no_route_wants_follows_on_unmatch_then_is_routed_again(world, tmp_path,
                                                                        policy):
    w = world
    w.use_routes(tmp_path / "r.toml", '[[route]]\nname = "billing"\n'
                 'match.tags_any = "billing"\n', SYNC_ON_UNMATCH=policy)
    t = w.ticket("Refund", assignee=w.agents[0], status="open", tags=["billing"])
    never = w.ticket("Not billing", assignee=w.agents[0], status="open")
    sync(w)
    [task] = w.tasks_for(t)
    assert w.tasks_for(never) == []  # a ticket no route wants gets no task
    w.teamwork.log.clear()
    w.zendesk.update_ticket(t, tags=[])
    sync(w)
    expected = {"keep": [], "complete": ["PUT /tasks/{id}/complete"],
                "delete": ["DELETE /projects/api/v3/tasks/{id}"]}[policy]
    assert writes(w) == expected
    assert w.store().record(t).route is None
    w.teamwork.log.clear()
    w.zendesk.update_ticket(t, subject="Refund, renamed", status="pending")
    w.zendesk.update_ticket(never, subject="Still not billing")
    sync(w)
    assert writes(w) == []  # later changes write nothing
    w.zendesk.update_ticket(t, tags=["billing"])  # routed again
    sync(w)
    assert w.check_routed() == []
    [again] = w.tasks_for(t)
    assert (again["id"] == task["id"]) is (policy != "delete")
    assert again["name"].endswith("Refund, renamed")


def test_tasks_made_before_routes_move_when_routes_come(world, tmp_path):
    w = world
    t = w.ticket("Refund", assignee=w.agents[0], status="open")
    sync(w)  # no routes: today's behaviour
    [task] = w.tasks_for(t)
    w.use_routes(tmp_path / "r.toml", '[[route]]\nname = "billing"\n'
                 'match.tags_any = "billing"\ntasklist_name = "Billing"\n[[route]]\n'
                 'name = "rest"\n')
    w.teamwork.log.clear()
    w.zendesk.update_ticket(t, comment="nothing zdsync writes")
    sync(w)
    assert writes(w) == []  # routes alone rewrite nothing
    w.zendesk.update_ticket(t, tags=["billing"])
    sync(w)
    assert writes(w) == ["POST POST /projects/{id}/tasklists",
                         "PATCH /projects/api/v3/tasks/{id}"]
    assert w.teamwork.task(task["id"])["tasklistId"] == list_named(w, "Billing")
    assert w.check_routed() == []


def test_a_lost_create_is_found_in_its_old_list_after_the_route_changed(routed):
    w = routed
    t = w.ticket("Refund", assignee=w.agents[0], status="open")
    w.teamwork.faults.lose_next_creates(1)
    w.exportable()
    assert w.run_pass().run().failed == 1
    assert w.store().record(t).in_flight == "create"
    w.zendesk.update_ticket(t, brand_id=7)  # its route is now eu, in another project
    w.store().retry_now([t])
    sync(w)
    assert w.teamwork.log.count("POST", path="/projects/api/v3/tasklists/*/tasks.json") == 1
    assert w.teamwork.most_live_with_one_marker == 1
    assert w.check_routed() == []


def test_the_rebuild_reads_every_routes_list(routed):
    w = routed
    tickets = [w.ticket("Printer", assignee=w.agents[0], status="open"),
               w.ticket("Refund", assignee=w.agents[0], status="open", tags=["billing"]),
               w.ticket("Bonjour", assignee=w.agents[0], status="open", brand_id=7)]
    sync(w)
    tasks = {t: w.tasks_for(t, everywhere=True)[0]["id"] for t in tickets}
    w.store().r.flushall()  # Redis came back empty
    w.store().set_mappings(w.mappings)  # (as from a [users] file)
    w.zendesk.update_ticket(tickets[2], subject="Bonjour, renamed")
    summary = sync(w)
    assert summary.rebuilt and summary.created == 0
    assert {t: w.store().record(t).applied.task_id for t in tickets} == tasks
    assert w.check_routed() == []


def _lost_create(w: World, t: int) -> None:
    """The create's answer is lost: the task is adopted by the search for its link."""
    w.teamwork.faults.lose_next_creates(1)
    w.exportable()
    assert w.run_pass().run().failed == 1
    w.store().retry_now([t])
    sync(w)
    assert "adopted" in " ".join(h["what"] for h in w.store().history(t))


def _redis_lost(w: World, t: int) -> None:
    """Redis comes back empty: the rebuild reads the task back from Teamwork."""
    sync(w)
    w.store().r.flushall()
    w.store().set_mappings(w.mappings)


@pytest.mark.parametrize("known_by", [_lost_create, _redis_lost], ids=["adopted", "rebuilt"])
@pytest.mark.parametrize("move", ["within the project", "from another project"])
def test_a_task_known_only_by_observing_it_moves_when_its_route_changes(routed, known_by,
                                                                        move):
    """Issue 17, measured: Teamwork's task names its list only as ``tasklist: {id, type}``
    and carries no ``projectId`` (the SDK's Task). A task zdsync knows by reading it back
    (adopted after a lost create answer, or rebuilt after Redis lost its writes) never
    moved when its ticket changed route: read without a list, it was taken to be in
    ``[teamwork]``'s list, where the ticket's new route wanted it."""
    w = routed
    within = move == "within the project"
    w.teamwork.add_tasklist(w.project, "Billing")  # the lost create is the task's
    t = w.ticket("Printer", assignee=w.agents[0], status="open",
                 **({"tags": ["billing"]} if within else {"brand_id": 7}))
    known_by(w, t)
    [task] = w.tasks_for(t, everywhere=True)
    assert task["tasklistId"] == (list_named(w, "Billing") if within else w.eu_list)
    w.zendesk.update_ticket(t, **({"tags": []} if within else {"brand_id": 1}))  # -> rest
    sync(w)
    assert w.store().record(t).applied.task_id == task["id"]
    assert w.teamwork.task(task["id"])["tasklistId"] == w.tasklist
    assert w.check_routed() == []
    assert w.teamwork.most_live_with_one_marker == 1
