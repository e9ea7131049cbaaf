"""The rule table exists twice on purpose: in ``zdsync/rules.py``, which zdsync runs, and in
``zdsync/sim/consistency.py``, which judges end-to-end runs and states the README's table
on its own. Here the two are compared ticket by ticket; where they part, one of them is
wrong (a rules bug the judge would otherwise have shared)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import FUZZ
from zdsync.rules import Presence, Ticket, desired_task
from zdsync.sim import consistency

MAPPINGS = {1: 501, 2: 502}  # agents 1 and 2 are mapped, 3 is not
PRESENCE = {Presence.REQUIRED: consistency.REQUIRED, Presence.FORBIDDEN: consistency.FORBIDDEN,
            Presence.IF_EXISTS: consistency.IF_EXISTS}

tickets = st.fixed_dictionaries({
    "id": st.integers(1, 2**63 - 1),
    "status": st.sampled_from(["new", "open", "pending", "hold", "solved", "closed",
                               "deleted"]),
    "subject": st.one_of(st.none(), st.just(""), st.just("   "), st.text(max_size=30),
                         st.text(min_size=200, max_size=400),
                         st.text(alphabet=" ab", min_size=230, max_size=260)),
    "assignee_id": st.one_of(st.none(), st.integers(1, 3)),
    "submitter_id": st.one_of(st.none(), st.integers(1, 4)),
    "tags": st.lists(st.sampled_from(["closed_by_merge", "vip", "billing"]), max_size=3,
                     unique=True),
})
templates = st.sampled_from(["[ZD#{id}] {subject}", "{subject} ({status}, #{id})",
                             "#{id}: {subject} / {subject}", "{id}"])


@FUZZ
@given(ticket=tickets, template=templates)
def test_the_product_and_the_judge_read_the_table_alike(ticket, template):
    product = desired_task(Ticket.from_api(ticket), MAPPINGS, template)
    judge = consistency.expected(ticket, MAPPINGS, template)
    assert PRESENCE[product.presence] == judge.presence
    if judge.presence != consistency.FORBIDDEN:
        assert (product.title, product.assignee, product.completed) == (
            judge.title, judge.assignee, judge.completed)
        assert len(judge.title) <= 250 and str(ticket["id"]) in judge.title


def test_the_judges_table_as_the_readme_writes_it():
    def want(**fields):
        ticket = {"id": 123, "status": "open", "subject": "Printer", "assignee_id": None,
                  "submitter_id": None, "tags": [], **fields}
        return consistency.expected(ticket, MAPPINGS, "[ZD#{id}] {subject}")

    assert want() == consistency.Expected(consistency.REQUIRED, "[ZD#123] Printer")
    assert want(status="solved", assignee_id=1).completed
    assert want(status="closed").presence == consistency.FORBIDDEN
    assert want(status="deleted").presence == consistency.FORBIDDEN
    merged = want(status="closed", tags=["closed_by_merge"])
    assert (merged.presence, merged.completed) == (consistency.IF_EXISTS, True)
    assert want(subject=None).title == "[ZD#123] (no subject)"
    assert want(assignee_id=2, submitter_id=1).assignee == 502
    assert want(assignee_id=3, submitter_id=1).assignee is None  # unmapped: Anyone
    assert want(submitter_id=1).assignee == 501  # unassigned: who opened it
    assert want(submitter_id=4).assignee is None
    cut = want(subject="x" * 300).title
    assert len(cut) == 250 and cut.startswith("[ZD#123] xxx") and cut.endswith("x…")
