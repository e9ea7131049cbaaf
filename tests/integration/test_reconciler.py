"""The reconciler driven directly, one ticket at a time: ``Reconciler.reconcile(prior,
ticket, ctx, observed=…)`` against real Redis and the simulators in process on a frozen
clock. Each test checks the ``Outcome`` (the record, counts, history, error, whether it
was stored) and what Teamwork holds afterwards: every action kind, a record in flight
observed before it is planned, a 404 confirmed before a task counts as gone, a create into
a missing list, what the audit hands over (``observed``), dry runs, doubt and suspects.
(Whole passes are in test_passes.py and, through the command line, test_cli_sync.py.)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.world import World, make_inproc_world
from zdsync.reconciler import PassStopped
from zdsync.rules import Applied, Ticket

pytestmark = pytest.mark.usefixtures("teamwork_variants")  # every Teamwork variant


@pytest.fixture
def world(redis_client) -> World:
    return make_inproc_world(redis_client.connection_pool.connection_kwargs["port"], "rc:")


def bound(world: World, **settings: Any) -> tuple[Any, Any]:
    """A reconciler working under a held lease and its fence, and the context of its
    pass, set up as a pass sets them up before its first ticket (``Pass._begin``). The
    store has run before (it has an identity), so no rebuild comes first."""
    store = world.store()
    store.r.setnx(store.key("identity"), "an installation that has run before")
    p = world.run_pass(**settings)
    p._begin()
    world.teamwork.log.clear()  # the check of the project and list, once per process
    return p.reconciler, p.worker.ctx


def snapshot(world: World, ticket_id: int) -> Ticket:
    """The ticket as Zendesk shows it now."""
    return Ticket.from_api(world.zendesk.ticket(ticket_id))


def writes(world: World) -> list[str]:
    return [f"{e.method} {e.path}" for e in world.teamwork.log.entries() if e.method != "GET"]


def reads(world: World) -> list[str]:
    return [e.path for e in world.teamwork.log.entries() if e.method == "GET"]


def person(world: World, agent: int) -> int:
    return world.mappings[agent]


def created(world: World, subject: str = "Printer", status: str = "open") -> tuple[Any, ...]:
    """A ticket of Ada's whose task exists: (reconciler, ctx, ticket id, record, task id)."""
    rec, ctx = bound(world)
    t = world.ticket(subject, assignee=world.agents[0], status=status)
    out = rec.reconcile(None, snapshot(world, t), ctx)
    assert out.error is None and out.stored, out
    world.teamwork.log.clear()
    return rec, ctx, t, out.record, out.record.applied.task_id


# -- each action ---------------------------------------------------------------------------


def test_a_new_ticket_gets_its_task_and_its_record_is_stored(world):
    rec, ctx = bound(world)
    ada = world.agents[0]
    t = world.ticket("Printer", assignee=ada, status="open")
    out = rec.reconcile(None, snapshot(world, t), ctx)
    [task] = world.tasks_for(t)
    assert (out.error, out.stored, out.counts) == (None, True, {"created": 1})
    assert out.history == [f"task {task['id']}: create '[ZD#{t}] Printer' for person "
                           f"{person(world, ada)}"]
    assert out.record.in_flight is None
    assert out.record.applied == replace(out.record.applied, task_id=task["id"],
                                         title=f"[ZD#{t}] Printer", assignee=person(world, ada),
                                         completed=False)
    assert world.store().record(t) == out.record
    assert [h["what"] for h in world.store().history(t)] == out.history
    assert task["name"] == f"[ZD#{t}] Printer" and task["status"] == "new"
    assert [a["id"] for a in task["assignees"]] == [person(world, ada)]
    assert f"{world.zendesk_url}/agent/tickets/{t}" in task["description"]
    assert writes(world) == [f"POST /projects/api/v3/tasklists/{world.tasklist}/tasks.json"]


def test_a_ticket_first_seen_solved_is_created_then_completed(world):
    rec, ctx = bound(world)
    t = world.ticket("Done", assignee=world.agents[0], status="solved")
    out = rec.reconcile(None, snapshot(world, t), ctx)
    [task] = world.tasks_for(t)
    assert out.counts == {"created": 1, "completed": 1} and out.record.applied.completed
    assert out.history[1:] == [f"task {task['id']}: complete"]
    assert task["status"] == "completed"
    assert writes(world) == [f"POST /projects/api/v3/tasklists/{world.tasklist}/tasks.json",
                             f"PUT /tasks/{task['id']}/complete.json"]


