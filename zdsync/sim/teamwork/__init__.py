"""A faithful in-memory Teamwork.com Projects API: the calls zdsync makes, with their limits.

Follows what Teamwork's own code says (its Go SDK and MCP server; docs/simulators.md): v3
task create/patch/get/delete/list, v1 complete/uncomplete/move and task-list create,
people, tags, the 150 requests/minute limit with its 60 s lock-out, and the documented odd
corners (201 with an upper-case string ``TASKLISTID``, 404 without a body, silently dropped
assignees).

One module a resource, each holding its Python API, routes and handlers: ``service.py``
(the site's data, auth, rate limit, error and paging shapes), ``people.py`` (people and
projects), ``tasklists.py``, ``tags.py``, ``tasks.py`` (task records, their rules and the
reads) and ``task_writes.py`` (everything that changes a task over HTTP).
"""

from zdsync.sim.teamwork.people import PeopleAndProjects
from zdsync.sim.teamwork.service import RATE_LIMIT_TEXT
from zdsync.sim.teamwork.tags import Tags
from zdsync.sim.teamwork.task_writes import TaskWrites
from zdsync.sim.teamwork.tasklists import TaskLists
from zdsync.sim.teamwork.variants import VARIANTS, Variants

__all__ = ["RATE_LIMIT_TEXT", "VARIANTS", "TeamworkSim", "Variants"]


class TeamworkSim(TaskWrites, TaskLists, Tags, PeopleAndProjects):
    """Teamwork Projects for one site, in memory.

    ``api_token`` belongs to an integration user (``me_id``) who is on every project.
    ``listing_cap`` is the most records one listing answers, its pages together (Teamwork:
    50,000). ``variants`` picks its answer to each question Teamwork's own code leaves open
    (``variants.VARIANTS``), such as whether a task listing's ``updatedAfter`` keeps the
    tasks updated at that very second.
    """
