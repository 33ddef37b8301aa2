"""The generic kind's webhook verifier: a shared token or an HMAC of the raw body, checked as
the provider's ``webhook`` table says; pure calls, then a real receiver with real requests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from poller import app
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.adapters.providers.profiles.salesloft import SalesloftProvider, SalesloftSettings
from poller.adapters.webhooks.generic import GenericVerifier
from poller.adapters.webhooks.receiver import WebhookReceiver
from poller.adapters.webhooks.settings import GenericWebhookSettings
from poller.config import ConfigError, Settings
from poller.ports.webhooks import Refused, Verified, WebhookRequest

SECRET = "whsec-9f2c"
PATIENCE = 20.0


def request(body: bytes, **headers: str) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        path="/webhooks/legacy",
        query="",
        headers={name.lower().replace("_", "-"): value for name, value in headers.items()},
        body=body,
        source="127.0.0.1",
        received_at=datetime(2026, 12, 7, tzinfo=UTC),
    )


def hmac_verifier(**options: object) -> GenericVerifier:
    settings = GenericWebhookSettings.model_validate(
        {"enabled": True, "secret": SECRET, "scheme": "hmac", "header": "X-Signature", **options}
    )
    return GenericVerifier.from_settings(settings, key="provider.webhook")


def token_verifier(**options: object) -> GenericVerifier:
    settings = GenericWebhookSettings.model_validate({"enabled": True, "secret": SECRET, **options})
    return GenericVerifier.from_settings(settings, key="provider.webhook")


def test_the_shared_token_is_taken_plain_or_as_a_bearer_token() -> None:
    verifier = token_verifier()
    body = b'{"id": 1}'
    plain = verifier.verify(request(body, authorization=SECRET))
    bearer = verifier.verify(request(body, authorization=f"Bearer {SECRET}"))
    assert isinstance(plain, Verified) and isinstance(bearer, Verified)
    assert plain.event == "event"
    assert plain.nudge
    # The token is the same on every event: the body names the delivery.
    assert plain.replay_key == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no_signature"),
        ({"authorization": "Bearer wrong"}, "bad_token"),
        ({"authorization": SECRET + "x"}, "bad_token"),
        ({"authorization": "Bearer"}, "bad_token"),
        ({"authorization": "Basic " + SECRET}, "bad_token"),
        ({"authorization": "ünïcode"}, "bad_token"),
    ],
)
def test_a_missing_or_wrong_token_is_refused(headers: dict[str, str], reason: str) -> None:
    assert token_verifier().verify(request(b"{}", **headers)) == Refused(reason)


def test_the_token_is_read_from_the_header_the_table_names() -> None:
    verifier = token_verifier(header="X-Hook-Token")
    assert isinstance(verifier.verify(request(b"{}", x_hook_token=SECRET)), Verified)
    assert verifier.verify(request(b"{}", authorization=SECRET)) == Refused("no_signature")


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_an_hmac_of_the_raw_body_is_checked_with_the_configured_digest_and_encoding(
    algorithm: str, encoding: str
) -> None:
    body = b'{"event": "call.completed", "call": {"id": "c-42"}}'
    digest = hmac.new(SECRET.encode(), body, algorithm).digest()
    written = digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()
    verifier = hmac_verifier(hmac_algorithm=algorithm, hmac_encoding=encoding)
    verified = verifier.verify(request(body, x_signature=written))
    assert isinstance(verified, Verified)
    assert verified.replay_key == written
    tampered = verifier.verify(request(body + b" ", x_signature=written))
    assert tampered == Refused("bad_signature")


def test_an_hmac_after_its_prefix_in_either_case_of_hex() -> None:
    body = b"{}"
    signature = hmac.new(SECRET.encode(), body, "sha256").hexdigest()
    verifier = hmac_verifier(hmac_prefix="sha256=")
    assert isinstance(verifier.verify(request(body, x_signature=f"sha256={signature}")), Verified)
    upper = f"sha256={signature.upper()}"
    assert isinstance(verifier.verify(request(body, x_signature=upper)), Verified)
    assert verifier.verify(request(body, x_signature=signature)) == Refused("bad_signature")


def test_a_signature_made_with_another_key_is_refused() -> None:
    body = b"{}"
    forged = hmac.new(b"guessed", body, "sha256").hexdigest()
    assert hmac_verifier().verify(request(body, x_signature=forged)) == Refused("bad_signature")


@pytest.mark.parametrize(
    ("body", "ids"),
    [
        (b'{"data": {"call": {"id": "c-1"}}}', ("c-1",)),
        (b'{"data": {"call": {"id": 77}}}', ("77",)),
        (b'{"data": {"call": {"id": ["a", "b"]}}}', ("a", "b")),
        (b'{"data": {"call": {}}}', ()),
        (b'{"data": {"call": {"id": true}}}', ()),
        (b'{"data": {"call": {"id": {"nested": 1}}}}', ()),
        (b"not json at all", ()),
    ],
)
def test_the_call_ids_come_from_call_id_path_when_the_body_is_json(
    body: bytes, ids: tuple[str, ...]
) -> None:
    verifier = token_verifier(call_id_path="data.call.id")
    verified = verifier.verify(request(body, authorization=SECRET))
    assert isinstance(verified, Verified)
    assert verified.call_ids == ids


def test_without_call_id_path_no_id_is_read() -> None:
    verified = token_verifier().verify(request(b'{"id": "c-1"}', authorization=SECRET))
    assert isinstance(verified, Verified) and verified.call_ids == ()


def generic_settings(webhook: dict[str, object]) -> GenericSettings:
    return GenericSettings.model_validate(
        {"base_url": "http://127.0.0.1:9", "auth": "none", "webhook": webhook}
    )


def test_the_generic_provider_gives_its_verifier_only_when_events_are_enabled() -> None:
    assert GenericProvider(generic_settings({"secret": SECRET})).webhook_verifier() is None
    enabled = GenericProvider(generic_settings({"enabled": True, "secret": SECRET}))
    assert isinstance(enabled.webhook_verifier(), GenericVerifier)


@pytest.mark.parametrize("scheme", ["token", "hmac"])
def test_events_enabled_without_a_secret_is_a_config_error_naming_the_key(scheme: str) -> None:
    provider = GenericProvider(generic_settings({"enabled": True, "scheme": scheme}))
    with pytest.raises(ConfigError) as refused:
        provider.webhook_verifier()
    [problem] = refused.value.problems
    assert problem.startswith(
        "provider.webhook.secret: required with provider.webhook.enabled = true"
    )


def test_a_profile_takes_events_with_the_generic_verifier() -> None:
    settings = SalesloftSettings.model_validate(
        {
            "token": "api-key",
            "webhook": {"enabled": True, "secret": SECRET, "header": "X-Salesloft-Token"},
        }
    )
    verifier = SalesloftProvider(settings).webhook_verifier()
    assert isinstance(verifier, GenericVerifier)
    assert isinstance(verifier.verify(request(b"{}", x_salesloft_token=SECRET)), Verified)


# -- over a real receiver --------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[str, Verified]] = []
        self.arrived = threading.Event()

    def event_arrived(self, provider: str, verified: Verified, at: datetime) -> None:
        self.events.append((provider, verified))
        self.arrived.set()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[WebhookReceiver, Sink]]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        state_dir=tmp_path,
        provider={
            "base_url": "http://127.0.0.1:9",
            "auth": "none",
            "name": "legacy",
            "webhook": {
                "enabled": True,
                "secret": SECRET,
                "scheme": "hmac",
                "header": "X-Hub-Signature-256",
                "hmac_prefix": "sha256=",
                "call_id_path": "call.id",
            },
        },
        webhooks={"listen": f"127.0.0.1:{port}"},
    )
    sink = Sink()
    running = app.serve_webhooks(settings, app.build_providers(settings), sink)
    yield running, sink
    running.close()


def post(receiver: WebhookReceiver, body: bytes, signature: str) -> int:
    answer = requests.post(
        f"http://127.0.0.1:{receiver.port}/webhooks/legacy",
        data=body,
        headers={"X-Hub-Signature-256": signature, "Content-Type": "application/json"},
        timeout=PATIENCE,
    )
    return answer.status_code


def test_a_signed_event_is_accepted_once_and_a_forged_or_unsigned_one_is_refused(
    receiver: tuple[WebhookReceiver, Sink],
) -> None:
    running, sink = receiver
    body = json.dumps({"call": {"id": "c-9"}}).encode()
    signed = "sha256=" + hmac.new(SECRET.encode(), body, "sha256").hexdigest()
    forged = "sha256=" + hmac.new(b"guess", body, "sha256").hexdigest()
    assert post(running, body, forged) == 401
    assert post(running, body, "") == 401
    assert post(running, body, signed) == 200
    assert post(running, body, signed) == 401  # the same delivery again
    # The sink hears of an event just after its answer is sent.
    assert sink.arrived.wait(PATIENCE)
    assert [(name, v.call_ids) for name, v in sink.events] == [("legacy", ("c-9",))]
