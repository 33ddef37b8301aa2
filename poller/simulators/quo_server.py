"""A simulator of Quo's (formerly OpenPhone's) 2026-03-30 API (calls, call recordings, users),
built on the simulator kit.

It answers as Quo's reference (``quo.com/docs/2026-03-30/...``) and its OpenAPI document
describe it:

- ``Authorization: <API key>`` (the key alone; ``Bearer <key>`` is refused) and
  ``Quo-Api-Version: 2026-03-30`` on every request: without the key 401, without the version
  400.
- ``GET /calls``: the workspace's calls, newest first; filters ``phoneNumberId``, ``actorId``,
  ``participant``, ``direction``, ``status`` (or ``status[in]``), ``createdAt[gte]`` and
  ``createdAt[lte]`` (both inclusive, ISO 8601 with a zone), ``include``, ``limit`` (1 to 50,
  default 10) and ``after`` (the previous page's ``nextCursor``). The answer is
  ``{"data": [...], "nextCursor": ...}``, ``nextCursor`` null on the last page.
- ``GET /calls/{callId}/recordings``: ``{"data": [...], "nextCursor"}``, one entry per recorded
  segment, oldest first, each ``{id, status, startTime, duration, url, type}``; ``url`` (a
  signed link to a storage host) and ``type`` are null until the segment is ``completed``.
- ``GET /users/{userId}``: ``{"data": {id, email, firstName, lastName, ...}}``.
- 10 requests a second per key; over it 429 (the reference names no header to wait by).
- Errors as ``{"message", "docs", "title", "trace"}`` (400s with ``errors``).

Where the reference leaves it open, the strictest reading: a parameter it does not list (such as
``createdAt[gt]``), a ``limit`` out of range or a time without a zone is refused with 400; an id
without its prefix (``AC``, ``US``) is refused with 400; the storage host refuses any
credentials sent along.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from poller.simulators.kit import (
    Answer,
    CostBudget,
    HeaderAuth,
    MediaHost,
    Request,
    VendorApi,
    cursor_page,
    serve,
)

API_KEY = "quo-api-key-0001"
API_VERSION = "2026-03-30"
QUO_NUMBER = "+15555550100"
PHONE_NUMBER_ID = "PN123abc"
MAX_LIMIT = 50
PER_SECOND = 10
LISTING_PARAMS = {
    *("phoneNumberId", "actorId", "participant", "participant[in]", "direction", "status"),
    *("status[in]", "createdAt[gte]", "createdAt[lte]", "include", "limit", "after"),
}
PAGE_PARAMS = {"limit", "after"}
STATUSES = {
    *("queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed"),
    *("no-answer", "canceled", "missed", "answered", "forwarded", "abandoned"),
}


def quo_call(
    call_id: str,
    created_at: datetime,
    *,
    user_id: str | None = "US1rep",
    direction: str = "incoming",
    contact: str = "+15555550123",
    status: str = "completed",
    duration: int = 60,
) -> dict[str, Any]:
    """A call as Quo's list answers it (the example's fields), on the workspace's number."""
    stamp = _stamp(created_at)
    answered = status in ("completed", "answered", "forwarded")
    return {
        "id": call_id,
        "phoneNumberId": PHONE_NUMBER_ID,
        "actorId": user_id,
        "direction": direction,
        "status": status,
        "participants": [
            {"phoneNumber": QUO_NUMBER, "actorId": user_id},
            {"phoneNumber": contact, "actorId": None},
        ],
        "answeredAt": stamp if answered else None,
        "answeredBy": user_id if answered and direction == "incoming" else None,
        "initiatedBy": user_id if direction == "outgoing" else None,
        "completedAt": stamp,
        "createdAt": stamp,
        "updatedAt": stamp,
        "callRoute": "phone-number" if direction == "incoming" else None,
        "duration": duration if answered else 0,
        "forwardedFrom": None,
        "forwardedTo": None,
        "aiHandled": None,
    }


