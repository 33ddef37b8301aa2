"""Dialpad's call events (an HS256 JWT signed with the webhook's secret) and its webhook and
call event subscription API, against the Dialpad simulator over real HTTP.

Dialpad publishes no signed example event; the tokens here are made with PyJWT, the library
its own documentation points to (jwt.io), and the refusals forge the cases by hand. Dialpad has
no handshake.
"""

from __future__ import annotations

import base64
import json
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jwt.warnings import InsecureKeyLengthWarning
from pydantic import SecretStr

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.dialpad import DialpadProvider, DialpadSettings
from poller.adapters.webhooks.dialpad import DialpadSubscriptions, DialpadWebhookVerifier
from poller.domain.windows import Window
from poller.ports.provider import PermanentProviderError, ProviderAuthError, RecordPosition
from poller.ports.webhooks import Refused, SubscriptionState, Verified, WebhookRequest
from poller.simulators.dialpad_server import DialpadServers, call_proto, recording_detail
from tests.verifier_server import Endpoint, serve_verifier

API_KEY = "dialpad-api-key-0001"
SECRET = "a-long-random-subscription-secret"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
CALL_ID = 6543210987654321
HOOK = "https://hooks.example.com/webhooks/dialpad"


def payload(state: str = "hangup", **claims: Any) -> dict[str, Any]:
    return {**call_proto(CALL_ID, NOW - timedelta(minutes=4)), "state": state, **claims}


def token(body: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> bytes:
    return jwt.encode(body, secret, algorithm=algorithm).encode()


def request(
    body: bytes, *, at: datetime = NOW, content_type: str = "application/jwt"
) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        path="/webhooks/dialpad",
        query="",
        headers={"content-type": content_type},
        body=body,
        source="127.0.0.1",
        received_at=at,
    )


def verify(body: bytes, *, at: datetime = NOW, max_age: float = 300.0) -> Verified | Refused:
    verifier = DialpadWebhookVerifier(SecretStr(SECRET), max_age_seconds=max_age)
    return verifier.verify(request(body, at=at))


def b64(value: bytes) -> str:
    return base64.urlsafe_b64encode(value).rstrip(b"=").decode()


# -- the verifier ---------------------------------------------------------------------------


def test_a_hangup_event_signed_with_the_secret_is_verified_and_names_the_call() -> None:
    signed = token(payload())

    outcome = verify(signed)

    assert outcome == Verified(
        event="hangup",
        call_ids=(str(CALL_ID),),
        nudge=True,
        replay_key=signed.decode().rsplit(".", 1)[1],
    )


def test_the_call_id_is_the_one_the_adapter_keys_the_call_by() -> None:
    call = call_proto(CALL_ID, NOW - timedelta(minutes=4))
    adapter = DialpadProvider(DialpadSettings.model_validate({"api_key": API_KEY}))
    record = adapter.map_record(
        call, RecordPosition(Window(NOW - timedelta(hours=1), NOW), page=1, index=0)
    )

    outcome = verify(token({**call, "state": "recording"}))

    assert isinstance(outcome, Verified)
    assert outcome.call_ids == (record.provider_call_id,)


@pytest.mark.parametrize(
    ("state", "nudge"),
    [("hangup", True), ("recording", True), ("call_transcription", False), ("ringing", False)],
)
def test_only_a_hang_up_or_a_ready_recording_nudges(state: str, nudge: bool) -> None:
    outcome = verify(token(payload(state)))

    assert isinstance(outcome, Verified)
    assert (outcome.event, outcome.nudge) == (state, nudge)


def test_a_numeric_call_id_reads_as_the_same_text() -> None:
    outcome = verify(token(payload(call_id=CALL_ID)))

    assert isinstance(outcome, Verified) and outcome.call_ids == (str(CALL_ID),)


def test_claims_dialpad_does_not_document_are_no_reason_to_refuse() -> None:
    outcome = verify(token(payload(aud="someone", iss="dialpad", sub=42, jti=7)))

    assert isinstance(outcome, Verified)


def test_the_content_type_does_not_matter() -> None:
    verifier = DialpadWebhookVerifier(SecretStr(SECRET), max_age_seconds=300)
    signed = token(payload())

    assert isinstance(verifier.verify(request(signed, content_type="text/plain")), Verified)
    assert isinstance(verifier.verify(request(signed + b"\n", content_type="")), Verified)


def unsigned(body: dict[str, Any]) -> bytes:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(body).encode())}.".encode()


def tampered() -> bytes:
    header, _, signature = token(payload()).decode().split(".")
    other = b64(json.dumps(payload(call_id="1")).encode())
    return f"{header}.{other}.{signature}".encode()


def other_algorithm() -> bytes:
    # HS512 with the right secret: still refused, only HS256 is Dialpad's. PyJWT warns that
    # the secret is short for HS512, which is beside the point here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return token(payload(), algorithm="HS512")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (json.dumps(payload()).encode(), "no_signature"),
        (unsigned(payload()), "bad_signature"),
        (other_algorithm(), "bad_signature"),
        (token(payload(), secret="another secret of the right length"), "bad_signature"),
        (tampered(), "bad_signature"),
        (token(payload(iat=int((NOW - timedelta(seconds=301)).timestamp()))), "stale"),
        (token(payload(iat=int((NOW + timedelta(seconds=301)).timestamp()))), "stale"),
        (token(payload(exp=int((NOW - timedelta(seconds=1)).timestamp()))), "stale"),
        (token(payload(nbf=int((NOW + timedelta(seconds=60)).timestamp()))), "stale"),
        (token(payload(iat="yesterday")), "malformed"),
        (token(payload(exp=10**30)), "malformed"),
        (token({**payload(), "state": None}), "malformed"),
        (b"", "malformed"),
        (b"not a token", "malformed"),
        (b"a.b.c", "malformed"),
        (b"\xff.\xfe.\xfd", "malformed"),
    ],
    ids=[
        "plain JSON", "alg none", "HS512", "wrong secret", "tampered payload", "iat too old",
        "iat in the future", "expired", "not yet valid", "iat not a number",
        "exp out of range", "no state", "empty", "not a JWT", "not base64 JSON", "not text",
    ],
)  # fmt: skip
def test_each_refusal_has_its_reason(body: bytes, reason: str) -> None:
    assert verify(body) == Refused(reason)


CLAIM_VALUES = st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=12)


@given(
    st.one_of(
        st.binary(max_size=300),
        st.dictionaries(
            st.sampled_from(["state", "call_id", "iat", "exp", "nbf", "aud", "target"]),
            CLAIM_VALUES,
            max_size=7,
        ).map(lambda claims: token(claims)),
        st.lists(st.text(max_size=40), min_size=3, max_size=3).map(
            lambda parts: ".".join(parts).encode()
        ),
    )
)
def test_no_body_makes_the_verifier_raise(body: bytes) -> None:
    assert isinstance(verify(body), Verified | Refused)


def test_time_claims_within_the_window_pass() -> None:
    recent = token(
        payload(
            iat=int((NOW - timedelta(seconds=30)).timestamp()),
            exp=int((NOW + timedelta(seconds=60)).timestamp()),
        )
    )

    assert isinstance(verify(recent), Verified)
    assert verify(recent, max_age=10) == Refused("stale")


# -- the settings and the adapter's hooks --------------------------------------------------


def settings(**webhook: Any) -> DialpadSettings:
    return DialpadSettings.model_validate({"api_key": API_KEY, "webhook": webhook})


def test_events_need_a_secret_only_when_enabled() -> None:
    assert not [p for p in settings().requirements() if "webhook" in p]
    problems = [p for p in settings(enabled=True).requirements() if "webhook" in p]

    assert len(problems) == 1 and "webhook.secret" in problems[0]
    assert not [p for p in settings(enabled=True, secret=SECRET).requirements() if "webhook" in p]


def test_the_adapter_verifies_events_only_when_they_are_enabled() -> None:
    assert DialpadProvider(settings(secret=SECRET)).webhook_verifier() is None
    verifier = DialpadProvider(settings(enabled=True, secret=SECRET)).webhook_verifier()

    assert verifier is not None
    assert isinstance(verifier.verify(request(token(payload()))), Verified)


# -- the simulator and the subscription API over real HTTP -----------------------------------


@pytest.fixture
def servers() -> Iterator[DialpadServers]:
    with DialpadServers(API_KEY, page_size=5) as running:
        running.state.retry_sleep = lambda _seconds: None
        yield running


def subscriptions(
    servers: DialpadServers, secret: str | None = SECRET, **overrides: Any
) -> DialpadSubscriptions:
    values: dict[str, Any] = {
        "base_url": servers.url,
        "api_key": API_KEY,
        "download_hosts": [servers.media_host],
        "webhook": {"secret": secret} if secret is not None else {},
        **overrides,
    }
    adapter = DialpadProvider(
        DialpadSettings.model_validate(values),
        retry=RetryPolicy(max_tries=2, base_delay=0.0, max_delay=1.0, sleep=lambda _s: None),
    )
    subs = adapter.webhook_subscriptions()
    assert isinstance(subs, DialpadSubscriptions)
    return subs


