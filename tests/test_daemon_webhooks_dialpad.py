"""Dialpad's call events (``hangup``, ``recording``), JWTs signed HS256 with the webhook's
secret, nudging `siro-poller run`."""

from __future__ import annotations

import json
from contextlib import ExitStack

import jwt

from poller.simulators.dialpad_server import DialpadServers, DialpadState
from tests.webhook_e2e import Headers, VendorWorld, WebhookContract

API_KEY = "dialpad-hooks-key-0001"


class DialpadWorld(VendorWorld):
    kind = "dialpad"
    secret = "dialpad-e2e-webhook-secret-of-32-bytes-or-more"

    def start(self, stack: ExitStack) -> None:
        self.servers = stack.enter_context(DialpadServers(API_KEY))

    @property
    def events(self) -> DialpadState:
        return self.servers.state

    def settings(self, receiver_url: str) -> dict[str, str]:
        return {
            "PROVIDER__KIND": "dialpad",
            "PROVIDER__BASE_URL": self.servers.url,
            "PROVIDER__API_KEY": API_KEY,
            "PROVIDER__DOWNLOAD_HOSTS": f'["{self.servers.media_host}"]',
        }

    def forge(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        payload = jwt.decode(body, options={"verify_signature": False})
        return headers, jwt.encode(
            payload, "not-the-webhook-secret-but-as-long-as-one", algorithm="HS256"
        ).encode()

    def strip(self, headers: Headers, body: bytes) -> tuple[Headers, bytes]:
        # What Dialpad sends for a webhook created without a secret: the event as plain JSON.
        payload = jwt.decode(body, options={"verify_signature": False})
        return {**headers, "Content-Type": "application/json"}, json.dumps(payload).encode()

    def listings(self) -> int:
        return len(self.servers.state.listing_requests())

    def credentials(self) -> list[str]:
        return [API_KEY]


class TestDialpadWebhooks(WebhookContract):
    world = DialpadWorld
