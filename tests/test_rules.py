"""Table-driven tests of the pure rules: every status transition, first sight, assignee."""

from __future__ import annotations

import pytest

from zdsync.rules import (
    MAX_ID,
    MAX_TITLE_CHARS,
    Action,
    Applied,
    Kind,
    MalformedTicket,
    Presence,
    Record,
    Ticket,
    after,
    assignee_for,
    desired_task,
    is_stale,
    parse_id,
    plan,
    render_title,
    ticket_link,
)

TEMPLATE = "[ZD#{id}] {subject}"
MAP = {100: 7, 101: 8}  # Zendesk agent -> Teamwork person; agent 102 is unmapped


def ticket(status: str = "open", *, subject: str | None = "Printer on fire",
           assignee: int | None = 100, submitter: int | None = 101,
           tags: tuple[str, ...] = (), gen: int = 1000, updated: str = "2026-11-01T10:00:00Z",
           tid: int = 42) -> Ticket:
    return Ticket(tid, status, subject, assignee, submitter, tags, updated, gen)


def applied_for(t: Ticket, completed: bool = False, task_id: int = 9) -> Applied:
    return Applied(task_id, render_title(t, TEMPLATE), assignee_for(t, MAP), completed)


# -- desired state -------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "tags", "presence", "completed"), [
    ("new", (), Presence.REQUIRED, False),
    ("open", (), Presence.REQUIRED, False),
    ("pending", (), Presence.REQUIRED, False),
    ("hold", (), Presence.REQUIRED, False),
    ("solved", (), Presence.REQUIRED, True),
    ("closed", (), Presence.FORBIDDEN, False),
    ("closed", ("vip", "closed_by_merge"), Presence.IF_EXISTS, True),
    ("solved", ("closed_by_merge",), Presence.REQUIRED, True),  # the tag alone is not a merge
    ("deleted", (), Presence.FORBIDDEN, False),
])
def test_desired_task_by_status(status, tags, presence, completed):
    want = desired_task(ticket(status, tags=tags), MAP, TEMPLATE)
    assert want.presence is presence
    if presence is not Presence.FORBIDDEN:
        assert want.completed is completed


@pytest.mark.parametrize(("assignee", "submitter", "person"), [
    (100, 101, 7),      # assignee mapped -> that person
    (102, 101, None),   # assignee set but unmapped -> Anyone, not the submitter
    (None, 101, 8),     # no assignee -> the agent who opened it
    (None, 102, None),  # no assignee, submitter unmapped -> Anyone
    (None, None, None),  # nobody at all -> Anyone
])
def test_assignee_cases(assignee, submitter, person):
    assert assignee_for(ticket(assignee=assignee, submitter=submitter), MAP) == person


@pytest.mark.parametrize(("subject", "title"), [
    ("Printer on fire", "[ZD#42] Printer on fire"),
    (None, "[ZD#42] (no subject)"),
    ("", "[ZD#42] (no subject)"),
    ("   ", "[ZD#42] (no subject)"),
    ("Braces {x} stay", "[ZD#42] Braces {x} stay"),
])
def test_title(subject, title):
    assert render_title(ticket(subject=subject), TEMPLATE) == title


# -- first sight -----------------------------------------------------------------------------

@pytest.mark.parametrize(("status", "tags", "kinds"), [
    ("new", (), [Kind.CREATE]),
    ("open", (), [Kind.CREATE]),
    ("pending", (), [Kind.CREATE]),
    ("hold", (), [Kind.CREATE]),
    ("solved", (), [Kind.CREATE, Kind.COMPLETE]),
    ("closed", (), []),
    ("closed", ("closed_by_merge",), []),
    ("deleted", (), []),
])
def test_first_sight(status, tags, kinds):
    t = ticket(status, tags=tags)
    actions = plan(Record(t), MAP, TEMPLATE)
    assert [a.kind for a in actions] == kinds
    if kinds:
        assert actions[0] == Action(Kind.CREATE, title="[ZD#42] Printer on fire", assignee=7)


# -- transitions on a ticket that has a task -------------------------------------------------

STATES = ["new", "open", "pending", "hold", "solved", "closed", "merged", "deleted"]


def state_ticket(state: str) -> Ticket:
    if state == "merged":
        return ticket("closed", tags=("closed_by_merge",))
    return ticket(state)


