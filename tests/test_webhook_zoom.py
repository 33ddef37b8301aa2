"""Zoom Phone's webhook events: the x-zm-signature, the URL validation challenge, the console
steps, and the simulator's signed events verified over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from poller.adapters.providers.zoom import ZoomProvider, ZoomSettings
from poller.adapters.webhooks.zoom import ZoomWebhookVerifier, encrypted_token, zoom_signature
from poller.ports.webhooks import Refused, SubscriptionState, Verified, WebhookRequest
from poller.simulators.zoom_server import (
    ACCOUNT_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    WEBHOOK_SECRET_TOKEN,
    ZoomPhone,
    recording_item,
    serve_zoom,
)
from tests.verifier_server import Endpoint, serve_verifier

SECRET = "zoom-secret-token-for-tests"
NOW = datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC)
MAX_AGE = 300.0


def verifier(secret: str = SECRET) -> ZoomWebhookVerifier:
    return ZoomWebhookVerifier(SecretStr(secret), max_event_age_seconds=MAX_AGE)


def request(body: bytes, headers: dict[str, str], *, at: datetime = NOW) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        path="/webhooks/zoom",
        query="",
        headers={name.lower(): value for name, value in headers.items()},
        body=body,
        source="127.0.0.1",
        received_at=at,
    )


def signed(
    document: dict[str, Any], *, secret: str = SECRET, sent_at: datetime = NOW
) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(document).encode()
    timestamp = str(int(sent_at.timestamp()))
    # Computed here from Zoom's documented formula, apart from the module under test.
    digest = hmac.new(
        secret.encode(), f"v0:{timestamp}:".encode() + body, hashlib.sha256
    ).hexdigest()
    return body, {"x-zm-request-timestamp": timestamp, "x-zm-signature": f"v0={digest}"}


def recording_completed(*recording_ids: str) -> dict[str, Any]:
    """phone.recording_completed as @zoom/rivet's PhoneRecordingCompletedEvent has it."""
    return {
        "event": "phone.recording_completed",
        "event_ts": int(NOW.timestamp() * 1000),
        "payload": {
            "account_id": ACCOUNT_ID,
            "object": {
                "recordings": [
                    {
                        "id": recording_id,
                        "call_id": f"7072598{index}",
                        "call_log_id": f"log-{recording_id}",
                        "caller_number": "+14155550100",
                        "caller_number_type": 1,
                        "callee_number": "+14155550123",
                        "callee_number_type": 1,
                        "callee_name": "Prospect Person",
                        "duration": 185,
                        "download_url": "https://zoom.us/v2/phone/recording/download/abc",
                        "date_time": "2026-03-02T14:55:00Z",
                        "direction": "outbound",
                    }
                    for index, recording_id in enumerate(recording_ids)
                ]
            },
        },
    }


def verify(document: dict[str, Any], **kwargs: Any) -> Verified | Refused:
    body, headers = signed(document, **kwargs)
    return verifier().verify(request(body, headers))


# -- the signature ----------------------------------------------------------------------------


def test_signature_is_v0_and_the_hex_hmac_sha256_of_version_timestamp_and_body() -> None:
    body = b'{"event":"phone.recording_completed"}'
    expected = hmac.new(
        b"secret", b'v0:1700000000:{"event":"phone.recording_completed"}', hashlib.sha256
    ).hexdigest()
    assert zoom_signature("secret", "1700000000", body) == f"v0={expected}"


def test_a_signed_recording_completed_names_its_recordings_and_asks_for_a_poll() -> None:
    outcome = verify(recording_completed("rec-1", "rec-2"))

    assert isinstance(outcome, Verified)
    assert outcome.event == "phone.recording_completed"
    # The adapter keys calls by the recording id, not Zoom's call_id.
    assert outcome.call_ids == ("rec-1", "rec-2")
    assert outcome.nudge is True
    assert outcome.reply.status == 200


def test_the_signature_is_the_replay_key() -> None:
    body, headers = signed(recording_completed("rec-1"))
    outcome = verifier().verify(request(body, headers))

    assert isinstance(outcome, Verified)
    assert outcome.replay_key == headers["x-zm-signature"]


