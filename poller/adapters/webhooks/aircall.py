"""Aircall's webhook events and its webhook API.

What Aircall documents, and what is made of it here:

- **The event** is a JSON POST: ``{"resource": "call", "event": "call.ended", "timestamp":
  <Unix seconds>, "token": "...", "data": {<the call object>}}``. There is no signature header:
  the proof of origin is the ``token`` in the body, equal to the token Aircall issued when the
  webhook was created (developer.aircall.io/docs/webhooks-overview; hookdeck's aircall-webhooks
  skill). It is compared in constant time with ``provider.webhook.secret``, and ``timestamp``
  must be within ``max_event_age_seconds`` of arrival, so a captured event cannot be replayed
  later.
- **Which events nudge:** ``call.hungup`` fires the moment a call ends and ``call.ended`` about
  30 s later, once the call's data is complete. Both ask for a poll (the daemon debounces them
  into one, and its settle delay covers the 30 s); every other event is verified but asks for
  nothing.
- **The webhook API** (``/v1/webhooks``, HTTP Basic ``api_id:api_token`` as the adapter signs
  in): ``POST`` creates (``custom_name``, ``url``, ``events``) and answers 201 ``{"webhook":
  {...}}`` with the ``token`` Aircall chose; ``GET`` lists them under ``webhooks`` with the
  paging ``meta`` of every Aircall list; ``PUT /v1/webhooks/{id}`` updates, ``active: true``
  re-enabling a webhook Aircall deactivated after repeated failed deliveries. An explicit
  ``events`` list is always sent: without one Aircall subscribes the webhook to all of its
  (about 90) events.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from poller.adapters.webhooks.vendor_api import VendorApi
from poller.ports.webhooks import (
    Refused,
    Subscription,
    SubscriptionState,
    Verified,
    WebhookRequest,
)

# The events that mean a call is over: the first at hang-up, the second once its data is final.
NUDGING_EVENTS = frozenset({"call.hungup", "call.ended"})
# What `subscribe` asks for: exactly the events that nudge, never Aircall's default of all.
SUBSCRIBED_EVENTS = ("call.hungup", "call.ended")
CUSTOM_NAME = "siro-poller"
WEBHOOKS_PATH = "/v1/webhooks"
PER_PAGE = 50
# Aircall allows 100 webhooks a company: two pages of 50; a few more is a broken `meta`.
MAX_PAGES = 5


class AircallWebhookVerifier:
    """The token in the body, compared in constant time, and the event's timestamp window."""

    def __init__(self, token: SecretStr, *, max_age_seconds: float) -> None:
        self._token = token.get_secret_value().encode()
        self._max_age = max_age_seconds

    def verify(self, request: WebhookRequest) -> Verified | Refused:
        try:
            event = json.loads(request.body)
        except (ValueError, RecursionError):
            return Refused("malformed")
        if not isinstance(event, dict):
            return Refused("malformed")
        sent = event.get("token")
        if not isinstance(sent, str) or not sent:
            return Refused("no_signature")
        if not hmac.compare_digest(sent.encode(), self._token):
            return Refused("bad_signature")
        name, timestamp, data = event.get("event"), event.get("timestamp"), event.get("data")
        if (
            not isinstance(name, str)
            or not name
            or isinstance(timestamp, bool)
            or not isinstance(timestamp, int | float)
        ):
            return Refused("malformed")
        try:
            sent_at = datetime.fromtimestamp(timestamp, UTC)
        except (OverflowError, OSError, ValueError):
            return Refused("malformed")
        received_at = request.received_at
        if received_at.tzinfo is None:  # the port promises UTC; never raise over its form
            received_at = received_at.replace(tzinfo=UTC)
        if abs((received_at - sent_at).total_seconds()) > self._max_age:
            return Refused("stale")
        call_id = _call_id(event.get("resource"), data)
        return Verified(
            event=name,
            # The adapter keys a call by the call object's `id`: the same id, as text.
            call_ids=(call_id,) if call_id is not None else (),
            nudge=name in NUDGING_EVENTS,
            replay_key=f"{name}:{call_id or ''}:{int(timestamp)}",
        )


def _call_id(resource: Any, data: Any) -> str | None:
    """The id of the call a call event is about, as the adapter writes it (``123456``)."""
    if resource != "call" or not isinstance(data, Mapping):
        return None
    value = data.get("id")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


