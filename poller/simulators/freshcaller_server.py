"""A simulator of Freshcaller's v1 API (calls, users), built on the simulator kit.

As ``developers.freshcaller.com/api`` documents it, with what that page leaves to Freshworks'
Airbyte connector and PostHog's Freshcaller source:

- ``X-Api-Auth: <API key>``, else 401; a JSON route asked with ``Accept: */*`` answers 404.
- ``GET /api/v1/calls``: ``page`` from 1, ``per_page`` 1 to 1,000 (default 10), ``by_time[from]``
  with ``by_time[to]`` (both or neither, UTC with ``Z``: ``+00:00`` is refused, both inclusive,
  on ``created_time``) -> ``{"calls": [...], "meta": {"current", "total_pages", "total_count"}}``;
  ``GET /api/v1/calls/{id}`` -> ``{"call"}``; ``GET /api/v1/users`` paged as calls are.
- A recording answers 302 with the file's URL in ``Location``.
- 50 requests a minute, then 429 with ``Retry-After``; errors as ``{"error_type", "message",
  "errors"}``.

Where the documents leave it open, the strictest reading: an unlisted parameter or a value out of
range is refused with 422; calls come newest first; the recording endpoint's path is this
simulator's own (the profile reads ``recording.url``); the file is on a host of its own, signed,
expiring within the hour and refusing credentials.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from poller.simulators.kit import (
    Answer,
    CostBudget,
    HeaderAuth,
    MediaHost,
    Request,
    VendorApi,
    page_of,
    serve,
)

API_KEY = "freshcaller-api-key-0001"
MAX_PER_PAGE = 1000
PER_MINUTE = 50
LISTING_PARAMS = {"page", "per_page", "by_time[from]", "by_time[to]", "has_ancestry"}
PAGING_PARAMS = {"page", "per_page"}
# What Freshcaller accepts in by_time: UTC with a Z, never an offset.
_ZULU = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
JSON_ROUTES = ("/api/v1/calls", "/api/v1/users")


def zulu(at: datetime) -> str:
    """A time as Freshcaller writes it: UTC, milliseconds, ``Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


# The call's fields this simulator leaves empty, as a call without queue, team or IVR has them.
_NULLS = dict.fromkeys(
    [
        *("parent_call_id", "root_call_id", "assigned_team_id", "assigned_team_name"),
        *("assigned_call_queue_id", "assigned_call_queue_name", "assigned_ivr_id"),
        *("assigned_ivr_name", "call_notes", "recording_to_redact"),
    ]
)


def freshcaller_call(
    call_id: int,
    created_at: datetime,
    *,
    agent_id: int | None = 10,
    agent_name: str | None = "Rep One",
    direction: str = "outgoing",
    customer_number: str = "+14155550101",
    customer_name: str | None = None,
    line: str = "+18005550100",
    duration: int = 60,
    recorded: bool = True,
) -> dict[str, Any]:
    """A call with the fields of Freshcaller's call schema (``recording.url`` is filled when
    served, for a call whose recording is ready; ``recorded=False``: ``recording`` is null)."""
    created = zulu(created_at)
    updated = zulu(created_at + timedelta(seconds=duration + 5))

    def participant(
        number: int, kind: str, caller_id: int | None, phone: str | None
    ) -> dict[str, Any]:
        return {
            "id": call_id * 10 + number,
            "call_id": call_id,
            "caller_id": caller_id,
            "caller_number": phone,
            "caller_name": customer_name if kind == "Customer" else agent_name,
            "participant_id": caller_id if caller_id is not None else call_id * 10 + number,
            "participant_type": kind,
            "connection_type": 1 if direction == "incoming" else 2,
            "call_status": 1,
            "duration": duration,
            "duration_unit": "secs",
            "cost": 0.0,
            "cost_unit": "USD",
            "enqueued_time": None,
            "created_time": created,
            "updated_time": updated,
        }

    participants = [participant(1, "Customer", None, customer_number)]
    if agent_id is not None:
        participants.append(participant(2, "Agent", agent_id, None))
    return {
        "id": call_id,
        "direction": direction,
        **_NULLS,
        "phone_number_id": 7,
        "phone_number": line,
        "assigned_agent_id": agent_id,
        "assigned_agent_name": agent_name if agent_id is not None else None,
        "bill_duration": duration,
        "bill_duration_unit": "seconds",
        "created_time": created,
        "updated_time": updated,
        "recording": {"id": call_id + 5000, "duration": duration, "duration_unit": "seconds"}
        if recorded
        else None,
        "participants": participants,
        "integrated_resources": [],
        "parallel_call_groups": [],
    }


