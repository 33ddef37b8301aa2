"""Zoom Phone's signed ``phone.recording_completed`` events nudging `siro-poller run`."""

from __future__ import annotations

from contextlib import ExitStack

from poller.simulators.fresh_calls import REP_EMAIL, ZOOM_USER
from poller.simulators.zoom_server import (
    ACCOUNT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    ZoomPhone,
    serve_zoom,
)
from tests.webhook_e2e import Headers, VendorWorld, WebhookContract


class ZoomWorld(VendorWorld):
    kind = "zoom"
    secret = "zoom-e2e-secret-token"
    settle_setting = True

    def start(self, stack: ExitStack) -> None:
        self.phone = ZoomPhone()
        stack.enter_context(serve_zoom(self.phone))
        self.phone.add_user(ZOOM_USER, REP_EMAIL, name="Rep One")

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

    def forge(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        return headers, body.replace(b"zr-fresh-", b"zr-fakes-")

    def strip(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        return {k: v for k, v in headers.items() if not k.lower().startswith("x-zm-")}, body

    def listings(self) -> int:
        return len(self.phone.listing_requests())

    def credentials(self) -> list[str]:
        return self.phone.secrets()


class TestZoomWebhooks(WebhookContract):
    world = ZoomWorld
