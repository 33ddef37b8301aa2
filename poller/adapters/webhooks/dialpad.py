"""Dialpad's call events and its webhook and call-event-subscription API.

What Dialpad documents, and what is made of it here:

- **The event** is a JWT signed HS256 with the webhook's secret; its payload is the call event
  (``call_id``, ``state``, ``target``...). "If no secret is provided, unencoded events will be
  sent in the JSON format" (``webhooks.create`` in Dialpad's OpenAPI spec,
  dialpad/dialpad-python-sdk ``dialpad_api_spec.json``; developers.dialpad.com/docs/
  event-subscriptions). An unsigned event proves nothing, so it is refused: a secret is
  required. Only HS256 is accepted (never ``none`` nor another algorithm); ``exp``, ``iat`` and
  ``nbf`` are checked when present, ``iat`` within ``max_event_age_seconds`` of arrival.
  Dialpad does not document those claims, nor the event's ``Content-Type`` (``application/jwt``
  and ``text/plain`` are both taken): the body is read as the token whatever it says.
- **Which events nudge:** ``hangup`` (the call ended) and ``recording`` (its recording is
  ready); the other states are verified but ask for nothing.
- **The API** (the adapter's API key): ``POST /api/v2/webhooks`` (``hook_url``, ``secret``)
  makes the address Dialpad posts to, ``GET /api/v2/webhooks`` lists them (cursor paging,
  ``items``); ``POST /api/v2/subscriptions/call`` (``endpoint_id``: the webhook's id,
  ``call_states``, ``enabled``; no target: the whole company) subscribes it to call events,
  ``GET /api/v2/subscriptions/call`` lists them, ``PATCH /api/v2/subscriptions/call/{id}``
  updates one. Dialpad never disables a subscription itself, but one someone disabled
  (``enabled: false``) is reported and re-enabled by ``subscribe``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from poller.adapters.webhooks.vendor_api import VendorApi
from poller.ports.provider import PermanentProviderError
from poller.ports.webhooks import (
    Refused,
    Subscription,
    SubscriptionState,
    Verified,
    WebhookRequest,
)

ALGORITHM = "HS256"
# The states that mean the call ended or its recording is ready.
NUDGING_STATES = frozenset({"hangup", "recording"})
SUBSCRIBED_STATES = ("hangup", "recording")
WEBHOOKS_PATH = "/api/v2/webhooks"
CALL_SUBSCRIPTIONS_PATH = "/api/v2/subscriptions/call"
# Dialpad allows 100 subscriptions of a kind a company; pages beyond this are a broken cursor.
MAX_PAGES = 20


class DialpadWebhookVerifier:
    """The JWT's HS256 signature with the webhook's secret, and its time claims."""

    def __init__(self, secret: SecretStr, *, max_age_seconds: float) -> None:
        self._secret = secret.get_secret_value()
        self._max_age = max_age_seconds

    def verify(self, request: WebhookRequest) -> Verified | Refused:
        # Here, not at the top: every daemon imports this module with the provider registry,
        # and only a Dialpad one receiving webhooks needs PyJWT.
        import jwt

        token = request.body.strip()
        if token.startswith(b"{"):
            # Plain JSON: the webhook has no secret, so nothing proves where it came from.
            return Refused("no_signature")
        if token.count(b".") != 2:
            return Refused("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            return Refused("malformed")
        if header.get("alg") != ALGORITHM:
            return Refused("bad_signature")
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                # The time claims are checked below against the arrival time rather than this
                # machine's clock now; the others Dialpad does not document, so an audience,
                # issuer or subject it may add is no reason to refuse a signed event.
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                    "verify_iss": False,
                    "verify_sub": False,
                    "verify_jti": False,
                },
            )
        except jwt.InvalidSignatureError:
            return Refused("bad_signature")
        except jwt.InvalidTokenError:
            return Refused("malformed")
        received_at = request.received_at
        if received_at.tzinfo is None:  # the port promises UTC; never raise over its form
            received_at = received_at.replace(tzinfo=UTC)
        stale = self._stale(payload, received_at)
        if stale is not None:
            return Refused(stale)
        state, call_id = payload.get("state"), _identifier(payload.get("call_id"))
        if not isinstance(state, str) or not state:
            return Refused("malformed")
        return Verified(
            event=state,
            # The adapter keys a call by its call_id.
            call_ids=(call_id,) if call_id is not None else (),
            nudge=state in NUDGING_STATES,
            # The signature segment: what makes this delivery this one.
            replay_key=token.rsplit(b".", 1)[1].decode("ascii", "replace"),
        )

    def _stale(self, payload: Mapping[str, Any], now: datetime) -> str | None:
        """ "stale" for a token outside its time claims, "malformed" for unreadable ones."""
        claims: dict[str, datetime] = {}
        for name in ("exp", "iat", "nbf"):
            if name not in payload:
                continue
            value = payload[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                return "malformed"
            try:
                claims[name] = datetime.fromtimestamp(value, UTC)
            except (OverflowError, OSError, ValueError):
                return "malformed"
        if "exp" in claims and now >= claims["exp"]:
            return "stale"
        if "nbf" in claims and now < claims["nbf"]:
            return "stale"
        if "iat" in claims and abs((now - claims["iat"]).total_seconds()) > self._max_age:
            return "stale"
        return None


def _identifier(value: Any) -> str | None:
    """A Dialpad int64 id as text, whether it came as a JSON number or a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