@dataclass
class Segment:
    recording_id: str
    start: datetime
    duration: int
    media_key: str | None  # None: still processing


@dataclass
class StoredCall:
    call: dict[str, Any]
    segments: list[Segment] = field(default_factory=list)

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.call["createdAt"])


class QuoApi(VendorApi):
    """The simulated workspace. Mutate it between polls to make time pass."""

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__(HeaderAuth("authorization", api_key), clock=clock)
        self.budget = CostBudget(PER_SECOND, 1, clock)
        self.media = MediaHost(clock=clock)
        self.calls: dict[str, StoredCall] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.route("GET", r"/calls", self._listing)
        self.route("GET", r"/calls/(?P<id>[^/]+)/recordings", self._recordings)
        self.route("GET", r"/users/(?P<id>[^/]+)", self._user)

    # -- seeding ----------------------------------------------------------------------------

    def add_user(self, user_id: str, email: str, first: str = "Rep", last: str = "One") -> None:
        stamp = _stamp(datetime(2022, 1, 1, tzinfo=UTC))
        with self.lock:
            self.users[user_id] = {
                "id": user_id,
                "email": email,
                "firstName": first,
                "lastName": last,
                "pictureUrl": None,
                "role": "member",
                "createdAt": stamp,
                "updatedAt": stamp,
            }

    def add_call(self, call: dict[str, Any], *audio: bytes) -> None:
        """Serve ``call``; each of ``audio`` is one recorded segment, in order."""
        with self.lock:
            self.calls[call["id"]] = StoredCall(call)
        for part in audio:
            self.add_segment(call["id"], part)

    def add_segment(self, call_id: str, audio: bytes | None) -> None:
        """One more recorded segment of the call; ``None``: one still being processed."""
        with self.lock:
            stored = self.calls[call_id]
            n = len(stored.segments)
            key = f"rec-{call_id}-{n}" if audio is not None else None
            stored.segments.append(Segment(f"CR{call_id}{n}", stored.created_at, 30, key))
        if audio is not None and key is not None:
            self.media.put(key, audio, content_type="audio/mpeg", signed_only=True)

    def finish_segment(self, call_id: str, index: int, audio: bytes) -> None:
        """A segment listed while processing is ``completed`` now."""
        key = f"rec-{call_id}-{index}"
        self.media.put(key, audio, content_type="audio/mpeg", signed_only=True)
        with self.lock:
            self.calls[call_id].segments[index].media_key = key

    def listings(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == "/calls"]

    # -- the API ----------------------------------------------------------------------------

    def error(self, status: int, message: str) -> Answer:
        titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
        titles |= {429: "Too Many Requests", 500: "Unknown"}
        body = {
            "message": message,
            "docs": "https://quo.com/docs",
            "title": titles.get(status, "Unknown"),
            "trace": str(secrets.randbelow(10**19)),
        }
        return Answer.json(body, status)

    def unauthorised(self, request: Request) -> Answer:
        return self.error(401, "Unauthorized")

    def before_route(self, request: Request) -> Answer | None:
        if request.header("quo-api-version") != API_VERSION:
            return self._invalid("/headers/quo-api-version", "Expected '2026-03-30'", None)
        with self.lock:
            within, _, _ = self.budget.charge(1)
        return None if within else self.error(429, "Too many requests")

    def _invalid(self, path: str, message: str, value: Any) -> Answer:
        answer = self.error(400, "The input was invalid")
        body = {**_json(answer), "errors": [{"path": path, "message": message, "value": value}]}
        return Answer.json(body, 400)

    def _limit(self, request: Request) -> int | Answer:
        text = request.param("limit")
        if text is None:
            return 10
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            return self._invalid("/limit", f"Expected an integer 1 to {MAX_LIMIT}", text)
        return int(text)

    def _listing(self, request: Request, _match: re.Match[str]) -> Answer:
        unknown = sorted(set(request.query) - LISTING_PARAMS)
        if unknown:
            return self._invalid(f"/{unknown[0]}", "Unexpected property", request.param(unknown[0]))
        limit = self._limit(request)
        if isinstance(limit, Answer):
            return limit
        bounds: dict[str, datetime] = {}
        for op in ("gte", "lte"):
            text = request.param(f"createdAt[{op}]")
            if text is None:
                continue
            try:
                at = datetime.fromisoformat(text)
            except ValueError:
                at = None
            if at is None or at.tzinfo is None:
                return self._invalid(f"/createdAt[{op}]", "Expected a date-time", text)
            bounds[op] = at
        status = request.param("status")
        if status is not None and status not in STATUSES:
            return self._invalid("/status", "Expected a call status", status)
        wanted = {
            "phoneNumberId": request.param("phoneNumberId"),
            "actorId": request.param("actorId"),
            "direction": request.param("direction"),
            "status": status,
        }
        with self.lock:
            matching = [
                stored
                for stored in self.calls.values()
                if ("gte" not in bounds or stored.created_at >= bounds["gte"])
                and ("lte" not in bounds or stored.created_at <= bounds["lte"])
                and all(v is None or stored.call.get(k) == v for k, v in wanted.items())
            ]
            matching.sort(key=lambda s: (s.created_at, s.call["id"]), reverse=True)
            try:
                data, cursor = cursor_page(matching, request.param("after"), limit)
            except ValueError:
                return self._invalid("/after", "Invalid cursor", request.param("after"))
            calls = [dict(stored.call) for stored in data]
        return Answer.json({"data": calls, "nextCursor": cursor})

    def _recordings(self, request: Request, match: re.Match[str]) -> Answer:
        call_id = match["id"]
        if not call_id.startswith("AC"):
            return self._invalid("/callId", "Expected string to match '^AC(.*)$'", call_id)
        unknown = sorted(set(request.query) - PAGE_PARAMS)
        if unknown:
            return self._invalid(f"/{unknown[0]}", "Unexpected property", request.param(unknown[0]))
        limit = self._limit(request)
        if isinstance(limit, Answer):
            return limit
        with self.lock:
            stored = self.calls.get(call_id)
            if stored is None:
                return self.error(404, "Call not found")
            segments = sorted(stored.segments, key=lambda s: s.start)
            try:
                page, cursor = cursor_page(segments, request.param("after"), limit)
            except ValueError:
                return self._invalid("/after", "Invalid cursor", request.param("after"))
        data = [self._segment(segment) for segment in page]
        return Answer.json({"data": data, "nextCursor": cursor})

    def _segment(self, segment: Segment) -> dict[str, Any]:
        done = segment.media_key is not None
        return {
            "id": segment.recording_id,
            "status": "completed" if done else "processing",
            "startTime": _stamp(segment.start),
            "duration": segment.duration if done else None,
            "url": self.media.signed_url(segment.media_key) if segment.media_key else None,
            "type": "audio/mpeg" if done else None,
        }

    def _user(self, request: Request, match: re.Match[str]) -> Answer:
        user_id = match["id"]
        if not user_id.startswith("US"):
            return self._invalid("/userId", "Expected string to match '^US(.*)$'", user_id)
        if request.query:
            return self._invalid("/query", "Unexpected property", sorted(request.query)[0])
        with self.lock:
            user = self.users.get(user_id)
        if user is None:
            return self.error(404, "User not found")
        return Answer.json({"data": user})


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _json(answer: Answer) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(answer.body)
    return body


class QuoSimulator(ExitStack):
    """The API and the storage host, each on its own 127.0.0.1 port; use as a context
    manager."""

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__()
        self.api = QuoApi(api_key=api_key, clock=clock)

    def __enter__(self) -> QuoSimulator:
        super().__enter__()
        self.enter_context(serve(self.api))
        self.enter_context(serve(self.api.media))
        return self

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def recording_hosts(self) -> list[str]:
        """The storage host, as ``download_hosts`` names it."""
        return [self.api.media.url.removeprefix("http://")]
