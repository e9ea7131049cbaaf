"""``zdsync check``: can this installation sync? A checklist with a fix for each failure."""

from __future__ import annotations

import sys

import click

from zdsync import checks
from zdsync.cli import output
from zdsync.cli.context import EXIT_CONFIG, EXIT_OK, EXIT_PARTIAL, Context, fail


@click.command(short_help="Check configuration, Redis and both services.")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def check(ctx: Context, as_json: bool) -> None:
    """Check that this installation can sync; a checklist with a fix for each failure.

    Configuration, Redis (the master, with Sentinel), Zendesk credentials of an admin,
    Teamwork credentials, the project and the task list. Exit 2 if the configuration is
    invalid or Redis refuses the settings (certificate, login, TLS), 1 if another check
    fails.
    Every check gives up within seconds: no retries, short timeouts.
    """
    results = checks.run(ctx.config_path, ctx.options,
                         lambda settings: ctx.clients(settings))
    failed = [c for c in results if c.state in (checks.FAIL, checks.SKIP)]
    misconfigured = checks.misconfigured(results)
    if as_json:
        output.dump_json({"ok": not failed, "checks": [c.as_dict() for c in results]})
    else:
        for c in results:
            if len(c.problems) > 1:  # one a line, as every other command lists them
                click.echo(f"{output.mark(c.state)} {c.name}: {len(c.problems)} problems")
                for problem in c.problems:
                    click.echo(f"    - {problem}")
            else:
                click.echo(f"{output.mark(c.state)} {c.name}: {c.detail}")
            if c.hint and c.state in (checks.FAIL, checks.WARN):
                click.echo(f"    fix: {c.hint}")
        if not failed:
            click.echo("all checks passed")
    if failed:
        bad = [c.name for c in results if c.state == checks.FAIL]
        fail(f"{len(bad)} of {len(results)} check(s) failed: {', '.join(bad)}",
             EXIT_CONFIG if misconfigured else EXIT_PARTIAL)
    sys.exit(EXIT_OK)