class DialpadSubscriptions:
    """A webhook for the address, signed with ``provider.webhook.secret``, and a company-wide
    call event subscription of it to ``hangup`` and ``recording``."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        api: VendorApi,
        secret: SecretStr | None,
        *,
        setting: str = "provider.webhook.secret",
    ) -> None:
        self._provider = provider
        self._base_url = base_url.rstrip("/")
        self._api = api
        self._secret = secret
        self._setting = setting

    # -- WebhookSubscriptions --------------------------------------------------------------

    def subscribe(self, url: str) -> Subscription:
        secret = self._secret.get_secret_value() if self._secret is not None else ""
        if not secret:
            raise PermanentProviderError(
                f"{self._setting} is required: Dialpad signs its events with the secret "
                "given here, and unsigned events are refused"
            )
        done: list[str] = []
        webhook = self._find_webhook(url)
        if webhook is None:
            webhook = _object(
                self._api(
                    "POST", self._base_url + WEBHOOKS_PATH, body={"hook_url": url, "secret": secret}
                )
            )
            done.append("webhook created")
        elif not _signed_with(webhook, secret):
            webhook = _object(
                self._api(
                    "PATCH",
                    f"{self._base_url}{WEBHOOKS_PATH}/{_identifier(webhook.get('id'))}",
                    body={"secret": secret},
                )
            ) or dict(webhook)
            done.append("webhook secret set")
        webhook_id = _identifier(webhook.get("id"))
        if webhook_id is None:
            raise PermanentProviderError("Dialpad's answer names no webhook id")
        subscription = self._find_subscription(webhook_id)
        if subscription is None:
            subscription = _object(
                self._api(
                    "POST",
                    self._base_url + CALL_SUBSCRIPTIONS_PATH,
                    body={
                        "endpoint_id": int(webhook_id),
                        "call_states": list(SUBSCRIBED_STATES),
                        "enabled": True,
                    },
                )
            )
            done.append("call event subscription created")
        else:
            states = _states(subscription)
            missing = [s for s in SUBSCRIBED_STATES if s not in states and "all" not in states]
            if subscription.get("enabled") is not True or missing:
                subscription_id = _identifier(subscription.get("id"))
                subscription = _object(
                    self._api(
                        "PATCH",
                        f"{self._base_url}{CALL_SUBSCRIPTIONS_PATH}/{subscription_id}",
                        body={"enabled": True, "call_states": [*states, *missing]},
                    )
                ) or {**subscription, "enabled": True}
                done.append("re-enabled" if not missing else "states added")
        return self._subscription(
            webhook, subscription, url, ", ".join(done) or "already subscribed"
        )

    def status(self, url: str | None) -> Subscription:
        if url is None:
            hooks = list(self._webhooks())
            if len(hooks) != 1:
                return self._missing(None, f"Dialpad lists {len(hooks)} webhooks; name the address")
            webhook: dict[str, Any] | None = hooks[0]
        else:
            webhook = self._find_webhook(url)
        if webhook is None:
            return self._missing(url, "Dialpad has no webhook for this address")
        webhook_id = _identifier(webhook.get("id"))
        subscription = self._find_subscription(webhook_id) if webhook_id is not None else None
        if subscription is None:
            return self._missing(url, "the webhook exists but no call event subscription uses it")
        return self._subscription(webhook, subscription, url, "")

    def renew_due(self, subscription: Subscription, now: datetime) -> bool:
        # A Dialpad subscription never expires.
        return False

    def console_steps(self, url: str) -> Sequence[str] | None:
        return None

    # -- internals ---------------------------------------------------------------------------

    def _subscription(
        self,
        webhook: Mapping[str, Any],
        subscription: Mapping[str, Any],
        url: str | None,
        done: str,
    ) -> Subscription:
        enabled = subscription.get("enabled") is not False
        states = ", ".join(_states(subscription)) or "none"
        if not enabled:
            detail = "the call event subscription is disabled; `webhooks subscribe` re-enables it"
        elif not _signature(webhook):
            detail = (
                "the webhook has no secret: its events come unsigned and are refused; "
                "`webhooks subscribe` sets it"
            )
        else:
            detail = (f"{done}: " if done else "") + f"enabled, call states {states}"
        hook_url = webhook.get("hook_url")
        return Subscription(
            self._provider,
            SubscriptionState.ACTIVE if enabled else SubscriptionState.DEACTIVATED,
            url=hook_url if isinstance(hook_url, str) else url,
            vendor_id=_identifier(subscription.get("id")),
            detail=detail,
        )

    def _missing(self, url: str | None, detail: str) -> Subscription:
        return Subscription(self._provider, SubscriptionState.MISSING, url=url, detail=detail)

    def _find_webhook(self, url: str) -> dict[str, Any] | None:
        wanted = url.strip().rstrip("/")
        for webhook in self._webhooks():
            address = webhook.get("hook_url")
            if isinstance(address, str) and address.strip().rstrip("/") == wanted:
                return webhook
        return None

    def _find_subscription(self, webhook_id: str) -> dict[str, Any] | None:
        """The company-wide subscription of this webhook (one scoped to a target is someone
        else's choice, and would miss calls)."""
        for subscription in self._pages(self._base_url + CALL_SUBSCRIPTIONS_PATH):
            hook = _object(subscription.get("webhook"))
            if _identifier(hook.get("id")) == webhook_id and not subscription.get("target_id"):
                return subscription
        return None

    def _webhooks(self) -> Iterator[dict[str, Any]]:
        return self._pages(self._base_url + WEBHOOKS_PATH)

    def _pages(self, url: str) -> Iterator[dict[str, Any]]:
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = _object(self._api("GET", url, params={"cursor": cursor} if cursor else None))
            items = page.get("items")
            yield from (item for item in items or [] if isinstance(item, dict))
            following = page.get("cursor")
            if not isinstance(following, str) or not following or following == cursor:
                return
            cursor = following


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _states(subscription: Mapping[str, Any]) -> list[str]:
    states = subscription.get("call_states")
    return [s for s in states if isinstance(s, str)] if isinstance(states, list) else []


def _signature(webhook: Mapping[str, Any]) -> Mapping[str, Any]:
    signature = webhook.get("signature")
    return signature if isinstance(signature, Mapping) else {}


def _signed_with(webhook: Mapping[str, Any], secret: str) -> bool:
    """Whether the webhook signs with ``secret``; Dialpad shows a webhook's secret in its
    listing (the spec's examples do). One it does not show is taken as ours."""
    signature = _signature(webhook)
    if not signature:
        return False
    shown = signature.get("secret")
    if not isinstance(shown, str) or not shown:
        return True
    return hmac.compare_digest(shown.encode(), secret.encode())