@pytest.mark.parametrize(
    ("event", "subject", "call_ids", "nudge"),
    [
        (
            "phone.recording_failed",
            {"id": "rec-9", "call_id": "70725989", "direction": "inbound"},
            ("rec-9",),
            False,
        ),
        ("phone.callee_ended", {"call_id": "70725989", "call_end_time": "x"}, ("70725989",), True),
        ("phone.caller_ended", {"call_id": "70725990"}, ("70725990",), True),
        (
            "phone.callee_call_log_completed",
            {"user_id": "u1", "call_logs": [{"id": "log-1", "call_id": "70725991"}]},
            ("70725991",),
            True,
        ),
        ("phone.sms_received", {"message_id": "m1"}, (), False),
    ],
)
def test_other_phone_events_nudge_only_when_a_call_ended(
    event: str, subject: dict[str, Any], call_ids: tuple[str, ...], nudge: bool
) -> None:
    outcome = verify({"event": event, "event_ts": 1, "payload": {"object": subject}})

    assert isinstance(outcome, Verified)
    assert (outcome.event, outcome.call_ids, outcome.nudge) == (event, call_ids, nudge)


# -- refusals ---------------------------------------------------------------------------------


def test_an_unsigned_event_is_refused() -> None:
    body, headers = signed(recording_completed("rec-1"))

    for missing in ("x-zm-signature", "x-zm-request-timestamp"):
        stripped = {name: value for name, value in headers.items() if name != missing}
        assert verifier().verify(request(body, stripped)) == Refused("no_signature")


def test_an_event_signed_with_another_secret_is_refused() -> None:
    body, headers = signed(recording_completed("rec-1"), secret="not-the-secret")

    assert verifier().verify(request(body, headers)) == Refused("bad_signature")


def test_a_tampered_body_or_timestamp_is_refused() -> None:
    body, headers = signed(recording_completed("rec-1"))
    tampered = body.replace(b"rec-1", b"rec-2")
    later = {**headers, "x-zm-request-timestamp": str(int(NOW.timestamp()) + 1)}

    assert verifier().verify(request(tampered, headers)) == Refused("bad_signature")
    assert verifier().verify(request(body, later)) == Refused("bad_signature")


@pytest.mark.parametrize("offset", [-MAX_AGE - 1, MAX_AGE + 1])
def test_an_event_signed_outside_the_age_window_is_stale(offset: float) -> None:
    sent_at = NOW + timedelta(seconds=offset)

    assert verify(recording_completed("rec-1"), sent_at=sent_at) == Refused("stale")


def test_an_event_at_the_edge_of_the_age_window_passes() -> None:
    sent_at = NOW - timedelta(seconds=MAX_AGE)

    assert isinstance(verify(recording_completed("rec-1"), sent_at=sent_at), Verified)


def test_a_millisecond_timestamp_is_read_as_such() -> None:
    body = json.dumps(recording_completed("rec-1")).encode()
    timestamp = str(int(NOW.timestamp() * 1000))
    headers = {
        "x-zm-request-timestamp": timestamp,
        "x-zm-signature": zoom_signature(SECRET, timestamp, body),
    }

    assert isinstance(verifier().verify(request(body, headers)), Verified)


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[1, 2]", b'{"payload": {}}', b'{"event": 7}', b"\xff\xfe", b"[" * 5000],
)
def test_a_signed_but_malformed_body_is_refused_without_raising(body: bytes) -> None:
    timestamp = str(int(NOW.timestamp()))
    headers = {
        "x-zm-request-timestamp": timestamp,
        "x-zm-signature": zoom_signature(SECRET, timestamp, body),
    }

    assert verifier().verify(request(body, headers)) == Refused("malformed")


@pytest.mark.parametrize("timestamp", ["", "soon", "-1", "1e9", "9" * 40])
def test_an_unreadable_timestamp_is_refused(timestamp: str) -> None:
    body = json.dumps(recording_completed("rec-1")).encode()
    headers = {"x-zm-request-timestamp": timestamp, "x-zm-signature": "v0=00"}

    outcome = verifier().verify(request(body, headers))

    assert outcome in (Refused("malformed"), Refused("no_signature"))