def sent(servers: DialpadServers, method: str, path: str) -> list[dict[str, str]]:
    return [h for m, p, _, h in servers.state.requests if m == method and p.startswith(path)]


def add_recorded_call(servers: DialpadServers) -> str:
    started = datetime.now(UTC) - timedelta(minutes=4)
    servers.state.add_call(
        call_proto(CALL_ID, started, recordings=[recording_detail("rec-1", started)])
    )
    return str(CALL_ID)


def test_subscribe_creates_a_signed_webhook_and_a_company_call_subscription(
    servers: DialpadServers,
) -> None:
    made = subscriptions(servers).subscribe(HOOK)

    (webhook,) = servers.state.webhooks.values()
    (subscription,) = servers.state.subscriptions.values()
    assert webhook["hook_url"] == HOOK
    assert webhook["signature"] == {"algo": "HS256", "secret": SECRET, "type": "jwt"}
    assert subscription["endpoint_id"] == webhook["id"]
    assert subscription["call_states"] == ["hangup", "recording"]
    assert subscription["enabled"] is True and "target_id" not in subscription
    assert made.state is SubscriptionState.ACTIVE
    assert (made.url, made.vendor_id) == (HOOK, subscription["id"])
    assert SECRET not in repr(made)
    # The API key, as the adapter sends it, on every request.
    assert all(
        h.get("Authorization") == f"Bearer {API_KEY}" for _, _, _, h in servers.state.requests
    )


def test_a_second_subscribe_makes_nothing_new(servers: DialpadServers) -> None:
    subscriptions(servers).subscribe(HOOK)

    again = subscriptions(servers).subscribe(HOOK + "/")

    assert len(servers.state.webhooks) == 1 and len(servers.state.subscriptions) == 1
    assert again.state is SubscriptionState.ACTIVE
    assert len(sent(servers, "POST", "/api/v2/")) == 2
    assert not sent(servers, "PATCH", "/api/v2/")


def test_webhooks_and_subscriptions_past_the_first_page_are_found(
    servers: DialpadServers,
) -> None:
    for number in range(7):
        _, hook, _ = servers.state.create_webhook(
            {"hook_url": f"https://other.example.com/{number}"}
        )
        servers.state.create_subscription({"endpoint_id": hook["id"], "call_states": ["ringing"]})
    subscriptions(servers).subscribe(HOOK)

    subscriptions(servers).subscribe(HOOK)

    assert len(servers.state.webhooks) == 8 and len(servers.state.subscriptions) == 8
    assert subscriptions(servers).status(HOOK).state is SubscriptionState.ACTIVE


def test_a_disabled_subscription_is_reported_and_re_enabled(servers: DialpadServers) -> None:
    made = subscriptions(servers).subscribe(HOOK)
    assert made.vendor_id is not None
    servers.state.disable_subscription(made.vendor_id)

    reported = subscriptions(servers).status(HOOK)
    again = subscriptions(servers).subscribe(HOOK)

    assert reported.state is SubscriptionState.DEACTIVATED
    assert "re-enables" in reported.detail
    assert again.state is SubscriptionState.ACTIVE
    assert servers.state.subscriptions[made.vendor_id]["enabled"] is True
    assert len(servers.state.subscriptions) == 1


def test_a_webhook_without_our_secret_gets_it(servers: DialpadServers) -> None:
    _, hook, _ = servers.state.create_webhook({"hook_url": HOOK})
    servers.state.create_subscription({"endpoint_id": hook["id"], "call_states": ["hangup"]})
    assert "no secret" in subscriptions(servers).status(HOOK).detail

    subscriptions(servers).subscribe(HOOK)

    (webhook,) = servers.state.webhooks.values()
    assert webhook["signature"]["secret"] == SECRET
    assert len(sent(servers, "PATCH", "/api/v2/webhooks/")) == 1
    # Its subscription gained the recording state rather than a twin subscription.
    (subscription,) = servers.state.subscriptions.values()
    assert subscription["call_states"] == ["hangup", "recording"]


def test_status_maps_every_state(servers: DialpadServers) -> None:
    assert subscriptions(servers).status(HOOK).state is SubscriptionState.MISSING
    servers.state.create_webhook({"hook_url": HOOK, "secret": SECRET})
    only_webhook = subscriptions(servers).status(HOOK)
    assert only_webhook.state is SubscriptionState.MISSING
    assert "no call event subscription" in only_webhook.detail

    made = subscriptions(servers).subscribe(HOOK)
    assert subscriptions(servers).status(None).state is SubscriptionState.ACTIVE
    assert made.vendor_id is not None
    servers.state.disable_subscription(made.vendor_id)
    assert subscriptions(servers).status(None).state is SubscriptionState.DEACTIVATED
    assert not subscriptions(servers).renew_due(made, datetime.now(UTC) + timedelta(days=3650))
    assert subscriptions(servers).console_steps(HOOK) is None


