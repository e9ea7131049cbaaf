"""The ``zdsync`` group: the settings as options, and every command in its place."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from zdsync.cli import audit, check, cursor, daemon, retries, sync, tickets, users
from zdsync.cli.context import Context
from zdsync.config import OPTIONS, overridden


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One option per setting, generated from the settings table (never out of sync)."""
    for opt in reversed(OPTIONS):
        kwargs: dict[str, Any] = {"default": None, "help": opt.help}
        if opt.kind == "bool":
            kwargs["type"] = click.BOOL
        func = click.option(opt.flag, opt.dest, **kwargs)(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", metavar="PATH", envvar="ZDSYNC_CONFIG",
              help="TOML config file (or ZDSYNC_CONFIG).")
@settings_options
@click.pass_context
def main(ctx: click.Context, config_path: str | None, **options: Any) -> None:
    """zdsync keeps one Teamwork task per Zendesk ticket.

    Settings come from the environment (SECTION_KEY), then these options
    (--section-key), then the config file ([section] key), then defaults.
    """
    plain_when_unencodable()
    for note in overridden(options):
        click.echo(f"zdsync: {note}", err=True)
    env_config = os.environ.get("ZDSYNC_CONFIG", "")
    if (ctx.get_parameter_source("config_path") is ParameterSource.COMMANDLINE
            and env_config and env_config != config_path):
        click.echo(f"zdsync: ZDSYNC_CONFIG={env_config} in the environment overrides --config "
                   "(the environment wins; unset ZDSYNC_CONFIG to use the option)", err=True)
    ctx.obj = Context(config_path, options)
    ctx.obj.start_logging()


def plain_when_unencodable() -> None:
    """What the terminal's encoding cannot show is escaped (``\\u2713``), never a
    UnicodeEncodeError; the marks of ``check`` fall back to ASCII (``output.mark``)."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


for command in (sync.sync, users.users, tickets.tickets, cursor.cursor, retries.retries,
                check.check, audit.audit_command, sync.recover, daemon.run, daemon.demo):
    main.add_command(command)


def _add_simulators() -> None:
    try:
        from zdsync.sim.cli import sim
    except ImportError:  # the simulators ship with the package; this guards partial checkouts
        return
    main.add_command(sim)


_add_simulators()
