from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from zdsync.config import OPTIONS, Secret, load, settings_table
from zdsync.errors import ConfigError
from zdsync.values import parse_time

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
        "teamwork.api_token is required (or teamwork.oauth_token): set [teamwork] api_token",
        "sync.interval from environment variable SYNC_INTERVAL: must be 1 to 86,400 s, got '0'",
        "log.format from environment variable LOG_FORMAT: expected text or json (any case)",
        "sync.title_template is invalid",
    ]:
        assert expected in text
    assert "teamwork.project_id is required" not in text  # reported once, as malformed


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SYNC_TITLE_TEMPLATE", "[ZD#{id}] {id[0]}", "sync.title_template is invalid"),
    ("SYNC_TITLE_TEMPLATE", "[ZD#{id}] {subject.x}", "sync.title_template is invalid"),
    ("SYNC_INTERVAL", "nan", "expected a finite number"),
    ("SYNC_LOCK_TTL", "inf", "expected a finite number"),
    ("TEAMWORK_RATE_LIMIT", "-5", "teamwork.rate_limit from environment variable "
                                   "TEAMWORK_RATE_LIMIT: must be 1 to 1,000,000"),
    ("TEAMWORK_RATE_LIMIT", "1e-9", "teamwork.rate_limit .*: must be 1 to"),
    ("SYNC_LOCK_TTL", "1e300", "sync.lock_ttl .*: must be 1 to 3,600 s"),
    ("SYNC_INTERVAL", "1e300", "sync.interval .*: must be 1 to 86,400 s"),
    ("TEAMWORK_PROJECT_ID", "0", "teamwork.project_id .*: must be 1 to"),
    ("TEAMWORK_PROJECT_ID", "-12", "teamwork.project_id .*: must be 1 to"),
    ("TEAMWORK_TASKLIST_ID", "0", "teamwork.tasklist_id .*: must be 1 to"),
    ("TEAMWORK_PROJECT_ID", "٣", "expected an integer"),
    ("REDIS_DB", "-1", "redis.db .*: must be 0 to"),
    ("REDIS_PORT", "0", "redis.port .*: must be 1 to 65,535"),
    ("HTTP_PORT", "70000", "http.port .*: must be 1 to 65,535"),
    ("HTTP_PROBE_PORT", "-1", "http.probe_port .*: must be 0 to 65,535"),
    ("HTTP_PROBE_PORT", "8080", "http.probe_port must differ from http.port"),
    ("SYNC_START_TIME", "inf", "sync.start_time .*: expected ISO-8601"),
    ("SYNC_START_TIME", "-5", "sync.start_time .*: must be 1970-01-01T00:00:00Z to"),
    ("SYNC_START_TIME", "9" * 20, "sync.start_time .*: must be"),
    ("SYNC_START_TIME", "9" * 5000, "sync.start_time .*: expected ISO-8601"),
    ("SYNC_TITLE_TEMPLATE", "{id}" + "x" * 200 + "{subject}", "without the subject it is"),
    ("WEBHOOK_SECRET", "   ", "webhook.secret is empty: .* leave webhook.secret unset"),
    ("LOG_LEVEL", "verbose", "log.level .*: expected DEBUG, INFO, WARNING or ERROR"),
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

    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    example = (root / "config.example.toml").read_text()
    for opt in OPTIONS:
        assert opt.env in readme, opt.env
        assert opt.flag in readme, opt.flag
        assert f"{opt.key} =" in example, opt.key


@pytest.mark.parametrize(("toml", "message"), [
    ("[sync]\nstart_time = inf\n", r"sync.start_time from \[sync\] start_time in .*: expected"),
    ("[sync]\nstart_time = nan\n", r"sync.start_time from \[sync\] start_time in .*: expected"),
    ("[sync]\nlock_ttl = 1e300\n", r"sync.lock_ttl .*: must be 1 to 3,600 s, got 1e\+300"),
    ("[sync]\ninterval = 1e300\n", "sync.interval .*: must be 1 to 86,400 s"),
    ("[teamwork]\nrate_limit = 1e-9\n", "teamwork.rate_limit .*: must be 1 to"),
    ("[redis]\ndb = -1\n", "redis.db .*: must be 0 to"),
    ("[webhook]\nsecret = \"\"\n", "webhook.secret is empty"),
    ("[http]\nport = 8081\n", "http.probe_port must differ from http.port"),
])
def test_values_from_the_file_are_bounded_too(tmp_path, toml, message):
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, toml), {}, REQUIRED)


