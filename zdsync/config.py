"""Settings: a TOML file, command-line options and environment variables.

One naming rule binds the three: TOML ``[section] key`` <-> option ``--section-key`` <->
environment ``SECTION_KEY``. Precedence, highest first: environment, command line, file,
defaults. Every problem is collected and reported at once, with how to set the value,
before anything touches the network.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from zdsync import defaults
from zdsync.errors import ConfigError
from zdsync.routes import Route, Routing, parse_routes, routing
from zdsync.secret import Secret
from zdsync.tickets import MAX_ID, title_template_problem
from zdsync.times import iso_utc
from zdsync.values import parse_value

LAST_TIME = 253402300799
"""9999-12-31T23:59:59Z: the latest ``sync.start_time`` (and the latest a datetime holds)."""


@dataclass(frozen=True)
class Option:
    """One setting: its section, key, type, default and meaning; numbers have bounds
    (``low``..``high``, inclusive, in ``unit``), choices are matched in any case."""

    section: str
    key: str
    kind: str  # str | int | float | bool | secret | time | hosts | url | choice
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    unit: str = ""
    choices: tuple[str, ...] = ()

    @property
    def bounds(self) -> str:
        """The documented range, as the README's settings table shows it ("" if none)."""
        if self.low is None or self.high is None:
            return ""
        if self.kind == "time":
            return f"{iso_utc(self.low)} to {iso_utc(self.high)}"
        unit = f" {self.unit}" if self.unit else ""
        return f"{_number(self.low)} to {_number(self.high)}{unit}"

    @property
    def toml(self) -> str:
        return f"[{self.section}] {self.key}"

    @property
    def flag(self) -> str:
        return f"--{self.section}-{self.key}".replace("_", "-")

    @property
    def env(self) -> str:
        return f"{self.section}_{self.key}".upper()

    @property
    def dest(self) -> str:
        return f"{self.section}_{self.key}"

    def how_to_set(self) -> str:
        return f"set {self.toml} in the config file, {self.flag}, or {self.env}"


def _number(value: float) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if value.is_integer() else f"{value:g}"


def setting(kind: str, help: str, default: Any = None, *, low: float | None = None,
            high: float | None = None, unit: str = "", choices: tuple[str, ...] = ()) -> Any:
    """A settings field: its default and everything else about it, written once. The
    option table (``OPTIONS``), the command-line options, validation and the README's
    settings table are all derived from these fields."""
    return field(default=default, metadata={"setting": dict(
        kind=kind, help=help, low=low, high=high, unit=unit, choices=choices)})


# -- settings tree ---------------------------------------------------------------------


@dataclass(frozen=True)
class ZendeskSettings:
    subdomain: str | None = setting("str", "Zendesk subdomain: acme for acme.zendesk.com.")
    email: str | None = setting("str", "E-mail of the Zendesk admin that owns the token.")
    api_token: Secret | None = setting("secret", "Zendesk API token (Basic {email}/token).")
    export_rate_limit: float = setting(
        "float",
        "Zendesk's limit for the incremental export (10 a minute; 30 with the High Volume "
        "add-on): export requests are paced under it.",
        defaults.ZENDESK_EXPORT_RATE_LIMIT_PER_MINUTE, low=1, high=1000, unit="requests/minute")
    url: str | None = setting("url", "Base URL override; default https://{subdomain}.zendesk.com.")
    oauth_token: Secret | None = setting(
        "secret", "Zendesk OAuth access token (Bearer), instead of email and api_token.")

    @property
    def base_url(self) -> str:
        return self.url or f"https://{self.subdomain}.zendesk.com"


@dataclass(frozen=True)
class TeamworkSettings:
    domain: str | None = setting("str", "Teamwork site: acme for acme.teamwork.com.")
    api_token: Secret | None = setting("secret", "Teamwork API token of the integration user.")
    project_id: int | None = setting(
        "int",
        "Teamwork project that receives the tasks.",
        low=1, high=MAX_ID)
    tasklist_id: int | None = setting(
        "int",
        "Task list for the tasks; when unset, the list named tasklist_name is used.",
        low=1, high=MAX_ID)
    tasklist_name: str = setting(
        "str",
        "Task list looked up (created if missing) when tasklist_id is unset.",
        "Zendesk")
    url: str | None = setting("url", "Base URL override; default https://{domain}.teamwork.com.")
    rate_limit: float = setting(
        "float",
        "Teamwork's rate limit per minute, used while its answers carry no budget headers "
        "(zdsync then paces itself to 90 % of it); once they do, zdsync spends the budget "
        "they report, less a 1 % reserve.",
        defaults.TEAMWORK_RATE_LIMIT_PER_MINUTE, low=1, high=1_000_000, unit="requests/minute")
    concurrency: int = setting(
        "int",
        "Tickets worked on at once; one ticket's writes stay in order, the rate limit bounds "
        "the total. 4 keeps the budget busy at 500 ms a request.",
        defaults.TEAMWORK_CONCURRENCY, low=1, high=32)
    listing_cap: int = setting(
        "int",
        "Records Teamwork answers to one listing, its pages together (50,000 documented): a "
        "task listing that reaches it is read on, ordered by updatedAt, with updatedAfter.",
        defaults.TEAMWORK_LISTING_CAP, low=1, high=10**9, unit="records")
    oauth_token: Secret | None = setting(
        "secret", "Teamwork OAuth access token (Bearer) of the integration user, instead of "
        "api_token.")

    @property
    def base_url(self) -> str:
        return self.url or f"https://{self.domain}.teamwork.com"


