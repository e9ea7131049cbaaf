"""Which address, login and TLS options each Redis client gets (pure: nothing connects;
tests/integration/test_diagnosis.py connects them to real TLS servers)."""

from __future__ import annotations

from zdsync.config import load
from zdsync.connection import node_kwargs, sentinel_kwargs, where


def redis(**env: str):
    return load(None, {}, env, require_services=False).redis


def test_the_url_wins_over_the_separate_settings():
    r = redis(REDIS_URL="rediss://app:p%40ss@cache.example:6380/3", REDIS_HOST="other",
              REDIS_PORT="1", REDIS_DB="9", REDIS_USERNAME="u", REDIS_PASSWORD="pw")
    kwargs = node_kwargs(r)
    assert {k: kwargs[k] for k in ("host", "port", "db", "username", "password", "ssl")} == {
        "host": "cache.example", "port": 6380, "db": 3, "username": "app",
        "password": "p@ss", "ssl": True}
    assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_check_hostname"] is True
    assert where(r) == "Redis at cache.example:6380"


def test_the_separate_settings_and_a_unix_socket():
    kwargs = node_kwargs(redis(REDIS_HOST="h", REDIS_PORT="7000", REDIS_USERNAME="u",
                               REDIS_PASSWORD="pw"))
    assert (kwargs["host"], kwargs["port"], kwargs["username"], kwargs["password"]) == (
        "h", 7000, "u", "pw")
    assert "ssl" not in kwargs
    unix = node_kwargs(redis(REDIS_URL="unix:///run/redis.sock?db=2"))
    assert unix["unix_socket_path"] == "/run/redis.sock" and unix["db"] == 2


def test_sentinels_get_their_own_login_and_not_the_data_password():
    """The changed default: redis.password is no longer sent to the Sentinels."""
    base = {"REDIS_USE_SENTINEL": "true", "REDIS_SENTINEL_HOSTS": "s:26379",
            "REDIS_PASSWORD": "data-pw"}
    assert "password" not in sentinel_kwargs(redis(**base))
    own = sentinel_kwargs(redis(**base, REDIS_SENTINEL_USERNAME="watcher",
                                REDIS_SENTINEL_PASSWORD="sentinel-pw", REDIS_SENTINEL_SSL="1",
                                REDIS_SSL_CERT_REQS="none"))
    assert (own["username"], own["password"], own["ssl"]) == ("watcher", "sentinel-pw", True)
    assert own["ssl_check_hostname"] is False
