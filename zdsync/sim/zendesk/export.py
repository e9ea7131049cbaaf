"""The cursor-based incremental ticket export: each ticket's latest version once, in
ascending ``generated_timestamp``, the last minute withheld, admins only, 10 requests a
minute on top of the account limit.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlencode

from zdsync.sim.base import Request, Response, json_response, truthy
from zdsync.sim.server import route
from zdsync.sim.zendesk.service import invalid
from zdsync.sim.zendesk.tickets import Tickets

EXPORT_MAX_PER_PAGE = 1000
EXPORT_DELAY_SECONDS = 60
"""Changes younger than this are not exported yet (docs/simulators.md)."""
_END_SEQ = 2**53  # "after every change of that second" in a cursor position
_TOO_RECENT = {"error": "StartTimeTooRecent",
               "description": "Too recent start_time. Use a start_time older than 1 minute"}


class Export(Tickets):
    """``GET /api/v2/incremental/tickets/cursor``."""

    def _encode_cursor(self, position: tuple[int, int]) -> str:
        raw = f"{position[0]}.{position[1]}||{self._cursor_tag}|".encode()
        return base64.urlsafe_b64encode(raw).decode()

    def _decode_cursor(self, cursor: str) -> tuple[int, int] | None:
        try:
            raw = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4))
            found = re.fullmatch(rb"(\d+)\.(\d+)\|\|(\d+)\|", raw)
        except (binascii.Error, ValueError):
            return None
        if not found or found.group(3).decode() != self._cursor_tag:
            return None
        return int(found.group(1)), int(found.group(2))

    @route("GET", "/api/v2/incremental/tickets/cursor", group="export")
    def _export(self, request: Request, _m: re.Match[str]) -> Response:
        start_time, cursor = request.arg("start_time"), request.arg("cursor")
        per_page_raw = request.arg("per_page")
        per_page = EXPORT_MAX_PER_PAGE
        if per_page_raw is not None:
            if not per_page_raw.isdigit() or int(per_page_raw) < 1:
                return invalid("per_page must be a positive integer")
            per_page = min(int(per_page_raw), EXPORT_MAX_PER_PAGE)
        now = int(self.clock.now())
        cutoff = now - EXPORT_DELAY_SECONDS
        # start_time wins over cursor when both are sent (docs/simulators.md).
        if start_time is not None:
            if not start_time.lstrip("-").isdigit():
                return invalid("start_time must be an integer (epoch seconds)")
            if int(start_time) > cutoff:
                return json_response(400, _TOO_RECENT)
            position = (max(int(start_time), 0) - 1, _END_SEQ)
        elif cursor is not None:
            decoded = self._decode_cursor(cursor)
            if decoded is None:
                return json_response(400, {"error": "InvalidPaginationParameter",
                                           "description": "cursor is invalid"})
            position = decoded
        else:
            return invalid("start_time or cursor is required")
        exclude_deleted = truthy(request.arg("exclude_deleted"))
        pending = sorted(
            (version, tid) for tid, version in self._versions.items()
            if version > position and version[0] < cutoff
            and not (exclude_deleted and self._tickets[tid]["status"] == "deleted")
        )
        page, more = pending[:per_page], len(pending) > per_page
        if more:
            after: tuple[int, int] | None = page[-1][0]
        else:
            after = max(position, (cutoff - 1, _END_SEQ), *(v for v, _ in page))
            if not page and self.omit_cursor_when_empty:
                after = None
        extra = {k: v for k, v in (("per_page", per_page_raw),
                                   ("exclude_deleted", request.arg("exclude_deleted")))
                 if v is not None}
        after_cursor = None if after is None else self._encode_cursor(after)
        before_cursor = cursor if start_time is None else None
        return json_response(200, {
            "tickets": [self._public_ticket(self._tickets[tid]) for _, tid in page],
            "after_url": self._export_url(after_cursor, extra),
            "after_cursor": after_cursor,
            "before_url": self._export_url(before_cursor, extra),
            "before_cursor": before_cursor,
            "end_of_stream": not more,
        })

    def _export_url(self, cursor: str | None, extra: dict[str, str]) -> str | None:
        if cursor is None:
            return None
        query = urlencode({**extra, "cursor": cursor})
        return f"{self._base_url()}/api/v2/incremental/tickets/cursor.json?{query}"
