"""Task lists by id or by name: the ``[teamwork]`` list and each route's.

A list given by name is looked up in its project (completed lists too), created if
missing when the caller may create, and the id found is remembered in Redis and in
memory. A name not found (where nothing may be created: dry runs, searches) is looked up
again at most once a minute rather than once per ticket. A list that answers 404, or
refuses a move, is forgotten and looked up again next time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from zdsync import defaults
from zdsync.config import BY_DEST, Settings, TeamworkSettings
from zdsync.errors import ConfigError, RetryableError
from zdsync.routes import Route, Routing
from zdsync.store import Store
from zdsync.teamwork import TeamworkClient

log = logging.getLogger(__name__)


def place_problems(teamwork: TeamworkClient, tw: TeamworkSettings, *,
                   tasklist: bool = True) -> list[str]:
    """What is wrong with ``[teamwork]``'s project and (``tasklist``) list, each problem
    naming its setting: a project or list that answers 404, a list of another project.
    Other API errors (401, an outage) propagate: they are no configuration problem."""
    pid = tw.project_id
    if pid is not None and teamwork.project(pid) is None:
        return [f"teamwork.project_id {pid}: no such project, or the integration user cannot "
                f"see it (Teamwork answers 404): use the id in the project's URL and add the "
                f"integration user to the project; {BY_DEST['teamwork_project_id'].how_to_set()}"]
    tid = tw.tasklist_id
    if not tasklist or tid is None:
        return []
    found = teamwork.tasklist(tid)
    if found is None:
        return [f"teamwork.tasklist_id {tid}: no such task list (Teamwork answers 404): "
                f"{BY_DEST['teamwork_tasklist_id'].how_to_set()}, or unset it to use the list "
                f"named {tw.tasklist_name!r}"]
    if found.project_id is not None and pid is not None and found.project_id != pid:
        return [f"teamwork.tasklist_id {tid}: the task list belongs to project "
                f"{found.project_id}, not to teamwork.project_id {pid}: set one of the two so "
                "that the list is in the project"]
    return []


class TaskLists:
    def __init__(self, settings: Settings, store: Store, teamwork: TeamworkClient,
                 routing: Routing, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.store = store
        self.teamwork = teamwork
        self.routing = routing
        self.clock = clock
        self._named: dict[tuple[int, str], int] = {}  # (project, list name) -> list id
        self._missing: dict[tuple[int, str], float] = {}  # looked up in vain, when
        self._lock = threading.Lock()
        self._verified = False
        self._wrong: tuple[float, list[str]] | None = None  # when found wrong, and how

    def verify(self) -> None:
        """Once per process, before any work: ``[teamwork]``'s project exists and its list
        is in it; else ``ConfigError`` naming the setting (``place_problems``). While they
        are wrong, Teamwork is asked again at most every ``UNKNOWN_NAME_REREAD_SECONDS``
        (a daemon's webhook drains would otherwise ask every second)."""
        if self._verified:
            return
        if self._wrong is not None \
                and self.clock() - self._wrong[0] < defaults.UNKNOWN_NAME_REREAD_SECONDS:
            raise ConfigError(self._wrong[1])
        try:
            problems = place_problems(self.teamwork, self.settings.teamwork)
        except RetryableError as exc:
            # An outage says nothing about the settings: work on as before (each ticket
            # fails, is retried and counted) and ask again on the next pass.
            log.warning("could not verify teamwork.project_id / tasklist_id yet: %s", exc)
            return
        if problems:
            self._wrong = (self.clock(), problems)
            raise ConfigError(problems)
        self._verified = True

    def default(self, *, create: bool = True) -> int | None:
        """``[teamwork]``'s list: ``tasklist_id``, else the one named ``tasklist_name``."""
        tw = self.settings.teamwork
        if tw.tasklist_id is not None:
            return tw.tasklist_id
        assert tw.project_id is not None
        return self.named(tw.project_id, tw.tasklist_name, create=create)

    def of_route(self, route: Route, *, create: bool = True) -> int | None:
        """A route's list: its id, else the list of its name in its project."""
        if route.tasklist_id is not None:
            return route.tasklist_id
        assert route.project_id is not None and route.tasklist_name is not None
        return self.named(route.project_id, route.tasklist_name, create=create)

    def named(self, project_id: int, name: str, *, create: bool) -> int | None:
        """The list of this name in the project (None: missing and not ``create``)."""
        key = (project_id, name)
        with self._lock:
            if key in self._named:
                return self._named[key]
            missed = self._missing.get(key)
            if not create and missed is not None \
                    and self.clock() - missed < defaults.UNKNOWN_NAME_REREAD_SECONDS:
                return None
            found = self.store.tasklist_id(project_id, name)
            if found is None:
                found = self.teamwork.tasklist_named(project_id, name)
                if found is None and not create:
                    self._missing[key] = self.clock()
                    return None
                if found is None:
                    found = self.teamwork.create_tasklist(project_id, name)
                    log.info("created task list %r (%s) in project %s", name, found,
                             project_id)
                self.store.set_tasklist_id(project_id, name, found)
            self._missing.pop(key, None)
            self._named[key] = found
            return found

    def forget(self, tasklist_id: int | None = None) -> None:
        """Look this list (None: every list found by name) up again next time, and read
        its project again (someone may have moved it)."""
        self.teamwork.forget_list(tasklist_id)
        with self._lock:
            for key, found in list(self._named.items()):
                if tasklist_id is None or found == tasklist_id:
                    self.store.forget_tasklist_id(*key)
                    del self._named[key]

    def searched(self) -> list[int]:
        """Every list a task of a ticket may be in: ``[teamwork]``'s (created if missing
        only without routes, as before routes existed) and every route's that exists."""
        if not self.routing.explicit:
            found = self.default()
            assert found is not None
            return [found]
        tw = self.settings.teamwork
        lists = [self.default(create=False) if tw.project_id is not None
                 or tw.tasklist_id is not None else None]
        lists += [self.of_route(r, create=False) for r in self.routing.routes]
        return sorted({t for t in lists if t is not None})
