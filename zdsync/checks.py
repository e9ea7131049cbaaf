"""``zdsync check``: is this installation able to sync? One check per thing an operator
can fix, each with a hint saying how. Checks never hang: Redis gets no retries and a short
timeout, and the HTTP clients one attempt each with short timeouts and no long
rate-limit waits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
import requests

from zdsync import defaults, eviction
from zdsync.config import BY_DEST, Settings, load
from zdsync.connection import connect, node_kwargs, sentinel, where
from zdsync.diagnosis import explain, server_facts
from zdsync.errors import ApiError, ConfigError, RetryableError, Unauthorized
from zdsync.routes import Route
from zdsync.store import Store

OK, FAIL, WARN, SKIP = "ok", "fail", "warn", "skip"
_FIX_SETTING = "fix the setting named above, then run zdsync check again"
MARKS = {OK: "✓", FAIL: "✗", WARN: "!", SKIP: "-"}


@dataclass(frozen=True)
class Check:
    name: str
    state: str  # ok, fail, warn (works, but worth a look) or skip (a prerequisite failed)
    detail: str
    hint: str = ""
    problems: tuple[str, ...] = ()  # the configuration's, listed one a line

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "problems": list(self.problems)}


def _how(dest: str) -> str:
    return BY_DEST[dest].how_to_set()


def impatient(client: Any) -> Any:
    """Make a Zendesk or Teamwork client fail fast: one attempt, short timeouts, and a
    rate-limit wait longer than a few seconds reported instead of waited out."""
    http = client.http
    http.max_attempts = 1
    http.timeout = defaults.CHECK_HTTP_TIMEOUT_SECONDS
    wait = http.throttle_wait

    def throttle(response: requests.Response) -> float | None:
        seconds = wait(response)
        if seconds is not None and seconds > defaults.CHECK_LONGEST_RATE_LIMIT_WAIT_SECONDS:
            raise RetryableError(http.service, f"rate limited for {seconds:.0f} s; try the "
                                 "check again later", response.status_code)
        return seconds

    http.throttle_wait = throttle
    return client


def configuration(config_path: str | None,
                  options: Mapping[str, Any]) -> tuple[Check, Settings | None, Settings | None]:
    """The configuration check, the full settings (None when invalid) and the settings a
    Redis-only command would use (None when even those are invalid)."""
    try:
        settings = load(config_path, options)
    except ConfigError as exc:
        try:  # Redis is checked whenever its own settings are valid, whatever else is wrong
            local = load(config_path, options, require_services=False, sections=("redis",))
        except ConfigError:
            local = None
        return (Check("configuration", FAIL, "; ".join(exc.problems),
                      "fix each setting named above (environment, option or config file)",
                      tuple(exc.problems)),
                None, local)
    where = f"config file {config_path}" if config_path else "no config file"
    detail = (f"{where}; Zendesk {settings.zendesk.base_url}, Teamwork "
              f"{settings.teamwork.base_url}, project {settings.teamwork.project_id}")
    if settings.routes:
        detail += (f"; {len(settings.routes)} route(s): "
                   + ", ".join(r.name for r in settings.routes)
                   + f" (sync.on_unmatch {settings.sync.on_unmatch})")
    return Check("configuration", OK, detail), settings, settings


def redis_reachable(settings: Settings) -> tuple[Check, Store | None]:
    """Redis answers, as whom, with TLS or not; else the one setting to fix. With
    Sentinel, the master they name."""
    r = settings.redis
    try:
        where_ = where(r)
        if r.use_sentinel:
            host, port = sentinel(r).discover_master(r.sentinel_master)
            where_ = f"master {r.sentinel_master!r} at {host}:{port} (found by Sentinel)"
        store = Store(connect(r, attempts=0, timeout_seconds=defaults.CHECK_REDIS_TIMEOUT_SECONDS),
                      r.key_prefix)
        store.ping()
        facts = server_facts(store.r, r)
    except redis.RedisError as exc:
        failure = explain(exc, r)
        return Check("Redis", FAIL, failure.text,
                     _FIX_SETTING if failure.misconfigured
                     else "start Redis, or point zdsync at it (the settings named above)"), None
    db = node_kwargs(r).get("db", 0)
    check = Check("Redis", OK, f"{where_} answers ({facts}; db {db}, key prefix "
                  f"{r.key_prefix!r})")
    if r.ssl_cert_reqs == "none" and (r.tls or r.sentinel_ssl):
        check = Check("Redis", WARN, check.detail + "; its certificate is not checked",
                      f"set {BY_DEST['redis_ssl_ca_certs'].env} and unset "
                      f"{BY_DEST['redis_ssl_cert_reqs'].env}")
    return check, store


def misconfigured(results: list[Check]) -> bool:
    """Exit 2: the configuration is invalid, or Redis refuses what the settings say (a
    certificate, a login, TLS on or off), as opposed to being away (exit 1)."""
    return any(c.state == FAIL and (c.name == "configuration" or c.hint == _FIX_SETTING)
               for c in results)


def _unreachable(service: str, exc: ApiError, url: str, dest: str) -> tuple[str, str]:
    if isinstance(exc, Unauthorized):
        return (f"{service} refused the credentials ({exc.status}): {exc}", "")
    return (f"cannot use {service} at {url}: {exc}",
            f"check the address ({_how(dest)}) and the network or proxy")


def zendesk_admin(client: Any, settings: Settings) -> Check:
    """The export is admin-only: the token must belong to an admin, not just work."""
    z = settings.zendesk
    token_hint = (f"check the e-mail and token ({_how('zendesk_email')}; "
                  f"{_how('zendesk_api_token')}) and that token access is enabled in "
                  "Admin Center > Apps and integrations > Zendesk API")
    if z.oauth_token:
        token_hint = (f"check the OAuth token ({_how('zendesk_oauth_token')}): it must be "
                      "current and of an admin, with the read and write scopes")
    try:
        me = client.me()
    except ApiError as exc:
        detail, hint = _unreachable("Zendesk", exc, z.base_url, "zendesk_subdomain")
        return Check("Zendesk credentials", FAIL, detail, hint or token_hint)
    who = f"{me.name or '?'} <{me.email or z.email}>, role {me.role}"
    if me.role != "admin":
        return Check("Zendesk credentials", FAIL, f"{who}: the ticket export needs an admin",
                     "use an API token with the e-mail of a Zendesk admin "
                     f"({_how('zendesk_email')})")
    return Check("Zendesk credentials", OK, who)


def teamwork_identity(client: Any, settings: Settings) -> Check:
    t = settings.teamwork
    try:
        me = client.me()
    except ApiError as exc:
        detail, hint = _unreachable("Teamwork", exc, t.base_url, "teamwork_domain")
        return Check("Teamwork credentials", FAIL, detail,
                     hint or f"check the token of the integration user "
                     f"({_how('teamwork_oauth_token' if t.oauth_token else 'teamwork_api_token')})")
    return Check("Teamwork credentials", OK, f"{me.display or '?'} <{me.email or '?'}>, "
                 f"person {me.id}")


def teamwork_project(client: Any, settings: Settings) -> Check:
    pid = settings.teamwork.project_id
    try:
        project = client.project(pid)
    except ApiError as exc:
        return Check("Teamwork project", FAIL, f"cannot read project {pid}: {exc}",
                     "check that the integration user may see the project")
    if project is None:
        return Check("Teamwork project", FAIL, f"project {pid} does not exist or the "
                     "integration user cannot see it",
                     f"use the id from the project's URL ({_how('teamwork_project_id')}) and "
                     "add the integration user to the project")
    return Check("Teamwork project", OK, f"{project.get('name')!r} ({pid})")


def _tasklist(client: Any, name: str, project_id: int, tasklist_id: int | None,
              tasklist_name: str, *, fix_id: str, fix_project: str,
              missing: str) -> Check:
    """A task list by id (it must exist in the project) or by name (found, or to be created
    by the first pass that needs it): the [teamwork] list and every route's."""
    try:
        if tasklist_id is not None:
            tasklist = client.tasklist(tasklist_id)
            if tasklist is None:
                return Check(name, FAIL, f"task list {tasklist_id} does not exist", fix_id)
            owner = tasklist.project_id
            if owner is not None and owner != project_id:
                return Check(name, FAIL, f"task list {tasklist_id} belongs to project "
                             f"{owner}, not {project_id}", fix_project.format(owner=owner))
            return Check(name, OK, f"{tasklist.name!r} ({tasklist_id})")
        found = client.tasklist_named(project_id, tasklist_name)
    except ApiError as exc:
        return Check(name, FAIL, f"cannot read the task lists of project {project_id}: {exc}",
                     "check that the integration user may see the project")
    if found is not None:
        return Check(name, OK, f"{tasklist_name!r} ({found})")
    return Check(name, OK, f"no list named {tasklist_name!r} yet: {missing}")


