"""``zdsync retries``: the tickets whose last attempt failed, retried with backoff."""

from __future__ import annotations

import time

import click

from zdsync.cli import output
from zdsync.cli.context import ID, Context, fail
from zdsync.store import Store
from zdsync.times import for_people as _utc


@click.group()
def retries() -> None:
    """Tickets whose last attempt failed, retried with backoff."""


@retries.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def retries_list(ctx: Context, as_json: bool) -> None:
    """Ticket, attempts, last error and next try of every queued ticket."""
    entries = ctx.store().retries()
    now = time.time()
    if as_json:
        output.dump_json([{"ticket_id": e.ticket_id, "attempts": e.attempts, "error": e.error,
                "next_at": e.next_at, "since": e.since} for e in entries])
        return
    output.table(["TICKET", "ATTEMPTS", "NEXT TRY", "FAILING SINCE", "LAST ERROR"],
           [(e.ticket_id, e.attempts,
             "due now" if e.next_at <= now else f"in {output.span(e.next_at - now)}",
             _utc(e.since), output.elided(e.error) if e.error else None)
            for e in entries])
    click.echo(f"{len(entries)} ticket(s) waiting")


def _queued_or_fail(store: Store, ticket_ids: tuple[int, ...]) -> list[int]:
    ids = list(dict.fromkeys(ticket_ids))
    unknown = [t for t in ids if t not in store.queued_for_retry(ids)]
    if unknown:
        fail(f"not in the retry set: {', '.join(map(str, unknown))}; nothing was changed "
             "(zdsync retries list shows the queued tickets)")
    return ids


@retries.command("retry")
@click.argument("ticket_ids", nargs=-1, type=ID)
@click.option("--all", "all_", is_flag=True, help="Every queued ticket.")
@click.pass_obj
def retries_retry(ctx: Context, ticket_ids: tuple[int, ...], all_: bool) -> None:
    """Make queued tickets due now: the next pass retries them."""
    if bool(ticket_ids) == all_:
        raise click.UsageError("give ticket ids or --all (not both)")
    store = ctx.store()
    ids = ([e.ticket_id for e in store.retries()] if all_
           else _queued_or_fail(store, ticket_ids))
    store.retry_now(ids)
    click.echo(f"{len(ids)} ticket(s) due now; the next pass retries them")


@retries.command("drop", short_help="Stop retrying tickets.")
@click.argument("ticket_ids", nargs=-1, required=True, type=ID)
@click.pass_obj
def retries_drop(ctx: Context, ticket_ids: tuple[int, ...]) -> None:
    """Stop retrying tickets (their stored records stay; a later change retries them)."""
    store = ctx.store()
    ids = _queued_or_fail(store, ticket_ids)
    store.drop_retries(ids)
    click.echo(f"dropped {len(ids)} ticket(s) from the retry set")