@pytest.mark.parametrize("end", ["closed", "deleted", "merged"])
def test_a_ticket_first_seen_closed_deleted_or_merged_gets_no_task(world, end):
    rec, ctx = bound(world)
    t = world.ticket("Gone", assignee=world.agents[0], status="solved")
    if end == "closed":
        world.zendesk.update_ticket(t, status="closed")
    elif end == "deleted":
        world.zendesk.delete_ticket(t)
    else:
        world.zendesk.merge(t, world.ticket("Main", assignee=world.agents[0], status="open"))
    out = rec.reconcile(None, snapshot(world, t), ctx)
    assert (out.error, out.counts, out.stored) == (None, {}, False)
    assert out.record.applied.task_id is None and out.record.ticket.status != "open"
    assert world.tasks_for(t) == [] and world.teamwork.log.entries() == []


def test_a_retitle_and_a_reassign_are_one_write(world):
    rec, ctx, t, prior, task = created(world)
    bob = world.agents[1]
    world.zendesk.update_ticket(t, subject="Printer, renamed", assignee_id=bob)
    out = rec.reconcile(prior, snapshot(world, t), ctx)
    assert (out.error, out.stored, out.counts) == (None, True, {"updated": 1})
    assert out.history == [f"task {task}: retitle to '[ZD#{t}] Printer, renamed' and "
                           f"reassign to person {person(world, bob)}"]
    assert (out.record.applied.title, out.record.applied.assignee) == (
        f"[ZD#{t}] Printer, renamed", person(world, bob))
    assert writes(world) == [f"PATCH /projects/api/v3/tasks/{task}.json"]
    held = world.teamwork.task(task)
    assert held["name"] == f"[ZD#{t}] Printer, renamed"
    assert [a["id"] for a in held["assignees"]] == [person(world, bob)]


def test_solve_reopen_and_close_complete_reopen_and_delete(world):
    rec, ctx, t, record, task = created(world)
    steps = [("solved", "complete", "completed", f"PUT /tasks/{task}/complete.json"),
             ("open", "reopen", "reopened", f"PUT /tasks/{task}/uncomplete.json"),
             ("solved", "complete", "completed", f"PUT /tasks/{task}/complete.json"),
             ("closed", "delete", "deleted", f"DELETE /projects/api/v3/tasks/{task}.json")]
    for status, action, counted, request in steps:
        world.teamwork.log.clear()
        world.zendesk.update_ticket(t, status=status)
        out = rec.reconcile(record, snapshot(world, t), ctx)
        assert (out.error, out.counts, out.history) == (None, {counted: 1},
                                                        [f"task {task}: {action}"]), status
        assert writes(world) == [request] and out.stored
        record = out.record
        assert world.store().record(t) == record
        assert world.teamwork.task(task)["status"] == counted
    assert record.applied == Applied() and world.tasks_for(t) == []


def test_a_change_zdsync_does_not_carry_writes_nothing(world):
    rec, ctx, t, prior, _ = created(world)
    world.zendesk.update_ticket(t, comment="any news?", priority="urgent")
    out = rec.reconcile(prior, snapshot(world, t), ctx)
    assert (out.error, out.counts, out.history, out.stored) == (None, {}, [], False)
    assert out.record.ticket.priority == "urgent"  # the newest snapshot, for the pass to keep
    assert out.record.applied == prior.applied
    assert world.teamwork.log.entries() == []


def test_an_older_snapshot_than_the_stored_one_is_skipped(world):
    rec, ctx, t, prior, task = created(world)
    old = snapshot(world, t)
    world.clock.advance(5)
    world.zendesk.update_ticket(t, subject="Newer")
    newer = rec.reconcile(prior, snapshot(world, t), ctx).record
    world.teamwork.log.clear()
    out = rec.reconcile(newer, old, ctx)
    assert out.counts == {"skipped": 1} and out.record is newer
    assert world.teamwork.log.entries() == []
    assert world.teamwork.task(task)["name"] == f"[ZD#{t}] Newer"


# -- observing Teamwork before planning ----------------------------------------------------


