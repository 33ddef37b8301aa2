"""A tiny receiver on 127.0.0.1 that runs one verifier over real HTTP: 200 for a verified
event, 401 for a refused one, every outcome kept for the test to read."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from poller.ports.webhooks import Refused, Verified, WebhookRequest, WebhookVerifier
from poller.simulators.http_server import LocalHTTPServer, QuietHandler

PATH = "/webhooks/test"


class _Handler(QuietHandler):
    server: Any

    def do_POST(self) -> None:
        receiver: VerifyingReceiver = self.server.state
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = WebhookRequest(
            method="POST",
            path=self.path.partition("?")[0],
            query=self.path.partition("?")[2],
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            source=self.client_address[0],
            received_at=datetime.now(UTC),
        )
        outcome = receiver.verifier.verify(request)
        receiver.outcomes.append(outcome)
        status = outcome.reply.status if isinstance(outcome, Verified) else 401
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class VerifyingReceiver:
    def __init__(self, verifier: WebhookVerifier) -> None:
        self.verifier = verifier
        self.outcomes: list[Verified | Refused] = []
        self._server = LocalHTTPServer(_Handler, self)

    @property
    def url(self) -> str:
        return self._server.url + PATH

    def __enter__(self) -> VerifyingReceiver:
        self._server.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.__exit__(exc_type, exc, tb)
