"""Every Redis client zdsync makes, against real TLS servers with ACL users (the fixtures in
tests/conftest.py): the url and the separate settings, mutual TLS, and each way the settings
can be wrong giving one line that names the setting to fix, never a secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from tests.tls import DATA_LOGIN
from zdsync.cli import main
from zdsync.config import load
from zdsync.connection import connect
from zdsync.diagnosis import Probe, explain
from zdsync.localredis import LocalRedis, Tls, free_port
from zdsync.store import Store

USER, PASSWORD = DATA_LOGIN


def url(server: Any, *, user: str = USER, password: str = PASSWORD, scheme: str = "rediss",
        port: int | None = None) -> str:
    login = f"{user}:{password}@" if user or password else ""
    return f"{scheme}://{login}127.0.0.1:{port or server.port}/0"


def redis_settings(**env: str):
    return load(None, {}, env, require_services=False).redis


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, list(args), env=env)


def test_check_passes_against_a_tls_only_redis_with_an_acl_user(cli_world, tls_redis,
                                                                certificates):
    env = cli_world.env(REDIS_URL=url(tls_redis), REDIS_SSL_CA_CERTS=certificates.ca)
    result = run(env, "check")
    assert result.exit_code == 0, result.output
    assert (f"✓ Redis: Redis at 127.0.0.1:{tls_redis.port} answers (Redis 7."
            in result.output)
    assert ", TLS, user zdsync; db 0" in result.output
    assert PASSWORD not in result.output


def test_users_add_and_sync_use_the_separate_tls_settings(cli_world, tls_redis, certificates):
    """The same server named without a url: host, port, username, password, ssl."""
    env = cli_world.env(REDIS_PORT=str(tls_redis.port), REDIS_USERNAME=USER,
                        REDIS_PASSWORD=PASSWORD, REDIS_SSL="true",
                        REDIS_SSL_CA_CERTS=certificates.ca, REDIS_KEY_PREFIX="tls:")
    agent, person = next(iter(cli_world.mappings.items()))
    try:
        result = run(env, "users", "add", str(agent), str(person))
        assert result.exit_code == 0, result.output
        result = run(env, "sync")
        assert result.exit_code == 0, result.output
        data = tls_redis.client()
        assert data.hget("tls:users", str(agent)) == str(person)
        assert data.exists("tls:cursor")
    finally:
        tls_redis.client().flushall()


LEAST_PRIVILEGE = ("on >pw resetkeys ~zdsync:* resetchannels -@all +@read +@write +@scripting "
                   "+@connection +info")
"""The README's ACL rules of a user that may do no more than zdsync needs."""


def test_the_readme_least_privilege_acl_user_is_enough(cli_world, certificates):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"ACL SETUSER zdsync {LEAST_PRIVILEGE.replace('>pw', '>PASSWORD')}" in readme
    tls = Tls(certificates.server, certificates.server_key, certificates.ca)
    admin = ("admin", "admin-pw")
    with LocalRedis(tls=tls, login=admin, conf=[
            "user default off", f"user {admin[0]} on >{admin[1]} ~* &* +@all",
            f"user zdsync {LEAST_PRIVILEGE}"]) as server:
        env = cli_world.env(REDIS_URL=url(server, password="pw"),
                            REDIS_SSL_CA_CERTS=certificates.ca, REDIS_KEY_PREFIX="zdsync:")
        agent, person = next(iter(cli_world.mappings.items()))
        cli_world.ticket("Least privilege", assignee=agent, status="open")
        cli_world.exportable()
        for args in (["check"], ["users", "add", str(agent), str(person)], ["sync"],
                     ["tickets", "list"], ["cursor", "show"]):
            result = run(env, *args)
            assert result.exit_code == 0, (args, result.output)
        assert "tasks created 1" in run(env, "cursor", "show").output


def test_mutual_tls(mtls_redis, certificates):
    settings = redis_settings(REDIS_URL=url(mtls_redis), REDIS_SSL_CA_CERTS=certificates.ca,
                              REDIS_SSL_CERTFILE=certificates.client,
                              REDIS_SSL_KEYFILE=certificates.client_key)
    store = Store(connect(settings, attempts=0), "m:")
    lease = store.lock(ttl_seconds=30)
    assert lease.acquire()  # the lease's script and the fenced write run over mutual TLS
    store.write(lease.token, ops=store.cursor_ops("c-1", 1000, 1000.0))
    assert store.cursor().cursor == "c-1"
    lease.release()


def test_the_webhook_and_probe_clients_use_the_same_settings(tls_redis, certificates):
    settings = redis_settings(REDIS_URL=url(tls_redis), REDIS_SSL_CA_CERTS=certificates.ca)
    assert Probe(settings).problem() is None
    wrong = redis_settings(REDIS_URL=url(tls_redis), REDIS_SSL_CA_CERTS=certificates.other_ca)
    assert "redis.ssl_ca_certs (REDIS_SSL_CA_CERTS)" in (Probe(wrong).problem() or "")


# -- each wrong setting: one line naming it, exit 2; an unreachable Redis: exit 1 ------------

