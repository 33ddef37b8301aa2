"""A simulator of Dialpad's Admin API v2, as its OpenAPI spec documents it, on 127.0.0.1.

- ``GET /api/v2/call`` (call.list): ``cursor``, ``started_after``, ``started_before``
  (UTC epoch ms, both exclusive), ``target_id``, ``target_type``; answers a
  ``CallCollection`` (``{"cursor": ..., "items": [CallProto...]}``) newest first by start
  time, listing only calls that have ended. The cursor is opaque and keyset-like: it resumes
  after the last call returned, so a call that ends mid-listing and started among the calls
  already returned is not in this listing (as with any keyset cursor).
- ``POST /api/v2/recordingsharelink`` (recording_share_link.create): a JSON
  ``CreateRecordingShareLink`` body (``recording_id`` and ``recording_type`` required,
  ``privacy`` one of admin/company/owner/public, default owner); answers a
  ``RecordingShareLink`` whose ``access_link`` is on the media host. 100 a minute.
- Auth: ``Authorization: Bearer <key>`` or ``?apikey=<key>``; anything else is a 401.
- int64 fields are JSON strings, as in the spec's examples (proto3 JSON); empty fields are
  left out (proto3 JSON omits defaults).

- Webhooks and call event subscriptions (the same spec): ``GET``/``POST /api/v2/webhooks``
  (``CreateWebhook``: ``hook_url`` required, ``secret`` optional; a ``WebhookProto`` with
  ``signature {algo, secret, type}`` only when a secret was given), ``GET``/``PATCH``/``DELETE
  /api/v2/webhooks/{id}``; ``GET``/``POST /api/v2/subscriptions/call``
  (``CreateCallEventSubscription``: ``endpoint_id``, ``call_states`` from the spec's enum,
  ``enabled`` default true, optional ``target_type``/``target_id``), ``GET``/``PATCH``/``DELETE
  /api/v2/subscriptions/call/{id}``. Lists are ``{"items": [...], "cursor": ...}``.
- Events: ``announce(call_id)`` sends the call's ``hangup`` event, then its ``recording``
  event once it has a recording, to every enabled subscription with those states: the call
  (``CallProto`` fields with ``state``) as an HS256 JWT signed with the webhook's secret, or as
  plain JSON when the webhook has none, as Dialpad does. Dialpad retries only on a 5xx, three
  times at 2, 4 and 8 s (developers.dialpad.com/docs/webhook-delivery-failures); a 4xx is final.

The media host is a second server (``DialpadMedia``): it serves a share link's audio to anyone
holding a ``public`` link, and a login page with a 403 for the others, as users report for
Dialpad's recording URLs fetched without a browser session.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import requests

from poller.simulators.audio import LOGIN_PAGE
from poller.simulators.http_server import LocalHTTPServer, QuietHandler

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TARGET_TYPES = {
    "callcenter",
    "callrouter",
    "channel",
    "coachinggroup",
    "coachingteam",
    "department",
    "office",
    "room",
    "staffgroup",
    "unknown",
    "user",
}
RECORDING_TYPES = {"admincallrecording", "callrecording", "voicemail"}
PRIVACIES = {"admin", "company", "owner", "public"}
LIST_PARAMS = {"cursor", "started_after", "started_before", "target_id", "target_type", "apikey"}
# The call states a call event subscription may name (CallEventSubscriptionProto.call_states).
CALL_STATES = frozenset(
    {
        "admin",
        "admin_recording",
        "ai_playbook",
        "all",
        "barge",
        "blocked",
        "call_transcription",
        "calling",
        "connected",
        "csat",
        "dispositions",
        "eavesdrop",
        "hangup",
        "hold",
        "merged",
        "missed",
        "monitor",
        "parked",
        "pcsat",
        "postcall",
        "preanswer",
        "queued",
        "recap_action_items",
        "recap_outcome",
        "recap_purposes",
        "recap_summary",
        "recording",
        "ringing",
        "takeover",
        "transcription",
        "voicemail",
        "voicemail_uploaded",
    }
)
EVENT_TIMEOUT_SECONDS = 5
WEBHOOKS = "/api/v2/webhooks"
CALL_SUBSCRIPTIONS = "/api/v2/subscriptions/call"
RETRY_DELAYS = (2.0, 4.0, 8.0)


def epoch_ms(at: datetime) -> int:
    return (at - EPOCH) // timedelta(milliseconds=1)


def call_proto(
    call_id: int,
    started: datetime,
    *,
    duration: timedelta = timedelta(minutes=3),
    direction: str = "outbound",
    rep_email: str = "rep@example.com",
    rep_phone: str = "+14155550100",
    rep_name: str = "Rep Name",
    contact_name: str = "Prospect",
    contact_phone: str = "+14155550123",
    was_recorded: bool = True,
    recordings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``CallProto`` shaped like the spec's example: int64 values as strings."""
    ended = started + duration
    record: dict[str, Any] = {
        "call_id": str(call_id),
        "contact": {
            "email": "",
            "id": "1001",
            "name": contact_name,
            "phone": contact_phone,
            "type": "local",
        },
        "date_connected": str(epoch_ms(started) + 4000),
        "date_ended": str(epoch_ms(ended)),
        "date_rang": str(epoch_ms(started)),
        "date_started": str(epoch_ms(started)),
        "direction": direction,
        "duration": float(epoch_ms(ended) - epoch_ms(started)),
        "event_timestamp": str(epoch_ms(ended)),
        "external_number": contact_phone,
        "group_id": "Office:124",
        "internal_number": rep_phone,
        "is_transferred": False,
        "proxy_target": {},
        "state": "hangup",
        "target": {
            "email": rep_email,
            "id": "2",
            "name": rep_name,
            "phone": rep_phone,
            "type": "user",
        },
        "total_duration": float(epoch_ms(ended) - epoch_ms(started) + 4000),
    }
    if was_recorded:
        record["was_recorded"] = True
    if recordings:
        record["recording_details"] = recordings
    return record


