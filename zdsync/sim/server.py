"""The server both simulators run on: routing, the fault and rate-limit pipeline, the
``/_sim/`` controls and a threaded HTTP server (or none: ``adapter.py`` calls
:meth:`SimServer.dispatch` in-process).
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

from zdsync.sim.base import (
    Clock,
    Faults,
    LoggedRequest,
    Request,
    RequestLog,
    Response,
    empty_response,
    fault_response,
    json_response,
    text_response,
)

ADMIN_PREFIX = "/_sim/"
"""Paths under this prefix are simulator controls, not API calls: no auth, faults or limits."""

Handler = Callable[[Request, "re.Match[str]"], Response]
_Method = TypeVar("_Method", bound=Callable[..., Response])
_ROUTES = "_sim_routes"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str
    """What the request log calls it; tests count requests by it."""
    handler: Handler
    group: str = ""


def route(method: str, template: str, *, group: str = "",
          method_in_name: bool = False) -> Callable[[_Method], _Method]:
    """Mark a simulator method as the handler of ``method template``.

    The template is the path as the request log names it, ``{id}`` standing for digits
    (``/tasks/{id}/complete``): one string gives both the pattern and the name, so they
    cannot drift apart. ``method_in_name`` puts the method in front of the name, for a
    path that one route lists and another creates on. Marks can be stacked.
    """

    def mark(handler: _Method) -> _Method:
        marks = getattr(handler, _ROUTES, ())
        setattr(handler, _ROUTES, (*marks, (method, template, group, method_in_name)))
        return handler

    return mark


def _path_pattern(template: str, suffix: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", template)  # literal, name, literal, name, ...
    regex = "".join(re.escape(part) if i % 2 == 0 else rf"(?P<{part}>\d+)"
                    for i, part in enumerate(parts))
    return re.compile(regex + suffix + r"\Z")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hang stop()
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sim: SimServer) -> None:
        self.sim = sim
        super().__init__(address, _RequestHandler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add
        # ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            method=self.command, path=parts.path,
            query_all=parse_qs(parts.query, keep_blank_values=True),
            headers=self.headers, body=body, client=self.client_address[0],
        )
        try:
            response = self.server.sim.dispatch(request)
        except Exception as exc:  # a simulator bug must show up as a 500, not a hang
            response = text_response(500, f"simulator error: {exc!r}")
        if response is None:  # lost response: close without a single byte
            self.close_connection = True
            return
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if response.body and self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is the record; stderr noise helps nobody in tests


class SimServer:
    """Base of both simulators: routing, the fault/limit pipeline and the HTTP server.

    Subclasses mark their handlers with :func:`route`, set :attr:`path_suffix`, and
    implement :meth:`before` (auth and rate limits), :meth:`decorate` (headers on every
    API response) and :meth:`not_found`.
    """

    path_suffix: ClassVar[str] = ""
    """A regex for what follows every route's path (``.json``, required or optional)."""

    def __init__(self, clock: Clock | None = None, *, seed: int = 0) -> None:
        self.clock = clock or Clock()
        self.lock = threading.RLock()
        self.faults = Faults(seed)
        self.log = RequestLog()
        self._routes = self._declared_routes()
        self._in_flight = 0
        self.most_in_flight = 0
        """The most API requests it was answering at one moment (concurrency tests)."""
        self._in_flight_lock = threading.Lock()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- routing --------------------------------------------------------------------

    def _declared_routes(self) -> list[Route]:
        """Every handler marked with :func:`route` in this class and its bases."""
        routes = []
        for cls in reversed(type(self).__mro__):
            for attr, value in vars(cls).items():
                for method, template, group, method_in_name in getattr(value, _ROUTES, ()):
                    routes.append(Route(
                        method, _path_pattern(template, self.path_suffix),
                        f"{method} {template}" if method_in_name else template,
                        getattr(self, attr), group))
        return routes

    def match(self, request: Request) -> tuple[Route, re.Match[str]] | None:
        for route in self._routes:
            if route.method == request.method:
                found = route.pattern.match(request.path)
                if found:
                    return route, found
        return None

    # -- hooks ------------------------------------------------------------------------

    def before(self, request: Request, route: Route | None) -> Response | None:
        """Auth and rate limits; a response here refuses the request."""
        return None

    def decorate(self, request: Request, response: Response) -> None:
        """Add headers every API response carries (e.g. rate-limit headers)."""

    def not_found(self, request: Request) -> Response:
        return empty_response(404)

    # -- the pipeline -----------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """API requests received and not answered yet (tests wait for one to be under way)."""
        with self._in_flight_lock:
            return self._in_flight

    def dispatch(self, request: Request) -> Response | None:
        """Answer one request; ``None`` means: close the connection without a response."""
        if request.path.startswith(ADMIN_PREFIX):
            return self._admin(request)
        with self._in_flight_lock:
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            return self._dispatch(request)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def _dispatch(self, request: Request) -> Response | None:
        matched = self.match(request)
        route_name = matched[0].name if matched else ""
        affected = self.faults.applies(route_name)
        if affected and self.faults.latency_seconds > 0:
            time.sleep(self.faults.latency_seconds)
        fault = self.faults.roll_error() if affected else None
        if fault is not None:
            response: Response | None = fault_response(fault)
        else:
            with self.lock:
                response = self.before(request, matched[0] if matched else None)
                if response is None:
                    response = (matched[0].handler(request, matched[1]) if matched
                                else self.not_found(request))
                self.decorate(request, response)
            if response.create and affected and self.faults.roll_lost_create():
                response = None
        self.log.append(LoggedRequest(
            request.method, request.path, request.query,
            None if response is None else response.status, route_name, self.clock.now(),
        ))
        return response

    def _admin(self, request: Request) -> Response:
        """``/_sim/`` controls for simulators running in another process."""
        path = request.path[len(ADMIN_PREFIX):].rstrip("/")
        try:
            data = request.json() if request.body else {}
        except ValueError:
            return json_response(400, {"error": "body must be JSON"})
        if path == "health" and request.method == "GET":
            return json_response(200, {"ok": True, "now": self.clock.now()})
        if path == "clock" and request.method == "GET":
            return json_response(200, {"now": self.clock.now()})
        if path == "clock/advance" and request.method == "POST":
            try:
                return json_response(200, {"now": self.clock.advance(float(data["seconds"]))})
            except (KeyError, TypeError, ValueError) as exc:
                return json_response(400, {"error": f"need a non-negative 'seconds': {exc}"})
        if path == "faults" and request.method == "GET":
            return json_response(200, self.faults.snapshot())
        if path == "faults" and request.method == "POST":
            try:
                self.faults.set(**data)
            except TypeError as exc:
                return json_response(400, {"error": str(exc)})
            return json_response(200, self.faults.snapshot())
        if path == "requests" and request.method == "GET":
            return json_response(200, {"requests": [e.__dict__ for e in self.log.entries()]})
        if path == "requests" and request.method == "DELETE":
            self.log.clear()
            return empty_response(204)
        return json_response(404, {"error": "unknown simulator control"})

    # -- lifecycle --------------------------------------------------------------------

    def start(self, port: int = 0, host: str = "127.0.0.1") -> Self:
        """Serve in a daemon thread; ``port=0`` picks a free port (see :attr:`url`)."""
        if self._server is not None:
            raise RuntimeError("already started")
        self._server = _HTTPServer((host, port), self)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` while running."""
        if self._server is None:
            raise RuntimeError("not started")
        host = self._server.server_address[0]
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
