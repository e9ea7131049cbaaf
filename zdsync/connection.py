"""Connecting to Redis, standalone or behind Sentinel, and knowing when its last writes
may have been lost.

Redis replication is asynchronous: after a Sentinel failover, or when a write reached no
replica, what the old master acknowledged may be gone. ``Replication`` notices (the master
moved, a ``WAIT`` went unanswered, or the store saw Redis's run id change) and says so for a
while (``in_doubt``); passes then observe Teamwork before trusting a record.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from zdsync import defaults
from zdsync.config import RedisSettings

log = logging.getLogger(__name__)


def sentinel_kwargs(settings: RedisSettings) -> dict[str, Any]:
    """Options for the connections to the Sentinels themselves (not the data nodes):
    short timeouts, and the password, which redis-py does not pass on by itself."""
    kwargs: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0}
    if settings.password:
        kwargs["password"] = settings.password.reveal()
    return kwargs


def connect(settings: RedisSettings, *, attempts: int = defaults.REDIS_RETRY_ATTEMPTS,
            timeout_seconds: float = defaults.REDIS_SOCKET_TIMEOUT_SECONDS) -> redis.Redis:
    """A client for the configured Redis; Sentinel re-discovers the master on reconnect.

    Health probes use ``attempts=0`` and a short timeout: a probe must answer quickly.
    """
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), attempts)
    common: dict[str, Any] = dict(
        db=settings.db,
        password=settings.password.reveal() if settings.password else None,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ReadOnlyError],
        decode_responses=True,
    )
    if settings.use_sentinel:
        assert settings.sentinel_hosts
        sentinel = Sentinel(list(settings.sentinel_hosts),
                            sentinel_kwargs=sentinel_kwargs(settings))
        return sentinel.master_for(settings.sentinel_master, **common)
    return redis.Redis(host=settings.host, port=settings.port, **common)


class Replication:
    """Doubt about recent writes, for ``defaults.DOUBT_SECONDS`` after the last reason."""

    def __init__(self, client: redis.Redis, fence_key: str, *, replicated: bool) -> None:
        self.r = client
        self.fence_key = fence_key
        self.replicated = replicated
        self._doubt_until = 0.0

    def follow_master(self) -> None:
        """With Sentinel, ask where the master is now; idle connections to a deposed master
        are dropped (redis-py asks only when it opens a connection or hears READONLY, and a
        deposed master may accept writes for seconds before Sentinel demotes it)."""
        pool = self.r.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            before = pool.proxy.master_address
            after = pool.get_master_address()
            if before is not None and after != before:
                log.warning("Redis master moved from %s to %s", before, after)
                self.doubt()

    def confirm(self) -> None:
        """Check that a replica holds every write made so far (a no-op unless replicated).

        WAIT counts the writes of its own connection, so it follows a write of its own on
        the same connection; that write comes after ours, so its acknowledgement covers
        ours. Without an acknowledgement the write may not survive a failover, and recent
        writes are in doubt (see ``in_doubt``). While they are, every ticket is
        observed in Teamwork anyway, so the check (and its wait) is skipped.
        """
        if not self.replicated or self.in_doubt():
            return
        with self.r.pipeline(transaction=False) as pipe:
            pipe.incr(self.fence_key)
            pipe.execute_command("WAIT", 1, defaults.REPLICA_WAIT_MS)
            _, acknowledged = pipe.execute()
        if int(acknowledged) < 1:
            self.doubt()

    def doubt(self) -> None:
        if not self.in_doubt():
            log.warning("recent Redis writes may be lost: for %.0f s, every ticket's task is "
                        "observed in Teamwork before it is planned", defaults.DOUBT_SECONDS)
        self._doubt_until = time.monotonic() + defaults.DOUBT_SECONDS

    def in_doubt(self) -> bool:
        """True for a while after Redis restarted, the master moved, or a write reached no
        replica: a record may be older than what Teamwork holds, or gone."""
        return time.monotonic() < self._doubt_until


class Probe:
    """Whether Redis answers, for /readyz: one ping (no retries, a short timeout) at a
    time. Probes arriving meanwhile take the last answer instead of queueing behind a hung
    Redis, so no probe waits longer than one ping."""

    def __init__(self, settings: RedisSettings) -> None:
        self.client = connect(settings, attempts=0,
                              timeout_seconds=defaults.PROBE_REDIS_TIMEOUT_SECONDS)
        self._busy = threading.Lock()
        self._problem: str | None = "redis: not checked yet"

    def problem(self) -> str | None:
        """None when Redis answers; else what is wrong, for the probe's answer."""
        if not self._busy.acquire(blocking=False):
            return self._problem
        try:
            try:
                self.client.ping()
                self._problem = None
            except redis.RedisError as exc:
                self._problem = f"redis: {type(exc).__name__}"
            return self._problem
        finally:
            self._busy.release()
