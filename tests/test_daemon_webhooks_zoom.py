"""Zoom Phone's signed ``phone.recording_completed`` events nudging `siro-poller run`."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

from poller.simulators.audio import mp3_bytes
from poller.simulators.zoom_server import (
    ACCOUNT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    ZoomPhone,
    recording_item,
    serve_zoom,
)
from tests.webhook_e2e import Headers, VendorWorld, WebhookContract

DURATION = 20


class ZoomWorld(VendorWorld):
    kind = "zoom"
    secret = "zoom-e2e-secret-token"
    settle_setting = True

    def start(self, stack: ExitStack) -> None:
        self.phone = ZoomPhone()
        stack.enter_context(serve_zoom(self.phone))
        self.phone.add_user("zoom-user-1", "rep1@example.com", name="Rep One")

    @property
    def events(self) -> ZoomPhone:
        return self.phone

    def settings(self, receiver_url: str) -> dict[str, str]:
        return {
            "PROVIDER__KIND": "zoom",
            "PROVIDER__BASE_URL": f"{self.phone.api_url}/v2",
            "PROVIDER__TOKEN_URL": f"{self.phone.web_url}/oauth/token",
            "PROVIDER__ACCOUNT_ID": ACCOUNT_ID,
            "PROVIDER__CLIENT_ID": CLIENT_ID,
            "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
        }

    def add_ended_call(self, n: int, *, ended_ago: float = 0.0) -> str:
        recording_id = f"zr-hook-{n}"
        started = datetime.now(UTC) - timedelta(seconds=ended_ago + DURATION)
        self.phone.add_recording(
            recording_item(
                recording_id,
                started,
                call_id=f"7100000{n}",
                owner_id="zoom-user-1",
                download_url=self.phone.add_file(f"hook-{n}", mp3_bytes(1)),
                duration=DURATION,
            )
        )
        return recording_id

    def forge(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        return headers, body.replace(b"zr-hook-", b"zr-fake-")

    def strip(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        return {k: v for k, v in headers.items() if not k.lower().startswith("x-zm-")}, body

    def listings(self) -> int:
        return len(self.phone.listing_requests())

    def credentials(self) -> list[str]:
        return self.phone.secrets()


class TestZoomWebhooks(WebhookContract):
    world = ZoomWorld
