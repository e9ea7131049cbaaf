"""The ``zdsync`` command line: one module per command group, each of which only parses
options and renders results; the work is done by the modules of ``zdsync`` it calls.

Every setting is also an option of the top-level group (``zdsync --redis-host r1
sync``); see ``zdsync.config`` for the naming rule.

Exit codes: 0 success; 1 the command ran but work is left (tickets in the retry set, a
service unreachable, a failed check, drift found) or what it names is not there (an
unknown ticket, a Zendesk user who is no agent, a person not on the project: nothing is
changed); 2 configuration or usage error (bad options, a malformed CSV file, a
configured Teamwork project or task list that is not there); 75 another process holds
the sync lock (EX_TEMPFAIL: try again later). Every non-zero exit ends with a line on
standard error that says why (``zdsync: ...``; click's ``Error: ...`` for usage).

Command reference with real output: docs/cli.md.
"""

from zdsync.cli.root import main

__all__ = ["main"]