CASES = {
    "wrong CA": ("tls_redis", lambda s, c: {"REDIS_URL": url(s),
                                            "REDIS_SSL_CA_CERTS": c.other_ca},
                 2, "is not trusted", "redis.ssl_ca_certs (REDIS_SSL_CA_CERTS)"),
    "system trust store": ("tls_redis", lambda s, c: {"REDIS_URL": url(s)},
                           2, "is not trusted", "redis.ssl_ca_certs"),
    "expired certificate": ("expired_redis", lambda s, c: {
        "REDIS_URL": url(s), "REDIS_SSL_CA_CERTS": c.ca}, 2, "has expired", "a new one"),
    "certificate for another host": ("misnamed_redis", lambda s, c: {
        "REDIS_URL": url(s), "REDIS_SSL_CA_CERTS": c.ca},
        2, "not for this address", "redis.url (REDIS_URL)"),
    "wrong password in the url": ("tls_redis", lambda s, c: {
        "REDIS_URL": url(s, password="not-it"), "REDIS_SSL_CA_CERTS": c.ca},
        2, "refused the user name and password", "in redis.url (REDIS_URL)"),
    "wrong user": ("tls_redis", lambda s, c: {
        "REDIS_PORT": str(s.port), "REDIS_SSL": "true", "REDIS_USERNAME": "someone",
        "REDIS_PASSWORD": PASSWORD, "REDIS_SSL_CA_CERTS": c.ca},
        2, "refused the user name and password",
        "redis.username (REDIS_USERNAME) / redis.password (REDIS_PASSWORD)"),
    "no login": ("tls_redis", lambda s, c: {
        "REDIS_PORT": str(s.port), "REDIS_SSL": "true", "REDIS_SSL_CA_CERTS": c.ca},
        2, "asks for a login", "redis.username"),
    "plain text to the TLS port": ("tls_redis", lambda s, c: {
        "REDIS_URL": url(s, scheme="redis")}, 2, "closed the connection at once",
        "turn TLS on (redis.ssl (REDIS_SSL) or a rediss://"),
    "TLS to a plain port": ("redis_server", lambda s, c: {
        "REDIS_URL": url(s, user="", password=""), "REDIS_SSL_CA_CERTS": c.ca},
        2, "does not answer TLS", "turn TLS off"),
    "no client certificate": ("mtls_redis", lambda s, c: {
        "REDIS_URL": url(s), "REDIS_SSL_CA_CERTS": c.ca},
        2, "requires a client certificate", "redis.ssl_certfile (REDIS_SSL_CERTFILE)"),
    "nobody listening": ("tls_redis", lambda s, c: {
        "REDIS_URL": url(s, port=free_port()), "REDIS_SSL_CA_CERTS": c.ca},
        1, "does not answer", "start it, or check redis.url"),
}


@pytest.fixture(params=list(CASES))
def case(request, certificates) -> tuple[dict[str, str], int, str, str]:
    server_fixture, env, code, what, fix = CASES[request.param]
    server = request.getfixturevalue(server_fixture)
    return env(server, certificates), code, what, fix


def test_a_command_says_in_one_line_what_to_fix(case, cli_world):
    env, code, what, fix = case
    result = run(cli_world.env(**env), "users", "list", "--no-names")
    assert result.exit_code == code, result.output
    # (Log lines of other tests' leftover threads may share this process's stderr.)
    [line] = [line for line in result.stderr.splitlines() if line.startswith("zdsync: ")]
    assert what in line and fix in line, result.stderr
    assert "Traceback" not in result.output and PASSWORD not in result.output
    assert result.stdout == ""


def test_check_says_what_to_fix_with_the_same_exit_code(case, cli_world):
    env, code, what, fix = case
    result = run(cli_world.env(**env), "check")
    assert result.exit_code == code, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("✗ Redis: "))
    assert what in line and fix in line
    assert PASSWORD not in result.output and "not-it" not in result.output


def test_a_key_that_does_not_fit_its_certificate_is_a_configuration_error(tls_redis,
                                                                           certificates):
    env = {"REDIS_URL": url(tls_redis), "REDIS_SSL_CERTFILE": certificates.client,
           "REDIS_SSL_KEYFILE": certificates.server_key}
    result = run(env, "users", "list", "--no-names")
    assert result.exit_code == 2
    assert "redis.ssl_certfile" in result.stderr and "KEY_VALUES_MISMATCH" in result.stderr


def test_unverified_tls_works_and_check_warns(cli_world, tls_redis, caplog):
    env = cli_world.env(REDIS_URL=url(tls_redis), REDIS_SSL_CERT_REQS="none")
    result = run(env, "check")
    assert result.exit_code == 0, result.output
    assert "! Redis:" in result.output and "certificate is not checked" in result.output


def test_explain_never_shows_a_password(tls_redis, certificates):
    """Even a server message that echoed the password would be scrubbed."""
    settings = redis_settings(REDIS_URL=url(tls_redis, password="s3cr3t-in-url"),
                              REDIS_SSL_CA_CERTS=certificates.ca)
    failure = explain(redis.AuthenticationError("WRONGPASS s3cr3t-in-url"), settings)
    assert "s3cr3t-in-url" not in failure.text and failure.misconfigured
