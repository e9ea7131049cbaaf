"""Whole passes through ``zdsync sync --once``: real Redis, HTTP fakes on requests-mock."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.fakes import TW, FakeTeamwork, FakeZendesk
from zdsync.cli import main
from zdsync.rules import Record, Ticket
from zdsync.store import Store

AGENT_A, AGENT_B, UNMAPPED = 100, 101, 102
PERSON_A, PERSON_B = 7, 8


@pytest.fixture
def world(requests_mock, redis_client):
    zd, tw = FakeZendesk(requests_mock), FakeTeamwork(requests_mock)
    store = Store(redis_client, "t:")
    store.set_mappings({AGENT_A: PERSON_A, AGENT_B: PERSON_B})
    redis_client.set("t:identity", "an installation that has run before")
    return zd, tw, store


def sync(env, *args):
    result = CliRunner().invoke(main, ["sync", "--once", *args], env=env)
    return result


def assignees(task):
    return [a["id"] for a in task["assignees"]]


def test_full_lifecycle(env, world):
    zd, tw, store = world
    zd.put(1, subject="Printer on fire", submitter_id=AGENT_B, assignee_id=None, status="new")
    result = sync(env)
    assert result.exit_code == 0, result.output
    assert "tickets seen 1; tasks created 1" in result.output
    [task] = tw.live()
    assert task["name"] == "[ZD#1] Printer on fire"
    assert "https://zd.test/agent/tickets/1" in task["description"]
    assert assignees(task) == [PERSON_B]  # unassigned: the agent who opened it

    zd.put(1, subject="Printer still on fire")
    assert sync(env).exit_code == 0
    assert tw.live()[0]["name"] == "[ZD#1] Printer still on fire"

    zd.put(1, assignee_id=AGENT_A, status="open")
    assert sync(env).exit_code == 0
    assert assignees(tw.live()[0]) == [PERSON_A]

    zd.put(1, assignee_id=UNMAPPED)
    assert sync(env).exit_code == 0
    assert assignees(tw.live()[0]) == []  # unmapped assignee: Anyone

    zd.put(1, status="solved")
    assert "completed 1" in sync(env).output
    assert tw.live()[0]["status"] == "completed"

    zd.put(1, status="open")
    assert "reopened 1" in sync(env).output
    assert tw.live()[0]["status"] == "reopened"

    zd.put(1, status="closed")
    assert "deleted 1" in sync(env).output
    assert tw.live() == []
    assert len(tw.tasks) == 1  # one task ever created for this ticket
    assert store.record(1).applied.task_id is None
    history = [h["what"] for h in store.history(1)]
    assert any("delete" in h for h in history) and any("create" in h for h in history)


def test_second_pass_without_changes_writes_nothing(env, world):
    zd, tw, _ = world
    for tid in range(1, 6):
        zd.put(tid, subject=f"t{tid}", assignee_id=AGENT_A, status="open")
    assert sync(env).exit_code == 0
    writes = len(tw.writes)
    result = sync(env)
    assert result.exit_code == 0 and "tickets seen 0" in result.output
    assert len(tw.writes) == writes == 5


def test_replayed_export_is_harmless(env, world):
    zd, tw, store = world
    zd.put(1, subject="a", assignee_id=AGENT_A, status="solved")
    assert sync(env).exit_code == 0
    store.r.delete("t:cursor")  # the whole export again, as after a lost cursor
    assert sync(env).exit_code == 0
    assert len(tw.live()) == 1 and tw.writes == ["create 500", "complete 500"]


def test_lost_create_response_leaves_exactly_one_task(env, world):
    zd, tw, store = world
    zd.put(1, subject="a", assignee_id=AGENT_A, status="open")
    tw.lose_next_create = True
    result = sync(env)
    assert result.exit_code == 1  # the ticket waits in the retry set
    assert "failed 1" in result.output
    assert len(tw.live()) == 1  # the create landed although its response was lost
    assert store.record(1).in_flight == "create"
    assert store.cursor().cursor  # the page was handled: the ticket is queued, not lost

    store.retry_now([1])
    zd.put(1, status="solved")  # and it changes meanwhile
    result = sync(env)
    assert result.exit_code == 0, result.output
    [task] = tw.live()
    assert task["status"] == "completed"
    assert len(tw.tasks) == 1
    assert store.record(1).applied.task_id == task["id"]
    assert store.record(1).in_flight is None
    assert store.retries() == []


def test_task_deleted_by_hand_is_recreated(env, world):
    zd, tw, store = world
    zd.put(1, subject="a", assignee_id=AGENT_A, status="open")
    assert sync(env).exit_code == 0
    tw.tasks[500]["status"] = "deleted"  # somebody deleted it in Teamwork
    zd.put(1, subject="b")
    assert sync(env).exit_code == 0
    [task] = tw.live()
    assert task["id"] != 500 and task["name"] == "[ZD#1] b"
    assert store.record(1).applied.task_id == task["id"]


def test_teamwork_failure_affects_only_that_ticket(env, world, requests_mock, monkeypatch):
    monkeypatch.setattr("zdsync.defaults.HTTP_BACKOFF_BASE_SECONDS", 0.001)
    zd, tw, store = world
    zd.put(1, subject="a", assignee_id=AGENT_A)
    zd.put(2, subject="b", assignee_id=AGENT_A)
    assert sync(env).exit_code == 0
    requests_mock.put(TW + "/tasks/500/complete.json", status_code=500)
    zd.put(1, status="solved")
    zd.put(2, status="solved")
    result = sync(env)
    assert result.exit_code == 1 and "completed 1" in result.output and "failed 1" in result.output
    assert [r.ticket_id for r in store.retries()] == [1]
    assert "500" in store.retries()[0].error
    assert tw.tasks[501]["status"] == "completed"


def test_malformed_ticket_is_skipped_and_queued(env, world):
    zd, tw, store = world
    zd.put(1, subject="ok", assignee_id=AGENT_A)
    zd.put(2, subject="bad", assignee_id="not-a-number")
    result = sync(env)
    assert result.exit_code == 1 and "skipped 1" in result.output
    assert len(tw.live()) == 1
    assert store.due_retries(10**12) == [2]  # re-read from Zendesk on retry
    zd.put(2, assignee_id=AGENT_B)  # fixed in Zendesk
    store.retry_now([2])
    assert sync(env).exit_code == 0
    assert len(tw.live()) == 2 and store.retries() == []


def test_mapping_change_reassigns_open_tasks_without_reexport(env, world):
    zd, tw, _ = world
    zd.put(1, subject="a", assignee_id=UNMAPPED, status="open")
    zd.put(2, subject="b", assignee_id=UNMAPPED, status="closed")
    assert sync(env).exit_code == 0
    assert assignees(tw.live()[0]) == []
    exports = zd.export_calls
    result = CliRunner().invoke(main, ["users", "add", "--no-verify", str(UNMAPPED), "9"],
                                env=env)
    assert result.exit_code == 0
    assert sync(env).exit_code == 0
    assert assignees(tw.live()[0]) == [9]
    assert zd.export_calls == exports + 1  # one ordinary export call, no re-export


def test_dry_run_writes_nothing(env, world, redis_client):
    zd, tw, store = world
    zd.put(1, subject="a", assignee_id=AGENT_A, status="solved")
    result = sync(env, "--dry-run")
    assert result.exit_code == 0
    assert "ticket 1: create '[ZD#1] a' for person 7; complete" in result.output
    assert tw.writes == [] and store.cursor().cursor is None and store.record(1) is None


def test_second_pass_while_locked_exits_75(env, world):
    _, _, store = world
    lock = store.lock()
    assert lock.acquire()
    try:
        result = sync(env)
    finally:
        lock.release()
    assert result.exit_code == 75
    assert "another zdsync process holds the lock" in result.output


def test_config_error_exits_2_before_any_network_call(env, world, requests_mock):
    result = sync({**env, "TEAMWORK_PROJECT_ID": "x"})
    assert result.exit_code == 2 and "teamwork.project_id" in result.output
    assert requests_mock.call_count == 0


def test_tasklist_found_by_name_or_created(env, world, requests_mock):
    zd, tw, store = world
    env = {k: v for k, v in env.items() if k != "TEAMWORK_TASKLIST_ID"}
    requests_mock.get(TW + "/projects/api/v3/projects/1/tasklists.json",
                      json={"tasklists": [], "meta": {"page": {"hasMore": False}}})
    requests_mock.post(TW + "/projects/1/tasklists.json", status_code=201,
                       json={"TASKLISTID": "3", "STATUS": "OK"})
    zd.put(1, subject="a", assignee_id=AGENT_A)
    assert sync(env).exit_code == 0
    assert store.tasklist_id(1, "Zendesk") == 3 and len(tw.live()) == 1
    zd.put(2, subject="b", assignee_id=AGENT_A)
    assert sync(env).exit_code == 0
    creates = [r for r in requests_mock.request_history if r.path == "/projects/1/tasklists.json"]
    assert len(creates) == 1  # remembered in Redis


def test_secrets_never_reach_logs_or_output(env, world, requests_mock, caplog, monkeypatch):
    import logging
    monkeypatch.setattr("zdsync.defaults.HTTP_BACKOFF_BASE_SECONDS", 0.001)
    caplog.set_level(logging.DEBUG)
    zd, _, _ = world
    env = {**env, "ZENDESK_API_TOKEN": "zd-token-5f1e9c", "TEAMWORK_API_TOKEN": "tw-token-8a2d"}
    zd.put(1, subject="a", assignee_id=AGENT_A)
    requests_mock.post(TW + "/projects/api/v3/tasklists/3/tasks.json", status_code=400,
                       json={"errors": [{"detail": "bad request"}]})
    result = sync(env)
    assert result.exit_code == 1
    for secret in ("zd-token-5f1e9c", "tw-token-8a2d"):
        assert secret not in caplog.text
        assert secret not in result.output


def test_create_into_a_missing_task_list_fails_visibly(env, world, requests_mock):
    zd, _, store = world
    requests_mock.post(TW + "/projects/api/v3/tasklists/3/tasks.json", status_code=404)
    zd.put(1, subject="a", assignee_id=AGENT_A)
    result = sync(env)
    assert result.exit_code == 1 and "failed 1" in result.output
    [entry] = store.retries()
    assert entry.ticket_id == 1 and "task list 3 not found" in entry.error
    assert store.last_pass()["result"] == "partial"


def test_a_404_task_list_found_by_name_is_looked_up_again(env, world, requests_mock):
    zd, tw, store = world
    env = {k: v for k, v in env.items() if k != "TEAMWORK_TASKLIST_ID"}
    store.set_tasklist_id(1, "Zendesk", 99)  # cached, but deleted in Teamwork since
    requests_mock.post(TW + "/projects/api/v3/tasklists/99/tasks.json", status_code=404)
    requests_mock.get(TW + "/projects/api/v3/projects/1/tasklists.json",
                      json={"tasklists": [{"id": 3, "name": "Zendesk"}],
                            "meta": {"page": {"hasMore": False}}})
    zd.put(1, subject="a", assignee_id=AGENT_A)
    assert sync(env).exit_code == 1
    assert store.tasklist_id(1, "Zendesk") is None  # forgotten
    store.retry_now([1])
    assert sync(env).exit_code == 0
    assert store.tasklist_id(1, "Zendesk") == 3 and len(tw.live()) == 1


def test_retry_of_a_ticket_deleted_before_it_was_ever_stored_is_cleared(env, world):
    zd, tw, store = world
    zd.put(2, subject="bad", assignee_id="not-a-number")
    assert sync(env).exit_code == 1
    assert store.due_retries(10**12) == [2]
    zd.put(2, status="deleted", assignee_id=None)  # gone from show-ticket (404)
    store.retry_now([2])
    assert sync(env).exit_code == 0
    assert store.retries() == [] and tw.live() == []


def test_unexpected_response_shape_fails_only_that_ticket(env, world, requests_mock):
    zd, _, store = world
    zd.put(1, subject="a", assignee_id=AGENT_A)
    zd.put(2, subject="b", assignee_id=AGENT_A)
    store.r.hset("t:tickets", "1", json.dumps(
        Record(Ticket.from_api(zd.tickets[1]), in_flight="create").to_json()))
    requests_mock.get(TW + "/projects/api/v3/tasklists/3/tasks.json",
                      json={"tasks": [{"name": "no id"}], "meta": {}})
    result = sync(env)
    assert result.exit_code == 1 and "tasks created 1" in result.output
    assert [r.ticket_id for r in store.retries()] == [1]
    assert "KeyError" in store.retries()[0].error or "'id'" in store.retries()[0].error
    assert store.record(2).applied.task_id is not None
    assert store.cursor().cursor  # the page was committed: ticket 1 waits in the retry set


def test_mapping_change_survives_a_redis_failure_during_the_replan(env, world, monkeypatch):
    import redis as redis_lib

    zd, tw, store = world
    zd.put(1, subject="a", assignee_id=UNMAPPED, status="open")
    assert sync(env).exit_code == 0
    store.set_mappings({UNMAPPED: 9})
    real_write = Store.write
    calls = {"n": 0}

    def failing_once(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # the state check, the mark before the reassign, its record
            raise redis_lib.ConnectionError("Redis went away")
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Store, "write", failing_once)
    result = sync(env)
    assert result.exit_code == 1 and "Redis failed during the pass" in result.output
    assert [a for a, _ in store.remapped()] == [UNMAPPED]  # still to do
    assert sync(env).exit_code == 0
    assert assignees(tw.live()[0]) == [9]
    assert store.remapped() == []
