"""Whole passes through ``zdsync sync --once``: real Redis, the real simulators in process
(reached by click's runner through ``tests.world.reachable``) on a frozen clock."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.world import World, edited_answers
from zdsync import defaults
from zdsync.cli import main
from zdsync.errors import ConfigError
from zdsync.rules import Record, Ticket
from zdsync.store import Store

CREATE = "POST /projects/api/v3/tasklists/{id}/tasks"
EXPORT = "/api/v2/incremental/tickets/cursor"


@pytest.fixture
def world(cli_world: World, monkeypatch) -> World:
    """Agents Ada and Bob mapped, Cy not; a store that has run before (no rebuild)."""
    monkeypatch.setattr(defaults, "HTTP_BACKOFF_BASE_SECONDS", 0.001)  # real sleeps here
    store = cli_world.store()
    store.r.set(store.key("identity"), "an installation that has run before")
    return cli_world


def sync(world: World, env: dict[str, str], *args: str):
    world.exportable()  # the export leaves out the last minute
    return CliRunner().invoke(main, ["sync", "--once", *args], env=env)


def assignees(task: dict) -> list[int]:
    return [a["id"] for a in task["assignees"]]


def writes(world: World) -> list[str]:
    return [f"{e.method} {e.path}" for e in world.teamwork.log.entries() if e.method != "GET"]


def every_task(world: World) -> list[dict]:
    """The task list's tasks, deleted ones included: every task ever created in it."""
    return [t for t in world.teamwork.tasks(include_deleted=True)
            if t["tasklistId"] == world.tasklist]


def test_full_lifecycle(env, world):
    ada, bob, cy = world.agents
    store = world.store()
    t = world.zendesk.create_ticket("Printer on fire", world.customer, submitter_id=bob)
    result = sync(world, env)
    assert result.exit_code == 0, result.output
    assert "tickets seen 1; tasks created 1" in result.output
    [task] = world.live_tasks()
    assert task["name"] == f"[ZD#{t}] Printer on fire"
    assert f"https://sim.zendesk.com/agent/tickets/{t}" in task["description"]
    assert assignees(task) == [world.mappings[bob]]  # unassigned: the agent who opened it

    world.zendesk.update_ticket(t, subject="Printer still on fire")
    assert sync(world, env).exit_code == 0
    assert world.live_tasks()[0]["name"] == f"[ZD#{t}] Printer still on fire"

    world.zendesk.update_ticket(t, assignee_id=ada, status="open")
    assert sync(world, env).exit_code == 0
    assert assignees(world.live_tasks()[0]) == [world.mappings[ada]]

    world.zendesk.update_ticket(t, assignee_id=cy)
    assert sync(world, env).exit_code == 0
    assert assignees(world.live_tasks()[0]) == []  # unmapped assignee: Anyone

    world.zendesk.update_ticket(t, status="solved")
    assert "completed 1" in sync(world, env).output
    assert world.live_tasks()[0]["status"] == "completed"

    world.zendesk.update_ticket(t, status="open")
    assert "reopened 1" in sync(world, env).output
    assert world.live_tasks()[0]["status"] == "reopened"

    world.zendesk.update_ticket(t, status="solved")  # Zendesk closes only solved tickets:
    world.zendesk.update_ticket(t, status="closed")  # the pass sees it closed
    assert "deleted 1" in sync(world, env).output
    assert world.live_tasks() == []
    assert len(every_task(world)) == 1  # one task ever created for this ticket
    assert store.record(t).applied.task_id is None
    history = [h["what"] for h in store.history(t)]
    assert any("delete" in h for h in history) and any("create" in h for h in history)


def test_second_pass_without_changes_writes_nothing(env, world):
    for n in range(1, 6):
        world.ticket(f"t{n}", assignee=world.agents[0], status="open")
    assert sync(world, env).exit_code == 0
    before = len(writes(world))
    result = sync(world, env)
    assert result.exit_code == 0 and "tickets seen 0" in result.output
    assert len(writes(world)) == before == 5


