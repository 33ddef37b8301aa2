"""Aircall's webhook events (the token in the body, the timestamp window) and its webhook API,
against the Aircall simulator over real HTTP.

Aircall publishes no signature test vector (it signs nothing: the proof is the webhook's token
in the body), and it has no handshake, so neither is tested here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.aircall import AircallProvider, AircallSettings
from poller.adapters.webhooks.aircall import AircallSubscriptions, AircallWebhookVerifier
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, RecordPosition
from poller.ports.webhooks import Refused, SubscriptionState, Verified, WebhookRequest
from poller.simulators.aircall_server import AircallSimulator, aircall_call
from tests.verifier_server import Endpoint, serve_verifier

API_ID = "aircall-api-id"
API_TOKEN = "aircall-api-token-0001"
TOKEN = "45c2ab7c1c9e4b0f8a3d6e5f7a8b9c0d"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
AUDIO = b"ID3" + b"\x00" * 64


def event(
    name: str = "call.ended",
    *,
    token: Any = TOKEN,
    at: datetime = NOW,
    call_id: Any = 812345678,
    **extra: Any,
) -> bytes:
    body: dict[str, Any] = {
        "resource": "call",
        "event": name,
        "timestamp": int(at.timestamp()),
        "token": token,
        "data": {**aircall_call(call_id, at - timedelta(minutes=4)), "id": call_id},
        **extra,
    }
    if token is None:
        del body["token"]
    return json.dumps(body).encode()


def request(body: bytes, *, at: datetime = NOW) -> WebhookRequest:
    return WebhookRequest(
        method="POST",
        path="/webhooks/aircall",
        query="",
        headers={"content-type": "application/json"},
        body=body,
        source="127.0.0.1",
        received_at=at,
    )


def verify(body: bytes, *, at: datetime = NOW, max_age: float = 300.0) -> Verified | Refused:
    verifier = AircallWebhookVerifier(SecretStr(TOKEN), max_age_seconds=max_age)
    return verifier.verify(request(body, at=at))


# -- the verifier ---------------------------------------------------------------------------


def test_a_call_ended_event_with_the_token_is_verified_and_names_the_call() -> None:
    outcome = verify(event())

    assert outcome == Verified(
        event="call.ended",
        call_ids=("812345678",),
        nudge=True,
        replay_key=f"call.ended:812345678:{int(NOW.timestamp())}",
    )


def test_the_call_id_is_the_one_the_adapter_keys_the_call_by() -> None:
    call = aircall_call(812345678, NOW - timedelta(minutes=4))
    adapter = AircallProvider(
        AircallSettings.model_validate({"api_id": API_ID, "api_token": API_TOKEN})
    )
    record = adapter.map_record(
        call, RecordPosition(Window(NOW - timedelta(hours=1), NOW), page=1, index=0)
    )

    outcome = verify(event(call_id=call["id"]))

    assert isinstance(outcome, Verified)
    assert outcome.call_ids == (record.provider_call_id,)


def test_hang_up_nudges_too_and_other_events_are_verified_without_a_nudge() -> None:
    hungup, created = verify(event("call.hungup")), verify(event("call.created"))

    assert isinstance(hungup, Verified) and hungup.nudge
    assert isinstance(created, Verified) and not created.nudge
    # Each delivery is its own: the same call's two events are not one replay.
    assert hungup.replay_key != verify(event()).replay_key  # type: ignore[union-attr]


def test_a_non_call_event_names_no_call() -> None:
    body = json.dumps(
        {"resource": "user", "event": "user.connected", "timestamp": int(NOW.timestamp()),
         "token": TOKEN, "data": {"id": 42}}
    ).encode()  # fmt: skip

    outcome = verify(body)

    assert isinstance(outcome, Verified)
    assert (outcome.call_ids, outcome.nudge) == ((), False)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (event(token=None), "no_signature"),
        (event(token=""), "no_signature"),
        (event(token=12345), "no_signature"),
        (event(token="0" * len(TOKEN)), "bad_signature"),
        (event(token=TOKEN + "x"), "bad_signature"),
        (event(at=NOW - timedelta(seconds=301)), "stale"),
        (event(at=NOW + timedelta(seconds=301)), "stale"),
        (b"not json", "malformed"),
        (b"[1, 2]", "malformed"),
        (b"\xff\xfe", "malformed"),
        (event(timestamp="yesterday"), "malformed"),
        (event(timestamp=True), "malformed"),
        (event(timestamp=10**30), "malformed"),
        (event(event=None), "malformed"),
    ],
    ids=[
        "no token", "empty token", "token not text", "wrong token", "token with more",
        "too old", "from the future", "not JSON", "not an object", "not text",
        "timestamp not a number", "timestamp a boolean", "timestamp out of range",
        "no event name",
    ],
)  # fmt: skip
def test_each_refusal_has_its_reason(body: bytes, reason: str) -> None:
    assert verify(body) == Refused(reason)


@given(
    st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["resource", "event", "timestamp", "token", "data", "id"]),
                    inner,
                    max_size=6,
                )
            ),
            max_leaves=12,
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_no_body_makes_the_verifier_raise(body: bytes) -> None:
    assert isinstance(verify(body), Verified | Refused)


def test_a_body_rewritten_around_a_stolen_token_is_only_a_nudge() -> None:
    # Aircall signs nothing: whoever holds the token can write any body. The event can then do
    # no more than any verified one: ask for an early poll, whose listing is the only data.
    forged = event(call_id=999, event="call.ended", data={"id": 999, "recording": "evil"})

    outcome = verify(forged)

    assert isinstance(outcome, Verified) and outcome.call_ids == ("999",)


def test_the_window_follows_the_setting() -> None:
    late = event(at=NOW - timedelta(seconds=90))

    assert verify(late, max_age=60) == Refused("stale")
    assert isinstance(verify(late, max_age=120), Verified)


# -- the settings and the adapter's hooks --------------------------------------------------


def settings(**webhook: Any) -> AircallSettings:
    return AircallSettings.model_validate(
        {"api_id": API_ID, "api_token": API_TOKEN, "webhook": webhook}
    )


def test_events_need_the_webhook_token_only_when_enabled() -> None:
    assert not [p for p in settings(enabled=False).requirements() if "webhook" in p]
    problems = [p for p in settings(enabled=True).requirements() if "webhook" in p]

    assert len(problems) == 1
    assert "webhook.secret" in problems[0] and "required" in problems[0]
    assert not [p for p in settings(enabled=True, secret=TOKEN).requirements() if "webhook" in p]


def test_the_adapter_verifies_events_only_when_they_are_enabled() -> None:
    assert AircallProvider(settings(secret=TOKEN)).webhook_verifier() is None
    verifier = AircallProvider(
        settings(enabled=True, secret=TOKEN, max_event_age_seconds=60)
    ).webhook_verifier()

    assert verifier is not None
    assert isinstance(verifier.verify(request(event())), Verified)
    assert verifier.verify(request(event(at=NOW - timedelta(seconds=61)))) == Refused("stale")


# -- the simulator and the webhook API over real HTTP ----------------------------------------


@pytest.fixture
def sim() -> Iterator[AircallSimulator]:
    with AircallSimulator(API_ID, API_TOKEN) as simulator:
        yield simulator


def provider(sim: AircallSimulator, **overrides: Any) -> AircallProvider:
    values: dict[str, Any] = {
        "base_url": sim.url,
        "api_id": API_ID,
        "api_token": API_TOKEN,
        "download_hosts": [sim.media_host],
        **overrides,
    }
    return AircallProvider(
        AircallSettings.model_validate(values),
        retry=RetryPolicy(max_tries=2, base_delay=0.0, max_delay=1.0, sleep=lambda _s: None),
    )


def subscriptions(sim: AircallSimulator, **overrides: Any) -> AircallSubscriptions:
    subs = provider(sim, **overrides).webhook_subscriptions()
    assert isinstance(subs, AircallSubscriptions)
    return subs


def add_ended_call(sim: AircallSimulator, call_id: int = 812345678) -> str:
    sim.api.add_call(
        aircall_call(call_id, datetime.now(UTC) - timedelta(minutes=4)), recording=AUDIO
    )
    return str(call_id)


def webhook_requests(sim: AircallSimulator, method: str) -> list[dict[str, Any]]:
    return [
        r for r in sim.api.requests
        if r.get("method", "GET") == method and r["path"].startswith("/v1/webhooks")
    ]  # fmt: skip


def test_subscribe_creates_one_webhook_for_the_call_end_events_only(sim: AircallSimulator) -> None:
    subs = subscriptions(sim)

    made = subs.subscribe("https://hooks.example.com/webhooks/aircall")

    assert made.state is SubscriptionState.ACTIVE
    assert made.url == "https://hooks.example.com/webhooks/aircall"
    (hook,) = sim.api.webhooks.values()
    assert made.vendor_id == hook["webhook_id"]
    (post,) = webhook_requests(sim, "POST")
    # Never Aircall's default of every event: exactly the two that nudge.
    assert json.loads(post["body"]) == {
        "custom_name": "siro-poller",
        "url": "https://hooks.example.com/webhooks/aircall",
        "events": ["call.hungup", "call.ended"],
    }
    token = subs.created_token()
    assert token is not None and token.get_secret_value() == hook["token"]
    # The token is for the operator's terminal, never the status line.
    assert hook["token"] not in repr(made)


def test_a_second_subscribe_finds_the_webhook_and_makes_no_other(sim: AircallSimulator) -> None:
    subscriptions(sim).subscribe("https://hooks.example.com/webhooks/aircall")
    again = subscriptions(sim)

    found = again.subscribe("https://hooks.example.com/webhooks/aircall/")

    assert len(sim.api.webhooks) == 1
    assert found.state is SubscriptionState.ACTIVE
    assert len(webhook_requests(sim, "POST")) == 1 and not webhook_requests(sim, "PUT")
    assert again.created_token() is not None


def test_a_webhook_past_the_first_page_is_found(sim: AircallSimulator) -> None:
    for number in range(54):
        sim.api.create_webhook(
            {"url": f"https://other.example.com/{number}", "events": ["call.created"]}
        )
    subscriptions(sim).subscribe("https://hooks.example.com/webhooks/aircall")
    for number in range(54, 60):
        sim.api.create_webhook(
            {"url": f"https://other.example.com/{number}", "events": ["call.created"]}
        )

    status = subscriptions(sim).status("https://hooks.example.com/webhooks/aircall")

    assert status.state is SubscriptionState.ACTIVE
    subscriptions(sim).subscribe("https://hooks.example.com/webhooks/aircall")
    assert len(sim.api.webhooks) == 61


def test_a_deactivated_webhook_is_reported_and_re_enabled_by_subscribe(
    sim: AircallSimulator,
) -> None:
    url = "https://hooks.example.com/webhooks/aircall"
    made = subscriptions(sim).subscribe(url)
    assert made.vendor_id is not None
    sim.api.deactivate(made.vendor_id)

    reported = subscriptions(sim).status(url)
    again = subscriptions(sim).subscribe(url)

    assert reported.state is SubscriptionState.DEACTIVATED
    assert "re-enables" in reported.detail
    assert again.state is SubscriptionState.ACTIVE
    assert sim.api.webhooks[made.vendor_id]["active"] is True
    (put,) = webhook_requests(sim, "PUT")
    assert json.loads(put["body"])["active"] is True
    assert subscriptions(sim).status(url).state is SubscriptionState.ACTIVE


def test_a_webhook_without_the_call_end_events_gets_them(sim: AircallSimulator) -> None:
    url = "https://hooks.example.com/webhooks/aircall"
    sim.api.create_webhook({"url": url, "events": ["call.created"]})

    subscriptions(sim).subscribe(url)

    (hook,) = sim.api.webhooks.values()
    assert hook["events"] == ["call.created", "call.hungup", "call.ended"]


def test_status_maps_every_state(sim: AircallSimulator) -> None:
    url = "https://hooks.example.com/webhooks/aircall"
    assert subscriptions(sim).status(url).state is SubscriptionState.MISSING
    assert subscriptions(sim).status(None).state is SubscriptionState.MISSING

    made = subscriptions(sim).subscribe(url)
    assert subscriptions(sim).status(None).state is SubscriptionState.ACTIVE
    assert made.vendor_id is not None
    sim.api.deactivate(made.vendor_id)
    assert subscriptions(sim).status(None).state is SubscriptionState.DEACTIVATED
    assert not subscriptions(sim).renew_due(made, datetime.now(UTC) + timedelta(days=3650))
    assert subscriptions(sim).console_steps(url) is None


def test_a_refused_api_key_is_an_auth_error(sim: AircallSimulator) -> None:
    with pytest.raises(ProviderAuthError):
        subscriptions(sim, api_token="revoked").subscribe("https://hooks.example.com/a")
    assert not sim.api.webhooks


def test_the_simulator_s_announced_events_verify_end_to_end(sim: AircallSimulator) -> None:
    call_id = add_ended_call(sim)
    placeholder = AircallWebhookVerifier(SecretStr("unset"), max_age_seconds=300)
    with serve_verifier(Endpoint(placeholder)) as receiver:
        subs = subscriptions(sim)
        subs.subscribe(receiver.url)
        token = subs.created_token()
        assert token is not None
        receiver.verifier = AircallWebhookVerifier(token, max_age_seconds=300)

        statuses = sim.api.announce(call_id)

    assert statuses == [200, 200]
    assert sim.api.events_sent == [("call.hungup", 200), ("call.ended", 200)]
    assert [(o.event, o.call_ids, o.nudge) for o in receiver.outcomes] == [  # type: ignore[union-attr]
        ("call.hungup", (call_id,), True),
        ("call.ended", (call_id,), True),
    ]


def test_events_to_an_address_given_by_hand_carry_its_token(sim: AircallSimulator) -> None:
    call_id = add_ended_call(sim)
    verifier = AircallWebhookVerifier(SecretStr(TOKEN), max_age_seconds=300)
    with serve_verifier(Endpoint(verifier)) as receiver:
        sim.api.send_events_to(receiver.url, TOKEN)
        assert sim.api.announce(call_id) == [200, 200]

        sim.api.drop_events = True
        assert sim.api.announce(call_id) == []
        sim.api.drop_events = False

        sim.api.send_events_to(receiver.url, "not-the-token")
        assert sim.api.announce(call_id) == [401, 401]

    assert [o for o in receiver.outcomes if isinstance(o, Refused)] == [
        Refused("bad_signature"),
        Refused("bad_signature"),
    ]


def test_a_signed_event_replayed_or_stripped_is_told_apart(sim: AircallSimulator) -> None:
    call_id = add_ended_call(sim)
    sim.api.send_events_to("http://127.0.0.1:9/unused", TOKEN)
    headers, body = sim.api.signed_event(call_id)
    verifier = AircallWebhookVerifier(SecretStr(TOKEN), max_age_seconds=300)
    now = datetime.now(UTC)

    first = verifier.verify(request(body, at=now))
    again = verifier.verify(request(body, at=now + timedelta(seconds=1)))
    stripped = json.loads(body)
    del stripped["token"]

    assert headers["Content-Type"] == "application/json"
    assert isinstance(first, Verified) and isinstance(again, Verified)
    # The same delivery twice has one replay key: the receiver's guard refuses the second.
    assert first.replay_key == again.replay_key
    assert verifier.verify(request(json.dumps(stripped).encode(), at=now)) == Refused(
        "no_signature"
    )


def test_aircall_deactivates_a_webhook_that_keeps_failing_when_told_to(
    sim: AircallSimulator,
) -> None:
    call_id = add_ended_call(sim)
    sim.api.deactivate_after_failures = 2
    refusing = AircallWebhookVerifier(SecretStr("another token"), max_age_seconds=300)
    with serve_verifier(Endpoint(refusing)) as receiver:
        made = subscriptions(sim).subscribe(receiver.url)
        assert sim.api.announce(call_id) == [401, 401]
        assert sim.api.announce(call_id) == []

    assert subscriptions(sim).status(made.url).state is SubscriptionState.DEACTIVATED


def test_the_simulator_refuses_what_aircall_does(sim: AircallSimulator) -> None:
    api = sim.api
    assert api.create_webhook({"events": ["call.ended"]})[0] == 400
    assert (
        api.create_webhook({"url": "https://a.example.com", "events": ["call.exploded"]})[0] == 400
    )
    # Without an events list Aircall subscribes the webhook to every event it has.
    status, made = api.create_webhook({"url": "https://a.example.com"})
    assert status == 201 and len(made["webhook"]["events"]) > 2
    assert api.update_webhook("no-such-id", {"active": True})[0] == 404
    for number in range(99):
        api.create_webhook({"url": f"https://b.example.com/{number}", "events": ["call.ended"]})
    assert api.create_webhook({"url": "https://c.example.com", "events": ["call.ended"]})[0] == 400


def test_a_naive_arrival_time_is_read_as_utc() -> None:
    assert isinstance(verify(event(), at=NOW.replace(tzinfo=None)), Verified)
