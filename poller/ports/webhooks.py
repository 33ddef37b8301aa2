"""Webhook events: what a vendor's verifier, the receiver, the nudges and the subscriptions
agree on.

An event is only ever a nudge. The poll stays the one way calls come in, so a verified event
can at most cause an early poll of its provider, and a lost one costs latency, never a call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One request as the receiver read it, whole (its body is capped before this exists)."""

    method: str
    # The path and query as received, e.g. "/webhooks/zoom" and "" (Twilio signs them).
    path: str
    query: str
    # Header names lower-cased; a repeated header keeps its last value.
    headers: Mapping[str, str]
    body: bytes
    # The peer's address, for the per-source rate limit and the logs.
    source: str
    received_at: datetime
    # The address the vendor posted to, as the vendor saw it (the public URL in front of a TLS
    # proxy, with path and query), where configured: Twilio signs it.
    public_url: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True, slots=True)
class Reply:
    """What the receiver answers a verified request: 200 and nothing, unless a vendor's
    handshake needs an echo (RingCentral's Validation-Token, Zoom's encryptedToken)."""

    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Verified:
    """A request that proved it came from the vendor."""

    # The vendor's event name ("phone.recording_completed", "call.ended", "hangup", ...).
    event: str
    # The provider call ids the event names, as the adapter keys calls (provider_call_id). Only
    # ever compared with what the polls list; never used as data.
    call_ids: tuple[str, ...] = ()
    # Whether the event asks for a poll; a handshake or an event of no interest does not.
    nudge: bool = True
    # What identifies this delivery for the replay guard (a signature, an event id); None:
    # a handshake, which is answered however often it comes.
    replay_key: str | None = None
    reply: Reply = field(default_factory=Reply)


@dataclass(frozen=True, slots=True)
class Refused:
    """A request that failed verification: answered 401, counted, and nothing else."""

    # A short, fixed label for the metric and the log ("bad_signature", "no_signature",
    # "stale", "malformed", ...); never a secret, never the request's own text.
    reason: str


class WebhookVerifier(Protocol):
    """One vendor's proof of origin (signature, token, JWT), checked in constant time."""

    def verify(self, request: WebhookRequest) -> Verified | Refused: ...


class EventSink(Protocol):
    """Who hears of a verified event, after its answer is sent; never blocks the receiver."""

    def event_arrived(self, provider: str, verified: Verified, at: datetime) -> None: ...


class SubscriptionState(StrEnum):
    ACTIVE = "active"
    # Active, but the vendor ends it soon (RingCentral): renewed before then.
    EXPIRING = "expiring"
    # The vendor stopped delivering for good after failures (RingCentral).
    BLACKLISTED = "blacklisted"
    # The vendor switched it off after failures (Aircall), or someone did.
    DEACTIVATED = "deactivated"
    # No subscription for this address at the vendor.
    MISSING = "missing"
    # Managed in the vendor's console (Zoom, Twilio): only the events tell it works.
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Subscription:
    """One provider's webhook subscription as the vendor reports it."""

    provider: str
    state: SubscriptionState
    url: str | None = None
    # The vendor's id of the subscription (None for MISSING and MANUAL).
    vendor_id: str | None = None
    expires_at: datetime | None = None
    # One line for `webhooks status`: the vendor's own words where it gives any.
    detail: str = ""


class WebhookSubscriptions(Protocol):
    """A vendor's subscription API, where it has one, or console steps where it has none."""

    def subscribe(self, url: str) -> Subscription:
        """Create the subscription for ``url``, or renew or re-enable the one there is.
        Idempotent: never a second subscription for the same address."""
        ...

    def status(self, url: str | None) -> Subscription:
        """The subscription for ``url`` (or this provider's only one) as the vendor has it."""
        ...

    def renew_due(self, subscription: Subscription, now: datetime) -> bool:
        """Whether ``subscription`` should be renewed now (before the vendor ends it)."""
        ...

    def console_steps(self, url: str) -> Sequence[str] | None:
        """For a vendor without a subscription API: the steps to take in its console."""
        ...