def test_replayed_export_is_harmless(env, world):
    store = world.store()
    world.ticket("a", assignee=world.agents[0], status="solved")
    assert sync(world, env).exit_code == 0
    store.r.delete(store.key("cursor"))  # the whole export again, as after a lost cursor
    assert sync(world, env).exit_code == 0
    [task] = world.live_tasks()
    assert writes(world) == [f"POST /projects/api/v3/tasklists/{world.tasklist}/tasks.json",
                             f"PUT /tasks/{task['id']}/complete.json"]


def test_lost_create_response_leaves_exactly_one_task(env, world):
    store = world.store()
    t = world.ticket("a", assignee=world.agents[0], status="open")
    world.teamwork.faults.lose_next_creates(1)  # committed, then the connection drops
    result = sync(world, env)
    assert result.exit_code == 1  # the ticket waits in the retry set
    assert "failed 1" in result.output
    assert len(world.live_tasks()) == 1  # the create landed although its response was lost
    assert store.record(t).in_flight == "create"
    assert store.cursor().cursor  # the page was handled: the ticket is queued, not lost

    store.retry_now([t])
    world.zendesk.update_ticket(t, status="solved")  # and it changes meanwhile
    result = sync(world, env)
    assert result.exit_code == 0, result.output
    [task] = world.live_tasks()
    assert task["status"] == "completed"
    assert len(every_task(world)) == 1
    assert store.record(t).applied.task_id == task["id"]
    assert store.record(t).in_flight is None
    assert store.retries() == []


def test_task_deleted_by_hand_is_recreated(env, world):
    store = world.store()
    t = world.ticket("a", assignee=world.agents[0], status="open")
    assert sync(world, env).exit_code == 0
    [old] = world.live_tasks()
    world.teamwork.delete_task(old["id"])  # somebody deleted it in Teamwork
    world.zendesk.update_ticket(t, subject="b")
    assert sync(world, env).exit_code == 0
    [task] = world.live_tasks()
    assert task["id"] != old["id"] and task["name"] == f"[ZD#{t}] b"
    assert store.record(t).applied.task_id == task["id"]


def test_teamwork_failure_affects_only_that_ticket(env, world):
    store = world.store()
    first = world.ticket("a", assignee=world.agents[0])
    second = world.ticket("b", assignee=world.agents[0])
    assert sync(world, env).exit_code == 0
    # The first ticket's complete answers 500 on every attempt, the second's succeeds.
    world.teamwork.faults.set(routes={"/tasks/{id}/complete"})
    world.teamwork.faults.fail_next(defaults.HTTP_MAX_ATTEMPTS, status=500)
    world.zendesk.update_ticket(first, status="solved")
    world.zendesk.update_ticket(second, status="solved")
    result = sync(world, env)
    assert result.exit_code == 1 and "completed 1" in result.output and "failed 1" in result.output
    assert [r.ticket_id for r in store.retries()] == [first]
    assert "500" in store.retries()[0].error
    assert world.tasks_for(second)[0]["status"] == "completed"
    assert world.tasks_for(first)[0]["status"] != "completed"


def malformed(ticket_id: int):
    """The export shows ``ticket_id`` with an assignee that is no id (Zendesk never
    would; the simulator refuses to hold one, so the answer is edited on its way)."""
    def edit(page: dict) -> dict:
        for ticket in page["tickets"]:
            if ticket["id"] == ticket_id:
                ticket["assignee_id"] = "not-a-number"
        return page
    return edit


def test_malformed_ticket_is_skipped_and_queued(env, world):
    store = world.store()
    world.ticket("ok", assignee=world.agents[0])
    bad = world.ticket("bad", assignee=world.agents[0])
    with edited_answers(world.zendesk, EXPORT, malformed(bad)):
        result = sync(world, env)
    assert result.exit_code == 1 and "skipped 1" in result.output
    assert len(world.live_tasks()) == 1
    assert store.due_retries(10**12) == [bad]  # re-read from Zendesk on retry
    world.zendesk.update_ticket(bad, assignee_id=world.agents[1])  # fixed in Zendesk
    store.retry_now([bad])
    assert sync(world, env).exit_code == 0
    assert len(world.live_tasks()) == 2 and store.retries() == []