def test_odd_ids_in_a_signed_event_are_skipped_not_trusted() -> None:
    document = recording_completed("rec-1")
    recordings = document["payload"]["object"]["recordings"]
    recordings += [{"id": None}, {"id": ""}, {"id": "x" * 300}, {"id": 42}, "junk", {"id": "rec-1"}]

    outcome = verify(document)

    assert isinstance(outcome, Verified)
    assert outcome.call_ids == ("rec-1", "42")


# -- the URL validation challenge --------------------------------------------------------------


def test_the_url_validation_challenge_is_answered_with_the_hmac_of_the_plain_token() -> None:
    challenge = {
        "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
        "event_ts": 1654503849680,
        "event": "endpoint.url_validation",
    }

    outcome = verify(challenge)

    assert isinstance(outcome, Verified)
    assert (outcome.nudge, outcome.replay_key, outcome.call_ids) == (False, None, ())
    assert outcome.reply.status == 200
    assert outcome.reply.content_type.startswith("application/json")
    expected = hmac.new(SECRET.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert json.loads(outcome.reply.body) == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": expected,
    }
    assert encrypted_token(SECRET, "qgg8vlvZRS6UYooatFL8Aw") == expected


def test_an_unsigned_challenge_gets_no_hmac() -> None:
    # Answering it would hand anyone an HMAC of their choosing under the Secret Token.
    body = json.dumps(
        {"event": "endpoint.url_validation", "payload": {"plainToken": "v0:1:{}"}}
    ).encode()

    assert verifier().verify(request(body, {})) == Refused("no_signature")


def test_a_challenge_without_a_plain_token_is_malformed() -> None:
    outcome = verify({"event": "endpoint.url_validation", "payload": {"plainToken": ""}})

    assert outcome == Refused("malformed")


# -- the adapter's hooks -----------------------------------------------------------------------


def zoom_settings(**webhook: Any) -> ZoomSettings:
    return ZoomSettings.model_validate(
        {
            "kind": "zoom",
            "account_id": ACCOUNT_ID,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "webhook": webhook,
        }
    )


def test_the_adapter_verifies_only_when_its_webhook_is_enabled_with_a_secret() -> None:
    assert ZoomProvider(zoom_settings()).webhook_verifier() is None
    assert ZoomProvider(zoom_settings(enabled=True)).webhook_verifier() is None
    enabled = ZoomProvider(zoom_settings(enabled=True, secret=SECRET)).webhook_verifier()
    assert isinstance(enabled, ZoomWebhookVerifier)
    body, headers = signed(recording_completed("rec-1"))
    assert isinstance(enabled.verify(request(body, headers)), Verified)


def test_an_enabled_webhook_without_its_secret_token_is_reported() -> None:
    assert zoom_settings(enabled=True, secret=SECRET).requirements() == []
    assert zoom_settings(secret=SECRET).requirements() == []
    assert zoom_settings().requirements() == []
    (missing,) = zoom_settings(enabled=True).requirements()
    assert missing.startswith("provider.webhook.secret: ")
    assert "Secret Token" in missing


def test_subscriptions_are_console_steps_in_the_marketplace() -> None:
    url = "https://hooks.example.com/webhooks/zoom"
    subscriptions = ZoomProvider(zoom_settings()).webhook_subscriptions()
    assert subscriptions is not None

    steps = subscriptions.console_steps(url)
    subscription = subscriptions.subscribe(url)

    assert steps is not None and steps[0].startswith("1. ")
    assert any(url in step for step in steps)
    assert any("Secret Token" in step and "provider.webhook.secret" in step for step in steps)
    assert any("Validate" in step for step in steps)
    assert any("phone.recording_completed" in step for step in steps)
    assert subscription.state is SubscriptionState.MANUAL
    assert subscriptions.status(url).state is SubscriptionState.MANUAL
    assert subscriptions.renew_due(subscription, NOW) is False


# -- the simulator over real HTTP -------------------------------------------------------------


