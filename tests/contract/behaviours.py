"""Every Zendesk and Teamwork behaviour zdsync relies on: what it is, which zdsync code
reads it, its public source, and the recorded real answers that show it.

A source is a URL or a repository and path (never a section of a file the reader does not
have). ``recordings`` name files of the shared fixtures folder (see ``recordings.py``);
a behaviour without one rests on documentation alone. Each behaviour is checked by the
contract tests that say ``@covers(key)``, or by the tests ``checked_by`` names;
``test_behaviours.py`` keeps this table, the tests and docs/contract.md in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

# -- sources ----------------------------------------------------------------------------
ZD_EXPORT = ("https://developer.zendesk.com/api-reference/ticketing/ticket-management/"
             "incremental_exports/")
ZD_EXPORT_GUIDE = ("https://developer.zendesk.com/documentation/ticketing/managing-tickets/"
                   "using-the-incremental-export-api/")
ZD_TICKETS = "https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/"
ZD_USERS = "https://developer.zendesk.com/api-reference/ticketing/users/users/"
ZD_PAGINATION = "https://developer.zendesk.com/api-reference/introduction/pagination/"
ZD_RATE_LIMITS = "https://developer.zendesk.com/api-reference/introduction/rate-limits/"
ZENPY_404 = "https://github.com/facetoe/zenpy/issues/259"
TAP_ZENDESK = "singer-io/tap-zendesk tap_zendesk/streams/tickets.py"
DUST = "dust-tt/dust connectors/src/connectors/zendesk/temporal/incremental_activities.ts"
AIRBYTE_TOO_RECENT = "https://github.com/airbytehq/airbyte/pull/23246"
CURSOR_GUARD = "https://github.com/pipeshub-ai/pipeshub-ai/pull/2836"
MERGE_APPS = "https://support.swifteq.com/hc/en-us/articles/21944293820561"

SDK_TASK = "Teamwork/twapi-go-sdk projects/task.go"
SDK_TASKLIST = "Teamwork/twapi-go-sdk projects/tasklist.go"
SDK_USER = "Teamwork/twapi-go-sdk projects/user.go"
SDK_TAG = "Teamwork/twapi-go-sdk projects/tag.go"
SDK_LIST = "Teamwork/twapi-go-sdk list.go"
SDK_AGENTS = "Teamwork/twapi-go-sdk AGENTS.md"
MCP_TASKS = "Teamwork/mcp internal/twprojects/tasks.go"
MCP_DELETED = "https://github.com/Teamwork/mcp/pull/533"
MCP_UNASSIGN = "https://github.com/Teamwork/mcp/issues/372"
TW_PAGING = "https://apidocs.teamwork.com/guides/teamwork/how-does-paging-work"
TW_FAQ = "https://apidocs.teamwork.com/guides/teamwork/answers-to-common-questions"
TW_SPEC_V1 = "dhontecillas/teamworkapigoclient pkg/openapi/pmv1/api/openapi.yaml"
TW_TASKLIST_CREATE = ("https://apidocs.teamwork.com/docs/teamwork/v1/task-lists/"
                      "post-projects-id-tasklists-json")
TW_ERRORS = "https://developer.teamwork.com/projects/response/errors"
TW_PHP_CLIENT = "loduis/teamwork.com-project-management src/Rest/Client.php"

# -- recordings (under the shared fixtures folder) -----------------------------------------
CHAIN = "export_2023_cursor_chain.json"
LAST_PAGE = "export_2024_page.json"
VERSIONS = "ticket_versions.json"
SHAPES = "ticket_shapes.json"
CLOSED = "rb_closed_pending.json"
USERS = "users.json"
ERRORS = "errors.json"
TW_V3_LISTING = "teamwork-v1/projects_api_v3_customfields.json"
TW_ME = "teamwork-v1/me.json"
TW_TASK = "teamwork-v1/tasks_43119773.json"
TW_COMPLETED = "teamwork-v1/completedtasks.json"
TW_LIST_TASKS = "teamwork-v1/tasklists_2952529_tasks.json"
TW_TASKLIST = "teamwork-v1/tasklists_2952529.json"


@dataclass(frozen=True)
class Behaviour:
    service: str  # "zendesk" or "teamwork"
    what: str
    read_by: str  # the zdsync code that relies on it
    sources: tuple[str, ...]
    recordings: tuple[str, ...] = ()
    checked_by: tuple[str, ...] = ()  # tests outside this module: "path::function"


BEHAVIOURS: dict[str, Behaviour] = {
    # -- Zendesk ---------------------------------------------------------------------------
    "zendesk.export.cursor_chain": Behaviour(
        "zendesk", "The first export request sends start_time; every later one sends only "
        "the previous page's after_cursor as cursor.",
        "zendesk.py Export, ZendeskClient.export_page", (ZD_EXPORT, ZD_EXPORT_GUIDE),
        (CHAIN,)),
    "zendesk.export.page": Behaviour(
        "zendesk", "An export page is an object with tickets (a list), after_cursor (a "
        "string) and end_of_stream (a JSON boolean).",
        "zendesk.py ZendeskClient.export_page", (ZD_EXPORT,), (CHAIN, LAST_PAGE)),
    "zendesk.export.last_page_cursor": Behaviour(
        "zendesk", "The page with end_of_stream true still carries after_cursor: the next "
        "poll starts from it.", "zendesk.py Export; passes.py stores the cursor",
        (ZD_EXPORT, ZD_EXPORT_GUIDE), (LAST_PAGE,)),
    "zendesk.export.generated_timestamp": Behaviour(
        "zendesk", "Export tickets carry an integer generated_timestamp, never decreasing "
        "along the export; show, show_many, create and update answers do not carry it.",
        "tickets.py Ticket.version; rules.py is_stale", (ZD_EXPORT, ZD_TICKETS),
        (CHAIN, LAST_PAGE, VERSIONS)),
    "zendesk.export.deleted": Behaviour(
        "zendesk", 'Deleted tickets stay in the export with status "deleted" (scrubbed '
        'later: subject "SCRUBBED").', "tickets.py KNOWN_STATUSES; rules.py plan",
        (ZD_EXPORT, TAP_ZENDESK, DUST), (LAST_PAGE, SHAPES)),
    "zendesk.ticket.fields": Behaviour(
        "zendesk", "A ticket has an integer id, a status, a subject string, user, group, "
        "brand, form and organization ids that are integers or null, tags as a list of "
        "strings, ISO-8601 UTC updated_at and created_at, priority and type strings or "
        "null, and via.channel.", "tickets.py Ticket.from_api", (ZD_TICKETS,),
        (CHAIN, LAST_PAGE, VERSIONS, SHAPES, CLOSED)),
    "zendesk.ticket.show": Behaviour(
        "zendesk", 'GET /api/v2/tickets/{id} answers {"ticket": …} without '
        "generated_timestamp; two such snapshots of a ticket are ordered by updated_at.",
        "zendesk.py ZendeskClient.ticket; rules.py is_stale", (ZD_TICKETS,), (VERSIONS,)),
    "zendesk.ticket.not_found": Behaviour(
        "zendesk", 'A ticket or user that is missing (a deleted ticket too) answers 404 '
        '{"error": "RecordNotFound", "description": "Not found"}.',
        "transport.py Transport.get_object via ZendeskClient.ticket and user",
        (ZD_TICKETS, ZENPY_404), (ERRORS,)),
    "zendesk.show_many.batch": Behaviour(
        "zendesk", "show_many takes at most 100 ids a request; more values are refused "
        "(TooManyValues, max_count 100).", "zendesk.py ZendeskClient._show_many",
        (ZD_TICKETS, ZD_USERS), (ERRORS,)),
    "zendesk.users.fields": Behaviour(
        "zendesk", "A user has an integer id, name, email, role (end-user, agent or admin) "
        "and active.", "people.py User.from_api; checks.py zendesk_admin",
        (ZD_USERS,), (USERS,)),
    "zendesk.users.offset_paging": Behaviour(
        "zendesk", "Users and groups listed without page[size] page by offset: next_page "
        "is the next page's URL, null on the last.", "zendesk.py ZendeskClient._paged",
        (ZD_USERS, ZD_PAGINATION)),
    "zendesk.export.too_recent": Behaviour(
        "zendesk", "A 400 or 422 naming StartTimeTooRecent (or 'Too recent start_time') "
        "means nothing new yet.", "zendesk.py ZendeskClient.export_page",
        (ZD_EXPORT, AIRBYTE_TOO_RECENT),
        checked_by=("tests/unit/test_zendesk.py::test_start_time_too_recent_means_nothing_new",)),
    "zendesk.export.cursor_stuck": Behaviour(
        "zendesk", "A cursor that comes back unchanged while end_of_stream is false does "
        "not advance: stop rather than loop.", "zendesk.py Export",
        (ZD_EXPORT_GUIDE, CURSOR_GUARD),
        checked_by=("tests/unit/test_zendesk.py::test_cursor_that_does_not_advance_stops",)),
    "zendesk.export.scope": Behaviour(
        "zendesk", "Only support_type_scope=all also exports tickets handled by AI agents "
        "(the default is agent).", "zendesk.py ZendeskClient.export_page", (ZD_EXPORT,)),
    "zendesk.export.timeouts": Behaviour(
        "zendesk", "Slow export pages: lower per_page progressively instead of repeating "
        "the request.", "zendesk.py ZendeskClient.export_page", (ZD_EXPORT,),
        checked_by=("tests/unit/test_zendesk.py::"
                    "test_504_and_timeouts_shrink_the_page_instead_of_repeating_it",)),
    "zendesk.rate_limit": Behaviour(
        "zendesk", "Throttling is 429 with Retry-After in seconds.",
        "zendesk.py retry_after_seconds", (ZD_RATE_LIMITS,),
        checked_by=("tests/unit/test_zendesk.py::test_429_waits_retry_after_then_retries",)),
    "zendesk.merge": Behaviour(
        "zendesk", "A ticket merged into another ends closed, carrying the tag "
        "closed_by_merge (the tag is practitioners' observation, not Zendesk's text).",
        "tickets.py Ticket.merged", (ZD_TICKETS, MERGE_APPS)),
    # -- Teamwork --------------------------------------------------------------------------
    "teamwork.v3.paging": Behaviour(
        "teamwork", "v3 listings page with page and pageSize and answer meta.page "
        "{pageOffset, pageSize, count, hasMore} and included; read on while hasMore.",
        "teamwork.py TeamworkClient._pages (every listing)", (TW_PAGING, SDK_LIST),
        (TW_V3_LISTING,)),
    "teamwork.v3.updated": Behaviour(
        "teamwork", "v3 objects give updatedAt as ISO-8601 UTC and updatedBy as a person's "
        "integer id: the id v1 gives as a string.",
        "tasks.py Task.from_api; rebuild.py (stamps of the integration user's writes)",
        (SDK_TASK,), (TW_V3_LISTING, TW_ME)),
    "teamwork.task.tasklist": Behaviour(
        "teamwork", 'A v3 task names its list as tasklist {"id", "type": "tasklists"}; '
        "the flat tasklistId may be absent, and there is no projectId (the project is the "
        "list's).", "tasks.py Task.from_api (tasklist_id)", (SDK_TASK,)),
    "teamwork.task.deleted": Behaviour(
        "teamwork", "GET of one v3 task answers 200 for a deleted task unless "
        'hideDeleted=true (then 404); a deleted task has status "deleted" and a non-null '
        "deletedAt.", "teamwork.py TeamworkClient.get_task; tasks.py Task.deleted",
        (MCP_DELETED, SDK_TASK)),
    "teamwork.task.priority": Behaviour(
        "teamwork", 'An unset priority reads "", "none" or null: each is none to zdsync.',
        "tasks.py Task.from_api (priority)", (SDK_TASK, MCP_TASKS), (TW_TASK, TW_COMPLETED)),
    "teamwork.task.status": Behaviour(
        "teamwork", "A task's status is new, reopened, completed or deleted.",
        "tasks.py Task.completed, Task.deleted", (SDK_TASK,)),
    "teamwork.task.assignees": Behaviour(
        "teamwork", 'assignees are relationships {"id", "type"}; people have type '
        '"users"; an unassigned task has none.', "tasks.py Task.assignee", (SDK_TASK,)),
    "teamwork.task.tags": Behaviour(
        "teamwork", 'tags are relationships {"id", "type": "tags"}.',
        "tasks.py Task.from_api (tag_ids)", (SDK_TASK,)),
    "teamwork.task.due_date": Behaviour(
        "teamwork", "dueDate is a date, YYYY-MM-DD in v3; v1 writes YYYYMMDD.",
        "tasks.py _date", (SDK_TASK, TW_SPEC_V1), (TW_LIST_TASKS,)),
    "teamwork.tasklist.project": Behaviour(
        "teamwork", 'A v3 task list names its project as project {"id", "type"}; v1 gives '
        "projectId, as a string.", "tasks.py TaskList.from_api; checks.py _tasklist",
        (SDK_TASKLIST,), (TW_TASKLIST,)),
    "teamwork.tasklist.create": Behaviour(
        "teamwork", 'v1 POST /projects/{id}/tasklists.json answers 201 {"TASKLISTID": '
        '"<id>", "STATUS": "OK"}.', "teamwork.py TeamworkClient.create_tasklist",
        (TW_TASKLIST_CREATE, SDK_TASKLIST)),
    "teamwork.people": Behaviour(
        "teamwork", 'A v3 person has an integer id, firstName, lastName and email; GET '
        '/me answers {"person": …}.', "people.py Person.from_api; TeamworkClient.me, "
        "people, people_by_ids", (SDK_USER,)),
    "teamwork.tags": Behaviour(
        "teamwork", "A v3 tag has an integer id and a name; names may repeat.",
        "lookups.py TagIds (TeamworkClient.tags)", (SDK_TAG,)),
    "teamwork.list.completed": Behaviour(
        "teamwork", "v3 task listings leave out completed tasks, and tasks of completed "
        "lists, unless includeCompletedTasks and showCompletedLists are true.",
        "teamwork.py SEE_ALL_TASKS", (SDK_TASK,)),
    "teamwork.list.cap": Behaviour(
        "teamwork", "A listing request returns at most 50,000 records, paging included; "
        "continue with updatedAfter from the last record's updatedAt.",
        "rebuild.py, audit (TeamworkClient.tasklist_tasks)", (TW_FAQ, TW_PAGING)),
    "teamwork.v1.complete": Behaviour(
        "teamwork", "Complete and reopen only through v1 PUT /tasks/{id}/complete.json "
        "and uncomplete.json.", "teamwork.py complete_task, reopen_task",
        (SDK_TASK, TW_SPEC_V1)),
    "teamwork.v1.move": Behaviour(
        "teamwork", 'Only v1 PUT /tasks/{id}/move.json {"taskListId"} moves a task to '
        "another project's list; v3 answers 422.", "teamwork.py TeamworkClient.move_task",
        (SDK_AGENTS,)),
    "teamwork.unassign": Behaviour(
        "teamwork", "assignees with every dimension an empty list means Anyone; null "
        "leaves a dimension as it is.", "teamwork.py _assignees", (MCP_TASKS, MCP_UNASSIGN)),
    "teamwork.rate_limit": Behaviour(
        "teamwork", "Throttling is 429 (v1 may say 400 with x-ratelimit-remaining 0) "
        "until x-ratelimit-reset, about 60 s.", "teamwork.py ratelimit_wait_seconds",
        (TW_SPEC_V1, TW_ERRORS, TW_PHP_CLIENT),
        checked_by=("tests/unit/test_teamwork.py::test_ratelimit_wait",)),
}

Test = TypeVar("Test", bound=Callable[..., object])


def covers(*keys: str) -> Callable[[Test], Test]:
    """Mark a contract test as checking these behaviours (unknown keys fail at import)."""
    unknown = [k for k in keys if k not in BEHAVIOURS]
    if unknown:
        raise KeyError(f"not in BEHAVIOURS: {unknown}")

    def mark(test: Test) -> Test:
        test.behaviours = keys  # type: ignore[attr-defined]
        return test
    return mark
