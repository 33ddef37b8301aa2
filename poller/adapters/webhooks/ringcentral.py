"""RingCentral's webhook events and its Subscription API.

What RingCentral documents, and what is built on it here:

- **Events**: telephony session notifications of the event filter
  ``/restapi/v1.0/account/~/telephony/sessions?statusCode=Disconnected&withRecordings=true``
  (the account-level filter and its ``statusCode`` and ``withRecordings`` parameters: guide,
  notifications/event-filters/account-telephony-sessions; the app needs the CallControl
  permission). A notification is ``{"uuid", "event", "timestamp", "subscriptionId",
  "ownerId", "body"}``; its ``body`` has ``sequence``, ``sessionId``, ``telephonySessionId``
  and ``parties[]``, each with ``status.code`` and ``recordings[]`` (``{"id", "active"}``;
  the SDKs' models once lacked it: RingCentral.Net issue 63 shows it in a real event). Events
  carry a ``sequence`` because they can arrive out of order; an event only nudges a poll, so
  the order does not matter here.
- **Creation handshake**: creating (or renewing) a WebHook subscription makes RingCentral POST
  to the address with a ``Validation-Token`` header, which must come back as a response header
  of a 200 within 3 s, the whole answer at most 1024 bytes (guide,
  notifications/webhooks/creating-webhooks). It is answered without any other check: it proves
  nothing and asks for no poll.
- **Verification**: the optional ``deliveryMode.verificationToken`` given at creation comes back
  as the ``Verification-Token`` header of every event (guide, notifications/webhooks/receiving).
  RingCentral signs nothing (no HMAC). With ``webhook.secret`` set the header is required and
  compared in constant time; unset, an event is checked only by its shape and its timestamp, so
  anyone who can reach the receiver can cause a poll (a poll only: an event is never data).
- **Subscriptions**: ``POST /restapi/v1.0/subscription`` (``eventFilters``, ``deliveryMode``
  ``{transportType: "WebHook", address, verificationToken}``, ``expiresIn`` at most 315360000 s
  for WebHook), ``GET /restapi/v1.0/subscription`` (``records``), ``GET``/``PUT``/``DELETE
  /restapi/v1.0/subscription/{id}`` and ``POST /restapi/v1.0/subscription/{id}/renew`` (SDK
  models CreateSubscriptionRequest, UpdateSubscriptionRequest, SubscriptionInfo). A
  subscription's ``status`` is ``Active``, ``Suspended`` or ``Blacklisted``; RingCentral
  blacklists a failing address for good ("suspend the subscription permanently": guide,
  notifications/webhooks/troubleshooting), and the fix it documents is to delete it and create
  a new one, which :meth:`RingCentralSubscriptions.subscribe` does.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urljoin

from pydantic import SecretStr

from poller.adapters.http import HttpError
from poller.domain.clock import utcnow
from poller.domain.raw_record import clean_text, field_text, id_text
from poller.ports.provider import PermanentProviderError, ProviderError
from poller.ports.webhooks import (
    Refused,
    Reply,
    Subscription,
    SubscriptionState,
    Verified,
    WebhookRequest,
)

if TYPE_CHECKING:
    from poller.adapters.http.client import HttpClient

log = logging.getLogger(__name__)

EVENT_FILTER = (
    "/restapi/v1.0/account/~/telephony/sessions?statusCode=Disconnected&withRecordings=true"
)
SUBSCRIPTION_PATH = "/restapi/v1.0/subscription"
# The longest lifetime RingCentral allows a WebHook subscription (10 years).
WEBHOOK_MAX_LIFETIME_SECONDS = 315_360_000
# An active subscription ending within this is reported as expiring and renewed.
RENEW_WITHIN = timedelta(days=7)
VALIDATION_HEADER = "Validation-Token"
VERIFICATION_HEADER = "Verification-Token"
# The handshake's answer must stay under 1024 bytes, headers included: a token much longer than
# any RingCentral sends is not echoed.
_MAX_VALIDATION_TOKEN = 256
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
# RingCentral's uuids are about 20 digits; anything far longer is not one of its events.
_MAX_UUID = 128
_MAX_EVENT_NAME = 200
_MAX_CALL_IDS = 20
# The event of a telephony session filter, account or extension level, whatever its account id.
_SESSION_EVENT = re.compile(
    r"/restapi/v1\.0/account/[^/?]+(?:/extension/[^/?]+)?/telephony/sessions(?:\?.*)?"
)
_STATES = {
    "Active": SubscriptionState.ACTIVE,
    # Suspended is not permanent: a renewal makes it active again.
    "Suspended": SubscriptionState.DEACTIVATED,
    "Blacklisted": SubscriptionState.BLACKLISTED,
}


class RingCentralVerifier:
    """A :class:`poller.ports.webhooks.WebhookVerifier` for RingCentral's webhooks."""

    def __init__(self, verification_token: SecretStr | None, max_event_age: timedelta) -> None:
        self._token = verification_token.get_secret_value().encode() if verification_token else None
        self._max_age = max_event_age
        if self._token is None:
            log.warning(
                "RingCentral webhook: no verification token (webhook.secret) is set, so an "
                "event is checked only by its shape: anyone who can reach the receiver can "
                "cause an early poll (a poll only; events are never taken as data)"
            )

    def verify(self, request: WebhookRequest) -> Verified | Refused:
        validation = request.header(VALIDATION_HEADER)
        if validation is not None:
            return _handshake(validation)
        if self._token is not None:
            given = request.header(VERIFICATION_HEADER)
            if given is None:
                return Refused("no_signature")
            if not hmac.compare_digest(given.encode(), self._token):
                return Refused("bad_signature")
        try:
            document = json.loads(request.body)
        except (ValueError, RecursionError):
            return Refused("malformed")
        return self._event(document, request.received_at)

    def _event(self, document: Any, received_at: datetime) -> Verified | Refused:
        if not isinstance(document, Mapping):
            return Refused("malformed")
        uuid = id_text(document.get("uuid"))
        event = document.get("event")
        sent_at = _time(document.get("timestamp"))
        body = document.get("body")
        if uuid is None or len(uuid) > _MAX_UUID or sent_at is None:
            return Refused("malformed")
        if not isinstance(event, str) or not event.strip():
            return Refused("malformed")
        if not isinstance(body, Mapping):
            return Refused("malformed")
        if abs(received_at - sent_at) > self._max_age:
            return Refused("stale")
        # The name is the sender's text: only its start is kept, for the log.
        name = clean_text(event)[:_MAX_EVENT_NAME]
        if _SESSION_EVENT.fullmatch(event) is None:
            # Another filter of the same subscription (a renewal reminder, say): nothing ended.
            return Verified(event=name, nudge=False, replay_key=uuid)
        listed = body.get("parties")
        parties = [p for p in listed if isinstance(p, Mapping)] if isinstance(listed, list) else []
        ended = any(_status_code(party) == "Disconnected" for party in parties)
        return Verified(event=name, call_ids=_call_ids(body, parties), nudge=ended, replay_key=uuid)


