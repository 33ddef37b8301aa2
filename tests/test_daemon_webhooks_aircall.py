"""Aircall's ``call.hungup`` and ``call.ended`` events, carrying the webhook's token in their
body, nudging `siro-poller run`."""

from __future__ import annotations

import json
from contextlib import ExitStack

from poller.simulators.aircall_server import AircallApi, AircallSimulator
from tests.webhook_e2e import Headers, VendorWorld, WebhookContract

API_ID = "aircall-hooks-id"
API_TOKEN = "aircall-hooks-token-0001"


class AircallWorld(VendorWorld):
    kind = "aircall"
    secret = "aircall-e2e-webhook-token"
    # The adapter keeps a minute clear of the newest calls (call.ended comes ~30 s late).
    fixed_settle_seconds = 60.0

    def start(self, stack: ExitStack) -> None:
        self.simulator = stack.enter_context(AircallSimulator(API_ID, API_TOKEN, limit=6000))

    @property
    def events(self) -> AircallApi:
        return self.simulator.api

    def settings(self, receiver_url: str) -> dict[str, str]:
        return {
            "PROVIDER__KIND": "aircall",
            "PROVIDER__BASE_URL": self.simulator.url,
            "PROVIDER__API_ID": API_ID,
            "PROVIDER__API_TOKEN": API_TOKEN,
            "PROVIDER__DOWNLOAD_HOSTS": f'["{self.simulator.media_host}"]',
        }

    def forge(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        return headers, json.dumps({**json.loads(body), "token": "not-the-token"}).encode()

    def strip(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        event = json.loads(body)
        del event["token"]
        return headers, json.dumps(event).encode()

    def listings(self) -> int:
        return len(self.simulator.api.listing_requests())

    def credentials(self) -> list[str]:
        return [API_TOKEN]


class TestAircallWebhooks(WebhookContract):
    world = AircallWorld
