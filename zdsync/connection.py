"""Connecting to Redis, standalone or behind Sentinel, and knowing when its last writes
may have been lost.

Every client is made by ``connect`` from the settings: a url or host and port, an ACL user,
TLS (with its CA and client certificate) to the data nodes and, separately, the Sentinels'
own login and TLS. Why a connection fails is ``diagnosis``'s business.

Redis replication is asynchronous: after a Sentinel failover, or when a write reached no
replica, what the old master acknowledged may be gone. ``Replication`` notices (the master
moved, a ``WAIT`` went unanswered, or the store saw Redis's run id change) and says so for a
while (``in_doubt``); passes then observe Teamwork before trusting a record.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from zdsync import defaults
from zdsync.config import RedisSettings

log = logging.getLogger(__name__)


def _tls(settings: RedisSettings) -> dict[str, Any]:
    """redis-py's TLS options from the ``ssl_*`` settings (data nodes and Sentinels alike)."""
    global _warned_unverified
    verify = settings.ssl_cert_reqs == "required"
    if not verify and not _warned_unverified:
        _warned_unverified = True
        log.warning("redis.ssl_cert_reqs is none: the Redis server's certificate is not "
                    "checked, so anyone between zdsync and Redis can read and change its "
                    "data; set redis.ssl_ca_certs instead")
    return {"ssl": True, "ssl_cert_reqs": settings.ssl_cert_reqs,
            "ssl_check_hostname": verify, "ssl_ca_certs": settings.ssl_ca_certs,
            "ssl_certfile": settings.ssl_certfile, "ssl_keyfile": settings.ssl_keyfile}


_warned_unverified = False


def node_kwargs(settings: RedisSettings) -> dict[str, Any]:
    """Where the data node is and how to log in to it: from ``url`` when set (it wins over
    host, port, db, username and password), else from those settings; TLS when ``ssl`` is
    on or the url is ``rediss://``. With Sentinel, host and port are ignored."""
    if settings.url:
        parsed = parse_url(settings.url.reveal())
        kwargs = {key: parsed[key] for key in ("host", "port", "db", "username", "password")
                  if key in parsed}
        if "path" in parsed:
            kwargs["unix_socket_path"] = parsed["path"]
        kwargs.setdefault("port", 6379)
    else:
        kwargs = {"host": settings.host, "port": settings.port, "db": settings.db,
                  "username": settings.username,
                  "password": settings.password.reveal() if settings.password else None}
    if settings.tls:
        kwargs.update(_tls(settings))
    return kwargs


def sentinel_kwargs(settings: RedisSettings) -> dict[str, Any]:
    """Options for the connections to the Sentinels themselves (not the data nodes): short
    timeouts, and their own user, password and TLS (redis-py passes none on by itself)."""
    kwargs: dict[str, Any] = {"socket_timeout": 1.0, "socket_connect_timeout": 1.0,
                              "username": settings.sentinel_username}
    if settings.sentinel_password:
        kwargs["password"] = settings.sentinel_password.reveal()
    if settings.sentinel_ssl:
        kwargs.update(_tls(settings))
    return kwargs


def sentinel(settings: RedisSettings) -> Sentinel:
    assert settings.sentinel_hosts
    return Sentinel(list(settings.sentinel_hosts), sentinel_kwargs=sentinel_kwargs(settings))


def where(settings: RedisSettings) -> str:
    """Which Redis the settings name, for messages (never the url's password)."""
    if settings.use_sentinel:
        hosts = ", ".join(f"{h}:{p}" for h, p in settings.sentinel_hosts or ())
        return f"master {settings.sentinel_master!r} of the Sentinels {hosts}"
    kwargs = node_kwargs(settings)
    if "unix_socket_path" in kwargs:
        return f"Redis at {kwargs['unix_socket_path']}"
    return f"Redis at {kwargs.get('host', 'localhost')}:{kwargs['port']}"


def connect(settings: RedisSettings, *, attempts: int = defaults.REDIS_RETRY_ATTEMPTS,
            timeout_seconds: float = defaults.REDIS_SOCKET_TIMEOUT_SECONDS) -> redis.Redis:
    """The one way zdsync makes a Redis client, so that the store, the lease, the webhook,
    the probes, ``check`` and the demo all use the same address, user, password and TLS.
    Sentinel re-discovers the master on reconnect.

    Health probes use ``attempts=0`` and a short timeout: a probe must answer quickly.
    """
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.1), attempts)
    common: dict[str, Any] = dict(
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError, ReadOnlyError],
        decode_responses=True,
    )
    node = node_kwargs(settings)
    if settings.use_sentinel:
        for key in ("host", "port", "unix_socket_path"):
            node.pop(key, None)
        return sentinel(settings).master_for(settings.sentinel_master, **node, **common)
    return redis.Redis(**node, **common)


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
