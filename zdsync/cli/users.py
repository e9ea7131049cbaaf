"""``zdsync users``: the agent mappings (Zendesk user id -> Teamwork person id)."""

from __future__ import annotations

import re
import sys
from typing import IO, NoReturn

import click

from zdsync import agents, checks
from zdsync.cli import output
from zdsync.cli.context import (
    EXIT_CONFIG,
    EXIT_PARTIAL,
    ID,
    Context,
    api_errors,
    fail,
    verify_place,
)
from zdsync.config import Settings, load
from zdsync.errors import ApiError, ConfigError
from zdsync.people import Person, User
from zdsync.tasklists import place_problems
from zdsync.teamwork import TeamworkClient


@click.group()
def users() -> None:
    """Agent mappings: Zendesk user id -> Teamwork person id."""


def _lookup(ctx: Context, pairs: dict[int, int]
            ) -> tuple[dict[int, User], dict[int, Person], dict[int, Person]]:
    """(Zendesk users, project members, Teamwork people) among the pairs' ids: a few
    batched requests however many pairs there are."""
    settings = ctx.settings()
    zendesk, teamwork = ctx.clients()
    verify_place(lambda: _project(teamwork, settings))
    with api_errors("could not verify the mappings (nothing was changed)"):
        found_users = zendesk.users_by_ids(pairs)
        members = teamwork.people_by_ids(pairs.values(), settings.teamwork.project_id)
        outside = [p for p in pairs.values() if p not in members]
        people = {**members, **(teamwork.people_by_ids(outside) if outside else {})}
    return found_users, members, people


def _project(teamwork: TeamworkClient, settings: Settings) -> None:
    """The project whose people the mappings name must exist (``verify_place``)."""
    problems = place_problems(teamwork, settings.teamwork, tasklist=False)
    if problems:
        raise ConfigError(problems)


def _verified(ctx: Context, pairs: dict[int, int]
              ) -> tuple[dict[int, User], dict[int, Person]]:
    """Zendesk users and Teamwork people of the pairs; exit 1 listing every problem when a
    user is no agent or a person is not on the project."""
    found_users, members, people = _lookup(ctx, pairs)
    problems = agents.verify(pairs, found_users, members, people,
                             ctx.settings().teamwork.project_id or 0)
    if problems:
        _refuse("nothing was changed", problems, EXIT_PARTIAL, verified=True)
    return found_users, people


def _refuse(what: str, problems: list[str], code: int, *, verified: bool) -> NoReturn:
    """Exit listing every problem, one a line, on standard error."""
    click.echo(f"zdsync: {what}:", err=True)
    for problem in problems:
        click.echo(f"  - {problem}", err=True)
    if verified:
        click.echo("  (--no-verify stores mappings without the Zendesk and Teamwork checks)",
                   err=True)
    sys.exit(code)


def _display(who: User | Person | None) -> str | None:
    return who.display if who is not None else None


def _describe_user(user: User | None) -> str:
    if user is None:
        return ""
    email = f" <{user.email}>" if user.email else ""
    return f" ({user.display}{email}, {user.role})"


@users.command("add")
@click.argument("zendesk_user_id", type=ID)
@click.argument("teamwork_person_id", type=ID)
@click.option("--no-verify", is_flag=True,
              help="Store without asking Zendesk and Teamwork (no names shown).")
@click.pass_obj
def users_add(ctx: Context, zendesk_user_id: int, teamwork_person_id: int,
              no_verify: bool) -> None:
    """Map a Zendesk agent to a Teamwork person.

    Checks first that the Zendesk user is an agent or admin and that the Teamwork person
    exists and is on the project; nothing is stored when a check fails.
    """
    pairs = {zendesk_user_id: teamwork_person_id}
    found_users: dict[int, User] = {}
    people: dict[int, Person] = {}
    if not no_verify:
        ctx.settings()  # configuration errors first, before any network call
    store = ctx.store()
    if not no_verify:
        found_users, people = _verified(ctx, pairs)
    previous = store.mappings().get(zendesk_user_id)
    store.set_mappings(pairs)
    found = people.get(teamwork_person_id)
    person = found.display if found else None
    click.echo(f"mapped Zendesk user {zendesk_user_id}"
               f"{_describe_user(found_users.get(zendesk_user_id))} -> Teamwork person "
               f"{teamwork_person_id}{f' ({person})' if person else ''}"
               + (" [not verified]" if no_verify else ""))
    if previous not in (None, teamwork_person_id):
        click.echo(f"  (was Teamwork person {previous})")
    click.echo("their open tickets are reassigned on the next pass")


