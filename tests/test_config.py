from __future__ import annotations

import logging

import pytest

from zdsync.config import OPTIONS, Secret, load, parse_time
from zdsync.errors import ConfigError

REQUIRED = {
    "ZENDESK_SUBDOMAIN": "acme", "ZENDESK_EMAIL": "ops@acme.test",
    "ZENDESK_API_TOKEN": "zd-secret-token", "TEAMWORK_DOMAIN": "acme",
    "TEAMWORK_API_TOKEN": "tw-secret-token", "TEAMWORK_PROJECT_ID": "12",
}


def write(tmp_path, text: str) -> str:
    path = tmp_path / "zdsync.toml"
    path.write_text(text)
    return str(path)


def test_precedence_env_over_option_over_file_over_default(tmp_path):
    path = write(tmp_path, '[redis]\nhost = "from-file"\nport = 7000\ndb = 3\n'
                           '[sync]\ninterval = 15\n')
    env = {**REQUIRED, "REDIS_HOST": "from-env"}
    s = load(path, {"redis_host": "from-option", "redis_port": "7001"}, env)
    assert s.redis.host == "from-env"       # env beats option and file
    assert s.redis.port == 7001             # option beats file
    assert s.redis.db == 3                  # file beats default
    assert s.sync.interval == 15.0
    assert s.redis.key_prefix == "zdsync:"  # default


def test_config_path_from_environment(tmp_path):
    path = write(tmp_path, '[teamwork]\ntasklist_id = 99\n')
    s = load(None, {}, {**REQUIRED, "ZDSYNC_CONFIG": path})
    assert s.teamwork.tasklist_id == 99


def test_derived_urls_and_overrides():
    s = load(None, {}, REQUIRED)
    assert s.zendesk.base_url == "https://acme.zendesk.com"
    assert s.teamwork.base_url == "https://acme.teamwork.com"
    s = load(None, {"zendesk_url": "http://127.0.0.1:9/", "teamwork_url": "http://h:1"},
             {k: v for k, v in REQUIRED.items() if "SUBDOMAIN" not in k and "DOMAIN" not in k})
    assert s.zendesk.base_url == "http://127.0.0.1:9"
    assert s.teamwork.base_url == "http://h:1"


def test_every_problem_reported_at_once_with_how_to_set():
    env = {"TEAMWORK_PROJECT_ID": "twelve", "REDIS_USE_SENTINEL": "true",
           "REDIS_SENTINEL_HOSTS": "a:1,b", "ZENDESK_URL": "ftp://x", "SYNC_INTERVAL": "0",
           "LOG_FORMAT": "xml", "SYNC_TITLE_TEMPLATE": "{subject}"}
    with pytest.raises(ConfigError) as info:
        load(None, {}, env)
    text = str(info.value)
    for expected in [
        "teamwork.project_id from environment variable TEAMWORK_PROJECT_ID: expected an integer",
        "redis.sentinel_hosts from environment variable REDIS_SENTINEL_HOSTS",
        "zendesk.url from environment variable ZENDESK_URL: expected an http(s) URL",
        "zendesk.email is required: set [zendesk] email in the config file, --zendesk-email, "
        "or ZENDESK_EMAIL",
        "teamwork.api_token is required",
        "sync.interval must be > 0",
        "log.format must be text or json",
        "sync.title_template is invalid",
    ]:
        assert expected in text
    assert "teamwork.project_id is required" not in text  # reported once, as malformed


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SYNC_TITLE_TEMPLATE", "[ZD#{id}] {id[0]}", "sync.title_template is invalid"),
    ("SYNC_TITLE_TEMPLATE", "[ZD#{id}] {subject.x}", "sync.title_template is invalid"),
    ("SYNC_INTERVAL", "nan", "expected a finite number"),
    ("SYNC_LOCK_TTL", "inf", "expected a finite number"),
    ("TEAMWORK_RATE_LIMIT", "-5", "teamwork.rate_limit must be > 0"),
])
def test_odd_values_are_reported_not_crashed_on(name, value, message):
    with pytest.raises(ConfigError, match=message):
        load(None, {}, {**REQUIRED, name: value})


def test_kubernetes_service_link_port_is_explained():
    with pytest.raises(ConfigError, match="Kubernetes service link"):
        load(None, {}, {**REQUIRED, "REDIS_PORT": "tcp://10.0.0.7:6379"})


def test_file_errors_are_reported(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(str(tmp_path / "missing.toml"), {}, REQUIRED)
    path = write(tmp_path, '[redis]\nhots = "x"\n[nonsense]\na = 1\n')
    with pytest.raises(ConfigError) as info:
        load(path, {}, REQUIRED)
    assert "unknown setting 'hots' in [redis]" in str(info.value)
    assert "unknown section [nonsense]" in str(info.value)


def test_services_optional_for_redis_only_commands():
    s = load(None, {}, {}, require_services=False)
    assert s.redis.host == "localhost"


def test_sentinel_hosts_parsed():
    s = load(None, {}, {**REQUIRED, "REDIS_USE_SENTINEL": "yes",
                        "REDIS_SENTINEL_HOSTS": "s1:26379, s2:26380"})
    assert s.redis.use_sentinel is True
    assert s.redis.sentinel_hosts == (("s1", 26379), ("s2", 26380))


@pytest.mark.parametrize(("raw", "epoch"), [
    ("2026-01-31T12:00:00Z", 1769860800),
    ("2026-01-31T12:00:00", 1769860800),
    ("2026-01-31T13:00:00+01:00", 1769860800),
    ("1769860800", 1769860800),
    (1769860800, 1769860800),
])
def test_start_time_formats(raw, epoch):
    assert parse_time(raw) == epoch


def test_secrets_never_shown(caplog):
    s = load(None, {}, {**REQUIRED, "REDIS_PASSWORD": "redis-pw", "WEBHOOK_SECRET": "wh-sec"})
    text = repr(s) + str(s)
    logging.getLogger("t").warning("settings: %s", s)
    for secret in ("zd-secret-token", "tw-secret-token", "redis-pw", "wh-sec"):
        assert secret not in text
        assert secret not in caplog.text
    assert s.zendesk.api_token.reveal() == "zd-secret-token"
    assert repr(Secret("x")) == "Secret('***')"


def test_naming_rule_is_uniform():
    for opt in OPTIONS:
        assert opt.env == f"{opt.section}_{opt.key}".upper()
        assert opt.flag == f"--{opt.section}-{opt.key.replace('_', '-')}"


def test_readme_and_example_document_every_setting():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    example = (root / "config.example.toml").read_text()
    for opt in OPTIONS:
        assert opt.env in readme, opt.env
        assert opt.flag in readme, opt.flag
        assert f"{opt.key} =" in example, opt.key