def _handshake(token: str) -> Verified | Refused:
    if len(token) > _MAX_VALIDATION_TOKEN or _PRINTABLE.fullmatch(token) is None:
        return Refused("malformed")
    return Verified(
        event="validation",
        nudge=False,
        replay_key=None,
        reply=Reply(headers=((VALIDATION_HEADER, token),)),
    )


def _status_code(party: Mapping[str, Any]) -> str | None:
    status = party.get("status")
    return field_text(status.get("code")) if isinstance(status, Mapping) else None


def _call_ids(body: Mapping[str, Any], parties: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The ids the adapter keys these calls by: one call per recording, keyed by the recording
    id (the telephony session's recording id is the call log's), and by the session id only
    when the event names no recording (as the adapter keys a record without one)."""
    ids: list[str] = []
    for party in parties:
        recordings = party.get("recordings")
        for recording in recordings if isinstance(recordings, list) else []:
            found = id_text(recording.get("id")) if isinstance(recording, Mapping) else None
            if found is not None and found not in ids:
                ids.append(found)
    if ids:
        # A call has a recording or two; a body naming hundreds is only logged so far.
        return tuple(ids[:_MAX_CALL_IDS])
    session = id_text(body.get("telephonySessionId"))
    return (session,) if session is not None else ()


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


class RingCentralSubscriptions:
    """A :class:`poller.ports.webhooks.WebhookSubscriptions` over RingCentral's Subscription
    API, through the provider's own authenticated client (its token, deadlines, host rules,
    bounded retries and rate limiter)."""

    def __init__(
        self,
        *,
        provider: str,
        http: HttpClient,
        base_url: str,
        verification_token: SecretStr | None,
        errors: Callable[[HttpError], ProviderError],
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.provider = provider
        self.http = http
        self.base_url = base_url
        self.verification_token = verification_token
        self.errors = errors
        self.clock = clock

    # -- the port --------------------------------------------------------------------------

    def subscribe(self, url: str) -> Subscription:
        found = self._find(url)
        if found is not None and found.get("status") == "Blacklisted":
            # A blacklisted subscription is never reactivated: RingCentral's fix is a new one.
            self._call("DELETE", self._one(found), f"delete blacklisted subscription {found['id']}")
            found = None
        if found is None:
            created = self._json(
                "POST", self._url(SUBSCRIPTION_PATH), "create subscription", self._create_body(url)
            )
            return self._subscription(created, url)
        filters = [f for f in found.get("eventFilters") or [] if isinstance(f, str)]
        if EVENT_FILTER not in filters:
            updated = self._json(
                "PUT",
                self._one(found),
                f"update subscription {found['id']}",
                {
                    "eventFilters": [*filters, EVENT_FILTER],
                    "expiresIn": WEBHOOK_MAX_LIFETIME_SECONDS,
                },
            )
            found = updated
        if found.get("status") != "Active" or self._ends_soon(found):
            # A renewal restarts the lifetime and makes a suspended subscription active again.
            found = self._json(
                "POST", self._one(found) + "/renew", f"renew subscription {found['id']}", None
            )
        return self._subscription(found, url)

    def status(self, url: str | None) -> Subscription:
        found = self._find(url)
        if found is None:
            return Subscription(
                self.provider,
                SubscriptionState.MISSING,
                url=url,
                detail="no RingCentral subscription for this address",
            )
        return self._subscription(found, url)

    def renew_due(self, subscription: Subscription, now: datetime) -> bool:
        if subscription.vendor_id is None:
            return False
        if subscription.state is SubscriptionState.EXPIRING:
            return True
        return (
            subscription.state is SubscriptionState.ACTIVE
            and subscription.expires_at is not None
            and subscription.expires_at - now <= RENEW_WITHIN
        )

    def console_steps(self, url: str) -> Sequence[str] | None:
        return None

    # -- RingCentral's answers ---------------------------------------------------------------

    def _create_body(self, url: str) -> dict[str, Any]:
        delivery: dict[str, Any] = {"transportType": "WebHook", "address": url}
        if self.verification_token is not None:
            delivery["verificationToken"] = self.verification_token.get_secret_value()
        return {
            "eventFilters": [EVENT_FILTER],
            "deliveryMode": delivery,
            "expiresIn": WEBHOOK_MAX_LIFETIME_SECONDS,
        }

    def _find(self, url: str | None) -> dict[str, Any] | None:
        """This address's WebHook subscription (with ``url`` None, the only one carrying our
        event filter); an active one first when several share the address."""
        listing = self._json("GET", self._url(SUBSCRIPTION_PATH), "list subscriptions", None)
        records = listing.get("records")
        candidates = [
            record
            for record in (records if isinstance(records, list) else [])
            if isinstance(record, dict)
            and id_text(record.get("id")) is not None
            and _delivery(record).get("transportType") == "WebHook"
            and (
                _delivery(record).get("address") == url
                if url is not None
                else EVENT_FILTER in (record.get("eventFilters") or [])
            )
        ]
        order = {"Active": 0, "Suspended": 1}
        candidates.sort(key=lambda record: order.get(str(record.get("status")), 2))
        return candidates[0] if candidates else None

    def _subscription(self, record: Mapping[str, Any], url: str | None) -> Subscription:
        status = field_text(record.get("status")) or ""
        expires_at = _time(record.get("expirationTime"))
        state = _STATES.get(status, SubscriptionState.DEACTIVATED)
        detail = f"RingCentral status {status or 'not given'}"
        if state is SubscriptionState.ACTIVE and self._ends_soon(record):
            state = SubscriptionState.EXPIRING
        if state is SubscriptionState.BLACKLISTED:
            blacklisted = record.get("blacklistedData")
            reason = (
                field_text(blacklisted.get("reason")) if isinstance(blacklisted, Mapping) else None
            )
            detail = f"{detail}: {reason[:200]}" if reason else detail
            detail += "; `webhooks subscribe` replaces it"
        elif state is SubscriptionState.DEACTIVATED:
            detail += "; `webhooks subscribe` renews it"
        if expires_at is not None:
            detail += f"; expires {expires_at.isoformat()}"
        return Subscription(
            provider=self.provider,
            state=state,
            url=field_text(_delivery(record).get("address")) or url,
            vendor_id=id_text(record.get("id")),
            expires_at=expires_at,
            detail=detail,
        )

    def _ends_soon(self, record: Mapping[str, Any]) -> bool:
        expires_at = _time(record.get("expirationTime"))
        return expires_at is not None and expires_at - self.clock() <= RENEW_WITHIN

    # -- HTTP --------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def _one(self, record: Mapping[str, Any]) -> str:
        return self._url(f"{SUBSCRIPTION_PATH}/{quote(str(record['id']), safe='')}")

    def _call(self, method: str, url: str, what: str, body: Any = None) -> bytes:
        try:
            answer = self.http.request(
                method,
                url,
                json=body,
                headers={"Accept": "application/json"},
                what=f"RingCentral: {what}",
                # Creating twice would make two subscriptions: sent once unless provably unsent.
                idempotent=method != "POST",
            )
        except HttpError as exc:
            error = self.errors(exc)
            said = self._vendor_says(exc)
            if said is None or not isinstance(error, PermanentProviderError):
                raise error from None
            hint = (
                "; RingCentral could not validate the address: it must reach this URL and get "
                "its Validation-Token header back within 3 s (is the receiver running there?)"
                if "SUB-525" in said or "deliveryMode.address" in said
                else ""
            )
            raise PermanentProviderError(f"{error}: {said}{hint}", status=exc.status) from None
        return answer.body

    def _vendor_says(self, exc: HttpError) -> str | None:
        """RingCentral's ``errorCode`` and ``message`` of a refusal, cleaned and capped."""
        if exc.response is None:
            return None
        try:
            document = json.loads(exc.response.body)
        except (ValueError, RecursionError):
            return None
        if not isinstance(document, Mapping):
            return None
        words = " ".join(
            text
            for text in (field_text(document.get("errorCode")), field_text(document.get("message")))
            if text
        )
        return self.http.redact(clean_text(words))[:200] or None

    def _json(self, method: str, url: str, what: str, body: Any) -> dict[str, Any]:
        raw = self._call(method, url, what, body)
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            raise PermanentProviderError(f"RingCentral: {what}: the answer is not a JSON object")
        return document


def _delivery(record: Mapping[str, Any]) -> Mapping[str, Any]:
    delivery = record.get("deliveryMode")
    return delivery if isinstance(delivery, Mapping) else {}