@dataclass(frozen=True)
class RedisSettings:
    url: Secret | None = setting(
        "redis_url",
        "Redis URL as managed services hand it out and redis-py reads it: "
        "redis://[user:password@]host:port/db, rediss://… for TLS, or unix:///path?db=N. "
        "When set it wins over host, port, db, username and password.")
    host: str = setting("str", "Redis host (ignored with Sentinel or url).", "localhost")
    port: int = setting("int", "Redis port (ignored with Sentinel or url).", 6379,
                        low=1, high=65535)
    db: int = setting(
        "int",
        "Redis database number (the server's `databases` setting says which exist).",
        0, low=0, high=2**31 - 1)
    username: str | None = setting(
        "str", "ACL user (Redis 6 and later); unset: the default user.")
    password: Secret | None = setting(
        "secret", "Password of the data nodes (of username, or of the default user); never "
        "sent to Sentinels (see sentinel_password).")
    ssl: bool = setting(
        "bool", "Talk TLS to Redis (implied by a rediss:// url); with Sentinel, to the master "
        "the Sentinels name.", False)
    ssl_ca_certs: str | None = setting(
        "str", "PEM file of the CA that signed the server's certificate; default: the "
        "system's trust store.")
    ssl_certfile: str | None = setting(
        "str", "PEM client certificate, for a server that requires one (mutual TLS).")
    ssl_keyfile: str | None = setting(
        "str", "PEM private key of ssl_certfile (unless that file holds it too).")
    ssl_cert_reqs: str = setting(
        "choice", "required: the server's certificate must be trusted and name the host; "
        "none: not checked at all (logged as a warning; for tests only).",
        "required", choices=("required", "none"))
    use_sentinel: bool = setting("bool", "Find the master through Redis Sentinel.", False)
    sentinel_hosts: tuple[tuple[str, int], ...] | None = setting(
        "hosts",
        "Sentinels as host:port,host:port.")
    sentinel_master: str = setting("str", "Master name known to the Sentinels.", "mymaster")
    sentinel_username: str | None = setting(
        "str", "ACL user of the Sentinels; unset: their default user.")
    sentinel_password: Secret | None = setting(
        "secret", "Password of the Sentinels themselves (their requirepass). Unset: none is "
        "sent; before, password was sent to them too: for that, give both the same value.")
    sentinel_ssl: bool = setting(
        "bool", "Talk TLS to the Sentinels (their tls-port), with the ssl_* files above.", False)
    key_prefix: str = setting("str", "Prefix of every key zdsync writes.", "zdsync:")

    @property
    def tls(self) -> bool:
        """TLS to the data nodes: ``ssl``, or a ``rediss://`` url."""
        return self.ssl or (self.url is not None
                            and self.url.reveal().lower().startswith("rediss://"))


@dataclass(frozen=True)
class SyncSettings:
    start_time: int | None = setting(
        "time",
        "Where the very first export starts (ISO-8601 or epoch s); default: now, no backfill.",
        low=0, high=LAST_TIME)
    interval: float = setting(
        "float",
        "Seconds between two passes.",
        defaults.SYNC_INTERVAL_SECONDS, low=1, high=86400, unit="s")
    title_template: str = setting(
        "str",
        "Task title; fields {id}, {subject}, {status}. Titles are cut to 250 characters, in "
        "the subject only.",
        "[ZD#{id}] {subject}")
    lock_ttl: float = setting(
        "float",
        "Seconds the sync (leader) lock lives unless renewed; a standby takes over within "
        "this plus one interval after the leader dies.",
        defaults.LOCK_TTL_SECONDS, low=1, high=3600, unit="s")
    on_unmatch: str = setting(
        "choice",
        "Once [[route]] tables exist: what happens to the task of a ticket that matches no "
        "route any more: keep (left as it is), complete or delete.",
        "keep", choices=("keep", "complete", "delete"))


