"""Prometheus metrics, created against a registry you pass in (tests make a fresh one).

Names follow Prometheus conventions: ``zdsync_`` prefix, ``_total`` for counters,
base units in the name. No ticket or task id is ever a label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PASS_BUCKETS_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.passes = Counter("zdsync_passes_total", "Sync passes by result.", ["result"],
                              registry=r)
        self.pass_duration = Histogram("zdsync_pass_duration_seconds", "Duration of a pass.",
                                       buckets=PASS_BUCKETS_SECONDS, registry=r)
        self.tickets = Counter("zdsync_tickets_processed_total",
                               "Tickets reconciled, by source and result.",
                               ["source", "result"], registry=r)
        self.actions = Counter("zdsync_actions_total", "Teamwork actions by kind and outcome.",
                               ["action", "outcome"], registry=r)
        self.skipped = Counter("zdsync_tickets_skipped_total", "Tickets skipped, by reason.",
                               ["reason"], registry=r)
        self.api_requests = Counter("zdsync_api_requests_total",
                                    "HTTP requests to the APIs by service and status class.",
                                    ["service", "status"], registry=r)
        self.api_latency = Histogram("zdsync_api_request_duration_seconds",
                                     "HTTP request latency by service.", ["service"], registry=r)
        self.rate_limit_waits = Counter("zdsync_rate_limit_waits_total",
                                        "Times a request waited for a rate limit.", ["service"],
                                        registry=r)
        self.rate_limit_wait_seconds = Counter("zdsync_rate_limit_wait_seconds_total",
                                               "Seconds spent waiting for rate limits.",
                                               ["service"], registry=r)
        self.retry_depth = Gauge("zdsync_retry_set_depth", "Tickets waiting in the retry set.",
                                 registry=r)
        self.cursor_lag = Gauge("zdsync_cursor_lag_seconds",
                                "Now minus the export position of the saved cursor.",
                                registry=r)
        self.last_success = Gauge("zdsync_last_successful_pass_timestamp_seconds",
                                  "Unix time the last successful pass ended.", registry=r)
        self.leader = Gauge("zdsync_leader", "1 while this process holds the sync lock.",
                            registry=r)
        self.webhooks = Counter("zdsync_webhook_requests_total", "Webhook requests by outcome.",
                                ["outcome"], registry=r)
        self.webhook_queue = Gauge("zdsync_webhook_queue_depth",
                                   "Ticket ids queued by webhooks, not yet reconciled.",
                                   registry=r)
        self.state_rebuilds = Counter("zdsync_state_rebuilds_total",
                                      "Times the ticket->task links were rebuilt from Teamwork "
                                      "because Redis came back empty or is another store.",
                                      registry=r)
        self.state_losses = Counter("zdsync_state_losses_total",
                                    "Keys found lost (evicted, deleted) and repaired, by key.",
                                    ["key"], registry=r)
        self.mappings_held = Gauge("zdsync_agent_mappings_held",
                                   "1 while tasks keep their assignees because the agent "
                                   "mappings were lost.", registry=r)
        self.eviction_unsafe = Gauge("zdsync_redis_eviction_unsafe",
                                     "1 when Redis's maxmemory-policy can evict zdsync's keys "
                                     "(allkeys-*), 0 when not, -1 when it could not be read.",
                                     registry=r)
        self.scheduler_events = Counter("zdsync_scheduler_events_total",
                                        "Scheduler events: missed, error, max_instances.",
                                        ["event"], registry=r)


def status_class(status: int | None) -> str:
    """2xx, 4xx, 5xx, 429 kept apart (it matters), or "error" when no response came."""
    if status is None:
        return "error"
    if status == 429:
        return "429"
    return f"{status // 100}xx"
