"""Webhook subscriptions kept alive, and the arrival of events kept on record.

An event only nudges a poll (:mod:`poller.ports.webhooks`), so a subscription the vendor
switched off costs latency, never a call; but nobody would notice it, since polling hides it.
The daemon's hourly :func:`check_subscriptions` asks each vendor how its subscription stands,
renews one about to end, and says in a WARNING how to re-enable one the vendor disabled.
:class:`ArrivalRecorder` keeps when each provider's last verified event arrived, for
`webhooks status` and `doctor`: the only sign that a console-managed webhook works.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from poller.domain.clock import human_age
from poller.domain.redaction import mask_urls_in_text
from poller.ports.store import WebhookStore
from poller.ports.webhooks import (
    EventSink,
    Subscription,
    SubscriptionState,
    Verified,
    WebhookSubscriptions,
)

log = logging.getLogger(__name__)

# The states in which the vendor delivers nothing: reported by `status` and /healthz.
DISABLED_STATES = frozenset(
    {SubscriptionState.BLACKLISTED, SubscriptionState.DEACTIVATED, SubscriptionState.MISSING}
)
# The states in which events are expected to come.
WORKING_STATES = frozenset(
    {SubscriptionState.ACTIVE, SubscriptionState.EXPIRING, SubscriptionState.MANUAL}
)
# A burst of events (a busy hour's hang-ups) must not become a burst of database writes: the
# last-event time is kept to within this much.
ARRIVAL_WRITE_EVERY = timedelta(seconds=10)
CHECK_EVERY = timedelta(hours=1)


def subscribe_command(provider: str) -> str:
    return f"siro-poller webhooks subscribe --provider {provider}"


def advice(provider: str, state: SubscriptionState | None) -> str | None:
    """What to do about a subscription in ``state``; None when there is nothing to do."""
    command = subscribe_command(provider)
    if state is None:
        return f"never checked: `{command}` creates it (or prints the console steps)"
    if state is SubscriptionState.BLACKLISTED:
        return (
            f"the vendor stopped delivering events after failed deliveries; fix the receiver "
            f"(or the proxy in front of it), then `{command}` re-enables it"
        )
    if state is SubscriptionState.DEACTIVATED:
        return f"the vendor switched the webhook off; `{command}` re-enables it"
    if state is SubscriptionState.MISSING:
        return f"the vendor has no subscription for this address; `{command}` creates it"
    return None


@runtime_checkable
class ManagesWebhookSubscriptions(Protocol):
    """An adapter that knows its vendor's subscriptions (every native kind's base class)."""

    def webhook_subscriptions(self) -> WebhookSubscriptions | None: ...


def subscriptions_of(adapter: object) -> WebhookSubscriptions | None:
    if isinstance(adapter, ManagesWebhookSubscriptions):
        return adapter.webhook_subscriptions()
    return None


@dataclass(frozen=True, slots=True)
class SubscriptionTarget:
    """One provider whose webhook is enabled and whose vendor has subscriptions to manage."""

    provider: str
    # The public webhook address (webhook.public_url); None: the vendor's only subscription.
    url: str | None
    subscriptions: WebhookSubscriptions


@dataclass(frozen=True, slots=True)
class SubscriptionCheck:
    provider: str
    subscription: Subscription | None = None
    renewed: bool = False
    error: str | None = None


def manual_subscription(provider: str, url: str | None) -> Subscription:
    return Subscription(
        provider, SubscriptionState.MANUAL, url=url, detail="managed in the vendor's console"
    )


def check_subscriptions(
    targets: Iterable[SubscriptionTarget], store: WebhookStore, now: datetime
) -> list[SubscriptionCheck]:
    """Ask each vendor how its subscription stands, renew one that is due, save the state.

    A vendor without a subscription API (console steps) is saved as ``manual`` without a
    request. One provider's failure is logged and never stops the next.
    """
    checks = []
    for target in targets:
        try:
            check = _check_one(target, store, now)
        except Exception as exc:  # a vendor or the database failing: the next one still runs
            detail = mask_urls_in_text(f"{type(exc).__name__}: {exc}")
            log.warning(
                "could not check the webhook subscription of %s: %s; polling goes on as usual",
                target.provider,
                detail,
            )
            check = SubscriptionCheck(target.provider, error=detail)
        checks.append(check)
    return checks


def _check_one(target: SubscriptionTarget, store: WebhookStore, now: datetime) -> SubscriptionCheck:
    api = target.subscriptions
    if api.console_steps(target.url or "") is not None:
        manual = manual_subscription(target.provider, target.url)
        store.save_webhook_subscription(manual, now)
        return SubscriptionCheck(target.provider, manual)
    current = api.status(target.url)
    renewed = False
    address = target.url or current.url
    if current.state in WORKING_STATES and api.renew_due(current, now) and address:
        # subscribe() renews the subscription there is rather than adding a second one.
        current = api.subscribe(address)
        renewed = True
        log.info(
            "renewed the webhook subscription of %s%s",
            target.provider,
            f" until {current.expires_at:%Y-%m-%d %H:%M:%SZ}" if current.expires_at else "",
        )
    store.save_webhook_subscription(current, now)
    if current.state in DISABLED_STATES:
        log.warning(
            "the webhook subscription of %s is %s%s: events do not arrive (polling still "
            "brings every call, later); %s",
            target.provider,
            current.state.value,
            f" ({mask_urls_in_text(current.detail)})" if current.detail else "",
            advice(target.provider, current.state),
        )
    return SubscriptionCheck(target.provider, current, renewed=renewed)


class SubscriptionJob:
    """The daemon's hourly turn of :func:`check_subscriptions`."""

    def __init__(
        self,
        targets: Callable[[], list[SubscriptionTarget]],
        store: WebhookStore,
        clock: Callable[[], datetime],
    ) -> None:
        self.targets = targets
        self.store = store
        self.clock = clock

    def job(self) -> None:
        check_subscriptions(self.targets(), self.store, self.clock())


class ArrivalRecorder:
    """An :class:`~poller.ports.webhooks.EventSink` that keeps when each provider's last
    verified event arrived. Called after the receiver answered; cheap, and never raises.

    The receiver has one sink: with ``then`` (the daemon's nudges), each event goes there
    first, since an early poll is what the event is for, and is recorded after.
    """

    def __init__(
        self,
        store: WebhookStore,
        *,
        then: EventSink | None = None,
        every: timedelta = ARRIVAL_WRITE_EVERY,
    ) -> None:
        self.store = store
        self.then = then
        self.every = every
        self._written_at: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._failing_since: datetime | None = None

    def event_arrived(self, provider: str, verified: Verified, at: datetime) -> None:
        if self.then is not None:
            self.then.event_arrived(provider, verified, at)
        if not verified.nudge and verified.replay_key is None:
            return  # a handshake (a URL validation) proves the address, not that events come
        with self._lock:
            last = self._written_at.get(provider)
            if last is not None and at - last < self.every:
                return
            self._written_at[provider] = at
        try:
            self.store.webhook_event_arrived(provider, at)
        except Exception as exc:
            self._log_failure(at, exc)
        else:
            self._failing_since = None

    def _log_failure(self, at: datetime, exc: Exception) -> None:
        # Once per failing spell: a database that is down is said by everything else too.
        if self._failing_since is None:
            self._failing_since = at
            log.warning(
                "could not record a webhook event's arrival (%s); `webhooks status` shows an "
                "older time meanwhile",
                type(exc).__name__,
            )
        else:
            log.debug(
                "still cannot record webhook arrivals (for %s)", human_age(at - self._failing_since)
            )
