"""How a record is stored in Redis: a compact JSON array, not the readable object.

Redis keeps one record per ticket ever seen, so its size is zdsync's memory: the array
drops every key name, empty and default values, and the ticket id (the hash field says
it), names the other fields with a letter (``SHORT``), writes ``created_at`` as epoch
seconds when that is exact, and the task title without the subject it repeats
(``SUBJECT``). Layout:

    [1, status, subject, assignee_id, submitter_id, tags, updated_at,
     generated_timestamp, {ticket extras}, task_id, title, assignee,
     {completed, in_flight, applied extras, route, failed}]

trailing empty values left out. ``scripts.WRITE`` reads ``updated_at`` and
``generated_timestamp`` at their places (7 and 8, counting from 1). Records stored
before (JSON objects) are still read.
"""

from __future__ import annotations

import json
from typing import Any

from zdsync.rules import Record
from zdsync.times import epoch_or_none, iso_utc

VERSION = 1
TICKET = ("status", "subject", "assignee_id", "submitter_id", "tags", "updated_at",
          "generated_timestamp")
APPLIED = ("task_id", "title", "assignee")
SHORT = {"requester_id": "r", "group_id": "g", "brand_id": "b", "ticket_form_id": "f",
         "organization_id": "o", "priority": "p", "type": "y", "due_at": "d",
         "created_at": "c", "via": "v", "tasklist_id": "L", "project_id": "P",
         "due_date": "D", "tags": "T", "description": "H", "route": "R", "failed": "F",
         "completed": "C", "in_flight": "I"}
"""The letter each optional field is stored under (a ticket's lower case, the task's upper
case, or ``priority`` would name two fields)."""
LONG = {v: k for k, v in SHORT.items()}
SUBJECT = "\x7f"
"""Stands for the ticket's subject inside a stored title (DEL: never in JSON escapes); a
title that holds it itself is stored in a list of one, as it is."""


def pack(record: Record) -> str:
    data = record.to_json()
    ticket = data.pop("ticket")
    ticket.pop("id")
    title, subject = data.get("title"), ticket.get("subject")
    if title and SUBJECT in title:
        data["title"] = [title]  # as it is: the marker is its own
    elif title and subject and SUBJECT not in subject and subject in title:
        data["title"] = title.replace(subject, SUBJECT, 1)
    for flag in ("completed", "in_flight"):
        if not data.get(flag):
            data.pop(flag, None)
    if "via" in ticket:
        ticket["via"] = ticket["via"]["channel"]
    created = ticket.get("created_at")
    if created and iso_utc(epoch_or_none(created) or 0) == created:
        ticket["created_at"] = epoch_or_none(created)
    core = [ticket.pop(k, None) for k in TICKET]
    applied = [data.pop(k, None) for k in APPLIED]
    row: list[Any] = [VERSION, *core, _short(ticket), *applied, _short(data)]
    while row and row[-1] in (None, {}, [], 0):
        row.pop()
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False)


def unpack(ticket_id: int, raw: str) -> Record:
    """A stored record (either form) back; raises ValueError and the like when unreadable."""
    data = json.loads(raw)
    if isinstance(data, dict):
        return Record.from_json(data)
    if not isinstance(data, list) or not data or data[0] != VERSION:
        raise ValueError("not a record")
    row = data + [None] * (3 + len(TICKET) + len(APPLIED) - len(data))
    ticket = {"id": ticket_id, **dict(zip(TICKET, row[1:8], strict=True)), **_long(row[8])}
    if isinstance(ticket.get("created_at"), int):
        ticket["created_at"] = iso_utc(ticket["created_at"])
    if "via" in ticket:
        ticket["via"] = {"channel": ticket["via"]}
    end = 9 + len(APPLIED)
    applied = dict(zip(APPLIED, row[9:end], strict=True))
    subject = ticket.get("subject")
    if isinstance(applied["title"], list):
        applied["title"] = applied["title"][0]
    elif applied["title"] and subject:
        applied["title"] = applied["title"].replace(SUBJECT, subject, 1)
    return Record.from_json({"ticket": ticket, **applied, **_long(row[end])})


def _short(fields: dict[str, Any]) -> dict[str, Any]:
    return {SHORT.get(k, k): v for k, v in fields.items()}


def _long(fields: dict[str, Any] | None) -> dict[str, Any]:
    return {LONG.get(k, k): v for k, v in (fields or {}).items()}
