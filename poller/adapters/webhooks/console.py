"""Subscriptions kept in a vendor's console (Zoom, Twilio): nothing to call, steps to follow.

Such a vendor offers no API we use to create or inspect the subscription, so its state is
always MANUAL: only the events themselves (and `webhooks status`' "last event") tell it works.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from poller.ports.webhooks import Subscription, SubscriptionState


class ConsoleSubscriptions:
    """A :class:`poller.ports.webhooks.WebhookSubscriptions` that only tells what to do."""

    def __init__(self, provider: str, vendor: str, steps: Sequence[str]) -> None:
        """``steps`` are the console steps, each may name the address as ``{url}``."""
        self.provider = provider
        self.vendor = vendor
        self._steps = tuple(steps)

    def subscribe(self, url: str) -> Subscription:
        return self._manual(url)

    def status(self, url: str | None) -> Subscription:
        return self._manual(url)

    def renew_due(self, subscription: Subscription, now: datetime) -> bool:
        return False

    def console_steps(self, url: str) -> Sequence[str]:
        return [f"{number}. {step.format(url=url)}" for number, step in enumerate(self._steps, 1)]

    def _manual(self, url: str | None) -> Subscription:
        return Subscription(
            provider=self.provider,
            state=SubscriptionState.MANUAL,
            url=url,
            detail=f"set up in the {self.vendor} console; only arriving events show it works",
        )