def expected_kinds(before: str, now: str) -> list[Kind]:
    was_done = before in ("solved", "merged")
    if now in ("closed", "deleted"):
        return [Kind.DELETE]
    if now in ("solved", "merged"):
        return [] if was_done else [Kind.COMPLETE]
    return [Kind.REOPEN] if was_done else []


@pytest.mark.parametrize("before", [s for s in STATES if s not in ("closed", "deleted")])
@pytest.mark.parametrize("now", STATES)
def test_every_status_transition(before, now):
    old = state_ticket(before)
    record = Record(state_ticket(now), applied_for(old, completed=before in ("solved", "merged")))
    assert [a.kind for a in plan(record, MAP, TEMPLATE)] == expected_kinds(before, now)


@pytest.mark.parametrize("now", STATES)
def test_no_task_after_close_or_delete_stays_none_unless_needed(now):
    """A ticket whose task was deleted (closed, then e.g. restored): level-triggered."""
    record = Record(state_ticket(now), Applied())
    kinds = [a.kind for a in plan(record, MAP, TEMPLATE)]
    if now in ("closed", "merged", "deleted"):
        assert kinds == []
    elif now == "solved":
        assert kinds == [Kind.CREATE, Kind.COMPLETE]
    else:
        assert kinds == [Kind.CREATE]


@pytest.mark.parametrize(("change", "kinds"), [
    ({"subject": "New title"}, [Kind.RETITLE]),
    ({"subject": None}, [Kind.RETITLE]),
    ({"assignee": 101}, [Kind.REASSIGN]),          # to another mapped agent
    ({"assignee": 102}, [Kind.REASSIGN]),          # to an unmapped agent -> Anyone
    ({"assignee": None}, [Kind.REASSIGN]),         # unassigned -> submitter's person (8)
    ({"assignee": None, "submitter": 100}, []),    # unassigned -> submitter is person 7 again
    ({"tags": ("vip",)}, []),                      # a tag changes nothing the task shows
    ({"gen": 2000, "updated": "2026-11-02T00:00:00Z"}, []),  # a comment, a priority change
    ({"subject": "X", "assignee": 101, "status": "solved"},
     [Kind.RETITLE, Kind.REASSIGN, Kind.COMPLETE]),
])
def test_only_differences_produce_actions(change, kinds):
    base = ticket()
    record = Record(ticket(**change), applied_for(base))
    actions = plan(record, MAP, TEMPLATE)
    assert [a.kind for a in actions] == kinds
    for a in actions:
        if a.kind is Kind.REASSIGN:
            assert a.assignee == assignee_for(record.ticket, MAP)


def test_mapping_change_reassigns_without_new_snapshot():
    t = ticket(assignee=102)
    record = Record(t, applied_for(t))  # applied while 102 was unmapped: Anyone
    assert plan(record, MAP, TEMPLATE) == []
    assert plan(record, {**MAP, 102: 9}, TEMPLATE) == [Action(Kind.REASSIGN, assignee=9)]


def test_merged_after_task_gone_creates_nothing():
    merged = state_ticket("merged")
    assert plan(Record(merged, Applied()), MAP, TEMPLATE) == []


# -- snapshot order ----------------------------------------------------------------------------

@pytest.mark.parametrize(("stored", "incoming", "stale"), [
    ((1000, "2026-11-01T10:00:00Z"), (999, "2026-11-01T10:00:00Z"), True),
    ((1000, "2026-11-01T10:00:00Z"), (1000, "2026-11-01T09:00:00Z"), True),
    ((1000, "2026-11-01T10:00:00Z"), (1000, "2026-11-01T10:00:00Z"), False),  # replay
    ((1000, "2026-11-01T10:00:00Z"), (1001, "2026-11-01T10:00:00Z"), False),
    ((0, "2026-11-01T10:00:00Z"), (1500, "2026-11-01T09:00:00Z"), True),  # fetched was newer
    ((1000, "2026-11-01T10:00:00Z"), (0, "2026-11-01T10:00:01Z"), False),  # fresh fetch
])
def test_stale_snapshots_are_ignored(stored, incoming, stale):
    record = Record(ticket(gen=stored[0], updated=stored[1]))
    assert is_stale(ticket(gen=incoming[0], updated=incoming[1]), record) is stale
    assert is_stale(ticket(gen=incoming[0], updated=incoming[1]), None) is False


