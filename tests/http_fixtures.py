"""Shared pieces of the HTTP layer tests: a scripted server, a connection counter, a client."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.simulators.counting_listener import CountingListener  # noqa: F401  (re-exported)
from poller.simulators.http_server import LocalHTTPServer, QuietHandler

Reply = tuple[int, dict[str, str], bytes]
Route = Callable[["ScriptedHandler"], Reply | None]


@dataclass
class Script:
    """Per path (with query): a fixed reply or a function of the handler; what was seen."""

    routes: dict[str, Reply | Route] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def paths(self) -> list[str]:
        return [path for _method, path, _headers, _body in self.seen]


class ScriptedHandler(QuietHandler):
    def _answer(self) -> None:
        script: Script = self.server.state  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with script.lock:
            script.seen.append((self.command, self.path, dict(self.headers.items()), body))
        route = script.routes.get(self.path) or script.routes.get(self.path.split("?")[0])
        reply: Reply | None
        if route is None:
            reply = (404, {}, b"missing")
        elif callable(route):
            reply = route(self)
            if reply is None:
                return  # the route wrote its own answer
        else:
            reply = route
        status, headers, payload = reply
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _answer
    do_POST = _answer
    do_PUT = _answer


def scripted_server() -> tuple[LocalHTTPServer, Script]:
    script = Script()
    return LocalHTTPServer(ScriptedHandler, script), script


class ConnectAttempts:
    """Every socket.connect this process attempts, seen through an audit hook.

    Audit hooks cannot be removed, so one hook is installed once and tests read a fresh list.
    """

    _installed = False
    _current: list[Any] | None = None

    def __enter__(self) -> list[Any]:
        if not ConnectAttempts._installed:
            sys.addaudithook(ConnectAttempts._hook)
            ConnectAttempts._installed = True
        ConnectAttempts._current = []
        return ConnectAttempts._current

    def __exit__(self, *_exc: object) -> None:
        ConnectAttempts._current = None

    @staticmethod
    def _hook(event: str, args: tuple[Any, ...]) -> None:
        attempts = ConnectAttempts._current
        if attempts is not None and event == "socket.connect":
            attempts.append(args[1])


def client(
    hosts: HostRules,
    *,
    deadline: float = 30.0,
    max_body_bytes: int = 1 << 20,
    retry: RetryPolicy | None = None,
    **kwargs: Any,
) -> HttpClient:
    return HttpClient(
        limits=Limits(
            connect_timeout=2, read_timeout=5, deadline=deadline, max_body_bytes=max_body_bytes
        ),
        hosts=hosts,
        retry=retry or RetryPolicy(max_tries=3, base_delay=0.0, max_delay=1.0),
        user_agent="siro-poller-test",
        **kwargs,
    )
