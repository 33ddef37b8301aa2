"""RingCentral's telephony session events (Disconnected, with recordings) nudging
`siro-poller run`, each carrying the subscription's verification token."""

from __future__ import annotations

from contextlib import ExitStack

from poller.simulators.fresh_calls import REP_EMAIL, RINGCENTRAL_REP
from poller.simulators.ringcentral_server import RingCentralState, serve
from tests.webhook_e2e import Headers, VendorWorld, WebhookContract

UNLIMITED = {group: (10_000, 60, 60) for group in ("Heavy", "Medium", "Light", "Auth")}


class RingCentralWorld(VendorWorld):
    kind = "ringcentral"
    secret = "rc-e2e-verification-token"
    settle_setting = True

    def start(self, stack: ExitStack) -> None:
        self.api = stack.enter_context(serve(RingCentralState(groups=dict(UNLIMITED))))
        extension_id, number, _ = RINGCENTRAL_REP
        self.api.add_extension(extension_id, number, "Rep One", REP_EMAIL)

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
