"""Twilio's recording status callbacks (``completed``), signed with X-Twilio-Signature over the
URL and the form, nudging `siro-poller run`."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

from poller.simulators.audio import mp3_bytes
from poller.simulators.twilio_server import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FakeTwilio,
    serve,
    sid,
    twilio_call,
    twilio_recording,
)
from tests.webhook_e2e import Headers, VendorWorld, WebhookContract

DURATION = 20


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

    def add_ended_call(self, n: int, *, ended_ago: float = 0.0) -> str:
        recording_sid, call_sid = sid("RE", f"hook-{n}"), sid("CA", f"hook-{n}")
        started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=ended_ago + DURATION)
        self.api.add(
            twilio_recording(recording_sid, call_sid, started, duration=DURATION),
            # Inbound to the Siro user's number: the rep goes by phone.
            twilio_call(
                call_sid, started, from_="+15551230001", to="+15550000001", duration=DURATION
            ),
            mp3_bytes(1),
        )
        return recording_sid

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