def test_a_record_in_flight_is_planned_from_the_task_it_reads(world):
    """The process died after its retitle landed and before it stored the record: the
    record (marked in flight) says the old title, Teamwork the new one. The task is read,
    not written again."""
    rec, ctx, t, prior, task = created(world)
    world.zendesk.update_ticket(t, subject="Renamed")
    world.teamwork.update_task(task, name=f"[ZD#{t}] Renamed")  # the write that landed
    out = rec.reconcile(replace(prior, in_flight="write"), snapshot(world, t), ctx)
    assert (out.error, out.counts) == (None, {})
    assert out.record.in_flight is None
    assert out.record.applied.title == f"[ZD#{t}] Renamed"
    assert reads(world) == [f"/projects/api/v3/tasks/{task}.json"] and writes(world) == []


def test_a_lost_create_is_found_and_adopted_not_made_twice(world):
    rec, ctx = bound(world)
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    world.teamwork.faults.lose_next_creates(1)  # committed, then the connection drops
    lost = rec.reconcile(None, snapshot(world, t), ctx)
    assert lost.counts == {"failed": 1} and lost.error and lost.stored
    assert lost.record.in_flight == "create" and lost.record.applied.task_id is None
    assert world.store().record(t) == lost.record  # the mark survives the failure
    [task] = world.tasks_for(t)  # it landed
    world.teamwork.log.clear()
    out = rec.reconcile(world.store().record(t), snapshot(world, t), ctx)
    assert (out.error, out.counts) == (None, {"adopted": 1})
    assert out.history == [f"task {task['id']}: adopted (found in Teamwork)"]
    assert out.record.applied.task_id == task["id"] and out.record.in_flight is None
    assert writes(world) == []
    assert world.teamwork.most_live_with_one_marker == 1


def test_copies_a_create_left_are_deleted_keeping_the_oldest(world):
    rec, ctx = bound(world)
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    world.teamwork.faults.lose_next_creates(1)
    lost = rec.reconcile(None, snapshot(world, t), ctx).record
    [first] = world.tasks_for(t)
    copy = world.teamwork.create_task(world.tasklist, first["name"], first["description"],
                                      [a["id"] for a in first["assignees"]])
    out = rec.reconcile(lost, snapshot(world, t), ctx)
    assert (out.error, out.counts) == (None, {"adopted": 1, "deleted": 1})
    assert f"deleted duplicate task {copy}" in out.history
    assert out.record.applied.task_id == first["id"]
    assert [x["id"] for x in world.tasks_for(t)] == [first["id"]]


def test_a_record_lost_with_redis_is_looked_for_in_doubt(world):
    """Redis may have lost the record of a task (a restart, a failover): in doubt, a
    ticket without a record searches Teamwork before it creates."""
    rec, ctx, t, _, task = created(world)
    out = rec.reconcile(None, snapshot(world, t), replace(ctx, doubt=lambda: True))
    assert (out.error, out.counts) == (None, {"adopted": 1})
    assert out.record.applied.task_id == task and writes(world) == []


def test_a_suspect_is_observed_although_its_record_looks_settled(world):
    """A leader that lost its lease may have written after this record was stored (its
    old title, here): reported as a suspect, the ticket's tasks are looked up by link (a
    late create would be a copy) and the one found is set right."""
    rec, ctx, t, prior, task = created(world)
    world.teamwork.update_task(task, name="what a deposed leader wrote")
    trusted = rec.reconcile(prior, snapshot(world, t), ctx)
    assert trusted.counts == {} and world.teamwork.log.entries() == []  # the record is trusted
    out = rec.reconcile(prior, snapshot(world, t), ctx, suspect=True)
    assert (out.error, out.counts) == (None, {"updated": 1})
    assert world.teamwork.task(task)["name"] == f"[ZD#{t}] Printer"
    assert reads(world)[0] == f"/projects/api/v3/tasklists/{world.tasklist}/tasks.json"


def test_what_the_audit_observed_replaces_what_was_remembered(world):
    rec, ctx, t, prior, task = created(world)
    world.teamwork.update_task(task, name="typo")
    observed = [rec.teamwork.get_task(task)]
    world.teamwork.log.clear()
    out = rec.reconcile(prior, snapshot(world, t), ctx, observed=observed, note="audit: typo")
    assert (out.error, out.counts) == (None, {"updated": 1})
    assert out.history == ["audit: typo", f"task {task}: retitle to '[ZD#{t}] Printer'"]
    assert writes(world) == [f"PATCH /projects/api/v3/tasks/{task}.json"]
    # Observed: nothing (deleted by hand): a new task, as the ticket still needs one.
    world.teamwork.delete_task(task)
    out = rec.reconcile(out.record, snapshot(world, t), ctx, observed=[])
    [new] = world.tasks_for(t)
    assert out.counts == {"created": 1} and out.record.applied.task_id == new["id"] != task


