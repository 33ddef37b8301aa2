"""Webhook subscription state (``webhook_subscriptions``): the same contract on the in-memory
fake, SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from poller.ports.webhooks import Subscription, SubscriptionState
from tests.seed import AnyStore

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
URL = "https://calls.example.com/webhooks/ringcentral"


def test_nothing_is_known_before_a_check_or_an_event(any_store: AnyStore) -> None:
    assert any_store.webhook_subscription_states() == []


def test_a_check_is_kept_whole_with_aware_utc_times(any_store: AnyStore) -> None:
    expires = NOW + timedelta(days=7)
    any_store.save_webhook_subscription(
        Subscription(
            "ringcentral",
            SubscriptionState.ACTIVE,
            url=URL,
            vendor_id="sub-1",
            expires_at=expires,
            detail="Active",
        ),
        NOW,
    )

    (saved,) = any_store.webhook_subscription_states()
    assert (saved.provider, saved.state, saved.vendor_id, saved.url, saved.detail) == (
        "ringcentral",
        SubscriptionState.ACTIVE,
        "sub-1",
        URL,
        "Active",
    )
    assert saved.expires_at == expires and saved.expires_at.tzinfo is not None
    assert saved.checked_at == NOW and saved.checked_at.utcoffset() == timedelta(0)
    assert saved.last_event_at is None


def test_a_new_check_replaces_the_state_and_keeps_the_last_event(any_store: AnyStore) -> None:
    any_store.webhook_event_arrived("aircall", NOW)
    any_store.save_webhook_subscription(
        Subscription("aircall", SubscriptionState.ACTIVE, url=URL, vendor_id="w-1"), NOW
    )
    later = NOW + timedelta(hours=1)
    any_store.save_webhook_subscription(
        Subscription("aircall", SubscriptionState.DEACTIVATED, detail="switched off"), later
    )

    (saved,) = any_store.webhook_subscription_states()
    assert (saved.state, saved.vendor_id, saved.url, saved.detail) == (
        SubscriptionState.DEACTIVATED,
        None,
        None,
        "switched off",
    )
    assert (saved.checked_at, saved.last_event_at) == (later, NOW)


def test_an_event_before_any_check_has_no_state_and_the_later_time_wins(
    any_store: AnyStore,
) -> None:
    any_store.webhook_event_arrived("zoom", NOW)
    any_store.webhook_event_arrived("zoom", NOW - timedelta(seconds=30))  # a slow writer
    any_store.webhook_event_arrived("dialpad", NOW - timedelta(minutes=5))

    saved = {row.provider: row for row in any_store.webhook_subscription_states()}
    assert list(saved) == ["dialpad", "zoom"]
    assert (saved["zoom"].state, saved["zoom"].checked_at) == (None, None)
    assert saved["zoom"].last_event_at == NOW

    any_store.webhook_event_arrived("zoom", NOW + timedelta(minutes=1))
    zoom = next(r for r in any_store.webhook_subscription_states() if r.provider == "zoom")
    assert zoom.last_event_at == NOW + timedelta(minutes=1)


def test_query_values_of_a_url_are_never_stored(any_store: AnyStore) -> None:
    any_store.save_webhook_subscription(
        Subscription(
            "generic",
            SubscriptionState.MANUAL,
            url=f"{URL}?token=s3cr3t-value",
            detail=f"point the vendor at {URL}?token=s3cr3t-value",
        ),
        NOW,
    )

    (saved,) = any_store.webhook_subscription_states()
    assert "s3cr3t-value" not in f"{saved.url} {saved.detail}"
    assert saved.url is not None and saved.url.startswith(f"{URL}?token=")
