"""A real HTTP server on 127.0.0.1 (or another loopback address), on a free port, in a
background thread."""

from __future__ import annotations

import itertools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

# Ports for the servers this context starts without a port of their own, set by ports_from().
_next_ports: ContextVar[Iterator[int] | None] = ContextVar("next_ports", default=None)


@contextmanager
def ports_from(first: int) -> Iterator[None]:
    """Servers started in this block on no given port listen on ``first``, ``first + 1``...

    `siro-poller simulate --port` uses it so a config written once keeps working across runs.
    """
    token = _next_ports.set(itertools.count(first))
    try:
        yield
    finally:
        _next_ports.reset(token)


class _Server(ThreadingHTTPServer):
    # Many client threads connect at once; the default backlog of 5 drops their SYNs.
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up (a daemon killed mid-request) is part of the tests, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class LocalHTTPServer:
    """Serve ``handler_class`` until the ``with`` block ends.

    The handler reaches shared state through ``self.server.state`` (whatever was passed as
    ``state``), so a test can script answers and inspect what the client sent.
    """

    def __init__(
        self,
        handler_class: type[BaseHTTPRequestHandler],
        state: object = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        ports = _next_ports.get()
        if port == 0 and ports is not None:
            port = next(ports)
        self._server = _Server((host, port), handler_class)
        self._server.daemon_threads = True
        self._server.state = state  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class QuietHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, and no access log on stderr."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass
