"""A simulator of Aircall's Public API v1 (calls) and of the storage its recording URLs point at.

It answers as Aircall documents (support.aircall.io "pagination", the call object of Airbyte's
connector schema, the API reference's rate-limit section):

- ``GET /v1/calls`` with HTTP Basic ``api_id:api_token``; ``from``/``to`` Unix seconds on the
  call's creation time (both inclusive), ``order`` ``asc``/``desc``, ``page`` from 1 and
  ``per_page`` up to 50 (default 20). Aircall documents these bounds but not its answer past
  them; the simulator refuses anything else with a 400, so a client that oversteps is caught.
  Calls under
  ``calls``; ``meta`` holds ``count``, ``total``, ``current_page``, ``per_page``,
  ``next_page_link`` and ``previous_page_link`` (absolute URLs carrying every parameter).
- The 10,000-record cap: a query only ever reaches its first 10,000 calls; ``total`` still
  counts every match, the last reachable page has no ``next_page_link`` and a page beyond the
  cap is refused.
- ``contact`` is filled in only with ``fetch_contact=true`` (the reference's parameter for it;
  what the API puts there without it is not documented, so the simulator leaves it empty).
- ``GET /v1/calls/{id}`` answers ``{"call": {...}}``.
- Each answer signs the recording afresh: ``recording`` is a short-lived URL on the media
  server (S3 style: ``X-Amz-*`` query, refused once expired, refused with any
  ``Authorization`` header beside the signature).
- ``DELETE /v1/calls/{id}/recording``: deletes the call's recording for good (204, no body);
  an unknown call, or one whose recording is absent or already deleted, is 404 ("if it is not
  present, it will not be deleted"). Every delete request is kept in ``deletes``.
- Rate limit: ``limit`` requests per ``window_seconds`` (60 a minute by default); every answer
  carries ``X-AircallApi-Limit``, ``-Remaining`` and ``-Reset`` (Unix time of the window's
  end); past the limit, 429.

- Webhooks (developer.aircall.io webhooks overview and API reference): ``GET /v1/webhooks``
  (``page``/``per_page`` as for calls; the webhooks under ``webhooks``, the same ``meta``),
  ``POST /v1/webhooks`` (``custom_name``, ``url`` required, ``events``: without it every event
  Aircall has, as Aircall does) answering 201 ``{"webhook": {...}}`` with a ``token`` Aircall
  chooses, ``GET``/``PUT``/``DELETE /v1/webhooks/{id}``; ``PUT`` with ``active: true``
  re-enables a deactivated webhook. At most 100 webhooks a company.
- Events: ``announce(call_id)`` POSTs ``call.hungup`` then ``call.ended`` (``{"resource":
  "call", "event", "timestamp", "token", "data": <the call>}``) to every active webhook that
  subscribed them, and to the address ``send_events_to`` gave. Aircall deactivates a webhook
  after repeated failed deliveries; the threshold is not documented, so it happens here only
  after ``deactivate_after_failures`` (unset: never) or through ``deactivate(webhook_id)``.

Errors are ``{"error": ..., "troubleshoot": ...}`` as Aircall writes them.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from poller.simulators.http_server import LocalHTTPServer, QuietHandler

ROW_CAP = 10_000
MAX_PER_PAGE = 50
DEFAULT_PER_PAGE = 20
SIGNED_URL_SECONDS = 3600
MAX_WEBHOOKS = 100
EVENT_TIMEOUT_SECONDS = 5
# What `announce` sends once a call has ended, in order: at hang-up, then once its data is final.
CALL_END_EVENTS = ("call.hungup", "call.ended")
# The events a webhook created without an `events` list gets (Aircall's call and user events;
# the real list has about 90, this one only needs to be more than asked for).
ALL_EVENTS = (
    "call.created",
    "call.ringing_on_agent",
    "call.agent_declined",
    "call.answered",
    "call.transferred",
    "call.unsuccessful_transfer",
    "call.hungup",
    "call.ended",
    "call.voicemail_left",
    "call.assigned",
    "call.archived",
    "call.tagged",
    "call.untagged",
    "call.commented",
    "call.comm_assets_generated",
    "user.created",
    "user.deleted",
    "user.connected",
    "user.disconnected",
    "number.created",
    "number.deleted",
    "contact.created",
    "contact.updated",
    "contact.deleted",
)


def aircall_call(
    call_id: int,
    started_at: datetime,
    *,
    direction: str = "outbound",
    status: str = "done",
    answered: bool = True,
    duration: int = 190,
    user: dict[str, Any] | None = None,
    raw_digits: str = "+1 415-555-0100",
    contact: dict[str, Any] | None = None,
    number_digits: str = "+1 415-555-0199",
    line_records: bool = True,
) -> dict[str, Any]:
    """A call object with the fields of Aircall's schema (``recording`` is filled when served)."""
    started = int(started_at.timestamp())
    return {
        "id": call_id,
        "direct_link": f"https://api.aircall.io/v1/calls/{call_id}",
        "direction": direction,
        "status": status,
        "missed_call_reason": None if answered else "agents_did_not_answer",
        "started_at": started,
        "answered_at": started + 5 if answered else None,
        "ended_at": started + duration,
        "duration": duration,
        "voicemail": None,
        "recording": None,
        "asset": f"https://assets.aircall.io/calls/{call_id}/recording" if answered else None,
        "raw_digits": raw_digits,
        "user": user
        if user is not None
        else {
            "id": 42,
            "direct_link": "https://api.aircall.io/v1/users/42",
            "name": "Rep Name",
            "email": "rep@example.com",
            "available": True,
            "availability_status": "available",
        },
        "contact": contact,
        "archived": False,
        "assigned_to": None,
        "tags": [],
        "comments": [],
        "teams": [],
        "number": {
            "id": 7,
            "direct_link": "https://api.aircall.io/v1/numbers/7",
            "name": "Sales US",
            "digits": number_digits,
            "created_at": "2025-01-06T09:00:00.000Z",
            "country": "US",
            "time_zone": "America/Los_Angeles",
            "open": True,
            "availability_status": "open",
            "is_ivr": False,
            # Whether the line records its calls; off, an answered call has no recording.
            "live_recording_activated": line_records,
            "priority": None,
        },
        "transferred_by": None,
        "transferred_to": None,
        "cost": "0.0",
        "country_code_a2": "US",
        "pricing_type": "pay_per_minute",
    }


def aircall_contact(first: str, last: str, phone: str, company: str = "Acme") -> dict[str, Any]:
    return {
        "id": 9001,
        "direct_link": "https://api.aircall.io/v1/contacts/9001",
        "first_name": first,
        "last_name": last,
        "company_name": company,
        "information": None,
        "is_shared": True,
        "phone_numbers": [{"id": 1, "label": "Work", "value": phone}],
        "emails": [],
    }


# -- the storage host --------------------------------------------------------------------------


@dataclass
class MediaStore:
    """Recording objects and the signatures that currently open them."""

    objects: dict[str, bytes] = field(default_factory=dict)
    grants: dict[str, tuple[str, float]] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    base_url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def put(self, key: str, body: bytes) -> None:
        with self.lock:
            self.objects[key] = body

    def sign(self, key: str, signature: str | None = None) -> str:
        """A fresh signed URL of object ``key``, valid for an hour."""
        with self.lock:
            token = signature or secrets.token_hex(16)
            now = self.clock()
            self.grants[token] = (key, now + SIGNED_URL_SECONDS)
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%SZ")
        query = urlencode(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Date": stamp,
                "X-Amz-Expires": str(SIGNED_URL_SECONDS),
                "X-Amz-SignedHeaders": "host",
                "X-Amz-Signature": token,
            }
        )
        return f"{self.base_url}/calls/{key}/recording.mp3?{query}"

    def expire_all(self) -> None:
        """Every URL handed out so far stops working, as they do within the hour."""
        with self.lock:
            self.grants.clear()

    def answer(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        with self.lock:
            self.requests.append({"path": path, "query": query, "headers": headers})
            if any(name.lower() == "authorization" for name in headers):
                return 400, _s3_error("InvalidArgument", "Only one auth mechanism allowed")
            grant = self.grants.get(query.get("X-Amz-Signature", ""))
            key = path.removeprefix("/calls/").removesuffix("/recording.mp3")
            if grant is None or grant[0] != key:
                return 403, _s3_error("SignatureDoesNotMatch", "The signature does not match")
            if grant[1] < self.clock():
                return 403, _s3_error("AccessDenied", "Request has expired")
            body = self.objects.get(key)
        if body is None:
            return 404, _s3_error("NoSuchKey", "The specified key does not exist.")
        return 200, body


def _s3_error(code: str, message: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


class MediaHandler(QuietHandler):
    server: Any

    def do_GET(self) -> None:
        store: MediaStore = self.server.state
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        status, body = store.answer(parts.path, query, dict(self.headers.items()))
        self.send_response(status)
        self.send_header("Content-Type", "audio/mpeg" if status == 200 else "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# -- the API -----------------------------------------------------------------------------------


@dataclass
class StoredCall:
    created_at: int  # Unix seconds: what from/to filter on
    record: dict[str, Any]
    recording_key: str | None = None
    signature: str | None = None


@dataclass
class ScriptedFailure:
    status: int
    times: int | None  # None: every listing request
    reset_in: int | None = None  # with a 429: X-AircallApi-Reset this many seconds ahead


@dataclass
class AircallApi:
    """The simulated company account. Mutate it between polls to make time pass."""

    api_id: str
    api_token: str
    media: MediaStore
    limit: int = 60
    window_seconds: int = 60
    row_cap: int = ROW_CAP
    # Timestamps (Reset, expiry of signed URLs) come from this clock.
    clock: Callable[[], float] = time.time
    calls: dict[str, StoredCall] = field(default_factory=dict)
    failures: deque[ScriptedFailure] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    # Every DELETE of a recording: (call id, the status answered).
    deletes: list[tuple[str, int]] = field(default_factory=list)
    # Statuses to answer the next deletes with, in order, before deleting (a flaky API).
    delete_failures: deque[int] = field(default_factory=deque)
    # Scripting for the hostile cases of the contract.
    redirect_listing_to: str | None = None
    next_link_base: str | None = None
    loop_from_page: int | None = None
    # What a test makes of each listing page's bytes (a hostile or broken vendor's page).
    rewrite_listing: Callable[[bytes], bytes] | None = None
    # Credentials revoked after this many authorised requests (a deleted API key).
    revoke_after: int | None = None
    # Webhooks by id, in creation order, as the API shows them.
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Consecutive failed deliveries after which a webhook is deactivated (None: never).
    deactivate_after_failures: int | None = None
    # When true, `announce` sends nothing (a lost event).
    drop_events: bool = False
    # (event name, status our receiver answered) of every event sent.
    events_sent: list[tuple[str, int]] = field(default_factory=list)
    _event_target: tuple[str, str | None] | None = None
    _failures: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _window: int = 0
    _used: int = 0
    _authorised: int = 0

    # -- scripting ---------------------------------------------------------------------------

    def add_call(
        self,
        record: dict[str, Any],
        *,
        recording: bytes | None = None,
        signature: str | None = None,
        created_at: int | None = None,
    ) -> None:
        """Serve ``record``; with ``recording`` its audio sits on the media host."""
        call_id = str(record.get("id"))
        created = created_at if created_at is not None else int(record["started_at"])
        key = None
        if recording is not None:
            key = f"{call_id}-{secrets.token_hex(4)}"
            self.media.put(key, recording)
        with self.lock:
            self.calls[call_id] = StoredCall(created, record, key, signature)

    def add_recording(self, call_id: str, body: bytes) -> None:
        """The recording of a call already served becomes available (it came late)."""
        key = f"{call_id}-{secrets.token_hex(4)}"
        self.media.put(key, body)
        with self.lock:
            self.calls[call_id].recording_key = key

    def fail_listing(
        self, status: int, *, times: int | None = 1, reset_in: int | None = None
    ) -> None:
        with self.lock:
            self.failures.append(ScriptedFailure(status, times, reset_in))

    def listing_requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == "/v1/calls"]

    # -- answering ---------------------------------------------------------------------------

    def rate_headers(self, count: bool) -> tuple[bool, dict[str, str]]:
        """(over the limit, headers), counting this request against the window if ``count``."""
        with self.lock:
            now = self.clock()
            window = int(now // self.window_seconds)
            if window != self._window:
                self._window, self._used = window, 0
            if count:
                self._used += 1
            over = self._used > self.limit
            reset = (window + 1) * self.window_seconds
            headers = {
                "X-AircallApi-Limit": str(self.limit),
                "X-AircallApi-Remaining": str(max(0, self.limit - self._used)),
                "X-AircallApi-Reset": str(reset),
            }
        return over, headers

    def authorised(self, headers: dict[str, str]) -> bool:
        pair = f"{self.api_id}:{self.api_token}".encode()
        expected = "Basic " + base64.b64encode(pair).decode()
        sent = {name.lower(): value for name, value in headers.items()}.get("authorization")
        if sent != expected:
            return False
        with self.lock:
            self._authorised += 1
            return self.revoke_after is None or self._authorised <= self.revoke_after

    def serve_call(self, stored: StoredCall, *, with_contact: bool = True) -> dict[str, Any]:
        record = dict(stored.record)
        if stored.recording_key is not None:
            record["recording"] = self.media.sign(stored.recording_key, stored.signature)
        if not with_contact:
            record["contact"] = None
        return record

    def listing(self, query: dict[str, str], base_url: str) -> tuple[int, Any]:
        try:
            start = int(query["from"]) if "from" in query else None
            end = int(query["to"]) if "to" in query else None
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", str(DEFAULT_PER_PAGE)))
        except ValueError:
            return 400, _error("Invalid parameters", "from, to, page and per_page are integers")
        order = query.get("order", "asc")
        if order not in ("asc", "desc"):
            return 400, _error("Invalid order", "order is asc or desc")
        if not 1 <= per_page <= MAX_PER_PAGE or page < 1:
            return 400, _error("Invalid pagination", f"per_page is 1 to {MAX_PER_PAGE}, page >= 1")
        if (page - 1) * per_page >= self.row_cap:
            return 400, _error(
                "Pagination limit reached",
                f"list queries return at most {self.row_cap} records; filter by from and to",
            )
        with self.lock:
            matching = sorted(
                (
                    stored
                    for stored in self.calls.values()
                    if (start is None or stored.created_at >= start)
                    and (end is None or stored.created_at <= end)
                ),
                key=lambda stored: (stored.created_at, str(stored.record.get("id"))),
                reverse=order == "desc",
            )
            reachable = matching[: self.row_cap]
            offset = (page - 1) * per_page
            with_contact = query.get("fetch_contact") == "true"
            calls = [
                self.serve_call(stored, with_contact=with_contact)
                for stored in reachable[offset : offset + per_page]
            ]
            more = offset + per_page < len(reachable)
            following = page + 1
            if self.loop_from_page is not None and page >= self.loop_from_page:
                more, following = True, page

        def link(number: int) -> str:
            params = {**query, "page": str(number), "per_page": str(per_page)}
            return f"{self.next_link_base or base_url}/v1/calls?{urlencode(params)}"

        meta = {
            "count": len(calls),
            "total": len(matching),
            "current_page": page,
            "per_page": per_page,
            "next_page_link": link(following) if more else None,
            "previous_page_link": link(page - 1) if page > 1 else None,
        }
        return 200, {"calls": calls, "meta": meta}

    def delete_recording(self, call_id: str) -> tuple[int, Any]:
        with self.lock:
            if self.delete_failures:
                status = self.delete_failures.popleft()
                self.deletes.append((call_id, status))
                return status, _error(f"HTTP {status}", "scripted")
            stored = self.calls.get(call_id)
            if stored is None or stored.recording_key is None:
                self.deletes.append((call_id, 404))
                return 404, _error("Not found", "the call has no recording to delete")
            self.media.objects.pop(stored.recording_key, None)
            stored.recording_key = None
            stored.record = {**stored.record, "recording": None, "asset": None}
            self.deletes.append((call_id, 204))
            return 204, None

    def single(self, call_id: str) -> tuple[int, Any]:
        with self.lock:
            stored = self.calls.get(call_id)
            if stored is None:
                return 404, _error("Not found", "check the call id")
            return 200, {"call": self.serve_call(stored)}

    # -- webhooks ---------------------------------------------------------------------------

    def list_webhooks(self, query: dict[str, str], base_url: str) -> tuple[int, Any]:
        try:
            page = int(query.get("page", "1"))
            per_page = int(query.get("per_page", str(DEFAULT_PER_PAGE)))
        except ValueError:
            return 400, _error("Invalid parameters", "page and per_page are integers")
        if not 1 <= per_page <= MAX_PER_PAGE or page < 1:
            return 400, _error("Invalid pagination", f"per_page is 1 to {MAX_PER_PAGE}, page >= 1")
        with self.lock:
            hooks = [dict(hook) for hook in self.webhooks.values()]
        offset = (page - 1) * per_page

        def link(number: int) -> str:
            params = {**query, "page": str(number), "per_page": str(per_page)}
            return f"{base_url}/v1/webhooks?{urlencode(params)}"

        shown = hooks[offset : offset + per_page]
        meta = {
            "count": len(shown),
            "total": len(hooks),
            "current_page": page,
            "per_page": per_page,
            "next_page_link": link(page + 1) if offset + per_page < len(hooks) else None,
            "previous_page_link": link(page - 1) if page > 1 else None,
        }
        return 200, {"webhooks": shown, "meta": meta}

    def create_webhook(self, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, _error("Invalid payload", "the body is a JSON object")
        url, events = body.get("url"), body.get("events", list(ALL_EVENTS))
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return 400, _error("Invalid url", "url is required and must be a valid URL")
        if not isinstance(events, list) or not all(e in ALL_EVENTS for e in events):
            return 400, _error("Invalid events", "events is a list of Aircall event names")
        with self.lock:
            if len(self.webhooks) >= MAX_WEBHOOKS:
                return 400, _error(
                    "Webhook limit reached", f"a company has at most {MAX_WEBHOOKS} webhooks"
                )
            webhook_id = str(uuid.uuid4())
            hook = {
                "webhook_id": webhook_id,
                "direct_link": f"https://api.aircall.io/v1/webhooks/{webhook_id}",
                "created_at": datetime.fromtimestamp(self.clock(), UTC).strftime(
                    "%Y-%m-%dT%H:%M:%S.000Z"
                ),
                "url": url,
                "active": True,
                "token": secrets.token_hex(16),
                "events": list(events),
                "custom_name": body.get("custom_name") or "Webhook",
            }
            self.webhooks[webhook_id] = hook
            return 201, {"webhook": dict(hook)}

    def update_webhook(self, webhook_id: str, body: Any) -> tuple[int, Any]:
        if not isinstance(body, dict):
            return 400, _error("Invalid payload", "the body is a JSON object")
        with self.lock:
            hook = self.webhooks.get(webhook_id)
            if hook is None:
                return 404, _error("Not found", "check the webhook id")
            if "events" in body:
                events = body["events"]
                if not isinstance(events, list) or not all(e in ALL_EVENTS for e in events):
                    return 400, _error("Invalid events", "events is a list of event names")
                hook["events"] = list(events)
            if "active" in body:
                if not isinstance(body["active"], bool):
                    return 400, _error("Invalid active", "active is true or false")
                hook["active"] = body["active"]
                if hook["active"]:
                    self._failures.pop(webhook_id, None)
            for key in ("url", "custom_name"):
                if isinstance(body.get(key), str):
                    hook[key] = body[key]
            return 200, {"webhook": dict(hook)}

    def delete_webhook(self, webhook_id: str) -> tuple[int, Any]:
        with self.lock:
            if self.webhooks.pop(webhook_id, None) is None:
                return 404, _error("Not found", "check the webhook id")
        return 204, None

    def deactivate(self, webhook_id: str) -> None:
        """Aircall switches the webhook off, as it does after repeated failed deliveries."""
        with self.lock:
            self.webhooks[webhook_id]["active"] = False

    # -- events ------------------------------------------------------------------------------

    def send_events_to(self, url: str, secret: str | None = None) -> None:
        """Events also go to ``url``, carrying ``secret`` as their token (a webhook made in the
        dashboard, whose token the operator copied)."""
        with self.lock:
            self._event_target = (url, secret)

    def call_event(self, call_id: str, event: str, token: str | None) -> dict[str, Any]:
        """One event about a call, shaped as Aircall sends it."""
        with self.lock:
            stored = self.calls[call_id]
            data = self.serve_call(stored)
        return {
            "resource": "call",
            "event": event,
            "timestamp": int(self.clock()),
            "token": token,
            "data": data,
        }

    def signed_event(self, call_id: str) -> tuple[dict[str, str], bytes]:
        """The ``call.ended`` event of ``call_id`` with the token of where events go now."""
        targets = self._targets("call.ended")
        token = targets[0][2] if targets else None
        body = json.dumps(self.call_event(call_id, "call.ended", token)).encode()
        return {"Content-Type": "application/json"}, body

    def announce(self, call_id: str) -> list[int]:
        """Send what Aircall sends once the call has ended, to every subscriber."""
        if self.drop_events:
            return []
        statuses: list[int] = []
        for event in CALL_END_EVENTS:
            for webhook_id, url, token in self._targets(event):
                body = json.dumps(self.call_event(call_id, event, token)).encode()
                status = _post(url, {"Content-Type": "application/json"}, body)
                statuses.append(status)
                with self.lock:
                    self.events_sent.append((event, status))
                    if webhook_id is not None:
                        self._delivered(webhook_id, 200 <= status < 300)
        return statuses

    def _targets(self, event: str) -> list[tuple[str | None, str, str | None]]:
        """(webhook id, url, token) of everyone ``event`` goes to."""
        with self.lock:
            found: list[tuple[str | None, str, str | None]] = [
                (hook["webhook_id"], hook["url"], hook["token"])
                for hook in self.webhooks.values()
                if hook["active"] and event in hook["events"]
            ]
            if self._event_target is not None and all(
                url != self._event_target[0] for _, url, _ in found
            ):
                found.append((None, *self._event_target))
        return found

    def _delivered(self, webhook_id: str, ok: bool) -> None:
        hook = self.webhooks.get(webhook_id)
        if hook is None:
            return
        failures = 0 if ok else self._failures.get(webhook_id, 0) + 1
        self._failures[webhook_id] = failures
        limit = self.deactivate_after_failures
        if limit is not None and failures >= limit:
            hook["active"] = False


def _post(url: str, headers: dict[str, str], body: bytes) -> int:
    """One delivery; a receiver that cannot be reached counts as a failed one (status 0)."""
    try:
        return requests.post(
            url, data=body, headers=headers, timeout=EVENT_TIMEOUT_SECONDS
        ).status_code
    except requests.RequestException:
        return 0


def _error(message: str, troubleshoot: str) -> dict[str, str]:
    return {"error": message, "troubleshoot": troubleshoot}


class AircallHandler(QuietHandler):
    server: Any

    def do_GET(self) -> None:
        api: AircallApi = self.server.state
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        headers = dict(self.headers.items())
        with api.lock:
            api.requests.append({"path": parts.path, "query": query, "headers": headers})
        if not api.authorised(headers):
            _, limits = api.rate_headers(count=False)
            self._json(401, _error("Unauthorized", "check your api_id and api_token"), limits)
            return
        over, limits = api.rate_headers(count=True)
        if parts.path == "/v1/calls":
            with api.lock:
                failure = api.failures[0] if api.failures else None
                if failure is not None and failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        api.failures.popleft()
            if failure is not None:
                if failure.status == 429:
                    reset = int(api.clock()) + (failure.reset_in or api.window_seconds)
                    limits.update({"X-AircallApi-Remaining": "0", "X-AircallApi-Reset": str(reset)})
                self._json(failure.status, _error(f"HTTP {failure.status}", "scripted"), limits)
                return
            if api.redirect_listing_to:
                self.send_response(302)
                self.send_header("Location", api.redirect_listing_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        if over:
            self._json(429, _error("Too many requests", "wait for X-AircallApi-Reset"), limits)
            return
        if parts.path == "/v1/calls":
            status, body = api.listing(query, f"http://{self.headers.get('Host', '')}")
            if api.rewrite_listing is not None:
                return self._json(status, body, limits, rewrite=api.rewrite_listing)
        elif parts.path.startswith("/v1/calls/"):
            status, body = api.single(parts.path.removeprefix("/v1/calls/"))
        elif parts.path == "/v1/webhooks":
            status, body = api.list_webhooks(query, f"http://{self.headers.get('Host', '')}")
        elif parts.path.startswith("/v1/webhooks/"):
            with api.lock:
                hook = api.webhooks.get(parts.path.removeprefix("/v1/webhooks/"))
                status, body = (
                    (200, {"webhook": dict(hook)})
                    if hook is not None
                    else (404, _error("Not found", "check the webhook id"))
                )
        else:
            status, body = 404, _error("Not found", "unknown route")
        self._json(status, body, limits)

    def do_DELETE(self) -> None:
        api: AircallApi = self.server.state
        parts = urlsplit(self.path)
        headers = dict(self.headers.items())
        with api.lock:
            api.requests.append(
                {"method": "DELETE", "path": parts.path, "query": {}, "headers": headers}
            )
        if not api.authorised(headers):
            _, limits = api.rate_headers(count=False)
            self._json(401, _error("Unauthorized", "check your api_id and api_token"), limits)
            return
        over, limits = api.rate_headers(count=True)
        if over:
            self._json(429, _error("Too many requests", "wait for X-AircallApi-Reset"), limits)
            return
        if parts.path.startswith("/v1/webhooks/"):
            status, body = api.delete_webhook(parts.path.removeprefix("/v1/webhooks/"))
            if status == 204:
                self._no_content(limits)
            else:
                self._json(status, body, limits)
            return
        route = parts.path.removeprefix("/v1/calls/")
        if not parts.path.startswith("/v1/calls/") or not route.endswith("/recording"):
            self._json(404, _error("Not found", "unknown route"), limits)
            return
        status, body = api.delete_recording(route.removesuffix("/recording"))
        if status == 204:
            with api.lock:
                api.statuses.append(status)
            self.send_response(204)
            for name, value in limits.items():
                self.send_header(name, value)
            self.end_headers()
            return
        self._json(status, body, limits)

    def do_POST(self) -> None:
        self._write("POST")

    def do_PUT(self) -> None:
        self._write("PUT")

    def _write(self, method: str) -> None:
        """The webhook API's POST and PUT: a JSON body, the same auth and rate limit."""
        api: AircallApi = self.server.state
        parts = urlsplit(self.path)
        headers = dict(self.headers.items())
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with api.lock:
            api.requests.append(
                {"method": method, "path": parts.path, "query": {}, "headers": headers, "body": raw}
            )
        if not api.authorised(headers):
            _, limits = api.rate_headers(count=False)
            self._json(401, _error("Unauthorized", "check your api_id and api_token"), limits)
            return
        over, limits = api.rate_headers(count=True)
        if over:
            self._json(429, _error("Too many requests", "wait for X-AircallApi-Reset"), limits)
            return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._json(400, _error("Invalid JSON", "the body is not JSON"), limits)
            return
        if method == "POST" and parts.path == "/v1/webhooks":
            status, answer = api.create_webhook(body)
        elif method == "PUT" and parts.path.startswith("/v1/webhooks/"):
            status, answer = api.update_webhook(parts.path.removeprefix("/v1/webhooks/"), body)
        else:
            status, answer = 404, _error("Not found", "unknown route")
        self._json(status, answer, limits)

    def _no_content(self, limits: dict[str, str]) -> None:
        api: AircallApi = self.server.state
        with api.lock:
            api.statuses.append(204)
        self.send_response(204)
        for name, value in limits.items():
            self.send_header(name, value)
        self.end_headers()

    def _json(
        self,
        status: int,
        body: Any,
        extra: dict[str, str],
        *,
        rewrite: Callable[[bytes], bytes] | None = None,
    ) -> None:
        api: AircallApi = self.server.state
        with api.lock:
            api.statuses.append(status)
        payload = json.dumps(body).encode()
        if rewrite is not None:
            payload = rewrite(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


class AircallSimulator:
    """The API and its media host, each on its own 127.0.0.1 port; use as a context manager."""

    def __init__(
        self,
        api_id: str = "aircall-api-id",
        api_token: str = "aircall-api-token-0001",
        *,
        clock: Callable[[], float] = time.time,
        limit: int = 60,
        window_seconds: int = 60,
    ) -> None:
        self.media = MediaStore(clock=clock)
        self.api = AircallApi(
            api_id, api_token, self.media, limit=limit, window_seconds=window_seconds, clock=clock
        )
        self.api_server = LocalHTTPServer(AircallHandler, self.api)
        self.media_server = LocalHTTPServer(MediaHandler, self.media)

    @property
    def url(self) -> str:
        return self.api_server.url

    @property
    def media_host(self) -> str:
        return self.media_server.url.removeprefix("http://")

    def __enter__(self) -> AircallSimulator:
        self.api_server.__enter__()
        self.media_server.__enter__()
        self.media.base_url = self.media_server.url
        return self

    def __exit__(self, *exc: object) -> None:
        self.media_server.__exit__(None, None, None)
        self.api_server.__exit__(None, None, None)
