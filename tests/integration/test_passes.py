"""Passes driven directly: real Redis, the simulators in-process on a frozen clock.

What a pass promises beyond one ticket: a leader that lost its lease writes nothing more,
a store that lost its state is rebuilt from Teamwork before anything is created, a Redis
that lost its last writes is not trusted, and the queue takes webhooks first, once.
"""

from __future__ import annotations

import pytest

from tests.world import World, make_inproc_world
from zdsync import sources
from zdsync.metrics import Metrics
from zdsync.sim.activity import ActivityGenerator
from zdsync.transport import Transport

pytestmark = pytest.mark.usefixtures("teamwork_variants")  # every Teamwork variant


@pytest.fixture
def world(redis_client) -> World:
    return make_inproc_world(redis_client.connection_pool.connection_kwargs["port"], "p:")


def sync(world: World, **extra) -> object:
    world.exportable()
    summary = world.run_pass(**extra).run()
    assert summary.error is None, summary.line()
    return summary


def converge(world: World, passes: int = 5) -> None:
    store = world.store()
    for _ in range(passes):
        store.retry_now(r.ticket_id for r in store.retries())
        summary = sync(world)
        if not store.retry_depth() and not summary.failed:
            return
    raise AssertionError(f"still failing: {store.retries()}")


def writes(world: World) -> list[str]:
    return [f"{e.method} {e.path}" for e in world.teamwork.log.entries() if e.method != "GET"]


# -- the lease -----------------------------------------------------------------------------


def test_a_leader_frozen_past_its_lease_sends_nothing_more(world, monkeypatch):
    """The ticket needs two writes; after the first, the process "freezes" past its lease
    and a successor takes over. The second write is never sent and the stale leader's
    record is refused; the successor observes the task and finishes the job."""
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    sync(world)
    world.zendesk.update_ticket(t, subject="Printer, renamed", status="solved")
    world.exportable()
    p = world.run_pass()
    real = Transport.request

    def freeze_after_the_first_write(self, method, path, **kwargs):
        response = real(self, method, path, **kwargs)
        if method == "PATCH":
            p.lease._valid_until = 0.0  # woke up after its TTL ran out
            world.store().r.set(world.prefix + "lock:sync", "the-successor")
        return response

    monkeypatch.setattr(Transport, "request", freeze_after_the_first_write)
    world.teamwork.log.clear()
    summary = p.run()
    monkeypatch.setattr(Transport, "request", real)
    assert summary.stopped and summary.failed == 0
    assert writes(world) == [f"PATCH /projects/api/v3/tasks/{world.tasks_for(t)[0]['id']}.json"]
    assert world.store().record(t).in_flight == "write"  # marked before the write, kept
    assert world.store().retry_depth() == 0  # stopping is not a failure of the ticket
    world.store().r.delete(world.prefix + "lock:sync")  # the successor's lease
    converge(world)
    assert world.check() == []


def test_a_record_write_after_the_lease_moved_is_refused(world, monkeypatch):
    """Even when the process still believes it leads (its renewal has not run yet), Redis
    refuses its writes: they are fenced by the lease token."""
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    world.exportable()
    p = world.run_pass()
    real = Transport.request

    def taken_over_after_the_create(self, method, path, **kwargs):
        response = real(self, method, path, **kwargs)
        if method == "POST":
            world.store().r.set(world.prefix + "lock:sync", "the-successor")
        return response

    monkeypatch.setattr(Transport, "request", taken_over_after_the_create)
    summary = p.run()
    assert summary.stopped
    record = world.store().record(t)
    assert record.in_flight == "create" and record.applied.task_id is None
    assert p.lease.lost.is_set()  # the daemon then stands by