def test_a_config_file_that_is_not_utf8_is_reported(tmp_path):
    path = tmp_path / "zdsync.toml"
    path.write_bytes(b'[sync]\ntitle_template = "caf\xe9 {id}"\n')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load(str(path), {}, REQUIRED)


def test_every_bad_value_is_reported_at_once(tmp_path):
    path = write(tmp_path, "[sync]\nstart_time = inf\nlock_ttl = 1e300\ninterval = 1e300\n"
                           "[redis]\ndb = -1\n[teamwork]\nrate_limit = 1e-9\n"
                           "[webhook]\nsecret = \"\"\n")
    with pytest.raises(ConfigError) as info:
        load(path, {}, {**REQUIRED, "TEAMWORK_PROJECT_ID": "0"})
    names = [p.split()[0] for p in info.value.problems]
    assert names == ["sync.start_time", "sync.lock_ttl", "sync.interval", "redis.db",
                     "teamwork.rate_limit", "teamwork.project_id", "webhook.secret"], names


def test_choices_are_case_insensitive_and_normalised():
    s = load(None, {}, {**REQUIRED, "LOG_LEVEL": "debug", "LOG_FORMAT": "JSON"})
    assert (s.log.level, s.log.format) == ("DEBUG", "json")


def test_the_probe_port_can_be_turned_off():
    assert load(None, {}, REQUIRED).http.probe_port == 8081
    assert load(None, {}, {**REQUIRED, "HTTP_PROBE_PORT": "0"}).http.probe_port == 0


