"""Connecting to Redis, standalone or behind Sentinel, and knowing when its last writes
may have been lost.

Redis replication is asynchronous: after a Sentinel failover, or when a write reached no
replica, what the old master acknowledged may be gone. ``Replication`` notices (the master
moved, a ``WAIT`` went unanswered, or the store saw Redis's run id change) and says so for a
while (``in_doubt``); passes then observe Teamwork before trusting a record.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool

from zdsync import defaults
from zdsync.config import BY_DEST, RedisSettings
from zdsync.secret import Secret

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


@dataclass(frozen=True)
class Failure:
    """Why Redis cannot be used, in one line naming the setting to fix (never a secret)."""

    text: str
    misconfigured: bool  # the settings are wrong (exit 2), not merely Redis unreachable (1)


@dataclass(frozen=True)
class _Role:
    """The names a message uses for the data nodes or for the Sentinels."""

    who: str
    login: str
    tls: str
    address: str
    encrypted: bool
    has_client_cert: bool


def _named(*dests: str) -> str:
    return " / ".join(f"{BY_DEST[d].section}.{BY_DEST[d].key} ({BY_DEST[d].env})"
                      for d in dests)


def _data_role(settings: RedisSettings) -> _Role:
    url = _named("redis_url")
    login = (f"the user and password in {url}" if settings.url else
             _named("redis_username", "redis_password"))
    address = ("the address the Sentinels give (the master's announce-ip)"
               if settings.use_sentinel else url if settings.url
               else _named("redis_host", "redis_port"))
    return _Role(where(settings), login, f"{_named('redis_ssl')} or a rediss:// {url}",
                 address, settings.tls, bool(settings.ssl_certfile))


def _sentinel_role(settings: RedisSettings, host: str, port: int) -> _Role:
    return _Role(f"the Sentinel at {host}:{port}",
                 _named("redis_sentinel_username", "redis_sentinel_password"),
                 _named("redis_sentinel_ssl"), _named("redis_sentinel_hosts"),
                 settings.sentinel_ssl, bool(settings.ssl_certfile))


def _chain(exc: BaseException) -> list[BaseException]:
    chain = [exc]
    while chain[-1].__cause__ or chain[-1].__context__:
        nxt = chain[-1].__cause__ or chain[-1].__context__
        if nxt in chain:
            break
        chain.append(nxt)  # type: ignore[arg-type]
    return chain


def _classify(exc: BaseException, role: _Role) -> Failure:
    chain = _chain(exc)
    text = " ".join(str(e) for e in chain)
    verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    fix_ca = _named("redis_ssl_ca_certs")
    if verify is not None:
        reason = verify.verify_message or str(verify)
        if "expired" in reason:
            return Failure(f"{role.who}: its TLS certificate has expired; the server needs a "
                           f"new one ({_named('redis_ssl_cert_reqs')} none skips the check, "
                           "for tests only)", True)
        if "mismatch" in reason:
            return Failure(f"{role.who}: its TLS certificate is not for this address "
                           f"({reason}); connect by a name the certificate carries: "
                           f"{role.address}", True)
        return Failure(f"{role.who}: its TLS certificate is not trusted ({reason}); set "
                       f"{fix_ca} to the PEM file of the CA that signed it", True)
    if isinstance(exc, redis.AuthenticationError):
        if "invalid username-password" in text or "WRONGPASS" in text:
            return Failure(f"{role.who} refused the user name and password: fix "
                           f"{role.login}", True)
        return Failure(f"{role.who} asks for a login: set {role.login}", True)
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return Failure(f"{role.who}: the ACL user may not run what zdsync needs ({exc}); "
                       f"grant it the commands of the README's \"Managed Redis\" section, "
                       f"or use another user: {role.login}", True)
    client_cert = _named("redis_ssl_certfile", "redis_ssl_keyfile")
    if "CERTIFICATE_REQUIRED" in text or "alert certificate required" in text:
        return Failure(f"{role.who} requires a client certificate: set {client_cert}", True)
    if any(word in text for word in ("ALERT_UNKNOWN_CA", "ALERT_BAD_CERTIFICATE",
                                     "alert unknown ca", "alert bad certificate")):
        return Failure(f"{role.who} refused the client certificate: set {client_cert} to "
                       "one its CA signed", True)
    if role.encrypted and "EOF occurred in violation of protocol" in text:
        # TLS 1.3: the server's refusal of the client certificate may come as a bare close.
        need = ("refused the client certificate" if role.has_client_cert
                else "requires a client certificate")
        return Failure(f"{role.who} closed the TLS connection: it probably {need}: set "
                       f"{client_cert}", True)
    if role.encrypted and ("handshake" in text or "WRONG_VERSION_NUMBER" in text
                           or "record layer" in text or "UNEXPECTED_EOF" in text):
        return Failure(f"{role.who} does not answer TLS: if it serves plain text, turn TLS "
                       f"off ({role.tls})", True)
    if not role.encrypted and ("reset by peer" in text or "closed by server" in text):
        return Failure(f"{role.who} closed the connection at once: if it serves TLS only, "
                       f"turn TLS on ({role.tls})", True)
    return Failure(f"{role.who} does not answer ({exc}); start it, or check {role.address}",
                   False)


def explain(exc: BaseException, settings: RedisSettings) -> Failure:
    """What went wrong, for an operator: which setting to fix, or that Redis is away.

    redis-py folds a Sentinel's refusal (a password, TLS) into "no master found": then
    each Sentinel is asked once more, directly, for the error it gives."""
    if isinstance(exc, MasterNotFoundError) and settings.sentinel_hosts:
        for host, port in settings.sentinel_hosts:
            try:
                redis.Redis(host, port, **sentinel_kwargs(settings)).ping()
            except redis.RedisError as refused:
                failure = _classify(refused, _sentinel_role(settings, host, port))
                if failure.misconfigured:
                    return _scrubbed(failure, settings)
        return _scrubbed(Failure(
            f"no Sentinel knows a master named {settings.sentinel_master!r} ({exc}); check "
            f"{_named('redis_sentinel_master', 'redis_sentinel_hosts')}",
            False), settings)
    return _scrubbed(_classify(exc, _data_role(settings)), settings)


def _scrubbed(failure: Failure, settings: RedisSettings) -> Failure:
    """Belt and braces: no configured secret in the text, whatever a server echoed."""
    text = failure.text
    secrets = [settings.password, settings.sentinel_password]
    if settings.url:
        secrets.append(Secret(parse_url(settings.url.reveal()).get("password", "")))
    for secret in secrets:
        if secret:
            text = text.replace(secret.reveal(), "***")
    return Failure(text, failure.misconfigured)


def server_facts(client: redis.Redis, settings: RedisSettings) -> str:
    """Version, TLS and user of the server a client talks to, for ``check``."""
    version = client.info("server").get("redis_version", "?")
    try:
        user = client.execute_command("ACL WHOAMI")
    except redis.ResponseError:  # before Redis 6, or WHOAMI not granted
        user = node_kwargs(settings).get("username") or "default"
    tls = "TLS" if settings.tls else "no TLS"
    return f"Redis {version}, {tls}, user {user}"


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
        self.settings = settings
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
                self._problem = f"redis: {explain(exc, self.settings).text}"
            return self._problem
        finally:
            self._busy.release()
