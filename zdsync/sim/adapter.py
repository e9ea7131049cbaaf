"""Drive a simulator in-process: a ``requests`` transport adapter over its ``dispatch``.

Tests and benchmarks that do not need real sockets mount it on the clients' session: the
same routes, limits, faults and request log as over HTTP, without ports or threads, so a
test can run a pass many times in a second. A lost response (the "commit then lose the
response" fault) raises ``requests.ConnectionError`` after the simulator committed, as a
reset connection would.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

from zdsync.sim.base import Request
from zdsync.sim.server import SimServer


class SimAdapter(BaseAdapter):
    def __init__(self, sim: SimServer) -> None:
        super().__init__()
        self.sim = sim

    def send(self, request: requests.PreparedRequest, stream: bool = False,
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url or "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        sim_request = Request(method=request.method or "GET", path=parts.path,
                              query_all=parse_qs(parts.query, keep_blank_values=True),
                              headers=CaseInsensitiveDict(request.headers), body=body,
                              client="127.0.0.1")
        answer = self.sim.dispatch(sim_request)
        if answer is None:
            raise requests.ConnectionError("connection reset by peer (simulated lost "
                                           "response)", request=request)
        response = requests.Response()
        response.status_code = answer.status
        response.headers = CaseInsensitiveDict(answer.headers)
        response._content = answer.body
        response.url = request.url or ""
        response.request = request
        response.encoding = "utf-8"
        response.reason = ""
        return response

    def close(self) -> None:
        pass


def session_for(sim: SimServer) -> requests.Session:
    """A session whose every request goes to ``sim`` in-process."""
    session = requests.Session()
    adapter = SimAdapter(sim)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