def test_every_numeric_setting_has_documented_bounds():
    """The bounds live with each settings field; the README's settings table is derived
    from them and must be the current one."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for opt in OPTIONS:
        if opt.kind in ("int", "float", "time"):
            assert opt.bounds, opt.dest
    assert settings_table() in readme


def test_an_environment_variable_that_overrides_an_option_is_named():
    from zdsync.config import overridden

    assert overridden({"redis_port": "44463", "redis_host": None}, {"REDIS_PORT": "1"}) == [
        "REDIS_PORT=1 in the environment overrides --redis-port (the environment wins; unset "
        "REDIS_PORT to use the option)"]
    assert overridden({"redis_port": "6379"}, {"REDIS_PORT": " 6379"}) == []  # the same
    assert overridden({"redis_use_sentinel": True}, {"REDIS_USE_SENTINEL": "yes"}) == []
    assert overridden({"redis_port": "6379"}, {"REDIS_PORT": ""}) == []  # unset
    [note] = overridden({"zendesk_api_token": "a"}, {"ZENDESK_API_TOKEN": "s3cret"})
    assert note.startswith("ZENDESK_API_TOKEN in the environment") and "s3cret" not in note


# -- Redis: url, TLS files, Sentinel auth; OAuth tokens ------------------------------------


def test_the_redis_url_is_a_secret_and_implies_tls():
    s = load(None, {}, {"REDIS_URL": "rediss://app:url-Secret@cache.example:6380/2"},
             require_services=False)
    assert "url-Secret" not in repr(s) and s.redis.tls and not s.redis.ssl
    assert not load(None, {}, {"REDIS_URL": "redis://h"}, require_services=False).redis.tls


@pytest.mark.parametrize(("url", "message"), [
    ("http://h:1", "expected redis://, rediss:// (TLS) or unix://"),
    ("rediss://u:pw-Hidden@h:99999/0", "the port is not a number"),
    ("redis://u:pw-Hidden@h/zero", "the database must be a number"),
    ("redis://u:pw-Hidden@h/0?ssl_cert_reqs=none", "set them as [redis] settings instead"),
    ("redis://:pw-Hidden@/0", "expected a host"),
    ("unix://", "expected the socket's path"),
])
def test_a_bad_redis_url_is_explained_without_its_password(url, message):
    with pytest.raises(ConfigError) as info:
        load(None, {}, {"REDIS_URL": url}, require_services=False)
    assert message in str(info.value) and "pw-Hidden" not in str(info.value)
    assert "redis.url from environment variable REDIS_URL" in str(info.value)


def test_tls_files_are_checked_before_anything_connects(tmp_path, certificates):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    encrypted_key = str(tmp_path / "encrypted-key.pem")  # must fail, never prompt
    key = serialization.load_pem_private_key(Path(certificates.client_key).read_bytes(), None)
    Path(encrypted_key).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pass phrase")))
    cases = [
        ({"REDIS_SSL": "true", "REDIS_SSL_CA_CERTS": str(tmp_path / "missing.pem")},
         "redis.ssl_ca_certs '" + str(tmp_path / "missing.pem") + "' cannot be used (No such"),
        ({"REDIS_SSL": "true", "REDIS_SSL_CA_CERTS": str(not_pem)},
         "it must be a PEM file of CA certificates"),
        ({"REDIS_SSL": "true", "REDIS_SSL_KEYFILE": certificates.client_key},
         "redis.ssl_keyfile needs redis.ssl_certfile"),
        ({"REDIS_SSL": "true", "REDIS_SSL_CERTFILE": certificates.client,
          "REDIS_SSL_KEYFILE": certificates.server_key}, "KEY_VALUES_MISMATCH"),
        ({"REDIS_SSL": "true", "REDIS_SSL_CERTFILE": certificates.client,
          "REDIS_SSL_KEYFILE": encrypted_key}, "not PEM, or an encrypted key"),
        ({"REDIS_SSL_CA_CERTS": certificates.ca},
         "redis.ssl_ca_certs is set but TLS is off: set redis.ssl true"),
    ]
    for env, message in cases:
        with pytest.raises(ConfigError) as info:
            load(None, {}, env, require_services=False)
        assert message in str(info.value), env
    good = {"REDIS_SSL": "true", "REDIS_SSL_CA_CERTS": certificates.ca,
            "REDIS_SSL_CERTFILE": certificates.client, "REDIS_SSL_KEYFILE": certificates.client_key}
    assert load(None, {}, good, require_services=False).redis.ssl_certfile == certificates.client


def test_exactly_one_token_per_service():
    oauth = {k: v for k, v in REQUIRED.items() if k not in ("ZENDESK_API_TOKEN",
                                                              "TEAMWORK_API_TOKEN",
                                                              "ZENDESK_EMAIL")}
    s = load(None, {}, {**oauth, "ZENDESK_OAUTH_TOKEN": "zd-oauth-Secret",
                        "TEAMWORK_OAUTH_TOKEN": "tw-oauth-Secret"})
    assert s.zendesk.oauth_token.reveal() == "zd-oauth-Secret" and s.zendesk.email is None
    assert "oauth-Secret" not in repr(s)
    with pytest.raises(ConfigError) as info:
        load(None, {}, {**REQUIRED, "ZENDESK_OAUTH_TOKEN": "x", "TEAMWORK_OAUTH_TOKEN": "y"})
    for service in ("zendesk", "teamwork"):
        assert (f"{service}.api_token and {service}.oauth_token are both set: use one (unset "
                f"{service.upper()}_API_TOKEN or {service.upper()}_OAUTH_TOKEN)"
                in str(info.value))
    with pytest.raises(ConfigError) as info:
        load(None, {}, oauth)
    assert ("zendesk.api_token is required (or zendesk.oauth_token): set [zendesk] api_token "
            "in the config file, --zendesk-api-token, or ZENDESK_API_TOKEN (or "
            "ZENDESK_OAUTH_TOKEN for an OAuth token)") in str(info.value)
    assert "zendesk.email is required" in str(info.value)  # the API token's way needs it