def test_subscribe_refuses_without_a_secret(servers: DialpadServers) -> None:
    with pytest.raises(PermanentProviderError, match=r"webhook\.secret"):
        subscriptions(servers, secret=None).subscribe(HOOK)
    assert not servers.state.webhooks


def test_a_refused_api_key_is_an_auth_error(servers: DialpadServers) -> None:
    with pytest.raises(ProviderAuthError):
        subscriptions(servers, api_key="revoked").subscribe(HOOK)


def test_the_simulator_refuses_what_the_spec_does(servers: DialpadServers) -> None:
    state = servers.state
    assert state.create_webhook({"secret": SECRET})[0] == 400
    assert state.create_subscription({"call_states": ["hangup"]})[0] == 400
    assert state.create_subscription({"endpoint_id": 1, "call_states": ["hangup"]})[0] == 404
    _, hook, _ = state.create_webhook({"hook_url": HOOK})
    bad_state = {"endpoint_id": hook["id"], "call_states": ["ended"]}
    assert state.create_subscription(bad_state)[0] == 400
    # Without a secret the webhook shows no signature: its events would come as plain JSON.
    assert "signature" not in hook


def test_the_simulator_s_announced_events_verify_end_to_end(servers: DialpadServers) -> None:
    call_id = add_recorded_call(servers)
    verifier = DialpadWebhookVerifier(SecretStr(SECRET), max_age_seconds=300)
    with serve_verifier(Endpoint(verifier)) as receiver:
        subscriptions(servers).subscribe(receiver.url)

        statuses = servers.state.announce(call_id)

    assert statuses == [200, 200]
    assert servers.state.events_sent == [("hangup", 200), ("recording", 200)]
    assert [(o.event, o.call_ids, o.nudge) for o in receiver.outcomes] == [  # type: ignore[union-attr]
        ("hangup", (call_id,), True),
        ("recording", (call_id,), True),
    ]


def test_events_given_by_hand_lost_or_unsigned(servers: DialpadServers) -> None:
    call_id = add_recorded_call(servers)
    verifier = DialpadWebhookVerifier(SecretStr(SECRET), max_age_seconds=300)
    with serve_verifier(Endpoint(verifier)) as receiver:
        servers.state.send_events_to(receiver.url, SECRET)
        assert servers.state.announce(call_id) == [200, 200]

        servers.state.drop_events = True
        assert servers.state.announce(call_id) == []
        servers.state.drop_events = False

        # A webhook without a secret: Dialpad sends plain JSON, which proves nothing.
        servers.state.send_events_to(receiver.url, None)
        assert servers.state.announce(call_id) == [401, 401]

    assert receiver.outcomes[-2:] == [Refused("no_signature"), Refused("no_signature")]


def test_a_5xx_is_retried_three_times_and_a_4xx_never(servers: DialpadServers) -> None:
    call_id = add_recorded_call(servers)
    waits: list[float] = []
    servers.state.retry_sleep = waits.append
    # A receiver that is not there is retried like a 5xx.
    servers.state.send_events_to("http://127.0.0.1:9/webhooks/dialpad", SECRET)

    assert servers.state.announce(call_id) == [0, 0]
    assert waits == [2.0, 4.0, 8.0, 2.0, 4.0, 8.0]
    assert len(servers.state.events_sent) == 8


def test_the_signed_event_is_one_delivery_for_the_replay_guard(servers: DialpadServers) -> None:
    call_id = add_recorded_call(servers)
    servers.state.send_events_to("http://127.0.0.1:9/unused", SECRET)
    headers, body = servers.state.signed_event(call_id)
    verifier = DialpadWebhookVerifier(SecretStr(SECRET), max_age_seconds=300)
    now = datetime.now(UTC)

    first, again = verifier.verify(request(body, at=now)), verifier.verify(request(body, at=now))

    assert headers["Content-Type"] == "application/jwt"
    assert isinstance(first, Verified) and isinstance(again, Verified)
    assert first.replay_key == again.replay_key == body.decode().rsplit(".", 1)[1]


def test_a_naive_arrival_time_is_read_as_utc() -> None:
    recent = token(payload(iat=int(NOW.timestamp())))

    assert isinstance(verify(recent, at=NOW.replace(tzinfo=None)), Verified)
