"""An HTTP server a client on its network cannot hold: the metrics server's and the webhook
receiver's.

A request must arrive whole within ``request_timeout`` seconds (however slowly its bytes
trickle), and at most ``max_connections`` are open at once, each with its thread. When all are
taken, the one that has waited longest for its request is closed to make room, so a client that
sends its request at once is still answered while half-sent requests pile up.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)


def listen_address(listen: str) -> tuple[str, int, socket.AddressFamily]:
    """``host:port`` (``[::1]:8788`` for IPv6) as a bind address and its family."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    return host, int(port), socket.AF_INET6 if ":" in host else socket.AF_INET


class _Connection:
    """One open connection: whether its request has arrived, and since when it waits."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.opened = time.monotonic()
        self.request_read = False
        self.closing = False


class BoundedServer(ThreadingHTTPServer):
    """A thread per connection, but never more than ``max_connections`` of them."""

    daemon_threads = True
    # The kernel's queue of connections not yet accepted: the standard 5 drops a scrape's
    # connection attempt (and costs it a second) while a burst of others is being turned away.
    request_queue_size = 128
    # What the log calls this server ("metrics server", "webhook receiver").
    label = "http server"
    # How long a newcomer waits for a slot when every one is taken and none can be freed;
    # the accept loop waits with it, so no other connection is taken meanwhile.
    admission_wait = 1.0

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        max_connections: int,
        request_timeout: float,
    ) -> None:
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: dict[socket.socket, _Connection] = {}
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._close_longest_waiting()
            # The closed connection's thread ends at once; a busy server (every slot serving a
            # request) turns the newcomer away rather than queue it.
            if not self._slots.acquire(timeout=self.admission_wait):
                self.shutdown_request(request)
                return
        with self._open_lock:
            self._open[request] = _Connection(request)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            # A client that hung up, or one closed to make room: nothing for the log.
            log.debug("%s: a connection ended early", self.label, exc_info=True)
        else:
            log.warning("%s: a request failed", self.label, exc_info=True)

    def request_arrived(self, request: socket.socket) -> None:
        with self._open_lock:
            connection = self._open.get(request)
            if connection is not None:
                connection.request_read = True

    def request_waiting(self, request: socket.socket) -> None:
        """A kept-alive connection waits for its next request: it may be closed to make room
        again, and its age counts from now."""
        with self._open_lock:
            connection = self._open.get(request)
            if connection is not None:
                connection.request_read = False
                connection.opened = time.monotonic()

    def _release(self, request: socket.socket) -> None:
        with self._open_lock:
            if self._open.pop(request, None) is None:
                return
        self._slots.release()

    def _close_longest_waiting(self) -> None:
        with self._open_lock:
            waiting = [c for c in self._open.values() if not (c.request_read or c.closing)]
            if not waiting:
                return
            oldest = min(waiting, key=lambda c: c.opened)
            oldest.closing = True
        log.debug("%s: all %d connections taken; closing one", self.label, self.max_connections)
        # Wakes its thread from the read it is blocked in; the thread then closes it.
        with contextlib.suppress(OSError):  # it has just closed by itself
            oldest.sock.shutdown(socket.SHUT_RDWR)


class DeadlineReader:
    """A request's input stream: each read from the socket waits only for what is left of the
    deadline, so a request trickled a byte at a time still ends at its deadline."""

    def __init__(self, stream: io.BufferedIOBase, sock: socket.socket, deadline: float) -> None:
        # A handler's rfile (rbufsize -1): peek() and read1() read the socket at most once.
        if not isinstance(stream, io.BufferedReader):
            raise TypeError("a DeadlineReader reads a buffered socket stream")
        self._stream = stream
        self._sock = sock
        self.deadline = deadline

    def _arm(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive within its deadline")
        self._sock.settimeout(left)

    def readline(self, limit: int = -1) -> bytes:
        # The buffered reader's own readline would wait the whole timeout once per socket
        # read: peek() reads the socket at most once, so the deadline is armed before each.
        parts: list[bytes] = []
        taken = 0
        while limit < 0 or taken < limit:
            self._arm()
            buffered = self._stream.peek(1)
            if not buffered:
                break
            end = buffered.find(b"\n")
            size = len(buffered) if end < 0 else end + 1
            if limit >= 0:
                size = min(size, limit - taken)
            part = self._stream.read(size)  # already buffered: no socket read
            parts.append(part)
            taken += len(part)
            if part.endswith(b"\n"):
                break
        return b"".join(parts)

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            self._arm()
            return self._stream.read()
        parts: list[bytes] = []
        left = size
        while left > 0:
            self._arm()
            part = self._stream.read1(left)  # at most one socket read
            if not part:
                break
            parts.append(part)
            left -= len(part)
        return b"".join(parts)

    def close(self) -> None:
        self._stream.close()


def start_serving(server: BoundedServer, name: str) -> threading.Thread:
    """Serve ``server`` from a daemon thread called ``name`` for the life of the process."""
    thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
    thread.start()
    return thread
