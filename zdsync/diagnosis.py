"""Why Redis cannot be used, told so that an operator knows what to fix: a certificate, a
login, TLS on one side only (the settings are wrong: exit 2) or a Redis that is away (exit 1),
in one line naming the setting, never a secret. Used by every command, ``check``, the
demo and the daemon's /readyz (``Probe``).
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass

import redis
from redis.connection import parse_url
from redis.sentinel import MasterNotFoundError

from zdsync import defaults
from zdsync.config import BY_DEST, RedisSettings
from zdsync.connection import connect, node_kwargs, sentinel_kwargs, where
from zdsync.secret import Secret


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