def test_mapping_change_reassigns_open_tasks_without_reexport(env, world):
    cy = world.unmapped
    world.ticket("a", assignee=cy, status="open")
    closed = world.ticket("b", assignee=cy, status="solved")
    world.zendesk.update_ticket(closed, status="closed")
    assert sync(world, env).exit_code == 0
    [task] = world.live_tasks()  # the ticket first seen closed got none
    assert assignees(task) == []
    person = world.teamwork.add_person("Cy", "Agent", "cy@example.com")
    world.teamwork.add_to_project(world.project, person)
    exports = world.zendesk.log.count(route=EXPORT)
    result = CliRunner().invoke(main, ["users", "add", "--no-verify", str(cy), str(person)],
                                env=env)
    assert result.exit_code == 0
    assert sync(world, env).exit_code == 0
    assert assignees(world.live_tasks()[0]) == [person]
    assert world.zendesk.log.count(route=EXPORT) == exports + 1  # one export call, no re-export


def test_dry_run_writes_nothing(env, world):
    store = world.store()
    t = world.ticket("a", assignee=world.agents[0], status="solved")
    result = sync(world, env, "--dry-run")
    assert result.exit_code == 0
    assert (f"ticket {t}: create '[ZD#{t}] a' for person {world.mappings[world.agents[0]]}; "
            "complete") in result.output
    assert writes(world) == [] and store.cursor().cursor is None and store.record(t) is None


def test_second_pass_while_locked_exits_75(env, world):
    lock = world.store().lock()
    assert lock.acquire()
    try:
        result = sync(world, env)
    finally:
        lock.release()
    assert result.exit_code == 75
    assert "another zdsync process holds the lock" in result.output


def test_config_error_exits_2_before_any_network_call(env, world):
    result = sync(world, {**env, "TEAMWORK_PROJECT_ID": "x"})
    assert result.exit_code == 2 and "teamwork.project_id" in result.output
    assert len(world.zendesk.log) == 0 and len(world.teamwork.log) == 0


def test_tasklist_found_by_name_or_created(env, world):
    store = world.store()
    by_name = {k: v for k, v in env.items() if k != "TEAMWORK_TASKLIST_ID"}
    world.ticket("a", assignee=world.agents[0])
    assert sync(world, {**by_name, "TEAMWORK_TASKLIST_NAME": "New list"}).exit_code == 0
    [made] = [t["id"] for t in world.teamwork.tasklists() if t["name"] == "New list"]
    assert store.tasklist_id(world.project, "New list") == made
    assert [t["tasklistId"] for t in world.teamwork.tasks()] == [made]
    world.ticket("b", assignee=world.agents[0])
    assert sync(world, {**by_name, "TEAMWORK_TASKLIST_NAME": "New list"}).exit_code == 0
    assert world.teamwork.log.count("POST", path="/projects/*/tasklists.json") == 1  # remembered
    assert len(world.teamwork.tasks(tasklist_id=made)) == 2
    world.ticket("c", assignee=world.agents[0])  # the list the World made is found by name
    assert sync(world, by_name).exit_code == 0
    assert store.tasklist_id(world.project, "Zendesk") == world.tasklist
    assert len(world.live_tasks()) == 1
    assert world.teamwork.log.count("POST", path="/projects/*/tasklists.json") == 1


