"""A tiny webhook endpoint on 127.0.0.1 that runs one vendor's verifier, for the vendor tests:
a verified request gets its reply, a refused one 401, as the receiver answers them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from poller.ports.webhooks import Refused, Verified, WebhookRequest, WebhookVerifier
from poller.simulators.http_server import LocalHTTPServer, QuietHandler

PATH = "/webhooks/phone"


@dataclass
class Endpoint:
    verifier: WebhookVerifier
    # The address the vendor was given (a TLS proxy's), without the query: Twilio signs it.
    public_url: str | None = None
    url: str = ""
    outcomes: list[Verified | Refused] = field(default_factory=list)


class _Handler(QuietHandler):
    server: Any

    def do_POST(self) -> None:
        endpoint: Endpoint = self.server.state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        public_url = endpoint.public_url
        if public_url is not None and parts.query:
            public_url = f"{public_url}?{parts.query}"
        request = WebhookRequest(
            method="POST",
            path=parts.path,
            query=parts.query,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            source=self.client_address[0],
            received_at=datetime.now(UTC),
            public_url=public_url,
        )
        outcome = endpoint.verifier.verify(request)
        endpoint.outcomes.append(outcome)
        if isinstance(outcome, Refused):
            status, payload, content_type = 401, b"", "text/plain"
        else:
            reply = outcome.reply
            status, payload, content_type = reply.status, reply.body, reply.content_type
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@contextmanager
def serve_verifier(endpoint: Endpoint) -> Iterator[Endpoint]:
    with LocalHTTPServer(_Handler, endpoint) as server:
        endpoint.url = f"{server.url}{PATH}"
        yield endpoint
