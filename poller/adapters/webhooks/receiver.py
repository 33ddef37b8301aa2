"""The webhook receiver: ``POST /webhooks/<provider name>`` on its own listener.

Anything on its network can reach it, so every request is checked cheaply before the next step
costs more, in this order: the per-source rate limit (429), the path and method (404, 405), a
Content-Length within ``max_body_bytes`` (411, 413; more than the cap is never read), the body
within the request's deadline, then the provider's verifier (401 when it refuses) and the
replay guard (401 for a delivery seen before). A verified event's answer is sent and flushed
first; only then does the sink hear of it, and the sink never blocks. A verified event at most
nudges a poll (:mod:`poller.ports.webhooks`).

The connections are bounded as the metrics server's are (:mod:`poller.adapters.bounded_http`).
Logs never hold a header value or the body (either may carry a secret): only the provider, the
peer, lengths and a fixed reason; refusals are logged at most once per provider every
:data:`REFUSAL_LOG_EVERY` seconds, with a count, so garbage cannot flood the journal.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from poller.adapters.bounded_http import (
    BoundedServer,
    DeadlineReader,
    listen_address,
    start_serving,
)
from poller.adapters.webhooks.replay import ReplayGuard
from poller.domain.clock import utcnow
from poller.ports.telemetry import NoTelemetry, Telemetry
from poller.ports.webhooks import (
    EventSink,
    Refused,
    Reply,
    Verified,
    WebhookRequest,
    WebhookVerifier,
)

log = logging.getLogger(__name__)

PATH_PREFIX = "/webhooks/"
REFUSAL_LOG_EVERY = 10.0
# Peers whose rate-limit buckets are kept: garbage from many addresses cannot grow memory.
MAX_TRACKED_SOURCES = 4096

REFUSED_BODY = b"refused\n"
_TEXT = "text/plain; charset=utf-8"


class Outcome:
    """The ``outcome`` label of ``siro_poller_webhook_requests_total``."""

    ACCEPTED = "accepted"
    REFUSED = "refused"
    REPLAYED = "replayed"
    RATE_LIMITED = "rate_limited"
    # Over max_body_bytes, or a body of no declared length (chunked, or no Content-Length).
    TOO_LARGE = "too_large"
    # A path that names no provider taking events, or a method other than POST.
    UNKNOWN_PATH = "unknown_path"


@dataclass(frozen=True, slots=True)
class ReceiverLimits:
    """What one request may cost: see ``[webhooks]`` of the configuration."""

    max_body_bytes: int = 65536
    request_timeout: float = 10.0
    max_connections: int = 64
    per_source_rate: float = 20.0
    per_source_burst: int = 40


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One provider's path: its verifier, and the URL its vendor posts to (Twilio signs it)."""

    verifier: WebhookVerifier
    public_url: str | None = None


