"""How records are stored: compact, and read back exactly (either form)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from tests.strategies import FUZZ
from zdsync import packing
from zdsync.rules import IN_FLIGHT_CREATE, Applied, Record, Ticket

text = st.none() | st.text(max_size=12)
ints = st.none() | st.integers(1, 2**40)
stamps = st.sampled_from(["", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00.5Z", "odd"])
records = st.builds(
    Record,
    st.builds(Ticket, st.integers(1, 2**40), st.sampled_from(["open", "closed", "deleted"]),
              text, ints, ints, st.lists(st.text(max_size=6), max_size=3).map(tuple),
              stamps, st.integers(0, 2**33), requester_id=ints, group_id=ints,
              organization_id=ints, priority=text, created_at=st.none() | stamps,
              via=text),
    st.builds(Applied, ints, text, st.none() | st.integers(-1, 2**40), st.booleans(),
              tasklist_id=ints, project_id=ints, priority=text, due_date=text,
              tags=st.none() | st.lists(st.text(max_size=6), max_size=3).map(tuple),
              description=text),
    st.none() | st.just(IN_FLIGHT_CREATE), text, st.booleans())


def test_a_record_packs_small_and_reads_back_exactly():
    ticket = Ticket(7, "open", "Printer on fire", 10, 11, ("printer",),
                    "2026-01-01T00:00:00Z", 1767225600, requester_id=12, brand_id=1,
                    created_at="2025-12-31T23:00:00Z", via="web", priority="high")
    record = Record(ticket, Applied(70, "[ZD#7] Printer on fire", 5, True, tasklist_id=3,
                                    project_id=4, priority="high", tags=("a",)),
                    route="hardware", failed=True)
    packed = packing.pack(record)
    assert packing.unpack(7, packed) == record
    assert len(packed) < len(json.dumps(record.to_json(), separators=(",", ":"))) * 0.6
    assert "Printer on fire" in packed and packed.count("Printer on fire") == 1
    assert packing.unpack(7, json.dumps(record.to_json())) == record  # the older form


@FUZZ
@given(records)
def test_every_record_reads_back_as_it_was(record):
    assert packing.unpack(record.ticket.id, packing.pack(record)) == record


def test_a_title_that_does_not_hold_the_subject_is_kept_whole():
    record = Record(Ticket(8, "open", "new subject"), Applied(80, "[ZD#8] old subject"))
    assert packing.unpack(8, packing.pack(record)) == record
    odd = Record(Ticket(9, "open", "x\x7fy"), Applied(90, "[ZD#9] x\x7fy"))
    assert packing.unpack(9, packing.pack(odd)) == odd