def teamwork_tasklist(client: Any, settings: Settings, store: Store | None) -> Check:
    t = settings.teamwork
    assert t.project_id is not None
    check = _tasklist(
        client, "task list", t.project_id, t.tasklist_id, t.tasklist_name,
        fix_id=(f"fix {_how('teamwork_tasklist_id')}, or unset it to use the list named "
                f"{t.tasklist_name!r}"),
        fix_project=(f"set teamwork.project_id to {{owner}} or pick a list of project "
                     f"{t.project_id}"),
        missing="the first pass creates it")
    remembered = store.tasklist_id(t.project_id, t.tasklist_name) if store else None
    if check.detail.startswith("no list named") and remembered:
        return Check(check.name, check.state,
                     f"{check.detail}; zdsync remembers id {remembered}, which is gone")
    return check


def route_place(client: Any, route: Route, store: Store | None) -> Check:
    """A route's project and task list: the project visible, the list there (or, by name,
    to be made by the first pass that needs it)."""
    name = f"route {route.name}"
    fix = f"fix project_id / tasklist_id / tasklist_name of route {route.name!r} in the config file"
    assert route.project_id is not None
    try:
        project = client.project(route.project_id)
    except ApiError as exc:
        return Check(name, FAIL, f"cannot read project {route.project_id}: {exc}",
                     "check that the integration user may see the project")
    if project is None:
        return Check(name, FAIL, f"project {route.project_id} does not exist or the "
                     "integration user cannot see it", fix + " (and add the integration "
                     "user to the project)")
    check = _tasklist(client, name, route.project_id, route.tasklist_id, route.tasklist_name,
                      fix_id=fix, fix_project=fix, missing="the first pass that routes a "
                      "ticket there creates it")
    where = f"project {project.get('name')!r} ({route.project_id})"
    joined = ": " if check.detail.startswith("no list") else ", task list "
    return Check(name, check.state, f"{where}{joined}{check.detail}"
                 if check.state == OK else check.detail, check.hint)


