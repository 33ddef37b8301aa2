"""A simulator of Outreach's REST API v2 (calls, users) and its OAuth token endpoint, built on
the simulator kit.

It answers as Outreach's OpenAPI document (``api.outreach.io/api/v2/schema/openapi.json``) and
its "Getting started" and "Making requests" pages describe:

- ``POST /oauth/token``: ``grant_type=refresh_token``, ``client_id``, ``client_secret``,
  ``redirect_uri`` and ``refresh_token`` in the form; ``expires_in`` 7200.
- ``Authorization: Bearer`` and ``Content-Type: application/vnd.api+json`` on every API
  request; otherwise 401, or 415 ``unsupportedMediaType``.
- ``GET /api/v2/calls``: ``filter[updatedAt|createdAt]=A..B`` (``neginf``/``inf`` open),
  ``sort``, ``page[size]``, ``page[after]``, ``count``; a JSON:API document whose
  ``links.next`` (the query and the next ``page[after]``) is there while more follow.
- ``GET /api/v2/calls/{id}`` and ``/api/v2/users/{id}``: ``{"data": {...}}``, or 404.
- 10,000 requests an hour per user: ``X-RateLimit-Limit/Remaining/Reset`` on every answer,
  429 ``rateLimitExceeded`` past it. Errors are JSON:API error objects.

Where the documents leave it open, the strictest reading: refresh tokens rotate and a replayed
one revokes the grant (RFC 9700; :mod:`poller.simulators.oauth_server`); a ``redirect_uri``
other than the registered one is ``invalid_grant``; an unknown query parameter is 400 (JSON:API
1.0); ``page[size]`` above 1000 is 400; a range's ends are inclusive; ``X-RateLimit-Reset`` is a
Unix time and ``Retry-After`` seconds; the recording URL is signed, expires within the hour and
is on a host of its own that refuses credentials.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from poller.simulators.kit import (
    Answer,
    CostBudget,
    MediaHost,
    Refused,
    Request,
    Simulator,
    cursor_page,
    time_range,
    url_with,
)
from poller.simulators.kit import zulu as iso
from poller.simulators.oauth_server import OAuthApi, OAuthTokenIssuer

CLIENT_ID = "outreach-app-0001"
CLIENT_SECRET = "outreach-app-secret-0001"
REDIRECT_URI = "https://poller.acme-sales.test/outreach/callback"
JSON_API = "application/vnd.api+json"
MAX_PAGE_SIZE = 1000
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
RANGE_FILTERS = ("updatedAt", "createdAt")
SORTS = {"updatedAt", "-updatedAt", "createdAt", "-createdAt", "id", "-id"}
UNSET_RELATIONSHIPS = ("callDisposition", "callPurpose", "opportunity", "sequence", "task")
LISTING_PARAMS = {
    *(f"filter[{name}]" for name in RANGE_FILTERS),
    *("filter[user][id]", "filter[direction]", "filter[outcome]", "filter[recordingUrl]"),
    *("sort", "page[size]", "page[after]", "count", "newFilterSyntax"),
}


def outreach_call(
    call_id: int,
    dialed_at: datetime,
    *,
    user_id: int | None = 10,
    direction: str = "outbound",
    from_: str = "+14155550100",
    to: str = "+14155550199",
    outcome: str = "Answered",
    duration: int = 60,
    should_record: bool = True,
    prospect_id: int = 3,
) -> dict[str, Any]:
    """A call resource with every attribute of Outreach's call schema (``recordingUrl`` is
    filled when served, for a call with audio)."""
    api = "https://api.outreach.io/api/v2"
    answered = outcome == "Answered"
    completed = dialed_at + timedelta(seconds=duration)

    def to_one(kind: str, related: int | None) -> dict[str, Any]:
        data = None if related is None else {"type": kind, "id": related}
        return {"data": data, "links": {"related": f"{api}/calls/{call_id}/{kind}"}}

    return {
        "type": "call",
        "id": call_id,
        "attributes": {
            **dict.fromkeys(("externalVendor", "note", "recordingUrl", "returnedAt")),
            **dict.fromkeys(("sequenceAction", "voicemailRecordingUrl")),
            "answeredAt": iso(dialed_at + timedelta(seconds=5)) if answered else None,
            "completedAt": iso(completed),
            "createdAt": iso(dialed_at),
            "dialedAt": iso(dialed_at) if direction == "outbound" else None,
            "direction": direction,
            "from": from_,
            "outcome": outcome,
            "shouldRecordCall": should_record,
            "state": "completed",
            "stateChangedAt": iso(completed),
            "tags": [],
            "to": to,
            "uid": f"4d2d6c5a-0b7e-4f5e-9d59-{call_id:012d}",
            "updatedAt": iso(completed + timedelta(seconds=30)),
            "userCallType": "voip",
            "vendorCallId": f"CA{call_id:032d}",
        },
        "relationships": {
            **{name: to_one(name, None) for name in UNSET_RELATIONSHIPS},
            "phoneNumber": to_one("phoneNumber", 7),
            "prospect": to_one("prospect", prospect_id),
            "user": to_one("user", user_id),
        },
        "links": {"self": f"{api}/calls/{call_id}"},
    }


def outreach_user(user_id: int, email: str, name: str) -> dict[str, Any]:
    """A user resource with the attributes the adapter reads (the schema has many more)."""
    first, _, last = name.partition(" ")
    return {
        "type": "user",
        "id": user_id,
        "attributes": {"email": email, "name": name, "firstName": first, "lastName": last},
        "links": {"self": f"https://api.outreach.io/api/v2/users/{user_id}"},
    }


@dataclass
class StoredCall:
    record: dict[str, Any]
    audio_key: str | None = None

    def time(self, name: str) -> datetime:
        return datetime.fromisoformat(self.record["attributes"][name])

    def within(self, ranges: dict[str, tuple[datetime, datetime]]) -> bool:
        return all(low <= self.time(name) <= high for name, (low, high) in ranges.items())


class OutreachApi(OAuthApi):
    """The simulated Outreach org. Mutate it between polls to make time pass."""

    unknown_parameter = "Unknown query parameter '{}'."

    def __init__(self, *, rotate: bool = True, clock: Callable[[], float] = time.time):
        issuer = OAuthTokenIssuer(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            client_auth="body",
            expires_in=7200,
            rotate=rotate,
            redirect_uri=REDIRECT_URI,
        )
        super().__init__(issuer, r"/oauth/token", self._granted, clock=clock)
        self.budget = CostBudget(10_000, 3600, clock)
        self.media = MediaHost(clock=clock)
        self.calls: dict[str, StoredCall] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.hosts = [self.media]
        self.route("GET", r"/api/v2/calls", self._listing, params=LISTING_PARAMS)
        self.route("GET", r"/api/v2/calls/(?P<id>\d+)", self._one)
        self.route("GET", r"/api/v2/users/(?P<id>\d+)", self._user)

    # -- scripting -------------------------------------------------------------------------

    def add_call(self, record: dict[str, Any], audio: bytes | None = None) -> None:
        """Serve ``record``; with ``audio``, its recording sits on the media host."""
        with self.lock:
            self.calls[str(record["id"])] = StoredCall(record)
        if audio is not None:
            self._attach(record["id"], audio)

    def add_recording(self, call_id: int, audio: bytes) -> None:
        """The call's recording is attached later: its ``updatedAt`` moves to now."""
        self._attach(call_id, audio)
        with self.lock:
            now = datetime.fromtimestamp(self.clock(), UTC)
            self.calls[str(call_id)].record["attributes"]["updatedAt"] = iso(now)

    def _attach(self, call_id: int, audio: bytes) -> None:
        self.media.put(f"call-{call_id}", audio, signed_only=True)
        with self.lock:
            self.calls[str(call_id)].audio_key = f"call-{call_id}"

    def add_user(self, user_id: int, email: str, name: str) -> None:
        with self.lock:
            self.users[str(user_id)] = outreach_user(user_id, email, name)

    def listing_requests(self) -> list[Request]:
        return self.requests_to("/api/v2/calls")

    # -- answering -------------------------------------------------------------------------

    def error(self, status: int, message: str, error_id: str = "") -> Answer:
        titles = {400: "badRequest", 401: "unauthorized", 404: "resourceNotFound"}
        titles |= {415: "unsupportedMediaType", 429: "rateLimitExceeded"}
        ident = error_id or titles.get(status, "serverError")
        body = {"errors": [{"id": ident, "title": ident, "detail": message}]}
        return Answer.json(body, status)

    def before_route(self, request: Request) -> Answer | None:
        if request.path == "/oauth/token":
            return None
        if request.media_type() != JSON_API:
            return self.error(415, f"Expected Content-Type header to be '{JSON_API}'.")
        message = "Rate limit exceeded."
        return self.spend(self.budget, message=message, retry_after=True, headers=RATE_HEADERS)

    def _granted(self) -> dict[str, Any]:
        return {"scope": "calls.read users.read", "created_at": int(self.clock())}

    def _serve(self, stored: StoredCall) -> dict[str, Any]:
        record = dict(stored.record)
        if stored.audio_key is not None:
            url = self.media.signed_url(stored.audio_key)
            record["attributes"] = dict(record["attributes"], recordingUrl=url)
        return record

    def _listing(self, request: Request, _match: re.Match[str]) -> Answer:
        try:
            ranges = {name: time_range(request.param(f"filter[{name}]")) for name in RANGE_FILTERS}
            size = int(request.param("page[size]") or 50)
        except ValueError as exc:
            return self.error(400, str(exc))
        sort = request.param("sort") or "id"
        if sort not in SORTS or not 1 <= size <= MAX_PAGE_SIZE:
            return self.error(400, f"sort is one of {sorted(SORTS)}; page[size] 1 to 1000")
        key = sort.lstrip("-")
        with self.lock:
            matching = sorted(
                (stored for stored in self.calls.values() if stored.within(ranges)),
                key=lambda s: (s.record["id"] if key == "id" else s.time(key), s.record["id"]),
                reverse=sort.startswith("-"),
            )
            try:
                data, following = cursor_page(matching, request.param("page[after]"), size)
            except ValueError:
                raise Refused(400, "page[after] is not a cursor this API issued") from None
            served = [self._serve(stored) for stored in data]
        links = {"first": url_with(self.url, request.path, request.query, **{"page[after]": None})}
        if following is not None:
            cursor = {"page[after]": following}
            links["next"] = url_with(self.url, request.path, request.query, **cursor)
        return _document({"data": served, "links": links, "meta": {}})

    def _one(self, _request: Request, match: re.Match[str]) -> Answer:
        with self.lock:
            stored = self.calls.get(match["id"])
            body = None if stored is None else {"data": self._serve(stored)}
        return _document(body) if body else self.error(404, f"No call with ID {match['id']}.")

    def _user(self, _request: Request, match: re.Match[str]) -> Answer:
        with self.lock:
            user = self.users.get(match["id"])
        return _document({"data": user}) if user else self.error(404, f"No user {match['id']}.")


def _document(body: dict[str, Any]) -> Answer:
    return Answer(200, Answer.json(body).body, content_type=JSON_API)


class OutreachSimulator(Simulator):
    """The API (with its token endpoint) and its media host, each on its own 127.0.0.1 port;
    use as a context manager."""

    def __init__(self, *, rotate: bool = True, clock: Callable[[], float] = time.time):
        super().__init__(OutreachApi(rotate=rotate, clock=clock))
        self.api: OutreachApi
