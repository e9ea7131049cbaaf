"""Property test (hypothesis) of one door outside data comes in by: ``Ticket.from_api``
raises ``MalformedTicket`` and nothing else, whatever the object. (The other door, the
webhook endpoint, is fuzzed in tests/integration/test_webhook_fuzz.py: it needs Redis.)
Reproducible: see ``tests.strategies.FUZZ``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import FUZZ, json_values, odd_ids
from zdsync.rules import MalformedTicket, Ticket

ticket_keys = st.sampled_from(["id", "status", "subject", "assignee_id", "submitter_id",
                               "tags", "updated_at", "generated_timestamp", "other"])
ticket_objects = st.one_of(
    st.dictionaries(ticket_keys, st.one_of(odd_ids, json_values,
                                           st.sampled_from(["open", "solved", "closed"])),
                    max_size=9),
    st.fixed_dictionaries({"id": odd_ids, "status": st.sampled_from(["open", "deleted"])},
                          optional={"tags": json_values, "subject": json_values,
                                    "assignee_id": odd_ids,
                                    "generated_timestamp": odd_ids}),
    json_values)


@FUZZ
@given(data=ticket_objects)
def test_ticket_from_api_raises_only_malformed_ticket(data):
    try:
        ticket = Ticket.from_api(data)
    except MalformedTicket as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 1000
    else:
        assert isinstance(ticket.id, int) and not isinstance(ticket.id, bool)
        assert 0 < ticket.id < 2**63