def freshcaller_user(user_id: int, email: str, name: str) -> dict[str, Any]:
    """A user with the fields of Freshcaller's user schema."""
    return {
        "id": user_id,
        "name": name,
        "email": email,
        **dict.fromkeys(("phone", "last_call_time", "last_seen_time")),
        "status": 1,
        "preference": 1,
        "mobile_app_preference": 0,
        "confirmed": True,
        "language": "en",
        "time_zone": "Eastern Time (US & Canada)",
        "deleted": False,
        "role": "Agent",
        "teams": [],
    }


@dataclass
class StoredCall:
    record: dict[str, Any]
    audio_key: str | None = None
    signature: str | None = None  # a query the recording URL carries when served
    # When the call was created, as filed when it was added (a test may break the record).
    when: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.when = datetime.fromisoformat(self.record["created_time"])

    def created(self) -> datetime:
        return self.when


class FreshcallerApi(VendorApi):
    """The simulated account. Mutate it between polls to make time pass."""

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__(HeaderAuth("X-Api-Auth", api_key), clock=clock)
        self.budget = CostBudget(PER_MINUTE, 60, clock)
        self.media = MediaHost(clock=clock)
        self.calls: dict[str, StoredCall] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.users_forbidden = False  # the key's role may not list users
        self.loop_from_page: int | None = None  # from this page on, the page param is ignored
        self.route("GET", r"/api/v1/calls", self._listing)
        self.route("GET", r"/api/v1/calls/(?P<id>[^/]+)", self._one)
        self.route("GET", r"/api/v1/calls/(?P<id>[^/]+)/recordings/(?P<rid>\d+)", self._recording)
        self.route("GET", r"/api/v1/users", self._users)

    def add_call(
        self, record: dict[str, Any], audio: bytes | None = None, *, signature: str | None = None
    ) -> None:
        """Serve ``record``; with ``audio``, its recording is ready (its URL carrying the query
        ``signature``, if given)."""
        with self.lock:
            self.calls[str(record["id"])] = StoredCall(record, signature=signature)
        if audio is not None:
            self.add_recording(record["id"], audio)

    def add_recording(self, call_id: int | str, audio: bytes) -> None:
        """The call's recording is ready (a late one: the call was listed without it)."""
        key = f"call-{call_id}"
        self.media.put(key, audio, "audio/mpeg", signed_only=True)
        with self.lock:
            stored = self.calls[str(call_id)]
            stored.audio_key = key
            recording = stored.record.get("recording") or {"id": 5000}
            stored.record["recording"] = recording

    def add_user(self, user_id: int, email: str, name: str) -> None:
        with self.lock:
            self.users[str(user_id)] = freshcaller_user(user_id, email, name)

    def error(self, status: int, message: str) -> Answer:
        kinds = {401: "unauthorized", 404: "record_not_found", 422: "invalid_value"}
        kind = kinds.get(status, "too_many_requests" if status == 429 else "internal_error")
        return Answer.json({"error_type": kind, "message": message, "errors": []}, status)

    def before_route(self, request: Request) -> Answer | None:
        json_route = request.path in JSON_ROUTES or re.fullmatch(
            r"/api/v1/calls/[^/]+", request.path
        )
        if json_route and "application/json" not in (request.header("accept") or ""):
            return self.error(404, "not found")
        with self.lock:
            within, _, ends = self.budget.charge(1)
        if within:
            return None
        answer = self.error(429, "rate limit exceeded")
        answer.headers["Retry-After"] = str(max(1, int(ends - self.clock())))
        return answer

    def _served(self, stored: StoredCall) -> dict[str, Any]:
        record = dict(stored.record)
        recording = record.get("recording")
        if stored.audio_key is not None and recording:
            path = f"/api/v1/calls/{record['id']}/recordings/{recording['id']}"
            query = f"?{stored.signature}" if stored.signature else ""
            url = f"{self.url}{path}{query}"
            record["recording"] = dict(recording, url=url, transcription_url=None)
        elif recording:  # recorded, not yet processed: no URL yet
            record["recording"] = dict(recording, url=None, transcription_url=None)
        return record

    def _paging(self, request: Request) -> tuple[int, int] | Answer:
        try:
            per_page, page = int(request.param("per_page") or 10), int(request.param("page") or 1)
        except ValueError:
            return self.error(422, "per_page and page are integers")
        if not 1 <= per_page <= MAX_PER_PAGE or page < 1:
            return self.error(422, f"per_page is 1 to {MAX_PER_PAGE} and page at least 1")
        return per_page, page

    def _listing(self, request: Request, _match: re.Match[str]) -> Answer:
        unknown = sorted(set(request.query) - LISTING_PARAMS)
        if unknown:
            return self.error(422, f"unknown parameter {unknown[0]}")
        paging = self._paging(request)
        if isinstance(paging, Answer):
            return paging
        per_page, page = paging
        bounds = (request.param("by_time[from]"), request.param("by_time[to]"))
        if (bounds[0] is None) != (bounds[1] is None):
            return self.error(422, "by_time[from] and by_time[to] go together")
        if bounds[0] is not None and not all(_ZULU.fullmatch(b or "") for b in bounds):
            return self.error(422, "by_time takes UTC times written with Z")
        with self.lock:
            matching = [
                stored
                for stored in self.calls.values()
                if bounds[0] is None or _parse(bounds[0]) <= stored.created() <= _parse(bounds[1])
            ]
            matching.sort(key=lambda stored: (stored.created(), stored.record["id"]), reverse=True)
            answered = min(page, self.loop_from_page or page)
            data, pages = page_of(matching, answered, per_page)
            served = [self._served(stored) for stored in data]
        meta = {"current": page, "total_pages": pages, "total_count": len(matching)}
        return Answer.json({"calls": served, "meta": meta})

    def _one(self, _request: Request, match: re.Match[str]) -> Answer:
        with self.lock:
            stored = self.calls.get(match["id"])
            body = None if stored is None else {"call": self._served(stored)}
        return Answer.json(body) if body else self.error(404, "Couldn't find Call")

    def _recording(self, _request: Request, match: re.Match[str]) -> Answer:
        with self.lock:
            stored = self.calls.get(match["id"])
            recording = stored.record.get("recording") if stored else None
            key = stored.audio_key if stored else None
        if key is None or not recording or str(recording["id"]) != match["rid"]:
            return self.error(404, "Couldn't find Recording")
        return Answer(302, headers={"Location": self.media.signed_url(key)})

    def _users(self, request: Request, _match: re.Match[str]) -> Answer:
        if self.users_forbidden:
            return Answer.json(
                {"error_type": "access_denied", "message": "denied", "errors": []}, 403
            )
        unknown = sorted(set(request.query) - PAGING_PARAMS)
        if unknown:
            return self.error(422, f"unknown parameter {unknown[0]}")
        paging = self._paging(request)
        if isinstance(paging, Answer):
            return paging
        per_page, page = paging
        with self.lock:
            users, pages = page_of(
                sorted(self.users.values(), key=lambda u: u["id"]), page, per_page
            )
        meta = {"current": page, "total_pages": pages, "total_count": len(self.users)}
        return Answer.json({"users": users, "meta": meta})


def _parse(text: str | None) -> datetime:
    return datetime.fromisoformat(text or "")


class FreshcallerSimulator(ExitStack):
    """The API and its media host, each on its own 127.0.0.1 port; use as a context manager."""

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__()
        self.api = FreshcallerApi(api_key=api_key, clock=clock)

    def __enter__(self) -> FreshcallerSimulator:
        super().__enter__()
        self.enter_context(serve(self.api))
        self.enter_context(serve(self.api.media))
        return self

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def media_host(self) -> str:
        return self.api.media.url.removeprefix("http://")
