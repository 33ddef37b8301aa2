"""RingCentral's telephony session events (Disconnected, with recordings) nudging
`siro-poller run`, each carrying the subscription's verification token."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

from poller.simulators.audio import mp3_bytes
from poller.simulators.ringcentral_server import (
    RingCentralState,
    call_record,
    recording_of,
    serve,
)
from tests.webhook_e2e import Headers, VendorWorld, WebhookContract

UNLIMITED = {group: (10_000, 60, 60) for group in ("Heavy", "Medium", "Light", "Auth")}
REP = (400643091001, "101", "+16505550101")
DURATION = 20


class RingCentralWorld(VendorWorld):
    kind = "ringcentral"
    secret = "rc-e2e-verification-token"
    settle_setting = True

    def start(self, stack: ExitStack) -> None:
        self.api = stack.enter_context(serve(RingCentralState(groups=dict(UNLIMITED))))
        extension_id, number, _ = REP
        self.api.add_extension(extension_id, number, "Rep One", "rep1@example.com")

    @property
    def events(self) -> RingCentralState:
        return self.api

    def settings(self, receiver_url: str) -> dict[str, str]:
        return {
            "PROVIDER__KIND": "ringcentral",
            "PROVIDER__BASE_URL": self.api.base_url,
            "PROVIDER__MEDIA_BASE_URL": self.api.media_url,
            "PROVIDER__CLIENT_ID": self.api.client_id,
            "PROVIDER__CLIENT_SECRET": self.api.client_secret,
            "PROVIDER__JWT": self.api.jwt,
        }

    def add_ended_call(self, n: int, *, ended_ago: float = 0.0) -> str:
        recording_id = f"rc-hook-{n}"
        self.api.add_media(recording_id, mp3_bytes(1))
        self.api.add_record(
            call_record(
                f"Ia-hook-{n}",
                datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=ended_ago + DURATION),
                session=f"s-hook-{n}",
                duration=DURATION,
                rep=REP,
                recording=recording_of(self.api, recording_id),
            )
        )
        return recording_id

    def forge(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        return {**headers, "Verification-Token": "not-the-verification-token"}, body

    def strip(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        return {k: v for k, v in headers.items() if k.lower() != "verification-token"}, body

    def listings(self) -> int:
        return len(self.api.listing_requests())

    def credentials(self) -> list[str]:
        return self.api.secrets()


class TestRingCentralWebhooks(WebhookContract):
    world = RingCentralWorld
