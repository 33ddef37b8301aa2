"""Zoom Phone's webhook events: the signature, the URL validation challenge, the console steps.

What Zoom documents (developers.zoom.us/docs/api/webhooks, "Verify webhook events" and
"Validate your webhook endpoint"), as its SDK ``@zoom/rivet`` implements it
(``CommonHttpRequest.isEventVerified`` and ``hashUrlValidationEvent``):

- Every request, the URL validation challenge included, carries ``x-zm-request-timestamp``
  and ``x-zm-signature: v0=<hex HMAC-SHA256(secret token, "v0:{timestamp}:{raw body}")>``,
  keyed with the app's Secret Token.
- ``endpoint.url_validation`` (``payload.plainToken``) is answered 200 with the JSON
  ``{"plainToken": ..., "encryptedToken": <hex HMAC-SHA256(secret token, plainToken)>}``,
  when the endpoint is added in the Marketplace and again every 72 hours.
- ``phone.recording_completed`` lists ``payload.object.recordings[]`` (``id``, ``call_id``,
  ``call_log_id``, ``download_url``...); ``phone.recording_failed`` names one recording;
  ``phone.caller_ended`` / ``phone.callee_ended`` name a ``call_id``; the
  ``*_call_log_completed`` and ``*_call_history_completed`` events list ``call_logs[]``.

The adapter keys calls by the recording ``id`` (``provider_call_id``): a recording event gives
those; the events of a call that ended give only its ``call_id``, which is what they name.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from poller.adapters.webhooks.console import ConsoleSubscriptions
from poller.domain.call_record import MAX_ID_LENGTH
from poller.ports.webhooks import Refused, Reply, Verified, WebhookRequest

SIGNATURE_HEADER = "x-zm-signature"
TIMESTAMP_HEADER = "x-zm-request-timestamp"
SIGNATURE_VERSION = "v0"
URL_VALIDATION = "endpoint.url_validation"
RECORDING_COMPLETED = "phone.recording_completed"
RECORDING_FAILED = "phone.recording_failed"
CALL_ENDED = frozenset({"phone.caller_ended", "phone.callee_ended"})
CALL_LOGGED = frozenset(
    {
        "phone.caller_call_log_completed",
        "phone.callee_call_log_completed",
        "phone.caller_call_history_completed",
        "phone.callee_call_history_completed",
    }
)
# A timestamp this large is in milliseconds (Zoom's event_ts is); seconds stay below it
# until the year 5138.
_MILLISECONDS_FROM = 10**11
# More ids than a real event lists would only inflate the nudge's log lines.
MAX_CALL_IDS = 100

CONSOLE_STEPS = (
    "Sign in to the Zoom App Marketplace (marketplace.zoom.us) as the account's admin and open "
    "Manage > Created Apps > your Server-to-Server OAuth app (the one whose credentials this "
    "provider uses).",
    "Go to Feature (Features > Access), turn on Event Subscriptions and click Add New Event "
    "Subscription.",
    "Set the Event notification endpoint URL to {url}",
    "Click Add Events > Phone and tick: Phone recording completed (phone.recording_completed), "
    "Phone recording failed, Callee ended the call, Caller ended the call, and the caller and "
    "callee call log (or call history) completed events. Click Done.",
    "Copy the Secret Token shown on that page into provider.webhook.secret (with "
    "provider.webhook.enabled = true) and restart the poller so it answers Zoom's challenge.",
    "Click Validate next to the endpoint URL: Zoom sends endpoint.url_validation and the poller "
    "answers it. Save. Zoom validates the URL again every 72 hours; keep the poller reachable.",
)


def zoom_console_steps(provider: str) -> ConsoleSubscriptions:
    return ConsoleSubscriptions(provider, "Zoom App Marketplace", CONSOLE_STEPS)


def zoom_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``v0=`` and the hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the Secret Token."""
    message = f"{SIGNATURE_VERSION}:{timestamp}:".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def encrypted_token(secret: str, plain_token: str) -> str:
    """The URL validation answer: the hex HMAC-SHA256 of ``plainToken`` with the Secret Token."""
    return hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()


class ZoomWebhookVerifier:
    """A :class:`poller.ports.webhooks.WebhookVerifier` for Zoom's ``x-zm-signature``."""

    def __init__(self, secret: SecretStr, *, max_event_age_seconds: float) -> None:
        self._secret = secret
        self._max_age = max_event_age_seconds

    def verify(self, request: WebhookRequest) -> Verified | Refused:
        signature = request.header(SIGNATURE_HEADER)
        timestamp = request.header(TIMESTAMP_HEADER)
        if not signature or not timestamp:
            return Refused("no_signature")
        sent_at = _instant(timestamp)
        if sent_at is None:
            return Refused("malformed")
        secret = self._secret.get_secret_value()
        expected = zoom_signature(secret, timestamp, request.body)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            return Refused("bad_signature")
        received_at = request.received_at
        if received_at.tzinfo is None:  # the port promises UTC; never raise over its form
            received_at = received_at.replace(tzinfo=UTC)
        if abs((received_at - sent_at).total_seconds()) > self._max_age:
            return Refused("stale")
        try:
            document = json.loads(request.body)
        except (ValueError, RecursionError):
            return Refused("malformed")
        if not isinstance(document, dict) or not isinstance(document.get("event"), str):
            return Refused("malformed")
        event: str = document["event"]
        payload = document.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        if event == URL_VALIDATION:
            # Answered only once the signature holds: unsigned, the challenge would hand anyone
            # an HMAC of their choosing under the Secret Token, e.g. a valid event signature.
            plain_token = payload.get("plainToken")
            if not isinstance(plain_token, str) or not plain_token:
                return Refused("malformed")
            answer = {
                "plainToken": plain_token,
                "encryptedToken": encrypted_token(secret, plain_token),
            }
            return Verified(
                event=event,
                nudge=False,
                replay_key=None,
                reply=Reply(
                    status=200,
                    body=json.dumps(answer).encode(),
                    content_type="application/json",
                ),
            )
        found = payload.get("object")
        subject = found if isinstance(found, dict) else {}
        if event == RECORDING_COMPLETED:
            call_ids, nudge = _ids(subject.get("recordings"), "id"), True
        elif event == RECORDING_FAILED:
            call_ids, nudge = _ids([subject], "id"), False
        elif event in CALL_ENDED:
            call_ids, nudge = _ids([subject], "call_id"), True
        elif event in CALL_LOGGED:
            call_ids, nudge = _ids(subject.get("call_logs"), "call_id"), True
        else:
            call_ids, nudge = (), False
        return Verified(event=event, call_ids=call_ids, nudge=nudge, replay_key=signature)


def _instant(timestamp: str) -> datetime | None:
    """Zoom's request timestamp: epoch seconds (milliseconds are read as such)."""
    text = timestamp.strip()
    if not text.isdigit() or len(text) > 16:
        return None
    value = int(text)
    seconds = value / 1000 if value >= _MILLISECONDS_FROM else value
    return datetime.fromtimestamp(seconds, UTC)


def _ids(items: Any, key: str) -> tuple[str, ...]:
    """The ``key`` of each mapping in ``items``: present, text or a number, of a sane length."""
    if not isinstance(items, Sequence) or isinstance(items, str):
        return ()
    found: list[str] = []
    for item in items[:MAX_CALL_IDS]:
        value = item.get(key) if isinstance(item, dict) else None
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip() and len(value) <= MAX_ID_LENGTH:
            text = value.strip()
            if text not in found:
                found.append(text)
    return tuple(found)