# -- failures ------------------------------------------------------------------------------


def test_a_task_gone_on_update_is_confirmed_then_created_again(world):
    rec, ctx, t, prior, task = created(world)
    world.teamwork.delete_task(task)  # by hand
    world.zendesk.update_ticket(t, subject="Renamed")
    out = rec.reconcile(prior, snapshot(world, t), ctx)
    [new] = world.tasks_for(t)
    assert (out.error, out.counts) == (None, {"created": 1})
    assert out.history[0] == f"task {task} was gone from Teamwork"
    assert out.record.applied.task_id == new["id"] != task
    assert new["name"] == f"[ZD#{t}] Renamed"
    assert [f"{e.method} {e.path}" for e in world.teamwork.log.entries()] == [
        f"PATCH /projects/api/v3/tasks/{task}.json",
        f"GET /projects/api/v3/tasks/{task}.json",  # the confirmation
        f"POST /projects/api/v3/tasklists/{world.tasklist}/tasks.json"]


def test_a_spurious_404_is_not_taken_for_a_deleted_task(world):
    rec, ctx, t, prior, task = created(world)
    world.zendesk.update_ticket(t, subject="Renamed")
    world.teamwork.faults.set(routes={"/projects/api/v3/tasks/{id}"})
    world.teamwork.faults.fail_next(1, status=404)  # the PATCH; the GET then finds it
    out = rec.reconcile(prior, snapshot(world, t), ctx)
    assert out.counts == {"failed": 1} and "answered 404 but still exists" in out.error
    assert out.stored and world.store().record(t).in_flight == "write"
    assert world.tasks_for(t)[0]["id"] == task and world.teamwork.log.count("POST") == 0


def test_a_create_into_a_missing_task_list_fails_visibly(world):
    missing = world.tasklist
    rec, ctx = bound(world)
    with world.teamwork.lock:  # deleted in Teamwork once zdsync had started
        world.teamwork._tasklists[missing]["status"] = "deleted"
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    out = rec.reconcile(None, snapshot(world, t), ctx)
    assert out.counts == {"failed": 1}
    assert f"task list {missing} not found" in out.error
    assert out.history == [f"failed: {out.error}"]
    assert out.stored and world.store().record(t).in_flight == "create"
    assert world.teamwork.tasks() == []


def test_refused_credentials_stop_the_pass_instead_of_failing_the_ticket(world):
    rec, ctx, t, prior, _ = created(world)
    world.zendesk.update_ticket(t, status="solved")
    world.teamwork.api_token = "rotated"  # the token zdsync holds is refused (401)
    with pytest.raises(PassStopped, match="401"):
        rec.reconcile(prior, snapshot(world, t), ctx)
    assert world.store().retry_depth() == 0


# -- planning only -------------------------------------------------------------------------


def test_a_dry_run_plans_and_writes_nothing(world):
    rec, ctx = bound(world)
    t = world.ticket("Printer", assignee=world.agents[0], status="solved")
    out = rec.reconcile(None, snapshot(world, t), replace(ctx, dry_run=True))
    assert out.planned == [f"create '[ZD#{t}] Printer' for person "
                           f"{person(world, world.agents[0])}", "complete"]
    assert out.counts == {"created": 1, "completed": 1}
    assert not out.stored and world.store().record(t) is None
    assert world.teamwork.log.entries() == []


def test_held_assignees_are_left_as_teamwork_has_them(world):
    """After a rebuild without mappings, tasks keep the assignees Teamwork holds."""
    rec, ctx, t, prior, task = created(world)
    world.zendesk.update_ticket(t, assignee_id=world.unmapped, subject="Renamed")
    out = rec.reconcile(prior, snapshot(world, t), replace(ctx, hold_assignees=True))
    assert out.history == [f"task {task}: retitle to '[ZD#{t}] Renamed'"]
    assert [a["id"] for a in world.teamwork.task(task)["assignees"]] == [
        person(world, world.agents[0])]


# -- whichever way Teamwork answers what nobody outside it knows (every variant) -----------


