"""RingCentral's webhooks: the verifier on its own, then the simulator's events and Subscription
API against it over real HTTP on 127.0.0.1.

RingCentral signs nothing (no HMAC), so there is no published signature vector to check: an
event proves itself only by the optional verification token echoed in a header.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from poller.adapters.providers.ringcentral import RingCentralProvider, RingCentralSettings
from poller.adapters.webhooks.ringcentral import (
    EVENT_FILTER,
    WEBHOOK_MAX_LIFETIME_SECONDS,
    RingCentralSubscriptions,
    RingCentralVerifier,
)
from poller.ports.provider import ProviderError
from poller.ports.webhooks import (
    Refused,
    Subscription,
    SubscriptionState,
    Verified,
    WebhookRequest,
    WebhookVerifier,
)
from poller.simulators.http_server import LocalHTTPServer, QuietHandler
from poller.simulators.ringcentral_server import (
    RingCentralState,
    call_record,
    iso,
    recording_of,
    serve,
)
from tests.provider_contract import T0, WINDOW, call_ids, listed

TOKEN = "rc-verification-token-5f1c"
NOW = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
REP = (400643091008, "101", "+16505550101")
UNLIMITED = {group: (10_000, 60, 60) for group in ("Heavy", "Medium", "Light", "Auth")}


def verifier(token: str | None = TOKEN, max_age: float = 300.0) -> RingCentralVerifier:
    return RingCentralVerifier(
        SecretStr(token) if token is not None else None, timedelta(seconds=max_age)
    )


def request(
    body: bytes | dict[str, Any],
    headers: dict[str, str] | None = None,
    *,
    at: datetime = NOW,
) -> WebhookRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return WebhookRequest(
        method="POST",
        path="/webhooks/ringcentral",
        query="",
        headers={name.lower(): value for name, value in (headers or {}).items()},
        body=raw,
        source="127.0.0.1",
        received_at=at,
    )


def event(
    *,
    recordings: tuple[str, ...] = ("2233445566",),
    code: str = "Disconnected",
    at: datetime = NOW,
    uuid: str = "5592845733081229782",
    name: str = "/restapi/v1.0/account/874494005/telephony/sessions",
) -> dict[str, Any]:
    """Shaped as RingCentral documents a telephony session notification."""
    rep: dict[str, Any] = {
        "accountId": "874494005",
        "extensionId": "430213004",
        "id": "p-a1d145704da1cz18e387e5223z8af60000-2",
        "direction": "Inbound",
        "to": {"phoneNumber": "+16502420039", "name": "Alice Rep", "extensionId": "430213004"},
        "from": {"phoneNumber": "+12035362278"},
        "status": {"code": code},
        "missedCall": False,
        "standAlone": False,
        "muted": False,
    }
    if recordings:
        rep["recordings"] = [{"id": found, "active": False} for found in recordings]
    return {
        "uuid": uuid,
        "event": name,
        "timestamp": iso(at),
        "subscriptionId": "b40a2d60-bde5-41cf-b372-848aadeae59d",
        "ownerId": "874494005",
        "body": {
            "sequence": 8,
            "sessionId": "19781210005",
            "telephonySessionId": "s-a1d145704da1cz18e387e5223z8af60000",
            "serverId": "10.29.20.87.TAM",
            "eventTime": iso(at),
            "parties": [rep],
            "origin": {"type": "Call"},
        },
    }


SIGNED = {"Verification-Token": TOKEN}


# -- the verifier ---------------------------------------------------------------------------


def test_a_disconnected_call_with_a_recording_nudges_with_the_recording_id() -> None:
    verified = verifier().verify(request(event(recordings=("111", "222", "111")), SIGNED))
    assert isinstance(verified, Verified)
    # The adapter keys one call per recording, by the recording id.
    assert verified.call_ids == ("111", "222")
    assert verified.nudge is True
    assert verified.replay_key == "5592845733081229782"
    assert verified.event == "/restapi/v1.0/account/874494005/telephony/sessions"


def test_an_event_without_recordings_names_the_session() -> None:
    verified = verifier().verify(request(event(recordings=()), SIGNED))
    assert isinstance(verified, Verified)
    assert verified.call_ids == ("s-a1d145704da1cz18e387e5223z8af60000",)


def test_a_call_that_has_not_ended_asks_for_no_poll() -> None:
    verified = verifier().verify(request(event(code="Answered"), SIGNED))
    assert isinstance(verified, Verified) and verified.nudge is False


def test_another_filters_event_asks_for_no_poll() -> None:
    reminder = event(name="/restapi/v1.0/subscription/~?threshold=86400&interval=3600")
    verified = verifier().verify(request(reminder, SIGNED))
    assert isinstance(verified, Verified) and verified.nudge is False


def test_the_extension_level_filter_counts_too() -> None:
    name = "/restapi/v1.0/account/874494005/extension/430213004/telephony/sessions"
    verified = verifier().verify(request(event(name=name), SIGNED))
    assert isinstance(verified, Verified) and verified.nudge is True


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "no_signature"),
        ({"Verification-Token": "not-the-token"}, "bad_signature"),
        ({"Verification-Token": TOKEN + "x"}, "bad_signature"),
        ({"Verification-Token": ""}, "bad_signature"),
    ],
)
def test_a_missing_or_wrong_token_is_refused(headers: dict[str, str], reason: str) -> None:
    assert verifier().verify(request(event(), headers)) == Refused(reason)


@pytest.mark.parametrize("offset", [timedelta(minutes=-6), timedelta(minutes=6)])
def test_an_event_sent_too_long_before_or_after_now_is_stale(offset: timedelta) -> None:
    assert verifier().verify(request(event(at=NOW + offset), SIGNED)) == Refused("stale")


def test_the_age_window_is_the_configured_one() -> None:
    old = request(event(at=NOW - timedelta(minutes=20)), SIGNED)
    assert isinstance(verifier(max_age=3600).verify(old), Verified)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"",
        json.dumps({k: v for k, v in event().items() if k != "uuid"}).encode(),
        json.dumps({**event(), "timestamp": "yesterday"}).encode(),
        json.dumps({**event(), "timestamp": "2026-03-02T11:00:00"}).encode(),  # no zone
        json.dumps({**event(), "body": "nothing"}).encode(),
        json.dumps({**event(), "event": 7}).encode(),
        b"[" * 100_000,
    ],
)
def test_a_malformed_body_is_refused(body: bytes) -> None:
    assert verifier().verify(request(body, SIGNED)) == Refused("malformed")


def test_a_tampered_body_with_the_right_token_can_only_cause_a_poll() -> None:
    # RingCentral signs no body, so the token is the whole proof: a changed body that keeps its
    # shape passes, and what it names is only ever compared with what the polls list.
    tampered = event(recordings=("forged-recording",))
    verified = verifier().verify(request(tampered, SIGNED))
    assert isinstance(verified, Verified)
    assert verified.call_ids == ("forged-recording",)


def test_without_a_token_configured_events_are_checked_by_shape_alone() -> None:
    open_verifier = verifier(token=None)
    assert isinstance(open_verifier.verify(request(event())), Verified)
    assert open_verifier.verify(request(b"{}")) == Refused("malformed")
    assert open_verifier.verify(request(event(at=NOW - timedelta(hours=1)))) == Refused("stale")


def test_the_creation_handshake_echoes_validation_token_without_a_verification_token() -> None:
    verified = verifier().verify(request(b"", {"Validation-Token": "0f3c8a0e-9c1b-4d3e"}))
    assert isinstance(verified, Verified)
    assert verified.nudge is False
    assert verified.replay_key is None
    assert verified.reply.status == 200
    assert verified.reply.headers == (("Validation-Token", "0f3c8a0e-9c1b-4d3e"),)
    assert len(verified.reply.body) <= 1024


@pytest.mark.parametrize("token", ["a" * 257, "two words", "line\r\nSet-Cookie: x=1", ""])
def test_a_handshake_token_that_cannot_be_echoed_safely_is_refused(token: str) -> None:
    assert verifier().verify(request(b"", {"Validation-Token": token})) == Refused("malformed")


# -- the adapter's hooks --------------------------------------------------------------------


def settings(api: RingCentralState, **webhook: Any) -> RingCentralSettings:
    return RingCentralSettings.model_validate(
        {
            "kind": "ringcentral",
            "base_url": api.base_url or "https://platform.ringcentral.com",
            "media_base_url": api.media_url or "https://media.ringcentral.com",
            "client_id": api.client_id,
            "client_secret": api.client_secret,
            "jwt": api.jwt,
            "webhook": webhook,
        }
    )


def test_the_hooks_are_off_until_webhooks_are_enabled() -> None:
    provider = RingCentralProvider(settings(RingCentralState()))
    assert provider.webhook_verifier() is None
    assert provider.webhook_subscriptions() is None


def test_an_unset_token_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    provider = RingCentralProvider(settings(RingCentralState(), enabled=True))
    with caplog.at_level(logging.WARNING):
        first = provider.webhook_verifier()
        second = provider.webhook_verifier()
    assert first is second is not None
    warnings = [r for r in caplog.records if "verification token" in r.getMessage()]
    assert len(warnings) == 1
    assert "anyone" in warnings[0].getMessage()


def test_a_set_token_is_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    provider = RingCentralProvider(settings(RingCentralState(), enabled=True, secret=TOKEN))
    with caplog.at_level(logging.DEBUG):
        built = provider.webhook_verifier()
        assert built is not None
        built.verify(request(event(), {"Verification-Token": "wrong"}))
    assert TOKEN not in caplog.text
    assert isinstance(provider.webhook_subscriptions(), RingCentralSubscriptions)


# -- over real HTTP -------------------------------------------------------------------------


@dataclass
class Receiver:
    """A tiny receiver on 127.0.0.1 running a verifier: 401 for a refusal, else its reply."""

    verifier: WebhookVerifier | None
    url: str = ""
    verified: list[Verified] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _ReceiverHandler(QuietHandler):
    def do_POST(self) -> None:
        receiver: Receiver = self.server.state  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if receiver.verifier is None:  # an address that does not know the handshake
            self._answer(200, b"ok", ())
            return
        outcome = receiver.verifier.verify(
            WebhookRequest(
                method="POST",
                path=self.path,
                query="",
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                source=self.client_address[0],
                received_at=datetime.now(UTC),
            )
        )
        with receiver.lock:
            if isinstance(outcome, Refused):
                receiver.refused.append(outcome.reason)
            else:
                receiver.verified.append(outcome)
        if isinstance(outcome, Refused):
            self._answer(401, b"", ())
        else:
            self._answer(outcome.reply.status, outcome.reply.body, outcome.reply.headers)

    def _answer(self, status: int, body: bytes, headers: tuple[tuple[str, str], ...]) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def api() -> Iterator[RingCentralState]:
    with serve(RingCentralState(groups=dict(UNLIMITED))) as state:
        state.add_extension(REP[0], REP[1], "Alice Rep", "alice@example.com")
        yield state


def receiving(token: str | None = TOKEN, *, knows_handshake: bool = True) -> LocalHTTPServer:
    built = verifier(token) if knows_handshake else None
    return LocalHTTPServer(_ReceiverHandler, Receiver(built))


def receiver_of(server: LocalHTTPServer) -> Receiver:
    receiver: Receiver = server._server.state  # type: ignore[attr-defined]
    receiver.url = server.url + "/webhooks/ringcentral"
    return receiver


def add_call(api: RingCentralState, recording_id: str, at: datetime = T0) -> dict[str, Any]:
    api.add_media(recording_id, b"ID3audio")
    return api.add_record(
        call_record(
            f"rec-{recording_id}",
            at + timedelta(minutes=5),
            session=f"s-{recording_id}",
            rep=REP,
            recording=recording_of(api, recording_id),
        )
    )


def test_announce_is_verified_end_to_end_with_the_ids_the_poll_lists(
    api: RingCentralState,
) -> None:
    add_call(api, "9001")
    provider = RingCentralProvider(settings(api, enabled=True, secret=TOKEN))
    with receiving() as server:
        receiver = receiver_of(server)
        api.send_events_to(receiver.url, TOKEN)
        assert api.announce("rec-9001") == [200]
    assert [name for name, _ in api.events_sent] == [
        "/restapi/v1.0/account/400643090008/telephony/sessions"
    ]
    (verified,) = receiver.verified
    assert verified.nudge is True
    assert list(verified.call_ids) == call_ids(listed(provider, WINDOW)) == ["9001"]


def test_announce_without_the_token_is_refused(api: RingCentralState) -> None:
    add_call(api, "9002")
    with receiving() as server:
        receiver = receiver_of(server)
        api.send_events_to(receiver.url)
        assert api.announce("9002") == [401]
        api.send_events_to(receiver.url, "someone-elses-token")
        assert api.announce("9002") == [401]
    assert receiver.refused == ["no_signature", "bad_signature"]
    assert receiver.verified == []


def test_dropped_events_are_never_sent(api: RingCentralState) -> None:
    add_call(api, "9003")
    with receiving() as server:
        receiver = receiver_of(server)
        api.send_events_to(receiver.url, TOKEN)
        api.drop_events = True
        assert api.announce("9003") == []
    assert api.events_sent == []
    assert receiver.verified == []


def test_a_signed_event_replayed_keeps_its_replay_key(api: RingCentralState) -> None:
    add_call(api, "9004")
    headers, body = api.signed_event("9004", TOKEN)
    at = datetime.now(UTC)
    first = verifier().verify(request(body, headers, at=at))
    again = verifier().verify(request(body, headers, at=at + timedelta(seconds=30)))
    assert isinstance(first, Verified) and isinstance(again, Verified)
    assert first.replay_key == again.replay_key is not None
    # A fresh event of the same call is a new delivery.
    _, other = api.signed_event("9004", TOKEN)
    fresh = verifier().verify(request(other, headers, at=at))
    assert isinstance(fresh, Verified) and fresh.replay_key != first.replay_key


def subscriptions(api: RingCentralState, token: str | None = TOKEN) -> RingCentralSubscriptions:
    provider = RingCentralProvider(settings(api, enabled=True, secret=token))
    found = provider.webhook_subscriptions()
    assert isinstance(found, RingCentralSubscriptions)
    return found


def subscription_posts(api: RingCentralState) -> list[dict[str, Any]]:
    return [
        r for r in api.requests if r.method == "POST" and r.path == "/restapi/v1.0/subscription"
    ]


def test_subscribe_creates_after_the_handshake_and_events_follow(api: RingCentralState) -> None:
    add_call(api, "9101")
    client = subscriptions(api)
    with receiving() as server:
        receiver = receiver_of(server)
        created = client.subscribe(receiver.url)
        assert created.state is SubscriptionState.ACTIVE
        assert created.url == receiver.url and created.vendor_id in api.subscriptions
        assert created.expires_at is not None
        assert created.expires_at - datetime.now(UTC) > timedelta(days=3600)
        assert api.handshakes == [(receiver.url, 200)]
        (record,) = api.subscriptions.values()
        assert record["eventFilters"] == [EVENT_FILTER]
        assert record["expiresIn"] == WEBHOOK_MAX_LIFETIME_SECONDS
        assert api.verification_tokens[record["id"]] == TOKEN
        # The subscription's address and token are where the events go.
        assert api.announce("9101") == [200]
    assert [v.event for v in receiver.verified] == [
        "validation",
        "/restapi/v1.0/account/400643090008/telephony/sessions",
    ]
    assert [v.nudge for v in receiver.verified] == [False, True]


def test_a_second_subscribe_makes_no_second_subscription(api: RingCentralState) -> None:
    client = subscriptions(api)
    with receiving() as server:
        url = receiver_of(server).url
        first = client.subscribe(url)
        again = client.subscribe(url)
    assert again.vendor_id == first.vendor_id
    assert len(api.subscriptions) == 1
    assert len(subscription_posts(api)) == 1
    assert client.status(url).vendor_id == first.vendor_id
    assert client.status(None).vendor_id == first.vendor_id


def test_an_address_that_does_not_echo_the_token_gets_no_subscription(
    api: RingCentralState,
) -> None:
    client = subscriptions(api)
    with receiving(knows_handshake=False) as server:
        url = receiver_of(server).url
        with pytest.raises(
            ProviderError,
            match="SUB-525 WebHook server response is invalid; RingCentral could not validate",
        ):
            client.subscribe(url)
    assert api.subscriptions == {}
    assert client.status(url).state is SubscriptionState.MISSING


def test_a_blacklisted_subscription_is_reported_then_replaced(api: RingCentralState) -> None:
    add_call(api, "9102")
    client = subscriptions(api)
    with receiving() as server:
        receiver = receiver_of(server)
        old = client.subscribe(receiver.url)
        assert old.vendor_id is not None
        api.blacklist(old.vendor_id)
        reported = client.status(receiver.url)
        assert reported.state is SubscriptionState.BLACKLISTED
        assert "Read timed out" in reported.detail
        assert client.renew_due(reported, datetime.now(UTC)) is False
        # RingCentral delivers nothing to a blacklisted subscription.
        assert api.announce("9102") == []
        new = client.subscribe(receiver.url)
        assert new.state is SubscriptionState.ACTIVE
        assert new.vendor_id != old.vendor_id
        assert list(api.subscriptions) == [new.vendor_id]
        assert api.announce("9102") == [200]


def test_a_suspended_subscription_is_deactivated_and_renewed_by_subscribe(
    api: RingCentralState,
) -> None:
    client = subscriptions(api)
    with receiving() as server:
        url = receiver_of(server).url
        made = client.subscribe(url)
        assert made.vendor_id is not None
        api.suspend(made.vendor_id)
        assert client.status(url).state is SubscriptionState.DEACTIVATED
        again = client.subscribe(url)
    assert again.state is SubscriptionState.ACTIVE
    assert again.vendor_id == made.vendor_id
    assert any(r.path.endswith(f"/{made.vendor_id}/renew") for r in api.requests)


def test_a_subscription_near_its_end_is_expiring_and_renewed(api: RingCentralState) -> None:
    client = subscriptions(api)
    with receiving() as server:
        url = receiver_of(server).url
        made = client.subscribe(url)
        assert made.vendor_id is not None
        assert client.renew_due(made, datetime.now(UTC)) is False
        api.subscriptions[made.vendor_id]["expirationTime"] = iso(
            datetime.now(UTC) + timedelta(days=2)
        )
        expiring = client.status(url)
        assert expiring.state is SubscriptionState.EXPIRING
        assert client.renew_due(expiring, datetime.now(UTC)) is True
        renewed = client.subscribe(url)
    assert renewed.state is SubscriptionState.ACTIVE
    assert renewed.vendor_id == made.vendor_id
    assert renewed.expires_at is not None
    assert renewed.expires_at - datetime.now(UTC) > timedelta(days=3600)


def test_an_expired_subscription_is_missing(api: RingCentralState) -> None:
    client = subscriptions(api)
    with receiving() as server:
        url = receiver_of(server).url
        made = client.subscribe(url)
        assert made.vendor_id is not None
        api.subscriptions[made.vendor_id]["expirationTime"] = iso(
            datetime.now(UTC) - timedelta(seconds=1)
        )
        assert client.status(url).state is SubscriptionState.MISSING
        assert client.subscribe(url).state is SubscriptionState.ACTIVE


def test_a_subscription_missing_our_filter_gains_it(api: RingCentralState) -> None:
    client = subscriptions(api)
    with receiving() as server:
        url = receiver_of(server).url
        made = client.subscribe(url)
        assert made.vendor_id is not None
        other = "/restapi/v1.0/account/~/extension/~/message-store"
        api.subscriptions[made.vendor_id]["eventFilters"] = [other]
        client.subscribe(url)
    assert api.subscriptions[made.vendor_id]["eventFilters"] == [other, EVENT_FILTER]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("Active", SubscriptionState.ACTIVE),
        ("Suspended", SubscriptionState.DEACTIVATED),
        ("Blacklisted", SubscriptionState.BLACKLISTED),
        ("SomethingNew", SubscriptionState.DEACTIVATED),
    ],
)
def test_every_vendor_status_maps_to_a_state(
    api: RingCentralState, status: str, state: SubscriptionState
) -> None:
    client = subscriptions(api)
    with receiving() as server:
        url = receiver_of(server).url
        made = client.subscribe(url)
    assert made.vendor_id is not None
    api.subscriptions[made.vendor_id]["status"] = status
    found = client.status(url)
    assert found.state is state
    assert status in found.detail


def test_renew_due_reads_the_expiry() -> None:
    client = RingCentralSubscriptions(
        provider="rc",
        http=None,  # type: ignore[arg-type]  (renew_due makes no request)
        base_url="https://platform.ringcentral.com",
        verification_token=None,
        errors=lambda exc: ProviderError(str(exc)),
    )
    soon = Subscription(
        "rc", SubscriptionState.ACTIVE, vendor_id="x", expires_at=NOW + timedelta(days=6)
    )
    later = Subscription(
        "rc", SubscriptionState.ACTIVE, vendor_id="x", expires_at=NOW + timedelta(days=8)
    )
    missing = Subscription("rc", SubscriptionState.MISSING)
    assert client.renew_due(soon, NOW) is True
    assert client.renew_due(later, NOW) is False
    assert client.renew_due(missing, NOW) is False
    assert client.console_steps("https://example.com/webhooks/rc") is None


def test_oversized_identifiers_are_refused_and_names_capped() -> None:
    assert verifier().verify(request({**event(), "uuid": "9" * 500}, SIGNED)) == Refused(
        "malformed"
    )
    long_name = "/restapi/v1.0/account/1/telephony/sessions?" + "x" * 5000
    verified = verifier().verify(request(event(name=long_name), SIGNED))
    assert isinstance(verified, Verified) and verified.nudge is True
    assert len(verified.event) <= 200
