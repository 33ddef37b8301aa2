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

import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from poller.simulators.kit import (
    EARLIEST,
    LATEST,
    Answer,
    CostBudget,
    HeaderAuth,
    MediaHost,
    Refused,
    Request,
    Simulator,
    VendorApi,
    cursor_page,
    int_param,
    zulu,
)

API_KEY = "quo-api-key-0001"
API_VERSION = "2026-03-30"
QUO_NUMBER = "+15555550100"
PHONE_NUMBER_ID = "PN123abc"
MAX_LIMIT = 50
PER_SECOND = 10
SEGMENT_SECONDS = 30
LISTING_PARAMS = {
    *("phoneNumberId", "actorId", "participant", "participant[in]", "direction", "status"),
    *("status[in]", "createdAt[gte]", "createdAt[lte]", "include", "limit", "after"),
}
PAGE_PARAMS = {"limit", "after"}
STATUSES = {
    *("queued", "initiated", "ringing", "in-progress", "completed", "busy", "failed"),
    *("no-answer", "canceled", "missed", "answered", "forwarded", "abandoned"),
}
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
TITLES |= {429: "Too Many Requests"}
T = TypeVar("T")


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
    stamp = zulu(created_at, "seconds")
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
        # Forwarding and AI handling are not simulated.
        **dict.fromkeys(("forwardedFrom", "forwardedTo", "aiHandled")),
    }


class Invalid(Refused):
    """Quo's 400 "The input was invalid", naming the input (``path``) and the ``value`` sent."""

    def __init__(self, path: str, message: str, value: Any) -> None:
        super().__init__(400, message, parameter=path)
        self.value = value


