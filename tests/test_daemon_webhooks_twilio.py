"""Twilio's recording status callbacks (``completed``), signed with X-Twilio-Signature over the
URL and the form, nudging `siro-poller run`."""

from __future__ import annotations

from contextlib import ExitStack

from poller.simulators.twilio_server import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, serve
from tests.webhook_e2e import Headers, VendorWorld, WebhookContract


class TwilioWorld(VendorWorld):
    kind = "twilio"
    # Callbacks are signed with the Auth Token the provider already has.
    secret = None

    def start(self, stack: ExitStack) -> None:
        self.api = FakeTwilio()
        self.server = stack.enter_context(serve(self.api))

    @property
    def events(self) -> FakeTwilio:
        return self.api

    def settings(self, receiver_url: str) -> dict[str, str]:
        return {
            "PROVIDER__KIND": "twilio",
            "PROVIDER__BASE_URL": self.server.url,
            "PROVIDER__ACCOUNT_SID": ACCOUNT_SID,
            "PROVIDER__AUTH_TOKEN": AUTH_TOKEN,
            # Twilio signs the URL it posts to: here the receiver itself, with no proxy between.
            "PROVIDER__WEBHOOK__PUBLIC_URL": receiver_url,
        }

    def forge(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        return headers, body.replace(b"RecordingDuration=", b"RecordingDuration=9")

    def strip(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        return {k: v for k, v in headers.items() if k.lower() != "x-twilio-signature"}, body

    def listings(self) -> int:
        return len(self.api.requests_to("list"))

    def credentials(self) -> list[str]:
        return [AUTH_TOKEN]


class TestTwilioWebhooks(WebhookContract):
    world = TwilioWorld