def test_a_write_a_frozen_leader_sends_late_is_undone_by_its_successor(world, monkeypatch):
    """Found by bench/soak.py (seed 5): a leader passes its lease check, freezes before the
    request leaves, and wakes after its successor has applied a newer state; the stale
    write then lands. Nothing can fence Teamwork, but the old leader learns it (its record
    write is refused) and reports the ticket; the successor observes the task and fixes it."""
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    sync(world)
    world.zendesk.update_ticket(t, assignee_id=world.agents[1])
    world.exportable()
    stale = world.run_pass()
    stale_lease = stale.lease
    real = Transport.request
    done = {"successor": False}

    def frozen_before_sending(self, method, path, **kwargs):
        if method == "PATCH" and not done["successor"]:
            done["successor"] = True
            # Frozen here, after the check: a successor takes over and applies newer work.
            world.store().r.set(world.prefix + "lock:sync", "someone")
            world.store().r.delete(world.prefix + "lock:sync")
            world.zendesk.update_ticket(t, assignee_id=world.agents[0])  # back to Ada
            world.exportable()
            world._lease = None  # the successor does not release the frozen one's lease
            successor = world.run_pass()
            assert successor.run().error is None
            successor.lease.release()
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(Transport, "request", frozen_before_sending)
    summary = stale.run()
    monkeypatch.setattr(Transport, "request", real)
    assert summary.stopped  # its record write was refused: it knows it lost the lease
    assert [a["id"] for a in world.tasks_for(t)[0]["assignees"]] == [
        world.mappings[world.agents[1]]]  # the stale write landed last
    assert [t2 for t2, _ in world.store().suspects()] == [t]
    stale_lease.release()
    converge(world)
    assert world.check() == []  # the successor's successor read the task and fixed it
    assert world.store().suspects() == []



def test_a_create_a_frozen_leader_sends_late_leaves_one_task(world, monkeypatch):
    """Found by bench/soak.py (seed 29): a leader marks a create in flight, passes its
    lease check and freezes before the request leaves; its successor observes, finds no
    task, and creates one. The stale create then lands: a second task. The successor's
    record names a task, so a plain re-read of it would miss the copy: a suspect is
    searched for by its link like a create in flight, and the extra copy is deleted."""
    t = world.ticket("Printer on fire", assignee=world.agents[0], status="open")
    world.exportable()
    stale = world.run_pass()
    stale_lease = stale.lease
    real = Transport.request
    done = {"successor": False}

    def frozen_before_sending(self, method, path, **kwargs):
        if method == "POST" and path.endswith("/tasks.json") and not done["successor"]:
            done["successor"] = True
            world.store().r.delete(world.prefix + "lock:sync")
            world._lease = None  # the successor does not release the frozen one's lease
            successor = world.run_pass()
            assert successor.run().error is None
            assert len(world.tasks_for(t)) == 1  # the successor made the ticket's task
            successor.lease.release()
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(Transport, "request", frozen_before_sending)
    summary = stale.run()
    monkeypatch.setattr(Transport, "request", real)
    assert summary.stopped
    assert len(world.tasks_for(t)) == 2  # the stale create landed after the successor's
    assert [t2 for t2, _ in world.store().suspects()] == [t]
    stale_lease.release()
    converge(world)
    assert len(world.tasks_for(t)) == 1
    assert world.check() == []
    assert world.store().suspects() == []

# -- losing Redis --------------------------------------------------------------------------


def churned_world(world: World, seed: int = 3, events: int = 150) -> ActivityGenerator:
    gen = ActivityGenerator(world.zendesk, seed=seed, mapped_agent_ids=world.agents[:2],
                            unmapped_agent_ids=world.agents[2:])
    gen.run(events)
    converge(world)
    assert world.check() == []
    return gen


def test_redis_back_empty_rebuilds_the_links_before_creating_anything(world, tmp_path):
    """Redis loses everything after a sync; tickets go on changing; the next pass rebuilds
    the links from Teamwork: no second task for any ticket, closed and deleted tickets
    lose theirs, mappings come back from [users] file, and the export resumes early
    enough to see what changed meanwhile."""
    users = tmp_path / "mappings.csv"
    users.write_text("zendesk_user_id,teamwork_person_id\n"
                     + "".join(f"{a},{p}\n" for a, p in world.mappings.items()))
    gen = churned_world(world)
    tasks_before = len(world.live_tasks())
    assert tasks_before > 10
    world.store().r.flushall()  # Redis restarted without persistence
    gen.run(60)  # life goes on meanwhile, the export cursor is gone
    metrics = Metrics()
    creates = world.teamwork.log.count("POST", path="/projects/api/v3/tasklists/*/tasks.json")
    world.exportable()
    summary = world.run_pass(metrics, USERS_FILE=str(users)).run()
    assert summary.rebuilt and summary.error is None, summary.line()
    assert metrics.state_rebuilds._value.get() == 1
    converge(world)
    assert world.check() == []
    assert world.teamwork.most_live_with_one_marker == 1
    new_tickets = len(world.zendesk.tickets()) - tasks_before
    made = world.teamwork.log.count("POST", path="/projects/api/v3/tasklists/*/tasks.json")
    assert made - creates <= max(new_tickets, 0) + 60  # only tickets that need a first task
    assert world.store().mappings() == world.mappings
    assert world.store().last_rebuild()["tickets"] != "0"


