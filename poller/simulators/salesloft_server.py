"""A simulator of Salesloft's v2 API (call data records, users), built on the simulator kit.

It answers as Salesloft's OpenAPI document (``developers.salesloft.com/v2_api_def.json``) and
its rate-limit page describe:

- ``Authorization: Bearer <API key>`` on every request; otherwise 401.
- ``GET /v2/call_data_records.json``: ``created_at[gt|gte|lt|lte]`` and ``updated_at[...]``
  (ISO 8601, compared to the microsecond), ``sort_by`` ``created_at|updated_at`` (default
  ``updated_at``), ``sort_direction`` ``ASC|DESC`` (default ``DESC``), ``per_page`` 1 to 100
  (default 25), ``page`` from 1, ``include_paging_counts``. The answer is
  ``{"metadata": {"paging": {...}}, "data": [...]}``; ``total_pages`` and ``total_count``
  only with ``include_paging_counts=true``; ``next_page`` is ``null`` on the last page.
- ``GET /v2/call_data_records/{id}.json`` and ``GET /v2/users/{id}.json``: ``{"data": {...}}``.
- Cost: 600 a minute for the team; a request costs 1, a listing page 101 to 150 costs 3, to 250
  8, to 500 10, past that 30. Each answer carries ``x-ratelimit-endpoint-cost`` and
  ``x-ratelimit-remaining-minute``; over budget, 429.

Where the documents leave it open, the strictest reading: an unlisted parameter or a value out of
range is refused with 422; a 429 has no Retry-After; the recording URL is signed, expires within
the hour and is on a host of its own that refuses credentials; times carry a ``-05:00`` offset.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from poller.simulators.kit import (
    COMPARISONS,
    Answer,
    BearerAuth,
    CostBudget,
    MediaHost,
    Request,
    Simulator,
    VendorApi,
    bracket_filters,
    page_of,
    passes,
)

API_KEY = "salesloft-api-key-0001"
EASTERN = timezone(timedelta(hours=-5))
MAX_PER_PAGE = 100
TIME_FIELDS = ("created_at", "updated_at")
LISTING_PARAMS = {f"{name}[{op}]" for name in TIME_FIELDS for op in COMPARISONS} | {
    *("ids", "has_call", "user_guid", "person_id", "sort_by", "sort_direction", "per_page"),
    *("page", "include_paging_counts", "limit_paging_counts"),
}


def page_cost(page: int) -> int:
    """What a listing page costs of the team's minute (Salesloft's rate-limit page)."""
    for last, cost in ((100, 1), (150, 3), (250, 8), (500, 10)):
        if page <= last:
            return cost
    return 30


def salesloft_cdr(
    cdr_id: int,
    created_at: datetime,
    *,
    user_id: int | None = 10,
    direction: str = "outbound",
    from_: str = "7705551234",
    to: str = "7705550000",
    status: str = "completed",
    duration: int = 60,
    recording_status: str | None = "completed",
) -> dict[str, Any]:
    """A call data record with the fields of Salesloft's schema (``recording.url`` is filled
    when served, for a record with audio)."""
    api = "https://api.salesloft.com/v2"
    return {
        "id": cdr_id,
        "call_type": "call",
        "call_uuid": f"5c5c1f32-bff1-4b7c-8f2a-{cdr_id:012d}",
        "created_at": created_at.astimezone(EASTERN).isoformat(),
        "updated_at": (created_at + timedelta(seconds=duration + 30))
        .astimezone(EASTERN)
        .isoformat(),
        "direction": direction,
        "duration": duration,
        "from": from_,
        "to": to,
        "status": status,
        "recording": None
        if recording_status is None
        else {"recording_status": recording_status, "status": status, "url": None},
        "user": None if user_id is None else {"id": user_id, "_href": f"{api}/users/{user_id}"},
        "called_person": {"id": 3, "_href": f"{api}/people/3"},
        "call": {"id": cdr_id, "_href": f"{api}/activities/calls/{cdr_id}"},
    }


def salesloft_user(user_id: int, email: str, name: str) -> dict[str, Any]:
    """A user with the fields the adapter reads (Salesloft's User schema has many more)."""
    first, _, last = name.partition(" ")
    return {
        "id": user_id,
        "guid": f"0863ed13-7120-479b-8650-{user_id:012d}",
        "name": name,
        "first_name": first,
        "last_name": last,
        "email": email,
        "active": True,
        "local_dial_enabled": True,
    }


@dataclass
class StoredCdr:
    record: dict[str, Any]
    audio_key: str | None = None

    def times(self) -> dict[str, datetime]:
        return {name: datetime.fromisoformat(self.record[name]) for name in TIME_FIELDS}


class SalesloftApi(VendorApi):
    """The simulated team. Mutate it between polls to make time pass."""

    invalid_status = 422

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__(BearerAuth({api_key}), clock=clock)
        self.budget = CostBudget(600, 60, clock)
        self.media = MediaHost(clock=clock)
        self.records: dict[str, StoredCdr] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.hosts = [self.media]
        self.route("GET", r"/v2/call_data_records\.json", self._listing, params=LISTING_PARAMS)
        self.route("GET", r"/v2/call_data_records/(?P<id>\d+)\.json", self._one)
        self.route("GET", r"/v2/users/(?P<id>\d+)\.json", self._user)

    def add_call(self, record: dict[str, Any], audio: bytes | None = None) -> None:
        """Serve ``record``; with ``audio``, its recording sits on the media host."""
        with self.lock:
            self.records[str(record["id"])] = StoredCdr(record)
        if audio is not None:
            self.add_recording(record["id"], audio)

    def add_recording(self, cdr_id: int, audio: bytes) -> None:
        """The call's recording is ready (a late one: it was still processing)."""
        self.media.put(f"cdr-{cdr_id}", audio, signed_only=True)
        with self.lock:
            stored = self.records[str(cdr_id)]
            stored.audio_key = f"cdr-{cdr_id}"
            status = stored.record["status"]
            stored.record["recording"] = {"recording_status": "completed", "status": status}

    def add_user(self, user_id: int, email: str, name: str) -> None:
        with self.lock:
            self.users[str(user_id)] = salesloft_user(user_id, email, name)

    def listing_pages(self) -> list[int]:
        """The page number of every listing request so far."""
        listings = self.requests_to("/v2/call_data_records.json")
        return [int(request.param("page") or 1) for request in listings]

    def before_route(self, request: Request) -> Answer | None:
        page = request.param("page") or "1"
        listing = request.path == "/v2/call_data_records.json" and page.isdigit()
        cost = page_cost(int(page)) if listing else 1
        with self.lock:
            within, remaining, _ = self.budget.charge(cost)
        self.add_headers(
            **{
                "x-ratelimit-endpoint-cost": str(cost),
                "x-ratelimit-remaining-minute": str(remaining),
            }
        )
        return None if within else self.error(429, "rate limit exceeded")

    def _serve(self, stored: StoredCdr) -> dict[str, Any]:
        record = dict(stored.record)
        if stored.audio_key is not None and record.get("recording"):
            url = self.media.signed_url(stored.audio_key)
            record["recording"] = dict(record["recording"], url=url)
        return record

    def _listing(self, request: Request, _match: re.Match[str]) -> Answer:
        try:
            filters = bracket_filters(request, TIME_FIELDS)
        except ValueError:
            return self.error(422, "filters are zoned ISO 8601 times")
        per_page, page = self.paging(request, "per_page", 25, MAX_PER_PAGE)
        sort_by = request.param("sort_by") or "updated_at"
        direction = request.param("sort_direction") or "DESC"
        if sort_by not in TIME_FIELDS or direction not in ("ASC", "DESC"):
            return self.error(422, "sort_by is created_at or updated_at, sort_direction ASC/DESC")
        with self.lock:
            matching = [
                stored for stored in self.records.values() if passes(filters, stored.times())
            ]
            matching.sort(key=lambda stored: (stored.times()[sort_by], stored.record["id"]))
            if direction == "DESC":
                matching.reverse()
            data, pages = page_of(matching, page, per_page)
            served = [self._serve(stored) for stored in data]
        paging: dict[str, Any] = {
            "per_page": per_page,
            "current_page": page,
            "next_page": page + 1 if page < pages else None,
            "prev_page": page - 1 if page > 1 else None,
        }
        if request.param("include_paging_counts") == "true":
            paging |= {"total_pages": pages, "total_count": len(matching)}
        return Answer.json({"metadata": {"paging": paging}, "data": served})

    def _one(self, _request: Request, match: re.Match[str]) -> Answer:
        with self.lock:
            stored = self.records.get(match["id"])
            body = None if stored is None else {"data": self._serve(stored)}
        return Answer.json(body) if body else self.error(404, "not found")

    def _user(self, _request: Request, match: re.Match[str]) -> Answer:
        with self.lock:
            user = self.users.get(match["id"])
        return Answer.json({"data": user}) if user else self.error(404, "not found")


class SalesloftSimulator(Simulator):
    """The API and its media host, each on its own 127.0.0.1 port; use as a context manager."""

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__(SalesloftApi(api_key=api_key, clock=clock))
        self.api: SalesloftApi