class SourceBuckets:
    """A token bucket per peer address, for the newest :data:`MAX_TRACKED_SOURCES` peers."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_sources: int = MAX_TRACKED_SOURCES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_sources = max_sources
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, source: str) -> float | None:
        """None when ``source`` may send this request; else the seconds until it may."""
        now = self._monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(source, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            self._buckets[source] = (tokens, now)
            while len(self._buckets) > self.max_sources:
                self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / self.rate

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)


class _RefusalLog:
    """At most one INFO line per provider every :data:`REFUSAL_LOG_EVERY` seconds."""

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._last: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self._lock = threading.Lock()

    def due(self, provider: str) -> int | None:
        """How many refusals went unlogged since the last line, when a line is due now."""
        now = self._monotonic()
        with self._lock:
            last = self._last.get(provider)
            if last is not None and now - last < REFUSAL_LOG_EVERY:
                self._unlogged[provider] = self._unlogged.get(provider, 0) + 1
                return None
            self._last[provider] = now
            return self._unlogged.pop(provider, 0)


class WebhookReceiver:
    """Serves each provider's path on ``listen`` from a thread per connection, within
    ``limits``, until :meth:`close`."""

    def __init__(
        self,
        listen: str,
        endpoints: Mapping[str, Endpoint],
        sink: EventSink,
        *,
        limits: ReceiverLimits = ReceiverLimits(),
        replay_ttl_seconds: float = 600.0,
        telemetry: Telemetry | None = None,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoints = dict(endpoints)
        self.sink = sink
        self.limits = limits
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self.clock = clock
        self.buckets = SourceBuckets(
            limits.per_source_rate, limits.per_source_burst, monotonic=monotonic
        )
        self.replays = ReplayGuard(replay_ttl_seconds, monotonic=monotonic)
        self._refusals = _RefusalLog(monotonic)
        host, port, family = listen_address(listen)

        class Server(BoundedServer):
            address_family = family
            label = "webhook receiver"
            # Under a flood, a vendor's event must not queue for a second behind garbage in
            # the kernel's backlog while the accept loop waits for a slot.
            admission_wait = 0.1

        self._server = Server(
            (host, port),
            _handler(self),
            max_connections=limits.max_connections,
            request_timeout=limits.request_timeout,
        )
        self.port: int = self._server.server_address[1]
        self._thread = start_serving(self._server, "webhooks")

    def close(self) -> None:
        """Stop taking connections; a request being answered still ends."""
        self._server.shutdown()
        self._server.server_close()

    # -- what the handler asks -------------------------------------------------------------

    def provider_at(self, path: str) -> str | None:
        if not path.startswith(PATH_PREFIX):
            return None
        name = unquote(path[len(PATH_PREFIX) :])
        return name if name in self.endpoints else None

    def count(self, provider: str, outcome: str) -> None:
        try:
            self.telemetry.webhook_request(provider, outcome)
        except Exception:  # a metric must never cost an answer
            log.debug("webhook receiver: the metric could not be counted", exc_info=True)

    def verify(self, provider: str, request: WebhookRequest) -> Verified | Refused:
        try:
            return self.endpoints[provider].verifier.verify(request)
        except Exception as exc:
            # The exception's text may quote the request (a secret, the body): only its type
            # and where it was raised go to the log.
            log.error(
                "webhook from %s for %s: the verifier failed with %s, answered 401 "
                "(a bug; the stack, without the message:)\n%s",
                request.source,
                provider,
                type(exc).__name__,
                "".join(traceback.format_tb(exc.__traceback__)).rstrip(),
            )
            return Refused("malformed")

    def refused(self, provider: str, source: str, reason: str, body_length: int) -> None:
        unlogged = self._refusals.due(provider)
        if unlogged is None:
            return
        more = f"; {unlogged} more refused since the last line" if unlogged else ""
        log.info(
            "webhook from %s for %s refused: %s (%d body bytes)%s",
            source,
            provider,
            reason,
            body_length,
            more,
        )

    def deliver(self, provider: str, verified: Verified, at: datetime) -> None:
        try:
            self.sink.event_arrived(provider, verified, at)
        except Exception:
            log.exception("webhook for %s: the event could not be passed on", provider)


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    limits = receiver.limits

    class Handler(BaseHTTPRequestHandler):
        server: BoundedServer
        protocol_version = "HTTP/1.1"
        rfile: Any

        def setup(self) -> None:
            super().setup()
            self.rfile = DeadlineReader(
                self.rfile, self.connection, time.monotonic() + limits.request_timeout
            )
            self._continue_expected = False

        def version_string(self) -> str:
            return "siro-poller"

        def handle_expect_100(self) -> bool:
            # "100 Continue" only once the request has passed the cheap checks (do_POST).
            self._continue_expected = True
            return True

        def do_POST(self) -> None:
            self._begin()
            source = str(self.client_address[0])
            path, _, query = self.path.partition("?")
            provider = receiver.provider_at(path)
            label = provider or ""
            wait = receiver.buckets.take(source)
            if wait is not None:
                receiver.count(label, Outcome.RATE_LIMITED)
                retry = str(max(1, math.ceil(wait)))
                self._close(429, b"too many requests\n", (("Retry-After", retry),))
                return
            if provider is None:
                receiver.count("", Outcome.UNKNOWN_PATH)
                self._close(404, b"not found: the paths are /webhooks/<provider name>\n")
                return
            length = self._declared_length()
            if length is None:
                receiver.count(provider, Outcome.TOO_LARGE)
                self._close(411, b"a Content-Length is required\n")
                return
            if length > limits.max_body_bytes:
                receiver.count(provider, Outcome.TOO_LARGE)
                self._close(413, b"the body is too large\n")
                return
            if self._continue_expected:
                self.send_response_only(100)
                self.end_headers()
            body = self.rfile.read(length) if length else b""
            if len(body) < length:
                self.close_connection = True  # the peer hung up mid-body: nobody to answer
                return
            request = WebhookRequest(
                method="POST",
                path=path,
                query=query,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                source=source,
                received_at=receiver.clock(),
                public_url=_public_url(receiver.endpoints[provider].public_url, query),
            )
            verdict = receiver.verify(provider, request)
            if isinstance(verdict, Refused):
                receiver.count(provider, Outcome.REFUSED)
                receiver.refused(provider, source, verdict.reason, len(body))
                self._answer(401, REFUSED_BODY)
                return
            key = verdict.replay_key
            if key is not None and not receiver.replays.first_time(provider, key):
                receiver.count(provider, Outcome.REPLAYED)
                receiver.refused(provider, source, "replayed", len(body))
                self._answer(401, REFUSED_BODY)
                return
            # Counted first, so that whoever reads the answer finds it counted.
            receiver.count(provider, Outcome.ACCEPTED)
            self._reply(verdict.reply)
            receiver.deliver(provider, verdict, request.received_at)

        def _other_method(self) -> None:
            self._begin()
            path = self.path.partition("?")[0]
            provider = receiver.provider_at(path)
            if receiver.buckets.take(str(self.client_address[0])) is not None:
                receiver.count(provider or "", Outcome.RATE_LIMITED)
                self._close(429, b"too many requests\n", (("Retry-After", "1"),))
            elif provider is None:
                receiver.count("", Outcome.UNKNOWN_PATH)
                self._close(404, b"not found: the paths are /webhooks/<provider name>\n")
            else:
                receiver.count(provider, Outcome.UNKNOWN_PATH)
                self._close(405, b"only POST\n", (("Allow", "POST"),))

        do_GET = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other_method

        def do_HEAD(self) -> None:
            self._begin()
            self.close_connection = True
            self.send_response(405 if receiver.provider_at(self.path.partition("?")[0]) else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _begin(self) -> None:
            self.server.request_arrived(self.connection)
            # The answer is written within the same bound as the request was read.
            self.connection.settimeout(limits.request_timeout)

        def _declared_length(self) -> int | None:
            if self.headers.get("Transfer-Encoding") is not None:
                return None
            declared = self.headers.get_all("Content-Length") or []
            if len(declared) != 1 or not declared[0].strip().isdigit():
                return None
            return int(declared[0].strip())

        def _reply(self, reply: Reply) -> None:
            self._answer(reply.status, reply.body, reply.headers, content_type=reply.content_type)

        def _close(
            self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()
        ) -> None:
            # The body (if any) was not read: the connection cannot carry another request.
            self.close_connection = True
            self._answer(status, body, (*headers, ("Connection", "close")))

        def _answer(
            self,
            status: int,
            body: bytes,
            headers: tuple[tuple[str, str], ...] = (),
            *,
            content_type: str = _TEXT,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if not self.close_connection:
                # A kept-alive connection's next request has its own deadline.
                self.rfile.deadline = time.monotonic() + limits.request_timeout
                self.server.request_waiting(self.connection)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a line per request would let garbage flood the journal

    return Handler


def _public_url(configured: str | None, query: str) -> str | None:
    if configured is None:
        return None
    return f"{configured}?{query}" if query else configured
