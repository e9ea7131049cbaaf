"""``zdsync sim ...``: run a simulator in the foreground, to explore it with curl or to
point a daemon at it. Registered by the main CLI with ``main.add_command(sim)``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import click

from zdsync.sim.activity import ActivityGenerator
from zdsync.sim.base import Clock
from zdsync.sim.seed import seed_teamwork, seed_zendesk
from zdsync.sim.server import SimServer
from zdsync.sim.teamwork import VARIANTS, TeamworkSim, Variants
from zdsync.sim.teamwork.service import LISTING_CAP
from zdsync.sim.zendesk import ZendeskSim


@click.group()
def sim() -> None:
    """Run the Zendesk or Teamwork simulator (no real service is contacted)."""


def _serve(server: SimServer, port: int, host: str, lines: list[str]) -> None:
    server.start(port=port, host=host)
    click.echo(f"  url:      {server.url}")
    for line in lines:
        click.echo(line)
    click.echo(f"  admin:    {server.url}/_sim/health  (POST /_sim/clock/advance, "
               "/_sim/faults; GET /_sim/requests)")
    click.echo("Serving; press Ctrl-C to stop.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        click.echo("Stopping.")
    finally:
        server.stop()


def _listening(default_port: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """``--port`` and ``--host``: where either simulator listens."""

    def add(command: Callable[..., None]) -> Callable[..., None]:
        command = click.option("--host", default="127.0.0.1", show_default=True)(command)
        return click.option("--port", default=default_port, show_default=True,
                            help="0 picks a free port.")(command)

    return add


@sim.command("zendesk")
@_listening(8181)
@click.option("--email", default="admin@example.com", show_default=True,
              help="The admin user's e-mail (Basic auth: EMAIL/token:TOKEN).")
@click.option("--token", default="sim-zendesk-token", show_default=True)
@click.option("--export-limit", default=10, show_default=True,
              help="Incremental export requests per minute.")
@click.option("--seed-data", is_flag=True, help="Create a few agents and tickets.")
@click.option("--activity", "activity_rate", type=float, default=0.0,
              help="Random ticket events per second (needs --seed-data).")
@click.option("--seed", default=0, show_default=True, help="Seed for faults and activity.")
def zendesk_command(port: int, host: str, email: str, token: str, export_limit: int,
                    seed_data: bool, activity_rate: float, seed: int) -> None:
    """Serve the Zendesk Support API simulator."""
    server = ZendeskSim(email, token, Clock(), export_limit, seed=seed)
    click.echo("Zendesk simulator")
    lines = [f"  auth:     {email}/token:{token}"]
    agents: list[int] = []
    if seed_data:
        seeded = seed_zendesk(server)
        agents = seeded.agents
        lines.append(f"  agents:   {agents} (alice, bob, carol); end-user {seeded.customer}")
        lines.append(f"  tickets:  {seeded.tickets} (exported once older than 60 s)")
    stop = threading.Event()
    if activity_rate > 0 and agents:
        generator = ActivityGenerator(server, seed=seed, mapped_agent_ids=agents[:2],
                                      unmapped_agent_ids=agents[2:])
        threading.Thread(target=generator.run_for, args=(10**9, activity_rate, stop),
                         daemon=True).start()
    try:
        _serve(server, port, host, lines)
    finally:
        stop.set()


@sim.command("teamwork")
@_listening(8182)
@click.option("--token", default="sim-teamwork-token", show_default=True,
              help="API token (Basic auth user name; any password).")
@click.option("--rate-limit", default=150, show_default=True, help="Requests per minute.")
@click.option("--seed-data", is_flag=True, help="Create people, a project and a task list.")
@click.option("--seed", default=0, show_default=True, help="Seed for faults.")
@click.option("--listing-cap", default=LISTING_CAP, show_default=True, type=click.IntRange(1),
              help="Records one listing answers, its pages together (Teamwork: 50,000).")
@click.option("--updated-after", type=click.Choice(["exclusive", "inclusive"]),
              default="exclusive", show_default=True,
              help="Whether a task listing's updatedAfter keeps tasks updated at that second "
                   "(the variant updated_after).")
@click.option("--variant", "variants", multiple=True, metavar="NAME=VALUE",
              help="How to answer where Teamwork's answer is unknown (repeatable): "
                   + "; ".join(f"{name}={'|'.join(values)}"
                               for name, values in VARIANTS.items()) + ".")
def teamwork_command(port: int, host: str, token: str, rate_limit: int, seed_data: bool,
                     seed: int, listing_cap: int, updated_after: str,
                     variants: tuple[str, ...]) -> None:
    """Serve the Teamwork Projects API simulator."""
    try:
        chosen = Variants.parse((f"updated_after={updated_after}", *variants))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--variant") from None
    server = TeamworkSim(token, Clock(), rate_limit, seed=seed, listing_cap=listing_cap,
                         variants=chosen)
    click.echo("Teamwork simulator")
    lines = [f"  auth:     {token}:X  (Basic auth; token as user name)",
             f"  variants: {chosen}"]
    if seed_data:
        world = seed_teamwork(server)
        lines.append(f"  project:  {world.project}; task list {world.tasklist}")
        lines.append(f"  people:   {world.people} (alice, bob); integration user {server.me_id}")
    _serve(server, port, host, lines)