def eviction_policy(store: Store) -> Check:
    name = "Redis eviction"
    policy = eviction.read_policy(store.r)
    if policy is None:
        return Check(name, WARN, "maxmemory-policy could not be read (CONFIG GET refused)",
                     "make sure it is noeviction (or volatile-*) in the service's settings")
    why = eviction.problem(policy)
    if why is not None:
        return Check(name, FAIL, why, eviction.FIX)
    return Check(name, OK, f"maxmemory-policy {policy}: zdsync's state is never evicted")


def mappings(store: Store) -> Check:
    pairs, held = store.mappings_and_hold()
    count = len(pairs)
    if held:
        return Check("agent mappings", FAIL, f"lost from Redis ({count} stored since): "
                     "tasks keep the assignees Teamwork holds until they are restored",
                     "zdsync users import FILE (and set [users] file so that they come "
                     "back on their own next time)")
    if not count:
        return Check("agent mappings", WARN, "none: every task goes to Anyone",
                     "zdsync users auto (match by e-mail), or zdsync users add / import")
    return Check("agent mappings", OK, f"{count} agent(s) mapped")


def run(config_path: str | None, options: Mapping[str, Any],
        clients: Any = None) -> list[Check]:
    """Every check, in order; a check whose prerequisite failed is reported as skipped.
    ``clients(settings)`` returns (zendesk, teamwork) clients (replaceable in tests)."""
    config, settings, local = configuration(config_path, options)
    checks = [config]
    store = None
    if local is not None:
        redis_check, store = redis_reachable(local)
        checks.append(redis_check)
        if store is not None:
            checks.append(eviction_policy(store))
    else:
        checks.append(Check("Redis", SKIP, "skipped: the Redis settings are invalid (see "
                            "above)"))
    later = ("Zendesk credentials", "Teamwork credentials", "Teamwork project", "task list")
    if settings is None:
        checks += [Check(name, SKIP, "skipped: the configuration is invalid") for name in later]
    else:
        zendesk, teamwork = clients(settings)
        checks.append(zendesk_admin(impatient(zendesk), settings))
        teamwork = impatient(teamwork)
        identity = teamwork_identity(teamwork, settings)
        checks.append(identity)
        if identity.state != OK:
            checks += [Check(name, SKIP, "skipped: the Teamwork credentials do not work")
                       for name in later[2:]]
        else:
            project = teamwork_project(teamwork, settings)
            checks.append(project)
            checks.append(teamwork_tasklist(teamwork, settings, store) if project.state == OK
                          else Check("task list", SKIP, "skipped: the project is not usable"))
            checks += [route_place(teamwork, route, store) for route in settings.routes]
    if store is not None:
        checks.append(mappings(store))
    return checks