def test_a_solved_tickets_completed_task_is_edited_and_stays_completed(world):
    """Teamwork may refuse to edit a completed task (v1 does): then zdsync reopens it,
    edits it and completes it again, two writes more; where it accepts, one write."""
    rec, ctx, t, prior, task = created(world, status="solved")
    assert world.teamwork.task(task)["status"] == "completed"
    world.zendesk.update_ticket(t, subject="Renamed while solved")
    out = rec.reconcile(prior, snapshot(world, t), ctx)
    assert out.error is None and out.record.applied.completed
    shown = world.teamwork.task(task)
    assert (shown["name"], shown["status"]) == (f"[ZD#{t}] Renamed while solved", "completed")
    patch = f"PATCH /projects/api/v3/tasks/{task}.json"
    if world.teamwork.variants.completed_edits == "refused":
        assert writes(world) == [patch, f"PUT /tasks/{task}/uncomplete.json", patch,
                                 f"PUT /tasks/{task}/complete.json"]
    else:
        assert writes(world) == [patch]
    assert world.check() == []


def test_a_reopened_ticket_is_reopened_before_it_is_edited(world):
    """Reopen first, then edit: right whether or not a completed task may be edited, and
    no write more either way."""
    rec, ctx, t, prior, task = created(world, status="solved")
    world.zendesk.update_ticket(t, status="open", subject="Not fixed after all")
    out = rec.reconcile(prior, snapshot(world, t), ctx)
    assert out.error is None
    assert writes(world) == [f"PUT /tasks/{task}/uncomplete.json",
                             f"PATCH /projects/api/v3/tasks/{task}.json"]
    assert world.check() == []


def test_a_task_someone_completed_in_teamwork_is_completed_without_error(world):
    """zdsync's record says open, Teamwork says completed (someone clicked it): the
    complete may be refused as a repeat; read back, the task is as wanted."""
    rec, ctx, t, prior, task = created(world)
    world.teamwork.complete_task(task)
    world.zendesk.update_ticket(t, status="solved")
    out = rec.reconcile(prior, snapshot(world, t), ctx)
    assert (out.error, out.counts) == (None, {"completed": 1})
    assert world.teamwork.task(task)["status"] == "completed" and world.check() == []


def test_a_task_deleted_in_teamwork_is_made_again_when_its_ticket_changes(world):
    """An update of a deleted task answers 404, or 200 with the deleted task: either way
    the task is confirmed gone and made again, once."""
    rec, ctx, t, prior, task = created(world)
    world.teamwork.delete_task(task)
    world.zendesk.update_ticket(t, subject="Renamed")
    out = rec.reconcile(prior, snapshot(world, t), ctx)
    assert out.error is None and out.counts == {"created": 1}
    [made] = world.tasks_for(t)
    assert made["id"] != task and out.record.applied.task_id == made["id"]
    assert world.check() == [] and world.teamwork.most_live_with_one_marker == 1


def test_a_tag_made_in_teamwork_after_zdsync_read_the_tags_is_used(world, tmp_path):
    """Creating a tag whose name exists answers 200 with that tag, or 409: either way
    the ticket's task gets the one tag of that name."""
    world.use_routes(tmp_path / "r.toml", '[[route]]\nname = "all"\ntags = true\n')
    rec, ctx = bound(world)
    first = world.ticket("First", assignee=world.agents[0], status="open", tags=["vip"])
    assert rec.reconcile(None, snapshot(world, first), ctx).error is None  # tags read
    made = world.teamwork.add_tag("billing")  # by someone, after zdsync read the tags
    t = world.ticket("Second", assignee=world.agents[0], status="open", tags=["billing"])
    out = rec.reconcile(None, snapshot(world, t), ctx)
    assert out.error is None
    assert world.teamwork.task(out.record.applied.task_id)["tags"] == [
        {"id": made, "type": "tags"}]
    assert [x["name"] for x in world.teamwork.tags()] == ["vip", "billing"]


def test_an_edit_refused_for_another_reason_leaves_a_completed_task_completed(world):
    """Where an edit of a completed task is refused, zdsync reopens the task to edit it;
    refused again, the task is completed again before the error is reported."""
    rec, ctx, t, prior, task = created(world, status="solved")
    world.zendesk.update_ticket(t, subject="Renamed while solved")
    world.teamwork.faults.routes = {"/projects/api/v3/tasks/{id}"}
    world.teamwork.faults.fail_next(2, status=400)  # the PATCH, and the one after a reopen
    out = rec.reconcile(prior, snapshot(world, t), ctx)
    assert out.error and "400" in out.error
    assert world.teamwork.task(task)["status"] == "completed"
    assert writes(world)[-1] == f"PUT /tasks/{task}/complete.json"
    world.teamwork.faults.reset()
    again = rec.reconcile(out.record, snapshot(world, t), ctx)  # observed, then retried
    assert again.error is None and world.check() == []