def test_secrets_never_reach_logs_or_output(env, world, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    world.zendesk.api_token = "zd-token-5f1e9c"
    world.teamwork.api_token = "tw-token-8a2d"
    world.ticket("a", assignee=world.agents[0])
    world.teamwork.faults.set(routes={CREATE})
    world.teamwork.faults.fail_next(1, status=400)
    result = sync(world, world.env())
    assert result.exit_code == 1 and "failed 1" in result.output
    assert world.teamwork.log.count("POST", status=400) == 1  # the create was refused
    for secret in ("zd-token-5f1e9c", "tw-token-8a2d"):
        assert secret not in caplog.text
        assert secret not in result.output


def test_a_project_or_list_that_is_not_there_is_a_config_error_at_start(env, world):
    """A 404 on the configured project or list, or a list of another project, names the
    setting before any work (exit 2); nothing is read from Zendesk, nothing written."""
    store = world.store()
    world.ticket("a", assignee=world.agents[0])
    missing = max(t["id"] for t in world.teamwork.tasklists()) + 1000
    other = world.teamwork.add_project("Other")
    by_name = {k: v for k, v in env.items() if k != "TEAMWORK_TASKLIST_ID"}
    for bad, named in (({**env, "TEAMWORK_TASKLIST_ID": str(missing)},
                        f"teamwork.tasklist_id {missing}: no such task list"),
                       ({**env, "TEAMWORK_PROJECT_ID": str(other + 1000)},
                        f"teamwork.project_id {other + 1000}: no such project"),
                       ({**by_name, "TEAMWORK_PROJECT_ID": str(other + 1000)},
                        f"teamwork.project_id {other + 1000}: no such project"),
                       ({**env, "TEAMWORK_PROJECT_ID": str(other)},
                        f"teamwork.tasklist_id {world.tasklist}: the task list belongs to "
                        f"project {world.project}, not to teamwork.project_id {other}")):
        result = sync(world, bad)
        assert result.exit_code == 2, result.output
        assert named in result.stderr
        result = CliRunner().invoke(main, ["sync", "--dry-run"], env=bad)
        assert result.exit_code == 2 and named in result.stderr
    assert writes(world) == [] and store.record(1) is None
    assert world.zendesk.log.count(route=EXPORT) == 0
    result = CliRunner().invoke(main, ["users", "add", str(world.agents[0]), "9"],
                                env={**env, "TEAMWORK_PROJECT_ID": str(other + 1000)})
    assert result.exit_code == 2 and "teamwork.project_id" in result.stderr


def test_a_daemon_pass_names_the_project_that_is_not_there(env, world):
    world.ticket("a", assignee=world.agents[0])
    world.exportable()
    p = world.run_pass(TEAMWORK_PROJECT_ID="999999")
    summary = p.run()
    assert summary.error.startswith("teamwork.project_id 999999: no such project")
    assert writes(world) == [] and world.zendesk.log.count(route=EXPORT) == 0
    # The next passes of the process (webhook drains: every second) do not ask again at once.
    asked = len(world.teamwork.log)
    again = p.reconciler.lists
    for _ in range(3):
        with pytest.raises(ConfigError, match=r"teamwork\.project_id 999999"):
            again.verify()
    assert len(world.teamwork.log) == asked


def test_a_404_task_list_found_by_name_is_looked_up_again(env, world):
    store = world.store()
    by_name = {k: v for k, v in env.items() if k != "TEAMWORK_TASKLIST_ID"}
    gone = max(t["id"] for t in world.teamwork.tasklists()) + 1000
    store.set_tasklist_id(world.project, "Zendesk", gone)  # cached, but deleted since
    t = world.ticket("a", assignee=world.agents[0])
    assert sync(world, by_name).exit_code == 1
    assert world.teamwork.log.count("POST", path=f"/projects/api/v3/tasklists/{gone}/tasks.json",
                                    status=404) == 1
    assert store.tasklist_id(world.project, "Zendesk") is None  # forgotten
    store.retry_now([t])
    assert sync(world, by_name).exit_code == 0
    assert store.tasklist_id(world.project, "Zendesk") == world.tasklist
    assert len(world.live_tasks()) == 1


def test_retry_of_a_ticket_deleted_before_it_was_ever_stored_is_cleared(env, world):
    store = world.store()
    bad = world.ticket("bad", assignee=world.agents[0])
    with edited_answers(world.zendesk, EXPORT, malformed(bad)):
        assert sync(world, env).exit_code == 1
    assert store.due_retries(10**12) == [bad]
    world.zendesk.delete_ticket(bad)  # gone from show-ticket (404)
    store.retry_now([bad])
    assert sync(world, env).exit_code == 0
    assert store.retries() == [] and world.live_tasks() == []


def test_unexpected_response_shape_fails_only_that_ticket(env, world):
    store = world.store()
    first = world.ticket("a", assignee=world.agents[0])
    second = world.ticket("b", assignee=world.agents[0])
    seed_record = Record(Ticket.from_api(world.zendesk.ticket(first)), in_flight="create")
    store.r.hset(store.key("tickets"), str(first), json.dumps(seed_record.to_json()))
    with edited_answers(world.teamwork, "/projects/api/v3/tasklists/{id}/tasks",
                        lambda body: {"tasks": [{"name": "no id"}], "meta": {}}):
        result = sync(world, env)
    assert result.exit_code == 1 and "tasks created 1" in result.output
    assert [r.ticket_id for r in store.retries()] == [first]
    assert "KeyError" in store.retries()[0].error or "'id'" in store.retries()[0].error
    assert store.record(second).applied.task_id is not None
    assert store.cursor().cursor  # the page was committed: the first waits in the retry set


def test_mapping_change_survives_a_redis_failure_during_the_replan(env, world, monkeypatch):
    import redis as redis_lib

    store = world.store()
    world.ticket("a", assignee=world.unmapped, status="open")
    assert sync(world, env).exit_code == 0
    person = world.teamwork.add_person("Cy", "Agent", "cy@example.com")
    world.teamwork.add_to_project(world.project, person)
    store.set_mappings({world.unmapped: person})
    real_write = Store.write
    calls = {"n": 0}

    def failing_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the state check, the mark before the reassign, its record
            raise redis_lib.ConnectionError("Redis went away")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Store, "write", failing_once)
    result = sync(world, env)
    assert result.exit_code == 1 and "Redis failed during the pass" in result.output
    assert [a for a, _ in store.remapped()] == [world.unmapped]  # still to do
    assert sync(world, env).exit_code == 0
    assert assignees(world.live_tasks()[0]) == [person]
    assert store.remapped() == []