def test_without_mappings_after_a_rebuild_tasks_keep_their_assignees(world):
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    sync(world)
    person = world.mappings[world.agents[0]]
    world.store().r.flushall()  # the mappings went with everything else
    world.zendesk.update_ticket(t, subject="Printer, renamed")
    sync(world)
    [task] = world.tasks_for(t)
    assert task["name"] == "[ZD#1] Printer, renamed"
    assert [a["id"] for a in task["assignees"]] == [person]  # not "Anyone"
    assert world.store().mappings_and_hold() == ({}, True)
    world.store().set_mappings(world.mappings)  # the operator restores them: hold ends
    assert world.store().mappings_and_hold()[1] is False


def test_the_end_of_a_hold_replans_every_task_it_held(world):
    """Found by bench/soak.py: while the mappings are missing after a rebuild, a ticket
    moves to an unmapped agent; its task kept its person (the hold). Once the operator
    stores the mappings again, that task must follow the rules too, though no mapping of
    its agent changed."""
    ada, _, cy = world.agents
    t = world.ticket("Held", assignee=ada, status="open")
    sync(world)
    world.store().r.flushall()  # Redis back empty, no [users] file
    world.zendesk.update_ticket(t, assignee_id=cy)  # to the unmapped agent meanwhile
    sync(world)
    assert [a["id"] for a in world.tasks_for(t)[0]["assignees"]] == [world.mappings[ada]]
    world.store().set_mappings(world.mappings)  # the operator imports them again
    sync(world)
    assert world.tasks_for(t)[0]["assignees"] == []  # cy has no person: Anyone
    assert world.check() == [] and world.store().remapped() == []


def test_a_merged_tickets_task_follows_a_mapping_change(world):
    """Also found by the soak: a merged ticket keeps its completed task, whose assignee
    the rules still manage, so a mapping change must re-plan it like an open ticket's."""
    ada = world.agents[0]
    source = world.ticket("Merge me", assignee=ada, status="open")
    target = world.ticket("Keep me", assignee=world.agents[1], status="open")
    sync(world)
    world.zendesk.merge(source, target)
    sync(world)
    person = world.teamwork.add_person("New", "Person", "new@example.com")
    world.teamwork.add_to_project(world.project, person)
    world.store().set_mappings({ada: person})
    sync(world)
    [task] = world.tasks_for(source)
    assert task["status"] == "completed" and [a["id"] for a in task["assignees"]] == [person]


def test_rebuild_deletes_extra_copies_and_leaves_other_tasks_alone(world):
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    sync(world)
    [kept] = world.tasks_for(t)
    copy = world.teamwork.create_task(world.tasklist, kept["name"], kept["description"])
    foreign = world.teamwork.create_task(world.tasklist, "Someone's own task", "notes")
    world.store().r.flushall()
    summary = sync(world)
    assert summary.rebuilt
    assert [x["id"] for x in world.tasks_for(t)] == [kept["id"]]  # the oldest stays
    assert world.teamwork.task(copy)["status"] == "deleted"
    assert world.teamwork.task(foreign)["status"] == "new"
    assert world.store().record(t).applied.task_id == kept["id"]


