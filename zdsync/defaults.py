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
TEAMWORK_IDS_PER_REQUEST = 100
"""Ids per ``ids=`` list request: keeps the URL short and the answer one page."""
TEAMWORK_LISTING_CAP = 50_000
"""Records Teamwork answers to one listing, its pages together
(https://apidocs.teamwork.com/guides/teamwork/how-does-paging-work); task listings read on
past it with ``updatedAfter``."""

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
CURSOR_RECOVERY_MARGIN_SECONDS = 3600
"""When the cursor alone was lost, the export replays from this long before the position
the records hold (``recovery.resume_position``)."""
REWIND_HORIZON_SECONDS = max(REBUILD_REPLAY_MARGIN_SECONDS, CURSOR_RECOVERY_MARGIN_SECONDS)
"""The furthest the export is ever moved back on its own, behind where it had got to (one of
the two margins above, after a loss).
``zdsync cursor reset`` by hand can move it further; the tombstones of closed tickets
(``Store.tombstone_ops``) are kept for good, so even then a replay changes nothing."""
REBUILD_BATCH_TICKETS = 100
"""Tickets a rebuild reads and reconciles together: one ``show_many`` request."""

# Bookkeeping
TOMBSTONE_BUCKET_TICKETS = 128
"""Tickets whose tombstones share one hash (``gone:{n}``): at most Redis's
``hash-max-listpack-entries`` (128 by default), so each hash stays a compact listpack."""
HISTORY_LENGTH = 50
"""Actions remembered per ticket for ``zdsync tickets show``."""
HISTORY_TTL_SECONDS = 30 * 86400
"""How long a ticket's history is kept after its last action: a ticket nobody changes
for a month costs its record only (``volatile-*`` eviction may take it sooner)."""

# Routes and templates
TEMPLATE_DATA_TTL_SECONDS = 3600.0
"""How long requester names and e-mails, group names and Teamwork tag ids are reused
before they are read again (renames show on tasks only as their tickets next change)."""
UNKNOWN_NAME_REREAD_SECONDS = 60.0
"""A group or tag id not among those read is read again at most this often (a new group,
a tag made by hand), not once per ticket."""

# The daemon
WORKER_TICK_SECONDS = 0.25
"""How often the worker looks at the webhook queue (and, as standby, at the lease)."""
ELECT_EVERY_SECONDS = 2.0
"""How often a standby replica tries to take the lease (more often with a shorter interval:
a standby takes over within one lease lifetime plus one interval)."""
HEALTH_MARGIN_SECONDS = 60.0
"""Slack beyond three intervals before a leader without a successful pass is unhealthy."""
SHUTDOWN_SECONDS = 25.0
"""How long a graceful shutdown may wait for the ticket in hand (Kubernetes gives 30 s)."""
PROBE_REDIS_TIMEOUT_SECONDS = 0.5
"""How long /readyz waits for Redis: a probe must answer within a second even while
Redis hangs (Kubernetes' default probe timeout is 1 s)."""
WEBHOOK_REDIS_TIMEOUT_SECONDS = 0.5
"""How long a webhook waits for Redis, without retries: while Redis hangs, a webhook
answers 503 (Zendesk delivers it again) instead of holding an HTTP thread."""

# Webhooks
WEBHOOK_EVENT_TTL_SECONDS = 86400
"""How long a webhook event id is remembered to drop duplicate deliveries."""
WEBHOOK_MAX_BODY_BYTES = 1024 * 1024
"""Larger bodies get 413 unread; Zendesk's are a few kilobytes."""
WEBHOOK_MAX_JSON_DEPTH = 32
"""Deepest nesting of arrays and objects a webhook body may have; Zendesk's are 4 deep.
Checked before parsing: a deep body would otherwise exhaust the parser's recursion."""
WEBHOOK_MAX_EVENT_ID_CHARS = 128
"""Longer (or oddly spelt) event ids are hashed before they name a Redis key."""
WEBHOOK_MAX_AGE_SECONDS = 300
"""Zendesk prescribes no replay window; five minutes is common practice."""
WEBHOOK_RETRY_AFTER_SECONDS = 5
"""What a 503 asks Zendesk to wait: it retries a 503 only when Retry-After is short."""

WEBHOOK_POLL_SECONDS = 0.5
"""How often a running pass looks for webhook-queued tickets to handle first."""
WEBHOOK_BATCH_TICKETS = 100
"""Webhook-queued tickets taken at once (one ``show_many`` reads them)."""

# zdsync check (every check gives up within seconds)
CHECK_REDIS_TIMEOUT_SECONDS = 3.0
CHECK_HTTP_TIMEOUT_SECONDS = (5.0, 10.0)
"""Connect and read timeouts of one check request (one attempt, no retries)."""
CHECK_LONGEST_RATE_LIMIT_WAIT_SECONDS = 5.0
"""A rate-limit wait longer than this is reported ("try again later"), not waited out."""

# Text zdsync writes to Teamwork
MAX_TITLE_CHARS = 250
"""Longest task title zdsync writes; a longer one is cut in the subject, never in the id."""
MAX_TEMPLATE_REST_CHARS = 150
"""Longest a title may be without its subject (``sync.title_template`` is checked against
it), so a cut title always keeps its id and some subject."""
MAX_DESCRIPTION_CHARS = 10_000
"""Longest task description zdsync writes (the link line always whole, first)."""

# Logs
MAX_LOGGED_VALUE_CHARS = 200
"""Longest outside value ``clip`` lets into a log line, in characters."""