@dataclass(frozen=True)
class LogSettings:
    level: str = setting(
        "choice",
        "DEBUG, INFO, WARNING or ERROR (any case).",
        "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    format: str = setting(
        "choice",
        "text, or json for one JSON object per line (any case).",
        "text", choices=("text", "json"))


@dataclass(frozen=True)
class HttpSettings:
    host: str = setting(
        "str",
        "Address of the HTTP servers (webhook port and probe port).",
        "0.0.0.0")
    port: int = setting(
        "int",
        "Port of the webhook (it also serves the probes and metrics).",
        8080, low=1, high=65535)
    probe_port: int = setting(
        "int",
        "Port that serves only /livez, /readyz, /healthz and /metrics, on threads of its own: "
        "point Kubernetes probes and Prometheus here. 0: no separate listener.",
        8081, low=0, high=65535)


@dataclass(frozen=True)
class WebhookSettings:
    secret: Secret | None = setting(
        "secret",
        "Zendesk webhook signing secret; the webhook endpoint is on only when set (blank is "
        "an error: leave it unset to turn the webhook off).")


@dataclass(frozen=True)
class UsersSettings:
    file: str | None = setting(
        "str",
        "CSV of agent mappings (as for users import), loaded at start, on SIGHUP and after a "
        "state rebuild; it wins over Redis for the agents it lists.")


