"""Event-subscription webhooks: each ticket event, signed and posted in order
by one background thread, best effort, when ``webhook_url`` and ``webhook_secret`` are set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from zdsync.sim.base import iso_utc
from zdsync.sim.zendesk.service import ZendeskService

EVENT_FOR_FIELD = {
    "subject": "subject_changed", "status": "status_changed",
    "assignee_id": "agent_assignment_changed", "tags": "tags_changed",
    "priority": "priority_changed", "type": "type_changed",
    "group_id": "group_assignment_changed", "requester_id": "requester_changed",
    "brand_id": "brand_changed", "ticket_form_id": "form_changed",
    "organization_id": "organization_changed", "due_at": "task_due_at_changed",
}
"""The event a change of each updatable field sends, in the order they are sent."""


class Webhooks(ZendeskService):
    """``_emit`` queues an event; ``wait_webhooks`` lets a test wait for the deliveries."""

    def _emit(self, ticket: dict[str, Any], kind: str, previous: Any, current: Any) -> None:
        """Queue a signed event-subscription webhook; best effort."""
        if not self.webhook_url or not self.webhook_secret:
            return
        event: dict[str, Any] = {"meta": {"sequence": {
            "id": str(uuid.UUID(int=self._uuid_rng.getrandbits(128), version=4)),
            "position": 1, "total": 1}}}
        if kind == "status_changed":
            previous, current = str(previous).upper(), str(current).upper()
        if previous is not None or current is not None:
            event.update(previous=previous, current=current)
        payload = {
            "type": f"zen:event-type:ticket.{kind}",
            "account_id": 1,
            "id": str(uuid.UUID(int=self._uuid_rng.getrandbits(128), version=4)),
            "time": iso_utc(self.clock.now()),
            "zendesk_event_version": "2022-11-06",
            "subject": f"zen:ticket:{ticket['id']}",
            "detail": _event_detail(ticket),
            "event": event,
        }
        self._webhook_queue.put((json.dumps(payload).encode(), iso_utc(self.clock.now())))
        if self._webhook_thread is None or not self._webhook_thread.is_alive():
            self._webhook_thread = threading.Thread(target=self._deliver_webhooks,
                                                    name="zendesk-sim-webhooks", daemon=True)
            self._webhook_thread.start()

    def _deliver_webhooks(self) -> None:
        while True:
            item = self._webhook_queue.get()
            try:
                if item is None:
                    return
                self._deliver(*item)
            finally:
                self._webhook_queue.task_done()

    def _deliver(self, body: bytes, timestamp: str) -> None:
        url, secret = self.webhook_url, self.webhook_secret
        if not url or not secret:
            return
        signature = base64.b64encode(
            hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
        ).decode()
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Signature": signature,
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
            "User-Agent": "Zendesk Webhook",
        })
        record: dict[str, Any] = {"id": json.loads(body)["id"], "status": None, "error": None}
        try:
            with urllib.request.urlopen(req, timeout=5) as answer:
                record["status"] = answer.status
        except urllib.error.HTTPError as exc:
            record["status"] = exc.code
        except OSError as exc:
            record["error"] = repr(exc)
        self.webhook_deliveries.append(record)

    def wait_webhooks(self, timeout_seconds: float = 5.0) -> bool:
        """Block until every queued webhook was attempted (for tests)."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._webhook_queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        if self._webhook_thread is not None and self._webhook_thread.is_alive():
            self._webhook_queue.put(None)
            self._webhook_thread.join(2)
        self._webhook_thread = None
        super().stop()


def _event_detail(ticket: dict[str, Any]) -> dict[str, Any]:
    """Ticket ``detail`` of an event webhook; ids are strings as in Zendesk's examples."""

    def sid(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "actor_id": "-1", "assignee_id": sid(ticket["assignee_id"]),
        "brand_id": sid(ticket["brand_id"]),
        "created_at": ticket["created_at"], "custom_status": None,
        "description": ticket["description"], "external_id": ticket["external_id"],
        "form_id": sid(ticket["ticket_form_id"]), "group_id": sid(ticket["group_id"]),
        "id": str(ticket["id"]), "is_public": True,
        "organization_id": sid(ticket["organization_id"]), "priority": ticket["priority"],
        "requester_id": sid(ticket["requester_id"]), "status": ticket["status"].upper(),
        "subject": ticket["subject"], "submitter_id": sid(ticket["submitter_id"]),
        "tags": list(ticket["tags"]), "type": ticket["type"],
        "updated_at": ticket["updated_at"], "via": {"channel": ticket["via"]["channel"]},
    }
