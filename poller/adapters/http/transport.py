"""The sockets under the client: each connection vets the addresses it connects to, and every
socket of a request can be cut when the request's total deadline passes.

urllib3 keeps ``host`` (the Host header, SNI, certificate checks) apart from the name it
resolves; these connections resolve that name once, refuse it unless every address passes
:meth:`HostRules.check_addresses`, and connect to exactly those addresses. There is no second
lookup an attacker's DNS could answer differently.

What a connection checks against comes from the request running in the same thread
(:func:`guarding`), so one pool serves one client's rules; with none in force, nothing connects.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from poller.adapters.http.destinations import HostRules
from poller.adapters.http.errors import HttpRefused
from poller.domain.urls import host_port_key


@dataclass
class RequestDeadline:
    """The wall-clock budget of one request, and the sockets to cut when it runs out."""

    seconds: float
    started: float = field(default_factory=time.monotonic)
    expired: bool = False
    stopped: bool = False
    _sockets: list[socket.socket] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def remaining(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def watch(self, sock: Any) -> None:
        if sock is None:
            return
        with self._lock:
            if self.expired:
                _cut(sock)
            elif sock not in self._sockets:
                self._sockets.append(sock)

    def start(self) -> None:
        _WATCH.add(self)

    def stop(self) -> None:
        with self._lock:
            self.stopped = True
            self._sockets = []

    def _expire(self) -> None:
        with self._lock:
            if self.stopped:
                return
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _cut(sock)


class _DeadlineWatch:
    """One thread for every request's deadline: it cuts the sockets of a request whose
    deadline passed. A thread (or timer) per request would cost a thread start, and a wait for
    it to run, on every request."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._due: list[tuple[float, int, RequestDeadline]] = []  # a heap, soonest first
        self._order = itertools.count()  # ties broken by arrival, never by comparing deadlines
        self._thread: threading.Thread | None = None

    def add(self, deadline: RequestDeadline) -> None:
        at = deadline.started + deadline.seconds
        with self._wake:
            heapq.heappush(self._due, (at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="http-deadlines", daemon=True
                )
                self._thread.start()
            elif self._due[0][2] is deadline:
                self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while self._due and self._due[0][2].stopped:
                    heapq.heappop(self._due)  # finished in time
                if not self._due:
                    self._wake.wait()
                    continue
                at, _order, deadline = self._due[0]
                wait = at - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._due)
            deadline._expire()


_WATCH = _DeadlineWatch()


def _cut(sock: Any) -> None:
    # shutdown, not close: it wakes a thread blocked in recv or send on this socket.
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


@dataclass
class Guard:
    """What the connections of the request running in this thread obey.

    ``destination`` is the host key the client judged for the current hop: a connection to
    any other host is refused before it is made or used, so a URL read one way when judged
    and another way when connected sends nothing anywhere.
    """

    rules: HostRules
    deadline: RequestDeadline
    destination: str | None = None

    def check_destination(self, host: str, port: int | None, scheme: str) -> None:
        connected = host_port_key(host, port, scheme)
        if self.destination is not None and connected != self.destination:
            raise HttpRefused(
                f"refused to connect to {connected}: the URL was judged to lead to "
                f"{self.destination}"
            )


_local = threading.local()


@contextlib.contextmanager
def guarding(rules: HostRules, deadline: RequestDeadline) -> Iterator[Guard]:
    """Connections made (or reused) by this thread meanwhile obey ``rules`` and ``deadline``."""
    previous = getattr(_local, "guard", None)
    guard = Guard(rules, deadline)
    _local.guard = guard
    try:
        yield guard
    finally:
        _local.guard = previous


def _current() -> Guard | None:
    guard: Guard | None = getattr(_local, "guard", None)
    return guard


class _GuardedConnectionMixin:
    """Shared by the http and https connections below."""

    scheme = "http"

    def _new_conn(self) -> socket.socket:
        conn: Any = self
        guard = _current()
        if guard is None:
            raise HttpRefused("refused to connect: no destination rules are in force")
        guard.check_destination(conn.host, conn.port, self.scheme)
        host: str = conn._dns_host
        try:
            infos = socket.getaddrinfo(host, conn.port, 0, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(conn.host, conn, exc) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        guard.rules.check_addresses(conn.host, conn.port, self.scheme, addresses)
        last: OSError | None = None
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, conn.port),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
                ) from exc
            except OSError as exc:
                last = exc
                continue
            sys.audit("http.client.connect", conn, conn.host, conn.port)
            guard.deadline.watch(sock)
            return sock
        raise NewConnectionError(conn, f"Failed to establish a new connection: {last}") from last

    def _check_destination(self) -> None:
        """Before a byte of the request is sent, on a new or a reused connection."""
        guard = _current()
        if guard is None:
            raise HttpRefused("refused to send: no destination rules are in force")
        conn: Any = self
        guard.check_destination(conn.host, conn.port, self.scheme)

    def _watch_socket(self) -> None:
        guard = _current()
        if guard is not None:
            guard.deadline.watch(getattr(self, "sock", None))


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    scheme = "http"

    def connect(self) -> None:
        super().connect()
        self._watch_socket()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._check_destination()
        self._watch_socket()
        super().request(*args, **kwargs)


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    scheme = "https"

    def connect(self) -> None:
        super().connect()
        self._watch_socket()

    def request(self, *args: Any, **kwargs: Any) -> None:
        self._check_destination()
        self._watch_socket()
        super().request(*args, **kwargs)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


# A request body goes out in blocks of this size, not urllib3's 16 KB: each block is a sendall
# that gives up the interpreter lock and waits to take it back behind the worker's threads.
SEND_BLOCK_BYTES = 1024 * 1024


class GuardedAdapter(HTTPAdapter):
    """A requests transport whose every connection is vetted and deadline-watched."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, blocksize=SEND_BLOCK_BYTES, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        raise HttpRefused("refused to use a proxy: the address checks need direct connections")
