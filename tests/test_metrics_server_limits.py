"""The metrics server has no idle timeout (P14 break 7), over real sockets.

700 half-sent requests made 700 threads that stayed (a unit's ``TasksMax=512`` would then stop
the daemon making threads). Now a request must arrive whole within ``request_timeout`` and at
most ``max_connections`` are open at once, while ``/metrics`` and ``/healthz`` still answer.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import requests
from prometheus_client import CollectorRegistry, Counter

from poller.adapters.prometheus_metrics import MetricsServer
from poller.domain.health import Health

REQUEST_TIMEOUT = 1.0
MAX_CONNECTIONS = 8
HALF_SENT = 200
# Only a bound for waiting on something that must happen: the test passes as soon as it does.
PATIENCE = 20.0


@pytest.fixture
def server() -> Iterator[MetricsServer]:
    registry = CollectorRegistry()
    Counter("siro_poller_example", "A counter to scrape.", registry=registry).inc()
    listening = MetricsServer(
        "127.0.0.1:0",
        registry,
        lambda: Health(checked_at=datetime.now(UTC)),
        request_timeout=REQUEST_TIMEOUT,
        max_connections=MAX_CONNECTIONS,
    )
    yield listening
    listening.close()


def connection_threads() -> int:
    return sum("process_request_thread" in thread.name for thread in threading.enumerate())


def eventually(condition: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def half_sent(server: MetricsServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE)
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: never ends
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def test_metrics_server_idle_timeout_half_sent_requests_hold_few_threads_and_are_closed(
    server: MetricsServer,
) -> None:
    before = connection_threads()
    sockets = [half_sent(server) for _ in range(HALF_SENT)]
    try:
        # While they are all open, scrapes and health checks are answered.
        for path in ("/metrics", "/healthz", "/metrics"):
            answer = requests.get(f"http://127.0.0.1:{server.port}{path}", timeout=PATIENCE)
            assert answer.status_code == 200
        assert "siro_poller_example_total 1.0" in answer.text
        assert connection_threads() - before <= MAX_CONNECTIONS

        # Every half-sent request is closed by the server, none left waiting for ever.
        assert all(closed_by_server(sock) for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()
    assert eventually(lambda: connection_threads() <= before)


def test_metrics_server_idle_timeout_a_trickled_request_ends_at_the_deadline(
    server: MetricsServer,
) -> None:
    """A byte every 0.1 s keeps each read short: the whole request still has a deadline."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=PATIENCE)
    sock.setblocking(False)
    trickle = b"GET /metrics HTTP/1.1\r\n" + b"X-Slow: " + b"a" * 10_000
    ended = False
    try:
        for byte in trickle[: int(PATIENCE / 0.1)]:
            try:
                sock.send(bytes([byte]))
                if sock.recv(1024) == b"":
                    ended = True
                    break
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                ended = True
                break
            time.sleep(0.1)
    finally:
        sock.close()
    assert ended, "the server kept reading a request that never ends"