class AircallSubscriptions:
    """``/v1/webhooks`` through the adapter's API client: one webhook per address, created with
    the call-end events only, re-enabled when Aircall deactivated it.

    Aircall, not us, chooses a webhook's token. :meth:`created_token` hands it to the caller
    once, so the operator can set ``provider.webhook.secret`` to it; it is never logged and
    never part of a :class:`Subscription`.
    """

    def __init__(self, provider: str, base_url: str, api: VendorApi) -> None:
        self._provider = provider
        self._base_url = base_url.rstrip("/")
        self._api = api
        self._token: SecretStr | None = None

    # -- WebhookSubscriptions --------------------------------------------------------------

    def subscribe(self, url: str) -> Subscription:
        self._token = None
        found = self._find(url)
        if found is None:
            answer = self._api(
                "POST",
                self._base_url + WEBHOOKS_PATH,
                body={"custom_name": CUSTOM_NAME, "url": url, "events": list(SUBSCRIBED_EVENTS)},
            )
            webhook = _webhook_of(answer)
            self._token = _token_of(webhook)
            return self._subscription(webhook, url, "created")
        events = found.get("events")
        missing = [e for e in SUBSCRIBED_EVENTS if not isinstance(events, list) or e not in events]
        if found.get("active") is True and not missing:
            self._token = _token_of(found)
            return self._subscription(found, url, "already subscribed")
        kept = [e for e in events if isinstance(e, str)] if isinstance(events, list) else []
        answer = self._api(
            "PUT",
            f"{self._base_url}{WEBHOOKS_PATH}/{_webhook_id(found)}",
            body={"active": True, "events": [*kept, *missing]},
        )
        webhook = _webhook_of(answer) or found
        self._token = _token_of(webhook) or _token_of(found)
        was = "re-enabled" if found.get("active") is not True else "events added"
        return self._subscription(webhook, url, was)

    def status(self, url: str | None) -> Subscription:
        if url is None:
            hooks = self._webhooks()
            if len(hooks) != 1:
                return Subscription(
                    self._provider,
                    SubscriptionState.MISSING,
                    detail=f"Aircall lists {len(hooks)} webhooks; name the address to check",
                )
            return self._subscription(hooks[0], None, "")
        found = self._find(url)
        if found is None:
            return Subscription(
                self._provider,
                SubscriptionState.MISSING,
                url=url,
                detail="Aircall has no webhook for this address",
            )
        return self._subscription(found, url, "")

    def renew_due(self, subscription: Subscription, now: datetime) -> bool:
        # An Aircall webhook never expires.
        return False

    def console_steps(self, url: str) -> Sequence[str] | None:
        return None

    # -- the token ---------------------------------------------------------------------------

    def created_token(self) -> SecretStr | None:
        """The token Aircall gave the webhook the last :meth:`subscribe` created, re-enabled or
        found, to set as ``provider.webhook.secret``; None before that, or when Aircall sent
        none. Show it once on the terminal; never log it."""
        return self._token

    # -- internals ---------------------------------------------------------------------------

    def _subscription(self, webhook: Mapping[str, Any], url: str | None, done: str) -> Subscription:
        active = webhook.get("active") is True
        events = webhook.get("events")
        listed = (
            ", ".join(e for e in events if isinstance(e, str)) if isinstance(events, list) else ""
        )
        if active:
            detail = f"{done}: " if done else ""
            detail += f"active, events {listed or 'none'}"
        else:
            detail = (
                "Aircall deactivated this webhook (it does so after repeated failed deliveries);"
                " `webhooks subscribe` re-enables it"
            )
        hook_url = webhook.get("url")
        return Subscription(
            self._provider,
            SubscriptionState.ACTIVE if active else SubscriptionState.DEACTIVATED,
            url=hook_url if isinstance(hook_url, str) else url,
            vendor_id=_webhook_id(webhook) or None,
            detail=detail,
        )

    def _find(self, url: str) -> dict[str, Any] | None:
        wanted = _same_address(url)
        for webhook in self._webhooks():
            address = webhook.get("url")
            if isinstance(address, str) and _same_address(address) == wanted:
                return webhook
        return None

    def _webhooks(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        url: str | None = self._base_url + WEBHOOKS_PATH
        params: dict[str, str] | None = {"per_page": str(PER_PAGE)}
        for _ in range(MAX_PAGES):
            if url is None:
                break
            page = self._api("GET", url, params=params)
            items = page.get("webhooks") if isinstance(page, Mapping) else None
            found.extend(item for item in items or [] if isinstance(item, dict))
            meta = page.get("meta") if isinstance(page, Mapping) else None
            following = meta.get("next_page_link") if isinstance(meta, Mapping) else None
            # The next link carries every parameter already.
            url, params = (following, None) if isinstance(following, str) else (None, None)
        return found


def _webhook_of(answer: Any) -> dict[str, Any]:
    webhook = answer.get("webhook") if isinstance(answer, Mapping) else None
    return webhook if isinstance(webhook, dict) else {}


def _webhook_id(webhook: Mapping[str, Any]) -> str:
    value = webhook.get("webhook_id")
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else ""


def _token_of(webhook: Mapping[str, Any]) -> SecretStr | None:
    token = webhook.get("token")
    return SecretStr(token) if isinstance(token, str) and token else None


def _same_address(url: str) -> str:
    """Addresses compared as Aircall stores them: a trailing slash is no other webhook."""
    return url.strip().rstrip("/")
