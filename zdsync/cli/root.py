"""The ``zdsync`` group: the settings as options, and every command in its place."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from click.core import ParameterSource

from zdsync import __version__
from zdsync.cli import audit, check, cursor, daemon, retries, sync, tickets, users
from zdsync.cli.context import Context
from zdsync.config import OPTIONS, overridden

METAVARS = {"int": "INTEGER", "float": "NUMBER", "time": "TIME", "hosts": "HOST:PORT,...",
            "url": "URL", "redis_url": "REDIS-URL", "secret": "SECRET", "str": "TEXT"}
"""What ``--help`` shows a setting's value as. The values stay text for ``config.load``,
which checks them with the same rules as the file's and the environment's and names the
setting in its error (click's own types would word it differently per source)."""


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One option per setting, generated from the settings table (never out of sync);
    a boolean setting is a pair of flags (``--redis-use-sentinel/--no-redis-use-sentinel``)."""
    for opt in reversed(OPTIONS):
        kwargs: dict[str, Any] = {"default": None, "help": opt.help}
        names = [opt.flag]
        if opt.kind == "bool":
            names = [f"{opt.flag}/--no-{opt.flag[2:]}"]
        elif opt.kind == "choice":
            kwargs["metavar"] = "[" + "|".join(opt.choices) + "]"
        else:
            kwargs["metavar"] = METAVARS[opt.kind]
        func = click.option(*names, opt.dest, **kwargs)(func)
    return func


class Main(click.Group):
    """The top-level group. Its options are accepted after the command as well
    (``zdsync check --redis-port 6380``, as kubectl takes its global flags anywhere): they
    are moved before the command, up to a ``--``. No command has an option of the same
    name (a test keeps it so)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoisted(args, self.params))


def hoisted(args: list[str], params: list[click.Parameter]) -> list[str]:
    """``args`` with the group's options found after the command moved before it."""
    takes_value = {name: not (isinstance(p, click.Option) and p.is_flag)
                   for p in params for name in [*p.opts, *p.secondary_opts]
                   if name.startswith("--") and name not in ("--help", "--version")}
    at = 0
    while at < len(args) and args[at].startswith("-") and args[at] != "--":
        name = args[at].split("=", 1)[0]
        at += 2 if takes_value.get(name) and "=" not in args[at] else 1
    if at >= len(args) or args[at] == "--":
        return args
    moved: list[str] = []
    kept: list[str] = []
    rest = iter(args[at + 1:])
    for arg in rest:
        if arg == "--":
            kept += [arg, *rest]
            break
        name = arg.split("=", 1)[0]
        if name not in takes_value:
            kept.append(arg)
            continue
        if not takes_value[name] or "=" in arg:
            moved.append(arg)
            continue
        value = next(rest, None)
        if value is None:  # no value: left where it is, for click to say so
            kept.append(arg)
        else:
            moved += [arg, value]
    return [*args[:at], *moved, args[at], *kept]


@click.group(cls=Main,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="zdsync")
@click.option("--config", "config_path", metavar="PATH", envvar="ZDSYNC_CONFIG",
              help="TOML config file (or ZDSYNC_CONFIG).")
@settings_options
@click.pass_context
def main(ctx: click.Context, config_path: str | None, **options: Any) -> None:
    """zdsync keeps one Teamwork task per Zendesk ticket.

    Settings come from the environment (SECTION_KEY), then these options
    (--section-key), then the config file ([section] key), then defaults.
    The options may also follow the command: zdsync check --redis-port 6380.
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
