"""Twilio's recording status callbacks: the X-Twilio-Signature (twilio-python's own test
vectors), the account check, the console steps, and the simulator's signed callbacks verified
over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from pydantic import SecretStr

from poller.adapters.providers.twilio import TwilioProvider, TwilioSettings
from poller.adapters.webhooks.twilio import (
    TwilioWebhookVerifier,
    body_sha256,
    signature_matches,
    twilio_signature,
)
from poller.ports.webhooks import Refused, SubscriptionState, Verified, WebhookRequest
from poller.simulators.twilio_server import (
    ACCOUNT_SID,
    API_KEY_SECRET,
    API_KEY_SID,
    AUTH_TOKEN,
    FakeTwilio,
    serve,
    sid,
    twilio_call,
    twilio_recording,
)
from tests.verifier_server import Endpoint, serve_verifier

PUBLIC_URL = "https://hooks.example.com/webhooks/twilio"
RECORDING_SID = sid("RE", "recording-1")
CALL_SID = sid("CA", "call-1")
NOW = datetime(2026, 3, 2, 15, 0, 0, tzinfo=UTC)

# twilio-python, tests/unit/test_request_validator.py (MIT License, Copyright (C) 2023,
# Twilio, Inc.): its vectors, verbatim.
VECTOR_TOKEN = "12345"
VECTOR_URI = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
VECTOR_EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
VECTOR_BODY = '{"property": "value", "boolean": true}'
VECTOR_BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
VECTOR_DUPLICATE_EXPECTED = "IK+Dwps556ElfBT0I3Rgjkr1wJU="


# -- twilio-python's vectors ------------------------------------------------------------------


def test_compute_signature() -> None:
    assert twilio_signature(VECTOR_TOKEN, VECTOR_URI, VECTOR_PARAMS.items()) == VECTOR_EXPECTED


def test_compute_hash_unicode() -> None:
    assert body_sha256(VECTOR_BODY.encode()) == VECTOR_BODY_HASH


def test_compute_signature_duplicate_parameters() -> None:
    params = [
        ("Sid", "CA123"),
        ("SidAccount", "AC123"),
        ("Digits", "5678"),  # Ensure keys are sorted.
        ("Digits", "1234"),  # Ensure values are sorted.
        ("Digits", "1234"),  # Ensure duplicates are removed.
    ]
    assert twilio_signature(VECTOR_TOKEN, VECTOR_URI, params) == VECTOR_DUPLICATE_EXPECTED


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # test_validation
        (VECTOR_URI, VECTOR_EXPECTED),
        # test_validation_removes_port_on_https
        (VECTOR_URI.replace(".com", ".com:1234"), VECTOR_EXPECTED),
        # test_validation_removes_port_on_http: hash of http uri with port 1234
        (
            VECTOR_URI.replace(".com", ".com:1234").replace("https", "http"),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
        ),
        # test_validation_adds_port_on_https: hash of uri with port 443
        (VECTOR_URI, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        # test_validation_adds_port_on_http: hash of uri with port 80
        (VECTOR_URI.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),
    ],
)
def test_validation(uri: str, expected: str) -> None:
    assert signature_matches(expected, [VECTOR_TOKEN], uri, list(VECTOR_PARAMS.items()))


def test_validation_of_body_succeeds() -> None:
    uri_with_body = VECTOR_URI + "&bodySHA256=" + VECTOR_BODY_HASH
    assert signature_matches("a9nBmqA0ju/hNViExpshrM61xv4=", [VECTOR_TOKEN], uri_with_body, [])


def test_a_vector_with_another_token_or_url_fails() -> None:
    params = list(VECTOR_PARAMS.items())
    assert not signature_matches(VECTOR_EXPECTED, ["54321"], VECTOR_URI, params)
    assert not signature_matches(VECTOR_EXPECTED, [VECTOR_TOKEN], VECTOR_URI + "&x=1", params)


# -- the recording status callback ------------------------------------------------------------


def callback_form(**changes: str) -> dict[str, str]:
    """A recordingStatusCallback form, with the parameters Twilio documents."""
    form = {
        "AccountSid": ACCOUNT_SID,
        "CallSid": CALL_SID,
        "RecordingSid": RECORDING_SID,
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/"
        f"{RECORDING_SID}",
        "RecordingStatus": "completed",
        "RecordingDuration": "35",
        "RecordingChannels": "2",
        "RecordingStartTime": "Mon, 02 Mar 2026 14:59:20 +0000",
        "RecordingSource": "DialVerb",
        "ErrorCode": "0",
    }
    form.update(changes)
    return form


def sign(form: dict[str, str], *, secret: str = AUTH_TOKEN, url: str = PUBLIC_URL) -> str:
    # Twilio's documented recipe, computed here apart from the module under test.
    signed = url + "".join(name + form[name] for name in sorted(form))
    return base64.b64encode(hmac.new(secret.encode(), signed.encode(), "sha1").digest()).decode()


def request(
    body: bytes, headers: dict[str, str], *, public_url: str | None = PUBLIC_URL
) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        path="/webhooks/twilio",
        query="",
        headers={name.lower(): value for name, value in headers.items()},
        body=body,
        source="127.0.0.1",
        received_at=NOW,
        public_url=public_url,
    )


def verifier(
    *, auth_token: str | None = AUTH_TOKEN, shared_key: str | None = None
) -> TwilioWebhookVerifier:
    return TwilioWebhookVerifier(
        account_sid=ACCOUNT_SID,
        auth_token=SecretStr(auth_token) if auth_token is not None else None,
        shared_key=SecretStr(shared_key) if shared_key is not None else None,
    )


def posted(form: dict[str, str], **headers: str) -> WebhookRequest:
    return request(urlencode(form).encode(), {"X-Twilio-Signature": sign(form), **headers})


def test_a_completed_recording_names_its_recording_sid_and_asks_for_a_poll() -> None:
    outcome = verifier().verify(posted(callback_form()))

    assert isinstance(outcome, Verified)
    assert outcome.event == "recordingStatusCallback:completed"
    # The adapter keys calls by the recording SID, not the call's.
    assert outcome.call_ids == (RECORDING_SID,)
    assert outcome.nudge is True
    assert outcome.reply.status == 200


@pytest.mark.parametrize("status", ["absent", "failed", "in-progress"])
def test_a_recording_that_is_not_ready_does_not_nudge(status: str) -> None:
    outcome = verifier().verify(posted(callback_form(RecordingStatus=status)))

    assert isinstance(outcome, Verified)
    assert (outcome.call_ids, outcome.nudge) == ((RECORDING_SID,), False)


def test_another_callback_to_the_address_is_verified_but_does_not_nudge() -> None:
    form = {"AccountSid": ACCOUNT_SID, "CallSid": CALL_SID, "CallStatus": "completed"}

    outcome = verifier().verify(posted(form))

    assert isinstance(outcome, Verified)
    assert (outcome.event, outcome.call_ids, outcome.nudge) == ("callback", (), False)


def test_the_replay_key_is_the_signature_whatever_the_idempotency_token() -> None:
    # The token is not signed: a replay with a fresh one must still be the same delivery.
    form = callback_form()
    first = verifier().verify(posted(form, **{"I-Twilio-Idempotency-Token": "idem-1"}))
    replayed = verifier().verify(posted(form, **{"I-Twilio-Idempotency-Token": "idem-2"}))

    assert isinstance(first, Verified) and isinstance(replayed, Verified)
    assert first.replay_key == replayed.replay_key == sign(form)


def test_the_query_of_the_public_url_is_signed() -> None:
    url = f"{PUBLIC_URL}?tenant=acme&x=a%20b"
    form = callback_form()
    body = urlencode(form).encode()

    good = request(body, {"X-Twilio-Signature": sign(form, url=url)}, public_url=url)
    other = request(body, {"X-Twilio-Signature": sign(form)}, public_url=url)

    assert isinstance(verifier().verify(good), Verified)
    assert verifier().verify(other) == Refused("bad_signature")


def test_a_json_body_is_signed_through_its_body_sha256() -> None:
    body = json.dumps({"AccountSid": ACCOUNT_SID, "Status": "ok"}).encode()
    url = f"{PUBLIC_URL}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {"X-Twilio-Signature": sign({}, url=url)}

    outcome = verifier().verify(request(body, headers, public_url=url))
    tampered = verifier().verify(request(body + b" ", headers, public_url=url))

    assert isinstance(outcome, Verified) and outcome.nudge is False
    assert tampered == Refused("bad_signature")


# -- refusals ---------------------------------------------------------------------------------


def test_an_unsigned_callback_is_refused() -> None:
    body = urlencode(callback_form()).encode()

    assert verifier().verify(request(body, {})) == Refused("no_signature")


def test_a_callback_signed_with_another_token_is_refused() -> None:
    form = callback_form()
    headers = {"X-Twilio-Signature": sign(form, secret="another-auth-token")}

    outcome = verifier().verify(request(urlencode(form).encode(), headers))

    assert outcome == Refused("bad_signature")


def test_a_tampered_callback_is_refused() -> None:
    form = callback_form()
    body = urlencode(callback_form(RecordingSid=sid("RE", "another"))).encode()

    assert verifier().verify(request(body, {"X-Twilio-Signature": sign(form)})) == Refused(
        "bad_signature"
    )


def test_a_callback_signed_for_another_url_is_refused() -> None:
    form = callback_form()
    headers = {"X-Twilio-Signature": sign(form, url="https://elsewhere.example.com/hook")}

    assert verifier().verify(request(urlencode(form).encode(), headers)) == Refused("bad_signature")


def test_a_callback_of_another_account_is_refused() -> None:
    # Signed with our token (a subaccount shares nothing, but a test account might): still
    # another account's recording, which no poll of ours lists.
    outcome = verifier().verify(posted(callback_form(AccountSid="AC" + "f" * 32)))

    assert outcome == Refused("wrong_account")


def test_without_the_public_url_nothing_can_be_checked() -> None:
    form = callback_form()
    headers = {"X-Twilio-Signature": sign(form)}

    outcome = verifier().verify(request(urlencode(form).encode(), headers, public_url=None))

    assert outcome == Refused("no_public_url")


@pytest.mark.parametrize("body", [b"\xff\xfe=\x00", b"RecordingSid=%FF"])
def test_a_malformed_body_is_refused_without_raising(body: bytes) -> None:
    outcome = verifier().verify(request(body, {"X-Twilio-Signature": "AAAA"}))

    assert outcome in (Refused("malformed"), Refused("bad_signature"))


def test_a_signed_json_body_that_is_not_an_object_is_malformed() -> None:
    body = b"[1, 2]"
    url = f"{PUBLIC_URL}?bodySHA256={hashlib.sha256(body).hexdigest()}"
    headers = {"X-Twilio-Signature": sign({}, url=url)}

    assert verifier().verify(request(body, headers, public_url=url)) == Refused("malformed")


# -- Webhook Rules: a SharedKey, or the token held in webhook.secret ---------------------------


def test_a_shared_key_signs_with_the_algorithm_its_settings_header_names() -> None:
    form = callback_form()
    signed = PUBLIC_URL + "".join(name + form[name] for name in sorted(form))
    signature = base64.b64encode(
        hmac.new(b"shared-key-secret", signed.encode(), hashlib.sha256).digest()
    ).decode()
    headers = {
        "X-Twilio-Signature": signature,
        "X-Twilio-Webhooks-Signature-Settings": "key=KS0123,algorithm=HMAC_SHA256",
    }
    body = urlencode(form).encode()

    assert isinstance(
        verifier(shared_key="shared-key-secret").verify(request(body, headers)), Verified
    )
    assert verifier().verify(request(body, headers)) == Refused("no_secret")
    odd = {**headers, "X-Twilio-Webhooks-Signature-Settings": "key=KS0123,algorithm=MD5"}
    assert verifier(shared_key="shared-key-secret").verify(request(body, odd)) == Refused(
        "bad_signature"
    )


def test_an_api_key_provider_checks_with_the_token_in_webhook_secret() -> None:
    outcome = verifier(auth_token=None, shared_key=AUTH_TOKEN).verify(posted(callback_form()))

    assert isinstance(outcome, Verified)
    assert verifier(auth_token=None).verify(posted(callback_form())) == Refused("no_secret")


# -- the adapter's hooks -----------------------------------------------------------------------


def twilio_settings(*, api_key: bool = False, **webhook: Any) -> TwilioSettings:
    credentials = (
        {"api_key_sid": API_KEY_SID, "api_key_secret": API_KEY_SECRET}
        if api_key
        else {"auth_token": AUTH_TOKEN}
    )
    return TwilioSettings.model_validate(
        {"kind": "twilio", "account_sid": ACCOUNT_SID, **credentials, "webhook": webhook}
    )


def test_the_adapter_verifies_only_when_its_webhook_is_enabled() -> None:
    assert TwilioProvider(twilio_settings()).webhook_verifier() is None
    enabled = TwilioProvider(
        twilio_settings(enabled=True, public_url=PUBLIC_URL)
    ).webhook_verifier()
    assert enabled is not None
    assert isinstance(enabled.verify(posted(callback_form())), Verified)


def test_an_enabled_webhook_needs_its_public_url_and_a_signing_secret() -> None:
    assert twilio_settings(enabled=True, public_url=PUBLIC_URL).requirements() == []
    assert twilio_settings(api_key=True).requirements() == []
    (no_url,) = twilio_settings(enabled=True).requirements()
    assert no_url.startswith("provider.webhook.public_url: ")
    (no_secret,) = twilio_settings(api_key=True, enabled=True, public_url=PUBLIC_URL).requirements()
    assert no_secret.startswith("provider.webhook.secret: ")
    assert (
        twilio_settings(
            api_key=True, enabled=True, public_url=PUBLIC_URL, secret=AUTH_TOKEN
        ).requirements()
        == []
    )


def test_subscriptions_are_console_steps_with_the_exact_url() -> None:
    url = "https://hooks.example.com/webhooks/twilio"
    subscriptions = TwilioProvider(twilio_settings()).webhook_subscriptions()
    assert subscriptions is not None

    steps = subscriptions.console_steps(url)

    assert steps is not None and steps[0].startswith("1. ")
    assert sum(url in step for step in steps) >= 3
    text = " ".join(steps)
    for name in ("recordingStatusCallback", "recordingStatusCallbackEvent", "<Record>", "<Dial"):
        assert name in text
    assert "RecordingStatusCallback=" in text
    assert subscriptions.subscribe(url).state is SubscriptionState.MANUAL
    assert subscriptions.status(None).state is SubscriptionState.MANUAL
    assert subscriptions.renew_due(subscriptions.status(url), NOW) is False


# -- the simulator over real HTTP -------------------------------------------------------------


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    api = FakeTwilio()
    with serve(api):
        at = datetime.now(UTC) - timedelta(minutes=2)
        api.add(
            twilio_recording(RECORDING_SID, CALL_SID, at, duration=35, channels=2),
            twilio_call(CALL_SID, at, from_="+15551230000", to="+14155550100"),
        )
        yield api


def endpoint_for(public_url: str | None) -> Endpoint:
    verifying = TwilioWebhookVerifier(account_sid=ACCOUNT_SID, auth_token=SecretStr(AUTH_TOKEN))
    return Endpoint(verifying, public_url=public_url)


def test_the_simulators_callback_is_verified_over_http(twilio: FakeTwilio) -> None:
    with serve_verifier(endpoint_for(None)) as endpoint:
        endpoint.public_url = endpoint.url  # no proxy: Twilio calls the receiver itself
        twilio.send_events_to(endpoint.url)

        assert twilio.announce(RECORDING_SID) == [200]

    (outcome,) = endpoint.outcomes
    assert isinstance(outcome, Verified)
    assert (outcome.call_ids, outcome.nudge) == ((RECORDING_SID,), True)
    assert twilio.events_sent == [("recordingStatusCallback", 200)]


def test_behind_a_proxy_the_simulator_signs_the_public_url(twilio: FakeTwilio) -> None:
    with serve_verifier(endpoint_for(PUBLIC_URL)) as endpoint:
        twilio.send_events_to(endpoint.url)
        twilio.public_url = PUBLIC_URL
        assert twilio.announce(RECORDING_SID) == [200]

        twilio.public_url = "https://another.example.com/webhooks/twilio"
        assert twilio.announce(RECORDING_SID) == [401]

    assert isinstance(endpoint.outcomes[0], Verified)
    assert endpoint.outcomes[1] == Refused("bad_signature")


def test_the_simulators_callback_has_the_documented_parameters(twilio: FakeTwilio) -> None:
    twilio.send_events_to(PUBLIC_URL)

    headers, body = twilio.signed_event(RECORDING_SID)
    form = dict(pair.split("=", 1) for pair in body.decode().split("&"))

    assert set(form) == set(callback_form())
    assert form["RecordingSid"] == RECORDING_SID and form["RecordingStatus"] == "completed"
    assert form["RecordingDuration"] == "35" and form["RecordingChannels"] == "2"
    assert headers["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert headers["I-Twilio-Idempotency-Token"]


def test_a_replayed_callback_carries_the_same_replay_key(twilio: FakeTwilio) -> None:
    with serve_verifier(endpoint_for(None)) as endpoint:
        endpoint.public_url = endpoint.url
        twilio.send_events_to(endpoint.url)
        headers, body = twilio.signed_event(RECORDING_SID)
        for _ in range(2):
            assert requests.post(endpoint.url, data=body, headers=headers, timeout=5).ok

    first, second = endpoint.outcomes
    assert isinstance(first, Verified) and isinstance(second, Verified)
    assert first.replay_key == second.replay_key == headers["X-Twilio-Signature"]


def test_a_dropped_callback_sends_nothing(twilio: FakeTwilio) -> None:
    with serve_verifier(endpoint_for(None)) as endpoint:
        twilio.send_events_to(endpoint.url)
        twilio.drop_events = True

        assert twilio.announce(RECORDING_SID) == []

    assert endpoint.outcomes == [] and twilio.events_sent == []


def test_a_callback_signed_with_another_secret_gets_401(twilio: FakeTwilio) -> None:
    with serve_verifier(endpoint_for(None)) as endpoint:
        endpoint.public_url = endpoint.url
        twilio.send_events_to(endpoint.url, secret="a-shared-key-we-do-not-hold")

        assert twilio.announce(RECORDING_SID) == [401]

    assert endpoint.outcomes == [Refused("bad_signature")]


def test_garbage_is_refused_never_raised() -> None:
    chooser = random.Random(16)
    for _ in range(300):
        body = chooser.randbytes(chooser.randrange(0, 200))
        url = chooser.choice(
            [PUBLIC_URL, f"{PUBLIC_URL}?bodySHA256={chooser.randbytes(4).hex()}", "::", "http://[x"]
        )
        headers = {
            "X-Twilio-Signature": chooser.choice(["", "AAAA", chooser.randbytes(8).hex()]),
            "X-Twilio-Webhooks-Signature-Settings": chooser.choice(
                ["", ",,", "algorithm", "key=a,algorithm=HMAC_SHA1", "=="]
            ),
        }
        outcome = verifier(shared_key="k").verify(request(body, headers, public_url=url))
        assert isinstance(outcome, Refused)
