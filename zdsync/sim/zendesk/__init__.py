"""A faithful in-memory Zendesk Support API: the calls zdsync makes, with their limits.

Follows the Zendesk API reference (zendesk-api.md; section numbers in
docs/simulators.md): cursor-based incremental ticket export (latest version only,
ascending ``generated_timestamp``, last minute withheld, 10 requests/minute), show ticket
(404 on deleted), users and groups, ticket lifecycle rules, and optional signed
event-subscription webhooks.

One module a part, each holding its Python API, routes and handlers: ``service.py`` (the
account's data, users, auth and rate limits), ``webhooks.py``, ``tickets.py`` (lifecycle
rules, show ticket), ``export.py`` (the incremental export) and ``users.py`` (user and
group endpoints).
"""

from zdsync.sim.zendesk.export import Export
from zdsync.sim.zendesk.users import UsersAndGroups

__all__ = ["ZendeskSim"]


class ZendeskSim(Export, UsersAndGroups):
    """The Zendesk Support API for one account, in memory.

    ``email``/``api_token`` are the admin credentials the daemon is given; the token works
    with any active user's e-mail, as real API tokens do, so a non-admin identity can
    be exercised by using another user's e-mail with the same token.
    """