def test_a_redis_that_lost_its_last_writes_is_not_trusted(world):
    """Redis comes back from its AOF without its last second of writes, after Teamwork
    was changed; the ticket then changes back. Its record says nothing happened, but a
    restarted Redis (a new run id) puts records in doubt: the pass reads the tasks first."""
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    sync(world)
    r = world.store().r
    saved = {k: r.dump(k) for k in r.keys(world.prefix + "*")}
    world.zendesk.update_ticket(t, status="solved")
    sync(world)
    assert world.tasks_for(t)[0]["status"] == "completed"
    for key in r.keys(world.prefix + "*"):  # back to before that pass: its writes are lost
        r.delete(key)
    for key, value in saved.items():
        r.restore(key, 0, value)
    r.set(world.prefix + "redis_run", "the run id before the restart")
    world.zendesk.update_ticket(t, status="open", comment="still broken")  # changed back
    sync(world)
    assert world.tasks_for(t)[0]["status"] == "reopened"
    assert world.check() == []


# -- bad input -----------------------------------------------------------------------------


def test_an_export_ticket_with_an_unusable_id_blocks_nothing(world, monkeypatch):
    """One ticket with ``"id": true`` (a bool passes as an int in Python) used to block
    the export forever: every pass failed on Redis refusing it. It is counted and skipped,
    the others sync, the cursor moves; a malformed ticket with a usable id is retried."""
    from zdsync.zendesk import ZendeskClient

    good = [world.ticket(f"T{n}", assignee=world.agents[0], status="open") for n in range(3)]
    world.exportable()
    real = ZendeskClient.export_page

    def with_bad_tickets(self, *args, **kwargs):
        page = real(self, *args, **kwargs)
        page.tickets[1:1] = [{"id": True, "status": "open"},
                             {"id": 77, "status": "no-such-status"}]
        return page

    monkeypatch.setattr(ZendeskClient, "export_page", with_bad_tickets)
    summary = world.run_pass().run()
    assert summary.error is None and summary.created == 3 and summary.skipped == 2
    assert all(world.tasks_for(t) for t in good)
    assert world.store().cursor().cursor is not None
    assert [r.ticket_id for r in world.store().retries()] == [77]


def test_refused_zendesk_credentials_stop_the_pass_and_keep_the_cursor(world):
    world.ticket("T", assignee=world.agents[0], status="open")
    sync(world)
    cursor = world.store().cursor().cursor
    world.ticket("U", assignee=world.agents[0], status="open")
    world.exportable()
    summary = world.run_pass(ZENDESK_API_TOKEN="revoked").run()
    assert summary.error and "401" in summary.error and "zendesk.api_token" in summary.error
    assert world.store().cursor().cursor == cursor


# -- Teamwork answers ----------------------------------------------------------------------


def test_a_spurious_404_on_complete_is_confirmed_before_anything_is_recreated(world):
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    sync(world)
    world.zendesk.update_ticket(t, status="solved")
    world.teamwork.faults.set(routes={"/tasks/{id}/complete"})
    world.teamwork.faults.fail_next(1, status=404)
    summary = sync(world)
    world.teamwork.faults.reset()
    assert summary.failed == 1 and summary.created == 0
    assert world.store().retries()[0].ticket_id == t
    converge(world)
    assert [x["status"] for x in world.tasks_for(t)] == ["completed"]
    assert world.teamwork.log.count("POST") == 1  # the one create, ever


def test_a_task_deleted_by_hand_is_created_again_once(world):
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    sync(world)
    world.teamwork.delete_task(world.tasks_for(t)[0]["id"])
    world.zendesk.update_ticket(t, status="solved")
    summary = sync(world)
    assert summary.created == 1 and summary.failed == 0
    assert [x["status"] for x in world.tasks_for(t)] == ["completed"]


def test_refused_teamwork_credentials_stop_the_pass_and_keep_the_cursor(world):
    tickets = [world.ticket(f"T{n}", assignee=world.agents[0], status="open") for n in range(5)]
    sync(world)
    cursor = world.store().cursor()
    for t in tickets:
        world.zendesk.update_ticket(t, status="solved")
    world.teamwork.log.clear()
    world.exportable()
    summary = world.run_pass(TEAMWORK_API_TOKEN="revoked").run()
    assert summary.error and "401" in summary.error
    # One refused request, not one per ticket: the check of the project, before any write.
    assert world.teamwork.log.count(status=401) == 1 and world.teamwork.log.count("PUT") == 0
    assert world.store().cursor().cursor == cursor.cursor
    assert world.store().retry_depth() == 0


