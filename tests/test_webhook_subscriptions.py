"""The daemon's webhook subscription check, the record of arrived events, and what a lost
subscription does to the health verdict (a warning, never a failure)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from poller.adapters.memory_store import MemoryStore
from poller.config import Settings
from poller.core.webhook_subscriptions import (
    ArrivalRecorder,
    SubscriptionTarget,
    check_subscriptions,
)
from poller.domain.health import HealthRules, assess
from poller.ports.webhooks import Subscription, SubscriptionState, Verified
from poller.wiring import health_rules_from_settings, webhook_subscription_job
from tests.receiver_settings import receiver_section

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
URL = "https://calls.example.com/webhooks/{}"
EVENT = Verified(event="call.ended", call_ids=("c-1",), replay_key="sig-1")


class VendorApi:
    """A vendor's subscription API as the port describes it: one subscription per address,
    renewed when it ends within a day."""

    def __init__(
        self,
        provider: str,
        state: SubscriptionState,
        expires_at: datetime | None = None,
        *,
        fails: bool = False,
    ) -> None:
        self.provider = provider
        self.state = state
        self.expires_at = expires_at
        self.fails = fails
        self.subscribed: list[str] = []

    def subscribe(self, url: str) -> Subscription:
        self.subscribed.append(url)
        self.state = SubscriptionState.ACTIVE
        self.expires_at = NOW + timedelta(days=7)
        return self.status(url)

    def status(self, url: str | None) -> Subscription:
        if self.fails:
            raise ConnectionError("vendor unreachable")
        return Subscription(
            self.provider, self.state, url=url, vendor_id="sub-1", expires_at=self.expires_at
        )

    def renew_due(self, subscription: Subscription, now: datetime) -> bool:
        ends = subscription.expires_at
        return ends is not None and ends - now < timedelta(days=1)

    def console_steps(self, url: str) -> Sequence[str] | None:
        return None


class ConsoleOnly(VendorApi):
    def console_steps(self, url: str) -> Sequence[str] | None:
        return [f"paste {url} in the console"]

    def status(self, url: str | None) -> Subscription:
        raise AssertionError("a console-managed vendor has no API to ask")


def target(api: VendorApi) -> SubscriptionTarget:
    return SubscriptionTarget(api.provider, URL.format(api.provider), api)


def states(store: MemoryStore) -> dict[str, SubscriptionState | None]:
    return {row.provider: row.state for row in store.webhook_subscription_states()}


def test_a_subscription_about_to_end_is_renewed_and_saved() -> None:
    store = MemoryStore()
    api = VendorApi("ringcentral", SubscriptionState.EXPIRING, NOW + timedelta(hours=3))

    (check,) = check_subscriptions([target(api)], store, NOW)

    assert check.renewed and api.subscribed == [URL.format("ringcentral")]
    (saved,) = store.webhook_subscription_states()
    assert (saved.state, saved.expires_at, saved.checked_at) == (
        SubscriptionState.ACTIVE,
        NOW + timedelta(days=7),
        NOW,
    )


def test_one_far_from_its_end_is_left_alone() -> None:
    store = MemoryStore()
    api = VendorApi("ringcentral", SubscriptionState.ACTIVE, NOW + timedelta(days=5))

    (check,) = check_subscriptions([target(api)], store, NOW)

    assert not check.renewed and api.subscribed == []
    assert states(store) == {"ringcentral": SubscriptionState.ACTIVE}


def test_a_blacklisted_subscription_is_reported_with_the_command_not_re_enabled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryStore()
    api = VendorApi("ringcentral", SubscriptionState.BLACKLISTED, NOW + timedelta(hours=1))

    with caplog.at_level(logging.WARNING):
        check_subscriptions([target(api)], store, NOW)

    assert api.subscribed == []  # re-enabling is the operator's call, once the receiver works
    assert states(store) == {"ringcentral": SubscriptionState.BLACKLISTED}
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "blacklisted" in warning.getMessage()
    assert "`siro-poller webhooks subscribe --provider ringcentral`" in warning.getMessage()


def test_one_providers_failure_does_not_stop_the_next(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    broken = VendorApi("aircall", SubscriptionState.ACTIVE, fails=True)
    working = VendorApi("dialpad", SubscriptionState.DEACTIVATED)

    with caplog.at_level(logging.WARNING):
        checks = check_subscriptions([target(broken), target(working)], store, NOW)

    assert [(c.provider, c.error is not None) for c in checks] == [
        ("aircall", True),
        ("dialpad", False),
    ]
    assert states(store) == {"dialpad": SubscriptionState.DEACTIVATED}
    assert any(
        "aircall" in r.getMessage() and "polling goes on" in r.getMessage() for r in caplog.records
    )


def test_a_console_managed_webhook_is_saved_as_manual_without_asking() -> None:
    store = MemoryStore()

    check_subscriptions([target(ConsoleOnly("zoom", SubscriptionState.MANUAL))], store, NOW)

    assert states(store) == {"zoom": SubscriptionState.MANUAL}


def test_a_burst_of_events_is_one_write_per_provider_per_ten_seconds() -> None:
    store = MemoryStore()
    writes: list[tuple[str, datetime]] = []
    original = store.webhook_event_arrived

    def counting(provider: str, at: datetime) -> None:
        writes.append((provider, at))
        original(provider, at)

    store.webhook_event_arrived = counting  # type: ignore[method-assign]
    recorder = ArrivalRecorder(store)
    for second in range(25):
        recorder.event_arrived("zoom", EVENT, NOW + timedelta(seconds=second))
    recorder.event_arrived("aircall", EVENT, NOW)

    assert writes == [
        ("zoom", NOW),
        ("zoom", NOW + timedelta(seconds=10)),
        ("zoom", NOW + timedelta(seconds=20)),
        ("aircall", NOW),
    ]
    saved = {row.provider: row.last_event_at for row in store.webhook_subscription_states()}
    assert saved == {"aircall": NOW, "zoom": NOW + timedelta(seconds=20)}


def test_the_next_sink_hears_every_event_first_and_the_record_follows() -> None:
    store = MemoryStore()
    heard: list[tuple[str, str, bool]] = []

    class Nudges:
        def event_arrived(self, provider: str, verified: Verified, at: datetime) -> None:
            recorded = bool(store.webhook_subscription_states())
            heard.append((provider, verified.event, recorded))

    recorder = ArrivalRecorder(store, then=Nudges())
    recorder.event_arrived("zoom", EVENT, NOW)
    recorder.event_arrived("zoom", EVENT, NOW + timedelta(seconds=1))  # not written again
    recorder.event_arrived("zoom", Verified(event="endpoint.url_validation", nudge=False), NOW)

    assert heard == [
        ("zoom", "call.ended", False),
        ("zoom", "call.ended", True),
        ("zoom", "endpoint.url_validation", True),
    ]
    (saved,) = store.webhook_subscription_states()
    assert saved.last_event_at == NOW


def test_a_handshake_is_not_an_event_and_a_failing_database_never_raises() -> None:
    store = MemoryStore()
    recorder = ArrivalRecorder(store)
    recorder.event_arrived("zoom", Verified(event="endpoint.url_validation", nudge=False), NOW)
    assert store.webhook_subscription_states() == []

    def broken(provider: str, at: datetime) -> None:
        raise OSError("database gone")

    store.webhook_event_arrived = broken  # type: ignore[method-assign]
    recorder.event_arrived("zoom", EVENT, NOW)  # logged, not raised


def test_a_lost_subscription_warns_and_keeps_the_verdict_healthy() -> None:
    rules = HealthRules(
        providers=("ringcentral", "zoom"),
        poll_interval=timedelta(minutes=5),
        work_interval=timedelta(seconds=15),
        check_polling=False,
        check_worker=False,
        webhook_providers=("ringcentral", "zoom"),
    )

    health = assess(
        rules,
        NOW,
        pauses=[],
        cursors=[],
        last_worker_beat=None,
        webhook_states={"ringcentral": "blacklisted", "zoom": "manual", "aircall": "deactivated"},
    )

    assert health.healthy
    (warning,) = health.to_dict()["warnings"]
    assert (warning["check"], warning["subject"]) == ("webhooks", "ringcentral")
    assert "siro-poller webhooks subscribe --provider ringcentral" in warning["message"]


def test_the_daemon_job_runs_hourly_only_for_an_enabled_webhook_with_an_api(
    tmp_path: object,
) -> None:
    class Adapter:
        def __init__(self, api: VendorApi | None) -> None:
            self.api = api

        def webhook_subscriptions(self) -> VendorApi | None:
            return self.api

    def settings(enabled: bool) -> Settings:
        return Settings(
            provider={
                "name": "acme",
                "webhook": {"enabled": enabled, "public_url": "https://calls.example.com/w/acme"},
            },
            **receiver_section(),
        )

    store = MemoryStore()
    api = VendorApi("acme", SubscriptionState.ACTIVE, NOW + timedelta(days=3))
    assert webhook_subscription_job(settings(False), {"acme": Adapter(api)}, store) is None
    assert webhook_subscription_job(settings(True), {"acme": Adapter(None)}, store) is None
    assert health_rules_from_settings(settings(True)).webhook_providers == ("acme",)

    job = webhook_subscription_job(settings(True), {"acme": Adapter(api)}, store, lambda: NOW)
    assert job is not None
    name, body, every = job
    assert (name, every) == ("webhook-subscriptions", 3600.0)
    body()
    (saved,) = store.webhook_subscription_states()
    assert (saved.state, saved.url) == (
        SubscriptionState.ACTIVE,
        "https://calls.example.com/w/acme",
    )
