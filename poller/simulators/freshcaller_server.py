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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from poller.simulators.kit import (
    EARLIEST,
    LATEST,
    Answer,
    CostBudget,
    HeaderAuth,
    MediaHost,
    Request,
    Simulator,
    VendorApi,
    page_of,
    strict_time,
    zulu,
)

API_KEY = "freshcaller-api-key-0001"
MAX_PER_PAGE = 1000
PER_MINUTE = 50
LISTING_PARAMS = {"page", "per_page", "by_time[from]", "by_time[to]", "has_ancestry"}
PAGING_PARAMS = {"page", "per_page"}
# What Freshcaller accepts in by_time: UTC with a Z, never an offset.
_ZULU = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")
JSON_ROUTES = re.compile(r"/api/v1/(calls|users|calls/[^/]+)")


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

    def __post_init__(self) -> None:
        # When the call was created, as filed when it was added (a test may break the record).
        self.when = datetime.fromisoformat(self.record["created_time"])


class FreshcallerApi(VendorApi):
    """The simulated account. Mutate it between polls to make time pass."""

    invalid_status = 422

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__(HeaderAuth("X-Api-Auth", api_key), clock=clock)
        self.budget = CostBudget(PER_MINUTE, 60, clock)
        self.media = MediaHost(clock=clock)
        self.calls: dict[str, StoredCall] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.users_forbidden = False  # the key's role may not list users
        self.loop_from_page: int | None = None  # from this page on, the page param is ignored
        self.hosts = [self.media]
        self.route("GET", r"/api/v1/calls", self._listing, params=LISTING_PARAMS)
        self.route("GET", r"/api/v1/calls/(?P<id>[^/]+)", self._one)
        self.route("GET", r"/api/v1/calls/(?P<id>[^/]+)/recordings/(?P<rid>\d+)", self._recording)
        self.route("GET", r"/api/v1/users", self._users, params=PAGING_PARAMS)

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
            stored.record["recording"] = stored.record.get("recording") or {"id": 5000}

    def add_user(self, user_id: int, email: str, name: str) -> None:
        with self.lock:
            self.users[str(user_id)] = freshcaller_user(user_id, email, name)

    def error(self, status: int, message: str) -> Answer:
        kinds = {401: "unauthorized", 403: "access_denied", 404: "record_not_found"}
        kinds |= {422: "invalid_value"}
        kind = kinds.get(status, "too_many_requests" if status == 429 else "internal_error")
        return Answer.json({"error_type": kind, "message": message, "errors": []}, status)

    def before_route(self, request: Request) -> Answer | None:
        if JSON_ROUTES.fullmatch(request.path) and "application/json" not in (
            request.header("accept") or ""
        ):
            return self.error(404, "not found")
        return self.spend(self.budget, retry_after=True)

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

    def _listing(self, request: Request, _match: re.Match[str]) -> Answer:
        per_page, page = self.paging(request, "per_page", 10, MAX_PER_PAGE)
        bounds = [request.param("by_time[from]"), request.param("by_time[to]")]
        if (bounds[0] is None) != (bounds[1] is None):
            return self.error(422, "by_time[from] and by_time[to] go together")
        try:
            times = [strict_time(bound, _ZULU) for bound in bounds if bound is not None]
        except ValueError:
            return self.error(422, "by_time takes UTC times written with Z")
        low, high = times or [EARLIEST, LATEST]
        with self.lock:
            matching = [stored for stored in self.calls.values() if low <= stored.when <= high]
            matching.sort(key=lambda stored: (stored.when, stored.record["id"]), reverse=True)
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
            return self.error(403, "denied")
        per_page, page = self.paging(request, "per_page", 10, MAX_PER_PAGE)
        with self.lock:
            ordered = sorted(self.users.values(), key=lambda user: user["id"])
        users, pages = page_of(ordered, page, per_page)
        meta = {"current": page, "total_pages": pages, "total_count": len(self.users)}
        return Answer.json({"users": users, "meta": meta})


class FreshcallerSimulator(Simulator):
    """The API and its media host, each on its own 127.0.0.1 port; use as a context manager."""

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__(FreshcallerApi(api_key=api_key, clock=clock))
        self.api: FreshcallerApi