# -- the queue -----------------------------------------------------------------------------


def test_webhook_tickets_go_first_and_a_ticket_in_both_is_reconciled_once(world):
    """A webhook for a ticket further down the page arrives while the page is worked on:
    that ticket moves up, is read afresh and is reconciled once, not twice."""
    from tests.helpers import seed

    store = world.store()
    seed(store, unlist_remapped=True)
    tickets = [world.ticket(f"T{n}", assignee=world.agents[0], status="open") for n in range(4)]
    store.enqueue_webhook(tickets[0], "evt-0")  # before the pass: handled first of all
    world.exportable()
    p = world.run_pass()
    p.poll_webhooks = True
    order: list[int] = []
    real = p.reconciler.reconcile

    def reconcile(prior, ticket, ctx, **kw):
        order.append(ticket.id)
        if ticket.id == tickets[1] and len(order) == 3:
            store.enqueue_webhook(tickets[3], "evt-3")
            p._last_poll = float("-inf")  # the next poll is due now
        return real(prior, ticket, ctx, **kw)

    p.reconciler.reconcile = reconcile
    summary = p.run()
    assert summary.error is None and summary.created == 4
    # t0 from its webhook, then the page: t0 again (a no-op), t1, then t3 promoted, t2.
    assert order == [tickets[0], tickets[0], tickets[1], tickets[3], tickets[2]]
    assert store.webhook_batch() == []
    assert world.check() == []


def test_redis_round_trips_per_page_of_tickets_that_need_nothing(world, monkeypatch):
    """A page of 1,000 tickets that changed in nothing zdsync writes costs at most three
    Redis round trips (the records in one read, the commit, maybe a webhook poll)."""
    import redis

    tickets = [world.ticket(f"T{n}", assignee=world.agents[0], status="open")
               for n in range(1000)]
    sync(world)
    for t in tickets:
        world.zendesk.update_ticket(t, comment="no change zdsync cares about")
    world.exportable()
    p = world.run_pass()
    trips = {"n": 0}
    real = redis.connection.Connection.send_packed_command

    def counted(self, *args, **kwargs):
        trips["n"] += 1
        return real(self, *args, **kwargs)

    p._begin = lambda **kw: None  # the once-per-pass state check is not per page
    p.worker.ctx = p.worker.ctx.__class__(world.store().mappings())
    monkeypatch.setattr(redis.connection.Connection, "send_packed_command", counted)
    world.teamwork.log.clear()
    sources.export(p)
    monkeypatch.undo()
    assert p.summary.seen == 1000 and p.summary.pages == 1
    print(f"Redis round trips for a page of 1,000 unchanged tickets: {trips['n']}")
    assert trips["n"] <= 4  # the cursor read before the export, then at most 3 for the page
    assert writes(world) == []


# -- concurrency ---------------------------------------------------------------------------


def test_tickets_are_worked_on_concurrently_each_in_order(redis_client):
    """Four workers against a Teamwork that takes 0.3 s an answer: several requests are in
    flight at once, yet each ticket's writes come in order (create before complete) and
    every ticket ends with exactly one task. The clock is real here (the simulated one
    moves only with one worker)."""
    world = make_inproc_world(redis_client.connection_pool.connection_kwargs["port"], "cc:",
                              frozen=False, teamwork_kwargs={"rate_limit_per_minute": 100000})
    tickets = [world.ticket(f"T{n}", assignee=world.agents[n % 2],
                            status=("open", "solved")[n % 2]) for n in range(12)]
    world.exportable()
    world.teamwork.faults.set(latency_seconds=0.3)
    summary = world.run_pass(TEAMWORK_CONCURRENCY=4).run()
    world.teamwork.faults.reset()
    assert summary.error is None and summary.created == 12 and summary.completed == 6
    assert world.teamwork.most_in_flight >= 2
    assert world.check() == [] and world.teamwork.most_live_with_one_marker == 1
    # A complete sent before its task's create would have answered 404 and failed.
    assert summary.failed == 0
    assert all(world.tasks_for(t)[0]["status"] == "completed" for t in tickets[1::2])
