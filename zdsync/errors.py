"""Error types. Callers branch on *retryable* versus *permanent*, as kopf does."""

from __future__ import annotations


class ZdsyncError(Exception):
    """Base of every error zdsync raises on purpose."""


class ConfigError(ZdsyncError):
    """Settings missing or malformed; carries every problem at once."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


class ApiError(ZdsyncError):
    """A call to Zendesk or Teamwork failed. Never carries credentials."""

    def __init__(self, service: str, message: str, status: int | None = None) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service
        self.status = status


class RetryableError(ApiError):
    """Worth trying again later: 5xx, 429, timeouts, connection errors."""


class PermanentError(ApiError):
    """Trying again unchanged will not help: 4xx other than 404/429."""


class NotFound(PermanentError):
    """The object is gone (404)."""


class Unauthorized(PermanentError):
    """401 or 403: the credentials or their permissions are wrong, for every request alike.

    Retrying ticket by ticket only repeats the refusal, so a pass stops at once (keeping its
    cursor). The message names the setting or permission to fix, never a secret.
    """


FIX_FOR_REFUSAL = {
    ("teamwork", 401): "check teamwork.api_token (TEAMWORK_API_TOKEN) or teamwork.oauth_token "
                       "(TEAMWORK_OAUTH_TOKEN): Teamwork does not accept it",
    ("teamwork", 403): "give the integration user (the owner of the token) "
                       "permission to add, edit, complete and delete tasks in the project "
                       "teamwork.project_id",
    ("zendesk", 401): "check zendesk.email and zendesk.api_token (ZENDESK_EMAIL, "
                      "ZENDESK_API_TOKEN), or zendesk.oauth_token (ZENDESK_OAUTH_TOKEN): "
                      "Zendesk does not accept them",
    ("zendesk", 403): "the identity of the token (zendesk.email, or the OAuth token's user) "
                      "must be an admin: the incremental export is admin-only",
}
"""What to fix for a 401 or 403, by service: the message of ``Unauthorized``."""


class AmbiguousWrite(RetryableError):
    """A non-idempotent write may or may not have been applied (lost response)."""


class LockHeld(ZdsyncError):
    """Another process holds the sync lock."""


class Interrupted(ZdsyncError):
    """The work in hand must stop now. Not a failure of the ticket in hand: it is neither
    counted as failed nor queued for retry; what it wrote is marked in flight, so whoever
    works next observes Teamwork before trusting the record."""


class ShuttingDown(Interrupted):
    """A signal asked the process to stop."""


class LeaseLost(Interrupted):
    """This process no longer holds the sync lease: another may be working already, so it
    must not write to Teamwork or to the sync state again."""
