"""Reading a Teamwork task listing past the records one listing answers.

Teamwork answers at most 50,000 records to one listing, its pages together, and then says
``hasMore: false`` as at a real end; to read on, list again ordered by ``updatedAt`` with
``updatedAfter`` set to the last record's ``updatedAt``
(https://apidocs.teamwork.com/guides/teamwork/how-does-paging-work). A listing that
answered fewer records than the cap ended for real: below it nothing changes, not even
the order asked for. A listing cut at the cap is read again ordered by ``updatedAt`` (its
own order is Teamwork's default, which says nothing of where it stopped), then on in
windows, each starting a second before the last ``updatedAt`` of the one before: whether
``updatedAfter`` keeps that second or not is undocumented, and either way no task of that
second is left out; the ids already read are dropped. Pure: the client does the reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from zdsync.errors import PermanentError
from zdsync.times import epoch_or_none, iso_utc

ORDERED = {"orderBy": "updatedAt", "orderMode": "asc"}
"""What a window past the cap asks for: oldest change first."""


class ListingTooDense(PermanentError):
    """A whole window of tasks shares the second it would resume from, or Teamwork did
    not order it: reading on could only repeat it or skip tasks, so the read fails (a
    rebuild or audit that stopped short could create duplicates)."""


def next_window(stamps: Sequence[int | None], window: Mapping[str, str]) -> dict[str, str]:
    """The parameters of the window after ``window`` (the parameters it was asked with,
    ``{}`` for the first), which was cut at the cap. ``stamps``: the ``updatedAt`` (epoch
    seconds; None when unreadable) of its records, in the order answered."""
    if "orderBy" not in window:
        return dict(ORDERED)
    after = epoch_or_none(window.get("updatedAfter", ""))
    known = [s for s in stamps if s is not None]
    if not known or len(known) != len(stamps) or known != sorted(known) \
            or (after is not None and known[0] < after):
        raise ListingTooDense("teamwork", f"a task listing cut at {len(stamps)} records was "
                              "not ordered by updatedAt as asked (or a task had no readable "
                              "updatedAt): zdsync cannot read past it without skipping tasks")
    resume = known[-1] - 1
    if after is not None and resume <= after:
        raise ListingTooDense("teamwork", f"{len(stamps)} tasks (a whole listing) were "
                              f"updated at {iso_utc(after)} or within a second after: "
                              "Teamwork's updatedAfter cannot page past them; edit some of "
                              "them in Teamwork (their updatedAt moves) and run again")
    return {**ORDERED, "updatedAfter": iso_utc(resume)}