def test_failed_attempts_reach_the_ticket_history(env, world):
    """A failed attempt is part of a ticket's story: ``tickets show`` lists it, whether
    the ticket failed before its first write or after its task was created."""
    store = world.store()
    never = world.ticket("never created", assignee=world.agents[0])
    world.teamwork.faults.set(routes={CREATE}, error_rate=1.0, error_statuses=[500])
    assert sync(world, env).exit_code == 1
    assert store.history(never)[0]["what"].startswith("failed: teamwork: POST")
    world.teamwork.faults.set(error_rate=0.0)
    store.retry_now([never])
    assert sync(world, env).exit_code == 0  # the create went through the second time
    later = world.ticket("fails later", assignee=world.agents[0])
    assert sync(world, env).exit_code == 0
    world.teamwork.faults.set(routes={"/tasks/{id}/complete"})
    world.teamwork.faults.fail_next(defaults.HTTP_MAX_ATTEMPTS, status=500)
    world.zendesk.update_ticket(later, status="solved")
    assert sync(world, env).exit_code == 1
    history = [h["what"] for h in store.history(later)]
    assert history[0].startswith("failed: teamwork: PUT") and "500" in history[0]
    assert history[1].endswith(f"create '[ZD#{later}] fails later' for person "
                               f"{world.mappings[world.agents[0]]}")
    shown = CliRunner().invoke(main, ["tickets", "show", str(later)], env=env)
    assert f"history ({len(history)}, newest first):" in shown.stdout
    assert "failed: teamwork: PUT" in shown.stdout


def test_an_unreachable_teamwork_is_no_config_error_and_stops_no_ticket(env, world):
    """An outage says nothing about the project id: the pass works on as before outages
    were checked for (each ticket fails and waits in the retry set, counted), and the
    project is verified on a later pass."""
    store = world.store()
    t = world.ticket("a", assignee=world.agents[0])
    world.exportable()
    world.teamwork.faults.set(error_rate=1.0, error_statuses=(503,))
    p = world.run_pass()
    summary = p.run()
    assert not summary.error and summary.failed == 1
    assert store.due_retries(10**12) == [t]
    world.teamwork.faults.reset()
    store.retry_now([t])
    assert world.run_pass().run().created == 1
    assert len(world.live_tasks()) == 1