@pytest.fixture
def phone() -> Iterator[ZoomPhone]:
    phone = ZoomPhone()
    with serve_zoom(phone):
        at = datetime.now(UTC) - timedelta(minutes=5)
        phone.add_recording(
            recording_item("rec-sim-1", at, call_id="7072598001", download_url="https://x/y")
        )
        yield phone


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    verifying = ZoomWebhookVerifier(SecretStr(WEBHOOK_SECRET_TOKEN), max_event_age_seconds=MAX_AGE)
    with serve_verifier(Endpoint(verifying)) as endpoint:
        yield endpoint


def test_the_simulators_announcement_is_verified_over_http(
    phone: ZoomPhone, endpoint: Endpoint
) -> None:
    phone.send_events_to(endpoint.url)

    assert phone.announce("rec-sim-1") == [200]

    (outcome,) = endpoint.outcomes
    assert isinstance(outcome, Verified)
    assert (outcome.event, outcome.call_ids, outcome.nudge) == (
        "phone.recording_completed",
        ("rec-sim-1",),
        True,
    )
    assert phone.events_sent == [("phone.recording_completed", 200)]


def test_the_simulators_event_has_the_documented_shape(phone: ZoomPhone) -> None:
    headers, body = phone.signed_event("rec-sim-1")
    event = json.loads(body)

    assert set(headers) >= {"x-zm-request-timestamp", "x-zm-signature", "Content-Type"}
    assert event["event"] == "phone.recording_completed"
    assert event["payload"]["account_id"] == ACCOUNT_ID
    (recording,) = event["payload"]["object"]["recordings"]
    assert recording["id"] == "rec-sim-1"
    assert recording["call_id"] == "7072598001"
    assert recording["download_url"] == "https://x/y"


def test_the_simulators_marketplace_validation_passes(phone: ZoomPhone, endpoint: Endpoint) -> None:
    assert phone.validate_endpoint(endpoint.url) is True
    assert phone.events_sent == [("endpoint.url_validation", 200)]


def test_events_signed_with_another_token_get_401(phone: ZoomPhone, endpoint: Endpoint) -> None:
    phone.send_events_to(endpoint.url, secret="a-rotated-secret-token")

    assert phone.announce("rec-sim-1") == [401]
    assert phone.validate_endpoint() is False
    assert endpoint.outcomes == [Refused("bad_signature"), Refused("bad_signature")]


def test_a_dropped_event_sends_nothing(phone: ZoomPhone, endpoint: Endpoint) -> None:
    phone.send_events_to(endpoint.url)
    phone.drop_events = True

    assert phone.announce("rec-sim-1") == []
    assert endpoint.outcomes == [] and phone.events_sent == []


def test_a_replayed_event_carries_the_same_replay_key(phone: ZoomPhone, endpoint: Endpoint) -> None:
    headers, body = phone.signed_event("rec-sim-1")
    for _ in range(2):
        answer = requests.post(endpoint.url, data=body, headers=headers, timeout=5)
        assert answer.status_code == 200

    first, second = endpoint.outcomes
    assert isinstance(first, Verified) and isinstance(second, Verified)
    assert first.replay_key == second.replay_key == headers["x-zm-signature"]


def test_a_stale_event_from_the_simulator_gets_401(phone: ZoomPhone, endpoint: Endpoint) -> None:
    phone.send_events_to(endpoint.url)
    phone.event_clock = lambda: datetime.now(UTC) - timedelta(hours=1)

    assert phone.announce("rec-sim-1") == [401]
    assert endpoint.outcomes == [Refused("stale")]


def test_garbage_is_refused_never_raised() -> None:
    chooser = random.Random(16)
    for _ in range(300):
        body = chooser.randbytes(chooser.randrange(0, 200))
        timestamp = chooser.choice(["", str(int(NOW.timestamp())), chooser.randbytes(4).hex()])
        headers = {
            "x-zm-request-timestamp": timestamp,
            "x-zm-signature": chooser.choice(
                ["", "v0=", zoom_signature(SECRET, timestamp, body), chooser.randbytes(8).hex()]
            ),
        }
        outcome = verifier().verify(request(body, headers))
        assert isinstance(outcome, Refused) or outcome.event