@dataclass(frozen=True)
class Settings:
    zendesk: ZendeskSettings = field(default_factory=ZendeskSettings)
    teamwork: TeamworkSettings = field(default_factory=TeamworkSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    log: LogSettings = field(default_factory=LogSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    users: UsersSettings = field(default_factory=UsersSettings)
    routes: tuple[Route, ...] = ()  # [[route]] tables, from the file only

    def routing(self) -> Routing:
        """The routes in force: the configured ones, or the implicit route."""
        return routing(self.routes, project_id=self.teamwork.project_id,
                       tasklist_id=self.teamwork.tasklist_id,
                       tasklist_name=self.teamwork.tasklist_name,
                       title_template=self.sync.title_template,
                       on_unmatch=self.sync.on_unmatch)


SECTION_TYPES = {
    "zendesk": ZendeskSettings, "teamwork": TeamworkSettings, "redis": RedisSettings,
    "sync": SyncSettings, "log": LogSettings, "http": HttpSettings, "webhook": WebhookSettings,
    "users": UsersSettings,
}

OPTIONS: tuple[Option, ...] = tuple(
    Option(section, f.name, default=f.default, **f.metadata["setting"])
    for section, section_type in SECTION_TYPES.items() for f in fields(section_type))
"""Every setting, in the order of the dataclasses above (the README table's order)."""
BY_DEST = {o.dest: o for o in OPTIONS}


def settings_table() -> str:
    """The README's settings table, derived from ``OPTIONS`` (paste it in when a setting
    changes: ``python -c "from zdsync.config import settings_table; print(settings_table())"``;
    a test checks that the README holds exactly this)."""
    rows = ["| TOML `[section] key` | Option | Environment | Default | Range | Meaning |",
            "|---|---|---|---|---|---|"]
    for opt in OPTIONS:
        default = "—" if opt.default is None else f"`{opt.default}`"
        rows.append(f"| `{opt.toml}` | `{opt.flag}` | `{opt.env}` | {default} | "
                    f"{opt.bounds or '—'} | {opt.help} |")
    return "\n".join(rows)


def _read_file(path: str, problems: list[str], routes: list[Any] | None = None,
               sections: Collection[str] | None = None) -> dict[str, Any]:
    """The file's settings by ``dest``; its ``[[route]]`` tables go to ``routes``; with
    ``sections``, only theirs (what else the file holds is neither read nor judged)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        problems.append(f"config file {path} does not exist (--config or ZDSYNC_CONFIG)")
        return {}
    except UnicodeDecodeError as exc:
        problems.append(f"config file {path} is not UTF-8 text (TOML files must be): "
                        f"byte {exc.start} cannot be decoded")
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        problems.append(f"config file {path} cannot be read: {exc}")
        return {}
    flat: dict[str, Any] = {}
    for section, values in data.items():
        if sections is not None and section not in sections:
            continue
        if section == "route" and routes is not None:
            routes.append(values)
            continue
        if section not in SECTION_TYPES or not isinstance(values, dict):
            problems.append(f"config file {path}: unknown section [{section}]")
            continue
        for key, value in values.items():
            dest = f"{section}_{key}"
            if dest not in BY_DEST:
                problems.append(f"config file {path}: unknown setting {key!r} in [{section}]")
            else:
                flat[dest] = value
    return flat


def load(
    config_path: str | None = None,
    options: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    require_services: bool = True,
    sections: Collection[str] | None = None,
) -> Settings:
    """Merge defaults, file, options and environment; validate; raise ConfigError.

    ``options`` maps ``dest`` names (``zendesk_api_token``) to values; None means unset.
    ``require_services`` demands the Zendesk and Teamwork settings a sync needs; commands
    that only touch Redis pass False. ``sections`` (with ``require_services=False``): only
    these sections are read, the others keep their defaults, so ``zdsync check`` can test
    Redis while another setting is wrong.
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    config_path = environ.get("ZDSYNC_CONFIG") or config_path
    raw: dict[str, tuple[Any, str]] = {}
    route_tables: list[Any] = []
    if config_path:
        for dest, value in _read_file(config_path, problems, route_tables, sections).items():
            raw[dest] = (value, f"{BY_DEST[dest].toml} in {config_path}")
    for dest, value in (options or {}).items():
        if value is not None and dest in BY_DEST and (
                sections is None or BY_DEST[dest].section in sections):
            raw[dest] = (value, BY_DEST[dest].flag)
    for opt in OPTIONS:
        if sections is not None and opt.section not in sections:
            continue
        if opt.env in environ and environ[opt.env] != "":
            raw[opt.dest] = (environ[opt.env], f"environment variable {opt.env}")

    values: dict[str, dict[str, Any]] = {name: {} for name in SECTION_TYPES}
    unparsed = set()
    for dest, (value, source) in raw.items():
        opt = BY_DEST[dest]
        try:
            values[opt.section][opt.key] = parse_value(opt, value)
        except ValueError as exc:
            unparsed.add(f"{opt.section}.{opt.key} ")
            problems.append(f"{opt.section}.{opt.key} from {source}: {exc}")
    settings = Settings(**{name: SECTION_TYPES[name](**vals) for name, vals in values.items()})
    if route_tables:
        t = settings.teamwork
        routes, route_problems = parse_routes(
            route_tables[0], project_id=t.project_id, tasklist_id=t.tasklist_id,
            tasklist_name=t.tasklist_name, title_template=settings.sync.title_template)
        problems += [f"{p} in {config_path}" for p in route_problems]
        settings = replace(settings, routes=routes)
    # A value that failed to parse is reported once, not again as "required".
    problems += [p for p in _validate(settings, require_services)
                 if not any(p.startswith(name) for name in unparsed)]
    if problems:
        raise ConfigError(problems)
    return settings


def overridden(options: Mapping[str, Any], environ: Mapping[str, str] | None = None
               ) -> list[str]:
    """Options given on the command line that an environment variable overrides (the
    environment wins, as documented), one sentence each for standard error. A variable
    that says the same as the option is no override; a secret's value is never shown."""
    environ = os.environ if environ is None else environ
    notes = []
    for dest, given in options.items():
        opt = BY_DEST.get(dest)
        if opt is None or given is None or environ.get(opt.env, "") == "":
            continue
        if _same(opt, given, environ[opt.env]):
            continue
        shown = "" if opt.kind == "secret" else f"={environ[opt.env]}"
        notes.append(f"{opt.env}{shown} in the environment overrides {opt.flag} (the "
                     f"environment wins; unset {opt.env} to use the option)")
    return notes


def _same(opt: Option, given: Any, env_value: str) -> bool:
    if opt.kind == "secret":
        return str(given).strip() == env_value.strip()
    try:
        return bool(parse_value(opt, given) == parse_value(opt, env_value))
    except ValueError:
        return False


def _missing(dest: str) -> str:
    opt = BY_DEST[dest]
    return f"{opt.section}.{opt.key} is required: {opt.how_to_set()}"


def _one_token(service: str, api_token: Secret | None, oauth_token: Secret | None) -> list[str]:
    """Exactly one way to authenticate to a service: its API token or an OAuth token."""
    api, oauth = BY_DEST[f"{service}_api_token"], BY_DEST[f"{service}_oauth_token"]
    if api_token and oauth_token:
        return [f"{service}.api_token and {service}.oauth_token are both set: use one (unset "
                f"{api.env} or {oauth.env})"]
    if not api_token and not oauth_token:
        return [f"{service}.api_token is required (or {service}.oauth_token): "
                f"{api.how_to_set()} (or {oauth.env} for an OAuth token)"]
    return []


def _tls_problems(r: RedisSettings) -> list[str]:
    """The TLS files must be there and usable, before anything connects: a wrong path or a
    key that does not fit its certificate is named here, not as a failed handshake."""
    problems = []
    files = {"ssl_ca_certs": r.ssl_ca_certs, "ssl_certfile": r.ssl_certfile,
             "ssl_keyfile": r.ssl_keyfile}
    given = [key for key, path in files.items() if path]
    if given and not (r.tls or r.sentinel_ssl):
        problems.append(f"redis.{given[0]} is set but TLS is off: set redis.ssl true (or use "
                        f"a rediss:// redis.url, or redis.sentinel_ssl), or unset "
                        f"{BY_DEST['redis_' + given[0]].env}")
    if r.ssl_keyfile and not r.ssl_certfile:
        problems.append(f"redis.ssl_keyfile needs redis.ssl_certfile, the certificate it "
                        f"belongs to: {BY_DEST['redis_ssl_certfile'].how_to_set()}")
    context = ssl.create_default_context()
    try:
        if r.ssl_ca_certs:
            context.load_verify_locations(cafile=r.ssl_ca_certs)
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"redis.ssl_ca_certs {r.ssl_ca_certs!r} cannot be used "
                        f"({_file_problem(exc)}): it must be a PEM file of CA certificates: "
                        f"{BY_DEST['redis_ssl_ca_certs'].how_to_set()}")
    try:
        if r.ssl_certfile:
            # No pass phrase: an encrypted key fails here instead of prompting on a terminal.
            context.load_cert_chain(r.ssl_certfile, r.ssl_keyfile, password=lambda: b"")
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"redis.ssl_certfile {r.ssl_certfile!r} / redis.ssl_keyfile "
                        f"{r.ssl_keyfile!r} cannot be used ({_file_problem(exc)}): give a PEM "
                        f"certificate and the private key that belongs to it, unencrypted")
    return problems


