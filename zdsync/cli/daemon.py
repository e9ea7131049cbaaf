"""``zdsync run`` and ``zdsync demo``: the daemon, and the daemon's work against the
built-in simulators."""

from __future__ import annotations

import sys

import click

from zdsync.cli.context import EXIT_CONFIG, EXIT_PARTIAL, Context, fail
from zdsync.errors import ConfigError


@click.command()
@click.pass_obj
def run(ctx: Context) -> None:
    """Run the daemon: scheduled passes, leader election, health, metrics, webhooks."""
    from zdsync.daemon import Daemon

    settings = ctx.settings()
    try:
        daemon = Daemon(settings)  # binds its ports: an unusable one is a config error
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    sys.exit(daemon.run())


@click.command()
@click.option("--tickets", default=60, show_default=True, type=click.IntRange(min=1),
              help="Tickets the activity generator creates.")
@click.option("--duration", default=30.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds of simulated activity.")
@click.option("--seed", default=1, show_default=True, help="Seed of the activity generator.")
@click.option("--faults", is_flag=True,
              help="Turn on latency, errors and lost create responses in the simulators.")
@click.option("--keep-running", is_flag=True,
              help="Leave the simulators up at the end, for curl, until Ctrl-C.")
@click.pass_obj
def demo(ctx: Context, tickets: int, duration: float, seed: int, faults: bool,
         keep_running: bool) -> None:
    """Show zdsync at work against the built-in simulators: no accounts, no set-up."""
    from zdsync.demo import run_demo

    settings = ctx.settings(require_services=False)
    code = run_demo(settings, tickets=tickets, duration_seconds=duration, seed=seed,
                    faults=faults, keep_running=keep_running)
    if code == EXIT_PARTIAL:
        fail("the consistency check found differences between Teamwork and the tickets "
             "(listed above)")
    sys.exit(code)