@users.command("remove", short_help="Forget a mapping.")
@click.argument("zendesk_user_id", type=ID)
@click.pass_obj
def users_remove(ctx: Context, zendesk_user_id: int) -> None:
    """Forget a mapping: that agent's tasks go to "Anyone" on the next pass."""
    if not ctx.store().remove_mapping(zendesk_user_id):
        fail(f"Zendesk user {zendesk_user_id} has no mapping (zdsync users list shows them)")
    click.echo(f"removed the mapping of Zendesk user {zendesk_user_id}; their open tickets go "
               "to Anyone on the next pass")


def _names(ctx: Context, pairs: dict[int, int]) -> tuple[dict[int, User], dict[int, Person]]:
    """Best effort: names make the list readable, but the list must work without them."""
    if not pairs:
        return {}, {}
    try:
        load(ctx.config_path, ctx.options)
    except ConfigError:
        click.echo("zdsync: no names: the Zendesk and Teamwork settings are incomplete",
                   err=True)
        return {}, {}
    zendesk, teamwork = (checks.impatient(c) for c in ctx.clients())
    try:
        return zendesk.users_by_ids(pairs), teamwork.people_by_ids(pairs.values())
    except ApiError as exc:
        click.echo(f"zdsync: no names: {exc}", err=True)
        return {}, {}


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.option("--no-names", is_flag=True, help="Do not look names up in Zendesk and Teamwork.")
@click.pass_obj
def users_list(ctx: Context, as_json: bool, no_names: bool) -> None:
    """List the mappings, with names when Zendesk and Teamwork answer."""
    pairs = dict(sorted(ctx.store().mappings().items()))
    found_users, people = ({}, {}) if no_names else _names(ctx, pairs)
    rows = [{"zendesk_user_id": z, "zendesk_name": _display(found_users.get(z)),
             "zendesk_email": (found_users[z].email or None) if z in found_users else None,
             "teamwork_person_id": t, "teamwork_name": _display(people.get(t))}
            for z, t in pairs.items()]
    if as_json:
        output.dump_json(rows)
        return
    output.table(["ZENDESK USER", "NAME", "E-MAIL", "TEAMWORK PERSON", "NAME"],
           [(r["zendesk_user_id"], r["zendesk_name"], r["zendesk_email"],
             r["teamwork_person_id"], r["teamwork_name"]) for r in rows])
    click.echo(f"{len(rows)} mapping(s)")


@users.command("import", short_help="Add mappings from a CSV file.")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--no-verify", is_flag=True, help="Skip the Zendesk and Teamwork checks.")
@click.option("--dry-run", is_flag=True, help="Validate and verify only; store nothing.")
@click.pass_obj
def users_import(ctx: Context, file: IO[str], no_verify: bool, dry_run: bool) -> None:
    """Add or change mappings from a CSV file (header zendesk_user_id,teamwork_person_id).

    Every row is checked (and, unless --no-verify, verified like users add) before any
    is stored: one bad row rejects the whole file, and every bad row is listed. Mappings
    not in the file are kept. FILE may be - for standard input.
    """
    try:
        text = file.read()
    except UnicodeDecodeError as exc:
        fail(f"{file.name}: not UTF-8 text ({exc}); nothing was imported", EXIT_CONFIG)
    pairs, lines, problems = agents.parse_csv_lines(text)
    # A malformed file is a usage error (2); a well-formed one that does not verify, 1.
    code = EXIT_CONFIG if problems else EXIT_PARTIAL
    if not no_verify and pairs:  # the valid rows too: every problem of the file at once
        ctx.settings()
        found_users, members, people = _lookup(ctx, pairs)
        problems = sorted(problems + agents.verify(
            pairs, found_users, members, people, ctx.settings().teamwork.project_id or 0,
            lines), key=_line_number)
    if problems:
        _refuse(f"{file.name}: {len(problems)} problem(s); nothing was imported", problems,
                code, verified=not no_verify)
    store = ctx.store()
    current = store.mappings()
    changes = {z: t for z, t in pairs.items() if current.get(z) != t}
    new = sum(1 for z in changes if z not in current)
    counts = (f"{new} new, {len(changes) - new} changed, {len(pairs) - len(changes)} "
              "unchanged")
    if dry_run:
        click.echo(f"{file.name}: {len(pairs)} valid mapping(s) ({counts}); dry run: nothing "
                   "stored")
        return
    store.set_mappings(changes)
    click.echo(f"imported {len(pairs)} mapping(s) from {file.name}: {counts}"
               + ("; their open tickets are reassigned on the next pass" if changes else ""))


