"""Every tunable in one place, with its unit in its name (the rq convention)."""

# Scheduling
SYNC_INTERVAL_SECONDS = 60
"""Seconds between two passes of the poller."""

MISFIRE_GRACE_SECONDS = 300
"""How late a scheduled pass may still start; APScheduler's 1 s default drops late runs."""

# Locks
LOCK_TTL_SECONDS = 30
"""Lifetime of the sync (leader) lock; renewed every third of it while held."""

# HTTP clients
HTTP_CONNECT_TIMEOUT_SECONDS = 5.0
HTTP_READ_TIMEOUT_SECONDS = 30.0
HTTP_MAX_ATTEMPTS = 5
"""Attempts for one idempotent request before the error reaches the reconciler."""
HTTP_BACKOFF_BASE_SECONDS = 0.5
HTTP_BACKOFF_CAP_SECONDS = 30.0
MAX_RATE_LIMIT_WAIT_SECONDS = 120.0
"""Longest single wait for a rate limit inside a request; longer waits fail the call."""

# Zendesk
ZENDESK_PAGE_SIZE = 1000
"""Tickets per export page (Zendesk's maximum)."""
ZENDESK_MIN_PAGE_SIZE = 100
"""Smallest page size reached when shrinking pages after 504s and timeouts."""
ZENDESK_MAX_PAGES_PER_PASS = 1000
"""Export pages one pass reads at most (a million tickets at full pages); the next pass
goes on from the cursor. Only an export that never ends reaches it."""
ZENDESK_MAX_IDLE_PAGES = 3
"""Export pages in a row that bring nothing new (empty, or repeating an earlier page of
the same pass) under fresh cursors before a pass stops: the export is not progressing."""
ZENDESK_START_TIME_MARGIN_SECONDS = 90
"""A first export never starts later than now minus this (Zendesk refuses the last minute)."""

# Teamwork
TEAMWORK_RATE_LIMIT_PER_MINUTE = 150
TEAMWORK_PACE_SHARE = 0.9
"""Share of ``teamwork.rate_limit`` zdsync uses while Teamwork's answers carry no budget
headers (once they do, it spends what they report), so it stays under the limit."""
TEAMWORK_RESERVE_SHARE = 0.01
"""Share of the budget Teamwork reports (at least one request a window) that zdsync never
spends, so an operator's command with the same token is not refused."""
TEAMWORK_WINDOW_SECONDS = 60.0
"""Teamwork's rate-limit window, until its answers say otherwise."""
TEAMWORK_CONCURRENCY = 4
"""Tickets worked on at once (``teamwork.concurrency``): enough to keep the budget busy at
real latencies; the pacer bounds the total."""
ZENDESK_EXPORT_RATE_LIMIT_PER_MINUTE = 10
"""Zendesk's limit for the incremental exports (30 with the High Volume add-on)."""
TEAMWORK_LOCKOUT_SECONDS = 60.0
"""Teamwork's documented lock-out after a 429 when no reset header says otherwise."""
TEAMWORK_SEARCH_PAGE_SIZE = 100

# Retries of failed tickets
RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 3600.0
"""A failing ticket is retried with exponential backoff from base to cap, forever."""

# Redis
REDIS_RETRY_ATTEMPTS = 8
"""Retries of one Redis command: with the backoff below, about 10 s, a Sentinel failover."""
REDIS_SOCKET_TIMEOUT_SECONDS = 5.0
REPLICA_WAIT_MS = 250
"""How long a write zdsync relies on may take to reach a replica (Sentinel only)."""
DOUBT_SECONDS = 600.0
"""After the Redis master moved, or a write reached no replica, every create first looks
for an existing task for this long: a record may have vanished with the old master."""

# Losing Redis
REBUILD_REPLAY_MARGIN_SECONDS = 3600
"""After a state rebuild, the export replays from this long before zdsync's most recent
write in Teamwork: the export position trails its writes by a pass or so; replays are
harmless, missed changes are not."""

# Bookkeeping
HISTORY_LENGTH = 50
"""Actions remembered per ticket for ``zdsync tickets show``."""

# Routes and templates
TEMPLATE_DATA_TTL_SECONDS = 3600.0
"""How long requester names and e-mails, group names and Teamwork tag ids are reused
before they are read again (renames show on tasks only as their tickets next change)."""
UNKNOWN_NAME_REREAD_SECONDS = 60.0
"""A group or tag id not among those read is read again at most this often (a new group,
a tag made by hand), not once per ticket."""