class QuoApi(VendorApi):
    """The simulated workspace. Mutate it between polls to make time pass."""

    unknown_parameter = "Unexpected property"

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__(HeaderAuth("authorization", api_key), clock=clock)
        self.budget = CostBudget(PER_SECOND, 1, clock)
        self.media = MediaHost(clock=clock)
        self.hosts = [self.media]
        self.calls: dict[str, dict[str, Any]] = {}
        # Each call's recorded segments in order, by media key (None: still processing).
        self.segments: dict[str, list[str | None]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.route("GET", r"/calls", self._listing, params=LISTING_PARAMS)
        self.route("GET", r"/calls/(?P<id>[^/]+)/recordings", self._recordings, params=PAGE_PARAMS)
        self.route("GET", r"/users/(?P<id>[^/]+)", self._user)

    def add_user(self, user_id: str, email: str, first: str = "Rep", last: str = "One") -> None:
        stamp = zulu(datetime(2022, 1, 1, tzinfo=UTC), "seconds")
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
            self.calls[call["id"]] = call
            self.segments[call["id"]] = []
        for part in audio:
            self.add_segment(call["id"], part)

    def add_segment(self, call_id: str, audio: bytes | None) -> None:
        """One more recorded segment of the call; ``None``: one still being processed."""
        with self.lock:
            self.segments[call_id].append(None)
            index = len(self.segments[call_id]) - 1
        if audio is not None:
            self.finish_segment(call_id, index, audio)

    def finish_segment(self, call_id: str, index: int, audio: bytes) -> None:
        """A segment listed while processing is ``completed`` now."""
        key = f"rec-{call_id}-{index}"
        self.media.put(key, audio, content_type="audio/mpeg", signed_only=True)
        with self.lock:
            self.segments[call_id][index] = key

    def listings(self) -> list[Request]:
        return self.requests_to("/calls")

    def error(self, status: int, message: str, errors: list[Any] | None = None) -> Answer:
        body: dict[str, Any] = {
            "message": message,
            "docs": "https://quo.com/docs",
            "title": TITLES.get(status, "Unknown"),
            "trace": str(secrets.randbelow(10**19)),
        }
        if errors is not None:
            body["errors"] = errors
        return Answer.json(body, status)

    def unauthorised(self, request: Request) -> Answer:
        return self.error(401, "Unauthorized")

    def answer_refused(self, request: Request, refusal: Refused) -> Answer:
        if refusal.parameter is None:
            return self.error(refusal.status, refusal.message)
        # Invalid carries its value; a parameter the route does not list was sent in the query.
        value = refusal.value if isinstance(refusal, Invalid) else request.param(refusal.parameter)
        errors = [{"path": f"/{refusal.parameter}", "message": refusal.message, "value": value}]
        return self.error(400, "The input was invalid", errors)

    def before_route(self, request: Request) -> Answer | None:
        if request.header("quo-api-version") != API_VERSION:
            raise Invalid("headers/quo-api-version", f"Expected '{API_VERSION}'", None)
        return self.spend(self.budget, message="Too many requests")

    def _listing(self, request: Request, _match: re.Match[str]) -> Answer:
        limit = _limit(request)
        since = _zoned(request, "createdAt[gte]", EARLIEST)
        until = _zoned(request, "createdAt[lte]", LATEST)
        status = request.param("status")
        if status is not None and status not in STATUSES:
            raise Invalid("status", "Expected a call status", status)
        wanted = {name: request.param(name) for name in ("phoneNumberId", "actorId", "direction")}
        wanted["status"] = status
        with self.lock:
            matching = [
                call
                for call in self.calls.values()
                if since <= _created(call) <= until
                and all(value in (None, call.get(name)) for name, value in wanted.items())
            ]
            matching.sort(key=lambda call: (_created(call), call["id"]), reverse=True)
            page, cursor = _page(matching, request, limit)
            data = [dict(call) for call in page]
        return Answer.json({"data": data, "nextCursor": cursor})

    def _recordings(self, request: Request, match: re.Match[str]) -> Answer:
        call_id = match["id"]
        if not call_id.startswith("AC"):
            raise Invalid("callId", "Expected string to match '^AC(.*)$'", call_id)
        limit = _limit(request)
        with self.lock:
            if call_id not in self.calls:
                raise Refused(404, "Call not found")
            start = zulu(_created(self.calls[call_id]), "seconds")
            keys = list(enumerate(self.segments[call_id]))
        page, cursor = _page(keys, request, limit)
        data = [self._segment(f"CR{call_id}{index}", start, key) for index, key in page]
        return Answer.json({"data": data, "nextCursor": cursor})

    def _segment(self, recording_id: str, start: str, key: str | None) -> dict[str, Any]:
        return {
            "id": recording_id,
            "status": "processing" if key is None else "completed",
            "startTime": start,
            "duration": None if key is None else SEGMENT_SECONDS,
            "url": None if key is None else self.media.signed_url(key),
            "type": None if key is None else "audio/mpeg",
        }

    def _user(self, request: Request, match: re.Match[str]) -> Answer:
        user_id = match["id"]
        if not user_id.startswith("US"):
            raise Invalid("userId", "Expected string to match '^US(.*)$'", user_id)
        if request.query:
            raise Invalid("query", "Unexpected property", sorted(request.query)[0])
        with self.lock:
            user = self.users.get(user_id)
        if user is None:
            raise Refused(404, "User not found")
        return Answer.json({"data": user})


def _created(call: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(call["createdAt"])


def _limit(request: Request) -> int:
    text = request.param("limit")
    try:
        # Digits only: int() would take " 5" and "+5", which Quo's schema does not.
        if text is None or text.isdigit():
            return int_param(request, "limit", 10, 1, MAX_LIMIT)
    except ValueError:
        pass
    raise Invalid("limit", f"Expected an integer 1 to {MAX_LIMIT}", text)


def _zoned(request: Request, name: str, default: datetime) -> datetime:
    """Query parameter ``name`` as an ISO 8601 time with a zone (``default`` when absent)."""
    text = request.param(name)
    try:
        at = default if text is None else datetime.fromisoformat(text)
        if at.tzinfo is not None:
            return at
    except ValueError:
        pass
    raise Invalid(name, "Expected a date-time", text)


def _page(items: list[T], request: Request, limit: int) -> tuple[list[T], str | None]:
    try:
        return cursor_page(items, request.param("after"), limit)
    except ValueError:
        raise Invalid("after", "Invalid cursor", request.param("after")) from None


class QuoSimulator(Simulator):
    """The API and the storage host, each on its own 127.0.0.1 port (a context manager)."""

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__(QuoApi(api_key=api_key, clock=clock))
        self.api: QuoApi

    # The storage host, as ``download_hosts`` names it.
    recording_hosts = Simulator.extra_hosts