def recording_detail(
    recording_id: str,
    started: datetime,
    *,
    recording_type: str = "callrecording",
    duration: timedelta = timedelta(minutes=2),
    url: str | None = None,
) -> dict[str, Any]:
    """A ``CallRecordingDetailsProto``; URLs as the reference shows them."""
    if url is None:
        url = (
            f"https://dialpad.com/blob/adminrecording/{recording_id}.mp3"
            if recording_type == "admincallrecording"
            else f"https://dialpad.com/r/{recording_id}"
        )
    return {
        "duration": str(int(duration.total_seconds() * 1000)),
        "id": recording_id,
        "recording_type": recording_type,
        "start_time": str(epoch_ms(started) + 5000),
        "url": url,
    }


@dataclass
class Failure:
    status: int
    times: int | None
    retry_after: str | None = None


@dataclass
class ShareLink:
    id: str
    call_id: str
    recording_id: str
    recording_type: str
    privacy: str
    audio: bytes
    query: str = ""


@dataclass
class DialpadState:
    """The company's calls, the scripted failures and what the client sent."""

    api_key: str
    page_size: int = 25
    media_url: str = ""
    share_links_per_minute: int = 100
    calls: dict[str, tuple[dict[str, Any], bool]] = field(default_factory=dict)
    audio: dict[tuple[str, str], bytes] = field(default_factory=dict)
    signed: set[str] = field(default_factory=set)
    list_failures: deque[Failure] = field(default_factory=deque)
    share_failures: deque[Failure] = field(default_factory=deque)
    repeat_cursor_at_page: int | None = None
    redirect_listing_to: str | None = None
    redirect_page_to: str | None = None
    # What a test makes of each listing page's bytes (a hostile or broken vendor's page).
    rewrite_listing: Callable[[bytes], bytes] | None = None
    key_uses_left: int | None = None
    requests: list[tuple[str, str, dict[str, list[str]], dict[str, str]]] = field(
        default_factory=list
    )
    share_requests: list[dict[str, Any]] = field(default_factory=list)
    links: dict[str, ShareLink] = field(default_factory=dict)
    media_requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    share_times: deque[float] = field(default_factory=deque)
    # Webhooks and call event subscriptions by id (int64 ids, written as strings).
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # When true, `announce` sends nothing (a lost event).
    drop_events: bool = False
    # (event name, status our receiver answered) of every delivery attempt.
    events_sent: list[tuple[str, int]] = field(default_factory=list)
    # Waits between retries of a delivery answered with a 5xx.
    retry_delays: tuple[float, ...] = RETRY_DELAYS
    retry_sleep: Callable[[float], None] = time.sleep
    _event_target: tuple[str, str | None] | None = None
    _hook_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(5070000001))
    lock: threading.Lock = field(default_factory=threading.Lock)
    _cursors: dict[str, tuple[str, int, tuple[int, str]]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- scripting -------------------------------------------------------------------------

    def add_call(self, record: dict[str, Any], *, ended: bool = True) -> None:
        """A call; until ``ended`` it is still going on, so call.list leaves it out."""
        with self.lock:
            self.calls[str(record["call_id"])] = (record, ended)

    def end_call(self, call_id: str) -> None:
        with self.lock:
            record, _ = self.calls[call_id]
            self.calls[call_id] = (record, True)

    def update_call(self, call_id: str, **fields: Any) -> None:
        with self.lock:
            record, ended = self.calls[call_id]
            self.calls[call_id] = ({**record, **fields}, ended)

    def add_audio(self, recording_type: str, recording_id: str, audio: bytes) -> None:
        with self.lock:
            self.audio[(recording_type, recording_id)] = audio

    def fail_listing(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        self.list_failures.append(Failure(status, times, retry_after))

    def fail_share_links(
        self, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        self.share_failures.append(Failure(status, times, retry_after))

    def listing_requests(self) -> list[dict[str, list[str]]]:
        return [query for method, path, query, _ in self.requests if path == "/api/v2/call"]

    # -- answers ---------------------------------------------------------------------------

    def list_calls(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        unknown = sorted(set(query) - LIST_PARAMS)
        if unknown:
            return _error(400, f"Unknown parameter(s): {', '.join(unknown)}")
        bounds: dict[str, int] = {}
        for name in ("started_after", "started_before", "target_id"):
            if name in query:
                try:
                    bounds[name] = int(query[name][-1])
                except ValueError:
                    return _error(400, f"Invalid value for {name}: {query[name][-1]!r}")
        target_type = query.get("target_type", [None])[-1]
        if target_type is not None and target_type not in TARGET_TYPES:
            return _error(400, f"Invalid value for target_type: {target_type!r}")
        if ("target_id" in query) != ("target_type" in query):
            return _error(400, "target_id and target_type must be given together")
        fingerprint = json.dumps(
            sorted((k, v) for k, v in query.items() if k not in ("cursor", "apikey"))
        )
        page_number, after = 1, None
        if "cursor" in query:
            entry = self._cursors.get(query["cursor"][-1])
            if entry is None or entry[0] != fingerprint:
                return _error(400, "Invalid cursor")
            _, page_number, after = entry
        with self.lock:
            found = []
            for record, ended in self.calls.values():
                if not ended:
                    continue
                started = _int(record.get("date_started"))
                if started is None:
                    # A record a test broke on purpose: listed where its intended time sorts.
                    started = _int(record.get("_sort_ms")) or 0
                if "started_after" in bounds and not started > bounds["started_after"]:
                    continue
                if "started_before" in bounds and not started < bounds["started_before"]:
                    continue
                found.append(((started, str(record.get("call_id"))), record))
        found.sort(key=lambda pair: pair[0], reverse=True)
        if after is not None:
            found = [pair for pair in found if pair[0] < after]
        page = found[: self.page_size]
        body: dict[str, Any] = {}
        if page:
            body["items"] = [
                {k: v for k, v in record.items() if not k.startswith("_")} for _, record in page
            ]
        if len(found) > self.page_size:
            cursor = secrets.token_urlsafe(24)
            if self.repeat_cursor_at_page is not None and page_number >= self.repeat_cursor_at_page:
                cursor = query["cursor"][-1] if "cursor" in query else cursor
            self._cursors[cursor] = (fingerprint, page_number + 1, page[-1][0])
            body["cursor"] = cursor
        return 200, body, {}

    def create_share_link(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        now = time.monotonic()
        while self.share_times and self.share_times[0] <= now - 60:
            self.share_times.popleft()
        if len(self.share_times) >= self.share_links_per_minute:
            wait = int(self.share_times[0] + 60 - now) + 1
            return (*_error(429, "Rate limit exceeded")[:2], {"Retry-After": str(wait)})
        self.share_times.append(now)
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object")
        self.share_requests.append(body)
        recording_id, recording_type = body.get("recording_id"), body.get("recording_type")
        privacy = body.get("privacy") or "owner"
        if not recording_id or not recording_type:
            return _error(400, "recording_id and recording_type are required")
        if recording_type not in RECORDING_TYPES:
            return _error(400, f"Invalid value for recording_type: {recording_type!r}")
        if privacy not in PRIVACIES:
            return _error(400, f"Invalid value for privacy: {privacy!r}")
        with self.lock:
            audio = self.audio.get((recording_type, recording_id))
            owner = next(
                (
                    call_id
                    for call_id, (record, _) in self.calls.items()
                    if any(
                        isinstance(d, dict) and d.get("id") == recording_id
                        for d in record.get("recording_details") or []
                    )
                ),
                None,
            )
        if audio is None or owner is None:
            return _error(404, "Recording not found")
        link = ShareLink(
            id=secrets.token_urlsafe(33),
            call_id=owner,
            recording_id=recording_id,
            recording_type=recording_type,
            privacy=privacy,
            audio=audio,
            query="X-Goog-Signature=deadbeefcafe" if recording_id in self.signed else "",
        )
        self.links[link.id] = link
        access = f"{self.media_url}/recording/{recording_type}/{link.id}"
        if link.query:
            access += f"?{link.query}"
        return (
            200,
            {
                "access_link": access,
                "call_id": owner,
                "created_by_id": "2",
                "date_added": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "id": link.id,
                "item_id": recording_id,
                "privacy": privacy,
                "type": recording_type,
            },
            {},
        )

    def take_failure(self, failures: deque[Failure]) -> Failure | None:
        with self.lock:
            if not failures:
                return None
            failure = failures[0]
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    failures.popleft()
            return failure

    # -- webhooks and call event subscriptions ----------------------------------------------

    def create_webhook(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object")
        hook_url, secret = body.get("hook_url"), body.get("secret")
        if not isinstance(hook_url, str) or not hook_url.startswith(("http://", "https://")):
            return _error(400, "hook_url is required and must be a URL")
        if secret is not None and (not isinstance(secret, str) or "\n" in secret):
            return _error(400, "secret must be a single-line string")
        with self.lock:
            webhook_id = str(next(self._hook_ids))
            self.webhooks[webhook_id] = {"id": webhook_id, "hook_url": hook_url}
            if secret:
                self.webhooks[webhook_id]["signature"] = {
                    "algo": "HS256",
                    "secret": secret,
                    "type": "jwt",
                }
            return 200, _copy(self.webhooks[webhook_id]), {}

    def update_webhook(self, webhook_id: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object")
        with self.lock:
            webhook = self.webhooks.get(webhook_id)
            if webhook is None:
                return _error(404, "Webhook not found")
            if isinstance(body.get("hook_url"), str):
                webhook["hook_url"] = body["hook_url"]
            if isinstance(body.get("secret"), str):
                if body["secret"]:
                    webhook["signature"] = {
                        "algo": "HS256",
                        "secret": body["secret"],
                        "type": "jwt",
                    }
                else:
                    webhook.pop("signature", None)
            return 200, _copy(webhook), {}

    def create_subscription(self, body: Any) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object")
        endpoint = _int(body.get("endpoint_id"))
        if endpoint is None:
            return _error(400, "endpoint_id is required")
        with self.lock:
            if str(endpoint) not in self.webhooks:
                return _error(404, "Webhook not found")
        problem = _subscription_problem(body)
        if problem is not None:
            return _error(400, problem)
        with self.lock:
            subscription_id = str(next(self._hook_ids))
            record: dict[str, Any] = {
                "id": subscription_id,
                "endpoint_id": str(endpoint),
                "call_states": list(body.get("call_states") or []),
                "enabled": body.get("enabled", True) is not False,
                "group_calls_only": bool(body.get("group_calls_only", False)),
            }
            if body.get("target_type") is not None:
                record["target_type"] = body["target_type"]
                record["target_id"] = str(body["target_id"])
            self.subscriptions[subscription_id] = record
            return 200, self.subscription_view(record), {}

    def update_subscription(
        self, subscription_id: str, body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if not isinstance(body, dict):
            return _error(400, "The request body must be a JSON object")
        problem = _subscription_problem(body)
        if problem is not None:
            return _error(400, problem)
        with self.lock:
            record = self.subscriptions.get(subscription_id)
            if record is None:
                return _error(404, "Subscription not found")
            if "call_states" in body and body["call_states"] is not None:
                record["call_states"] = list(body["call_states"])
            if body.get("enabled") is not None:
                record["enabled"] = bool(body["enabled"])
            if body.get("endpoint_id") is not None:
                endpoint = str(_int(body["endpoint_id"]))
                if endpoint not in self.webhooks:
                    return _error(404, "Webhook not found")
                record["endpoint_id"] = endpoint
            return 200, self.subscription_view(record), {}

    def subscription_view(self, record: dict[str, Any]) -> dict[str, Any]:
        """A ``CallEventSubscriptionProto``: the webhook inline, as the spec's example shows."""
        view = {k: v for k, v in record.items() if k != "endpoint_id"}
        webhook = self.webhooks.get(record["endpoint_id"])
        if webhook is not None:
            view["webhook"] = _copy(webhook)
        return view

    def disable_subscription(self, subscription_id: str) -> None:
        """Someone switched the subscription off (Dialpad itself never does)."""
        with self.lock:
            self.subscriptions[subscription_id]["enabled"] = False

    def list_page(self, items: list[Any], query: dict[str, list[str]]) -> dict[str, Any]:
        """One page of a collection, ``page_size`` long, with an opaque cursor after it."""
        start = 0
        if "cursor" in query:
            start = _int(self._cursors.get(query["cursor"][-1], ("", 0, (0, "")))[1]) or 0
        page = items[start : start + self.page_size]
        body: dict[str, Any] = {}
        if page:
            body["items"] = page
        if start + self.page_size < len(items):
            cursor = secrets.token_urlsafe(24)
            self._cursors[cursor] = ("collection", start + self.page_size, (0, ""))
            body["cursor"] = cursor
        return body

    # -- events ------------------------------------------------------------------------------

    def send_events_to(self, url: str, secret: str | None = None) -> None:
        """Call events also go to ``url``, signed with ``secret`` (unsigned JSON without one)."""
        with self.lock:
            self._event_target = (url, secret)

    def call_event(self, call_id: str, state: str) -> dict[str, Any]:
        """The call event Dialpad sends as ``call_id`` enters ``state``: the call's fields."""
        with self.lock:
            record, _ = self.calls[call_id]
        return {
            **{k: v for k, v in record.items() if not k.startswith("_")},
            "state": state,
            "event_timestamp": str(int(time.time() * 1000)),
        }

    def signed_event(self, call_id: str) -> tuple[dict[str, str], bytes]:
        """The ``hangup`` event of ``call_id`` as it would go where events go now."""
        targets = self._targets("hangup")
        secret = targets[0][1] if targets else None
        return _encoded(self.call_event(call_id, "hangup"), secret)

    def announce(self, call_id: str) -> list[int]:
        """Send the events of a call that ended: ``hangup``, then ``recording`` once recorded."""
        if self.drop_events:
            return []
        with self.lock:
            record, _ = self.calls[call_id]
        states = ["hangup"] + (["recording"] if record.get("recording_details") else [])
        statuses: list[int] = []
        for state in states:
            for url, secret in self._targets(state):
                headers, body = _encoded(self.call_event(call_id, state), secret)
                statuses.append(self._deliver(state, url, headers, body))
        return statuses

    def _deliver(self, state: str, url: str, headers: dict[str, str], body: bytes) -> int:
        for wait in (*self.retry_delays, None):
            try:
                status = requests.post(
                    url, data=body, headers=headers, timeout=EVENT_TIMEOUT_SECONDS
                ).status_code
            except requests.RequestException:
                status = 0
            with self.lock:
                self.events_sent.append((state, status))
            # Only a 5xx (or no answer) is tried again; a 4xx, 429 included, is final.
            if wait is None or (status != 0 and status < 500):
                return status
            self.retry_sleep(wait)
        return status

    def _targets(self, state: str) -> list[tuple[str, str | None]]:
        """(url, secret) of everyone an event in ``state`` goes to."""
        with self.lock:
            found: list[tuple[str, str | None]] = []
            for record in self.subscriptions.values():
                states = record["call_states"]
                webhook = self.webhooks.get(record["endpoint_id"])
                if not record["enabled"] or webhook is None:
                    continue
                if state not in states and "all" not in states:
                    continue
                secret = webhook.get("signature", {}).get("secret")
                if all(url != webhook["hook_url"] for url, _ in found):
                    found.append((webhook["hook_url"], secret))
            if self._event_target is not None and all(
                url != self._event_target[0] for url, _ in found
            ):
                found.append(self._event_target)
        return found


def _encoded(event: dict[str, Any], secret: str | None) -> tuple[dict[str, str], bytes]:
    """The event as Dialpad sends it: a JWT with a secret, plain JSON without one."""
    if not secret:
        return {"Content-Type": "application/json"}, json.dumps(event).encode()
    token = jwt.encode(event, secret, algorithm="HS256")
    return {"Content-Type": "application/jwt"}, token.encode()


def _subscription_problem(body: dict[str, Any]) -> str | None:
    states = body.get("call_states")
    if states is not None and (
        not isinstance(states, list) or not all(s in CALL_STATES for s in states)
    ):
        return f"Invalid value for call_states: {states!r}"
    target_type = body.get("target_type")
    if target_type is not None and target_type not in TARGET_TYPES:
        return f"Invalid value for target_type: {target_type!r}"
    if (target_type is None) != (body.get("target_id") is None):
        return "target_id and target_type must be given together"
    return None


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(value))  # type: ignore[no-any-return]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _error(status: int, message: str) -> tuple[int, Any, dict[str, str]]:
    return status, {"error": {"code": status, "message": message}}, {}


class DialpadHandler(QuietHandler):
    @property
    def state(self) -> DialpadState:
        return self.server.state  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        headers = {name: value for name, value in self.headers.items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        state = self.state
        state.requests.append((method, parts.path, query, headers))
        if not self._authorised(query):
            self._json(401, {"error": {"code": 401, "message": "Invalid API key"}})
            return
        if parts.path == "/api/v2/call" and method == "GET":
            if state.redirect_listing_to is not None:
                self._redirect(state.redirect_listing_to)
                return
            if state.redirect_page_to is not None and "cursor" in query:
                self._redirect(f"{state.redirect_page_to}/api/v2/call?{parts.query}")
                return
            failure = state.take_failure(state.list_failures)
            if failure is not None:
                self._fail(failure)
                return
            status, page, headers = state.list_calls(query)
            rewrite = state.rewrite_listing if status == 200 else None
            self._json(status, page, headers, rewrite=rewrite)
            return
        if parts.path == "/api/v2/recordingsharelink" and method == "POST":
            failure = state.take_failure(state.share_failures)
            if failure is not None:
                self._fail(failure)
                return
            if "application/json" not in (self.headers.get("Content-Type") or ""):
                self._json(400, {"error": {"code": 400, "message": "Expected a JSON body"}})
                return
            try:
                body = json.loads(raw_body)
            except ValueError:
                self._json(400, {"error": {"code": 400, "message": "Invalid JSON"}})
                return
            self._json(*state.create_share_link(body))
            return
        if parts.path.startswith((WEBHOOKS, CALL_SUBSCRIPTIONS)):
            self._json(*self._subscriptions(method, parts.path, query, raw_body))
            return
        self._json(404, {"error": {"code": 404, "message": "Not found"}})

    def _subscriptions(
        self, method: str, path: str, query: dict[str, list[str]], raw: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        """The webhook and call event subscription endpoints."""
        state = self.state
        body: Any = None
        if method in ("POST", "PATCH"):
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                return _error(400, "Invalid JSON")
        if path.startswith(CALL_SUBSCRIPTIONS):
            item = path.removeprefix(CALL_SUBSCRIPTIONS).strip("/")
            if not item:
                if method == "GET":
                    with state.lock:
                        views = [state.subscription_view(r) for r in state.subscriptions.values()]
                    return 200, state.list_page(views, query), {}
                if method == "POST":
                    return state.create_subscription(body)
                return _error(405, "Method not allowed")
            if method == "PATCH":
                return state.update_subscription(item, body)
            with state.lock:
                record = state.subscriptions.get(item)
                if record is None:
                    return _error(404, "Subscription not found")
                view = state.subscription_view(record)
                if method == "DELETE":
                    del state.subscriptions[item]
            return (200, view, {}) if method in ("GET", "DELETE") else _error(405, "Not allowed")
        item = path.removeprefix(WEBHOOKS).strip("/")
        if not item:
            if method == "GET":
                with state.lock:
                    hooks = [_copy(w) for w in state.webhooks.values()]
                return 200, state.list_page(hooks, query), {}
            if method == "POST":
                return state.create_webhook(body)
            return _error(405, "Method not allowed")
        if method == "PATCH":
            return state.update_webhook(item, body)
        with state.lock:
            webhook = state.webhooks.get(item)
            if webhook is None:
                return _error(404, "Webhook not found")
            shown = _copy(webhook)
            if method == "DELETE":
                del state.webhooks[item]
        return (200, shown, {}) if method in ("GET", "DELETE") else _error(405, "Not allowed")

    def _authorised(self, query: dict[str, list[str]]) -> bool:
        state = self.state
        given = self.headers.get("Authorization") == f"Bearer {state.api_key}" or query.get(
            "apikey"
        ) == [state.api_key]
        if not given:
            return False
        with state.lock:
            if state.key_uses_left is not None:
                if state.key_uses_left <= 0:
                    return False  # the key the admin created has expired
                state.key_uses_left -= 1
        return True

    def _fail(self, failure: Failure) -> None:
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
        message = "Rate limit exceeded" if failure.status == 429 else "Service unavailable"
        self._json(failure.status, {"error": {"code": failure.status, "message": message}}, headers)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _json(
        self,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        *,
        rewrite: Callable[[bytes], bytes] | None = None,
    ) -> None:
        payload = json.dumps(body).encode()
        if rewrite is not None:
            payload = rewrite(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class MediaHandler(QuietHandler):
    """The host a share link's ``access_link`` points at."""

    @property
    def state(self) -> DialpadState:
        return self.server.state  # type: ignore[attr-defined,no-any-return]

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        state = self.state
        state.media_requests.append((self.path, dict(self.headers.items())))
        segments = parts.path.strip("/").split("/")
        link = state.links.get(segments[-1]) if len(segments) == 3 else None
        if link is None or segments[:2] != ["recording", link.recording_type]:
            self._send(404, b"not found", "text/plain")
        elif link.query and parts.query != link.query:
            self._send(403, b"signature required", "text/plain")
        elif link.privacy != "public":
            self._send(403, LOGIN_PAGE, "text/html; charset=utf-8")
        else:
            self._send(200, link.audio, "audio/mpeg")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class DialpadServers:
    """The API host and the media host, both running for a ``with`` block."""

    def __init__(self, api_key: str, *, page_size: int = 25) -> None:
        self.state = DialpadState(api_key=api_key, page_size=page_size)
        self.api = LocalHTTPServer(DialpadHandler, self.state)
        self.media = LocalHTTPServer(MediaHandler, self.state)

    def __enter__(self) -> DialpadServers:
        self.api.__enter__()
        self.media.__enter__()
        self.state.media_url = self.media.url
        return self

    def __exit__(self, *exc: object) -> None:
        self.media.__exit__(None, None, None)
        self.api.__exit__(None, None, None)

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def media_host(self) -> str:
        return self.media.url.removeprefix("http://")

    def next_id(self) -> int:
        return 6543210987654000 + next(self.state._ids)