# -- parsing and bookkeeping -------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    {"status": "open"},
    {"id": "42", "status": "open"},
    {"id": 42, "status": "weird"},
    {"id": 42, "status": "open", "assignee_id": "7"},
    {"id": 42, "status": "open", "tags": "a,b"},
    {"id": 42, "status": "open", "subject": 5},
    {"id": 42, "status": "open", "generated_timestamp": "x"},
    ["not", "an", "object"],
    {"id": True, "status": "open"},
    {"id": 0, "status": "open"},
    {"id": 2**63, "status": "open"},
    {"id": 42, "status": ["open"]},  # unhashable: once a TypeError, not MalformedTicket
    {"id": 42, "status": {"a": 1}},
])
def test_malformed_tickets_are_rejected(data):
    with pytest.raises(MalformedTicket):
        Ticket.from_api(data)


def test_ticket_and_record_round_trip():
    t = Ticket.from_api({"id": 5, "status": "hold", "subject": None, "assignee_id": None,
                         "submitter_id": 3, "tags": ["x"], "updated_at": "u",
                         "generated_timestamp": 9, "priority": "high"})
    record = Record(t, Applied(11, "T", 4, True), create_pending=True)
    assert Record.from_json(record.to_json()) == record


def test_after_tracks_each_action():
    a = after(Applied(), Action(Kind.CREATE, title="T", assignee=3), task_id=5)
    assert a == Applied(5, "T", 3, False)
    a = after(a, Action(Kind.COMPLETE))
    assert a.completed
    assert after(a, Action(Kind.REOPEN)).completed is False
    assert after(a, Action(Kind.RETITLE, title="U")).title == "U"
    assert after(a, Action(Kind.REASSIGN, assignee=None)).assignee is None
    assert after(a, Action(Kind.DELETE)) == Applied()


def test_ticket_link():
    assert ticket_link("https://acme.zendesk.com/", 42) == "https://acme.zendesk.com/agent/tickets/42"


@pytest.mark.parametrize(("bad", "shown"), [
    (True, "True"),
    ("4\nERROR forged", "'4\\nERROR forged'"[1:-1]),
    (10**30, str(10**30)),
])
def test_a_malformed_ticket_carries_a_usable_id_or_an_escaped_rendering(bad, shown):
    """Only a usable id may reach the retry set; anything else is a short escaped string
    (it is logged)."""
    with pytest.raises(MalformedTicket) as info:
        Ticket.from_api({"id": bad, "status": "open"})
    assert info.value.ticket_id == shown and "\n" not in str(info.value)
    with pytest.raises(MalformedTicket) as info:
        Ticket.from_api({"id": 42, "status": "x" * 100_000})
    assert info.value.ticket_id == 42 and len(str(info.value)) < 200


@pytest.mark.parametrize(("raw", "parsed"), [
    (5, 5), ("5", 5), (" 7 ", 7), (MAX_ID, MAX_ID), (str(MAX_ID), MAX_ID),
    (True, None), (False, None), (0, None), (-3, None), ("0", None), ("-3", None),
    (MAX_ID + 1, None), ("²", None), ("①", None), ("4²", None), ("٣", None),
    ("9" * 4301, None), ("1e3", None), (5.0, None), (None, None), ([5], None), ("", None),
])
def test_parse_id_takes_positive_ascii_integers_only(raw, parsed):
    assert parse_id(raw) == parsed


def test_titles_are_capped_in_the_subject_keeping_the_id():
    huge = ticket(subject="Printer " * 12_500)  # 100 KB
    title = render_title(huge, TEMPLATE)
    assert len(title) == MAX_TITLE_CHARS
    assert title.startswith(f"[ZD#{huge.id}] Printer Printer") and title.endswith("…")
    long_id = Ticket(MAX_ID, "open", subject="y" * 1000)
    for template in (TEMPLATE, "{subject} ({status}) [ZD#{id}]", "{subject} / {subject} #{id}"):
        title = render_title(long_id, template)
        assert len(title) <= MAX_TITLE_CHARS and str(MAX_ID) in title, template
    assert render_title(ticket(subject="x" * 200), TEMPLATE) == f"[ZD#42] {'x' * 200}"