def _line_number(problem: str) -> int:
    """Problems sort by the line they name (those of the whole file first)."""
    found = re.match(r"line ([0-9]+):", problem)
    return int(found[1]) if found else 0


@users.command("export")
@click.argument("file", type=click.File("w", encoding="utf-8", lazy=True), default="-")
@click.pass_obj
def users_export(ctx: Context, file: IO[str]) -> None:
    """Write the mappings as CSV to FILE (standard output without one)."""
    pairs = ctx.store().mappings()
    file.write(agents.render_csv(pairs))
    if file.name != "<stdout>" and file.name != "-":
        click.echo(f"exported {len(pairs)} mapping(s) to {file.name}", err=True)


@users.command("auto", short_help="Pair agents with people by e-mail.")
@click.option("--apply", "apply_", is_flag=True, help="Store the new pairs.")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def users_auto(ctx: Context, apply_: bool, as_json: bool) -> None:
    """Pair Zendesk agents with the project's Teamwork people by e-mail address.

    Prints the proposed pairs and the agents left unmatched; --apply stores the new
    pairs. A mapping made by hand is never replaced (shown as "kept").
    """
    settings = ctx.settings()
    store = ctx.store()
    zendesk, teamwork = ctx.clients()
    verify_place(lambda: _project(teamwork, settings))
    with api_errors("could not read the agents and people"):
        found_agents = zendesk.agents()
        members = teamwork.people(settings.teamwork.project_id)
    proposals = agents.match_by_email(found_agents, members, store.mappings())
    new = {p.zendesk_user_id: p.person_id for p in proposals
           if p.status == "new" and p.person_id is not None}
    if apply_:
        store.set_mappings(new)
    if as_json:
        output.dump_json({"proposals": [p.as_dict() for p in proposals],
               "applied": len(new) if apply_ else 0})
        return
    matched = [p for p in proposals if p.status != "unmatched"]
    unmatched = [p for p in proposals if p.status == "unmatched"]
    if matched:
        output.table(["ZENDESK USER", "NAME", "E-MAIL", "TEAMWORK PERSON", "NAME", "STATUS"],
               [(p.zendesk_user_id, p.name, p.email, p.person_id, p.person_name,
                 p.status if p.status != "kept" else f"kept (mapped to {p.mapped_to})")
                for p in matched])
    if unmatched:
        click.echo(f"\nunmatched agents ({len(unmatched)}):")
        output.table(["ZENDESK USER", "NAME", "E-MAIL", "WHY"],
               [(p.zendesk_user_id, p.name, p.email or None,
                 p.reason + (f"; mapped by hand to {p.mapped_to}" if p.mapped_to else ""))
                for p in unmatched])
    counts = {s: sum(1 for p in proposals if p.status == s)
              for s in ("new", "same", "kept", "unmatched")}
    click.echo(f"\n{len(proposals)} agent(s): {counts['new']} new pair(s), {counts['same']} "
               f"already mapped, {counts['kept']} kept as mapped by hand, "
               f"{counts['unmatched']} unmatched")
    if apply_:
        click.echo(f"stored {len(new)} new mapping(s)"
                   + ("; their open tickets are reassigned on the next pass" if new else ""))
    elif new:
        click.echo("run again with --apply to store the new pairs")