def _file_problem(exc: OSError | ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or "not PEM, or an encrypted key"
    return exc.strerror or type(exc).__name__


def _validate(s: Settings, require_services: bool) -> list[str]:
    problems = []
    if require_services:
        if not s.zendesk.url and not s.zendesk.subdomain:
            problems.append(_missing("zendesk_subdomain") + " (or zendesk.url)")
        problems += _one_token("zendesk", s.zendesk.api_token, s.zendesk.oauth_token)
        problems += _one_token("teamwork", s.teamwork.api_token, s.teamwork.oauth_token)
        if not s.zendesk.oauth_token and not s.zendesk.email:
            problems.append(_missing("zendesk_email") + " (unless zendesk.oauth_token is set)")
        if not s.teamwork.project_id:
            problems.append(_missing("teamwork_project_id"))
        if not s.teamwork.url and not s.teamwork.domain:
            problems.append(_missing("teamwork_domain") + " (or teamwork.url)")
    if s.redis.use_sentinel and not s.redis.sentinel_hosts:
        problems.append(_missing("redis_sentinel_hosts") + " when redis.use_sentinel is true")
    problems += _tls_problems(s.redis)
    if s.http.probe_port and s.http.probe_port == s.http.port:
        problems.append(f"http.probe_port must differ from http.port ({s.http.port}), or be "
                        f"0 for no separate probe listener: "
                        f"{BY_DEST['http_probe_port'].how_to_set()}")
    problem = title_template_problem(s.sync.title_template)
    if problem is not None:
        problems.append(f"sync.title_template is invalid ({problem}); fields are {{id}}, "
                        f"{{subject}}, {{status}}: {BY_DEST['sync_title_template'].how_to_set()}")
    if s.users.file:
        from zdsync.agents import CsvError, read_mappings_file

        try:
            read_mappings_file(s.users.file)
        except (OSError, UnicodeDecodeError, CsvError) as exc:
            detail = "; ".join(exc.problems) if isinstance(exc, CsvError) else str(exc)
            problems.append(f"users.file {s.users.file!r} cannot be used: {detail}: "
                            f"{BY_DEST['users_file'].how_to_set()}")
    if s.webhook.secret is not None and not s.webhook.secret.reveal():
        problems.append("webhook.secret is empty: a blank secret would silently turn the "
                        "webhook off. To turn it off, leave webhook.secret unset (no "
                        "[webhook] secret, --webhook-secret or WEBHOOK_SECRET); to turn it on, "
                        "set it to the webhook's signing secret")
    if not s.redis.key_prefix:
        problems.append(f"redis.key_prefix must not be empty: "
                        f"{BY_DEST['redis_key_prefix'].how_to_set()}")
    return problems
