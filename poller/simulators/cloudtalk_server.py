"""A simulator of CloudTalk's API (call history, recordings), built on the simulator kit.

It answers as CloudTalk's OpenAPI document (``developers.cloudtalk.io/swagger.json``, v1.7)
describes it:

- HTTP Basic with an API key's id and secret on every request; otherwise 401.
- ``GET /api/calls/index.json``: ``date_from`` / ``date_to`` (``2017-12-24 12:22:00``),
  ``limit`` 1 to 1,000, ``page`` from 1, and the other filters the document lists. The answer
  is ``{"responseData": {"itemsCount", "pageCount", "pageNumber", "limit", "data": [...]}}``,
  each item ``{"Cdr": ..., "Contact": ..., "CallNumber": ..., "Agent": ...}``; times in UTC.
- ``GET /api/calls/recording/{id}.json``: the recording as ``audio/x-wav``; 404 "Not found."
  without one.
- Errors as ``{"responseData": {"status": ..., "message": ...}}``.
- 60 requests a minute for the company; over it, 429 with ``X-CloudTalkAPI-Limit``,
  ``-Remaining`` and ``-ResetTime`` (a Unix time) and no ``Retry-After``.

Where the document leaves it open, the strictest reading: a listing without ``Accept:
application/json`` is refused with 406 (the document says such a GET "may be rejected"; the
recording, which answers audio, is not held to it); the rate-limit headers come only with the
429; an unlisted parameter, a time in any other form than ``YYYY-MM-DD HH:MM:SS`` or a value
out of range is refused with 400; ``date_to`` is exclusive; a page past the last is empty.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from poller.simulators.kit import (
    EARLIEST,
    LATEST,
    Answer,
    BasicAuth,
    CostBudget,
    Request,
    VendorApi,
    page_of,
)

KEY_ID = "CLOUDTALKKEYID0001"
KEY_SECRET = "cloudtalk-key-secret-0001"
MAX_LIMIT = 1000
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
RATE_HEADERS = ("X-CloudTalkAPI-Limit", "X-CloudTalkAPI-Remaining", "X-CloudTalkAPI-ResetTime")
LISTING_PARAMS = {
    *("public_internal", "public_external", "date_from", "date_to", "contact_id", "user_id"),
    *("agent_extension", "type", "status", "tag_id", "call_id", "limit", "page"),
}


def cloudtalk_agent(agent_id: int, email: str, name: str) -> dict[str, Any]:
    """An agent as a call carries it (CloudTalk's AgentCall schema)."""
    first, _, last = name.partition(" ")
    return {
        "id": str(agent_id),
        "firstname": first,
        "lastname": last,
        "fullname": name,
        "email": email,
        "language": "en",
        "role": "Agent",
        "status": "online",
        "default_outbound_number": 442012345678,
        "associated_numbers": [442012345678],
        "groups": ["sales"],
    }


def cloudtalk_call(
    call_id: int,
    started_at: datetime,
    *,
    agent: dict[str, Any] | None = None,
    call_type: str = "outgoing",
    external: str | int = 421904247371,
    contact_name: str | None = "Jon Doe",
    talking_time: int = 60,
    recorded: bool = True,
) -> dict[str, Any]:
    """A call of the history, with the fields of the document's example (times as its example
    writes them, ISO 8601 in UTC with milliseconds)."""
    started = started_at.astimezone(UTC)
    ended = started + timedelta(seconds=talking_time + 5)

    def stamp(at: datetime) -> str:
        return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")

    return {
        "Cdr": {
            "id": str(call_id),
            "billsec": str(talking_time + 5),
            "type": call_type,
            "country_code": "421",
            "public_external": external,
            "public_internal": 442012345678,
            "recorded": recorded,
            "is_voicemail": False,
            "fax_email": "0",
            "is_redirected": "0",
            "redirected_from": "",
            "is_local": True,
            "user_id": agent["id"] if agent else None,
            "talking_time": str(talking_time),
            "started_at": stamp(started),
            "answered_at": stamp(started + timedelta(seconds=5)),
            "ended_at": stamp(ended),
            "waiting_time": 2,
            "wrapup_time": 5,
            "recording_link": f"https://my.cloudtalk.io/r/play/{call_id}",
        },
        "Contact": cloudtalk_contact(contact_name, external, agent) if contact_name else {},
        "CallNumber": {
            "id": "12345",
            "internal_name": "Sales support",
            "caller_id_e164": 442012345678,
            "country_code": "44",
            "area_code": "20",
        },
        "BillingCall": {"price": "0.000000"},
        "Agent": agent or {},
        "Notes": [{"id": "23", "note": "Call later"}],
        "Tags": [{"id": "124", "name": "VIP"}],
    }


def cloudtalk_contact(
    name: str, number: str | int, agent: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The contact a call carries, with the fields of the document's example."""
    return {
        "id": "1234",
        "name": name,
        "title": "",
        "company": "First ltd.",
        "industry": "IT",
        "address": "8th Avenue",
        "city": "London",
        "zip": "838298",
        "state": "England",
        "type": "contact",
        "tags": [{"id": "615", "name": "VIP"}],
        "external_urls": [
            {"external_system": "CloudTalk", "external_url": "https://my.cloudtalk.io/c/show/1234"}
        ],
        "contact_numbers": [number],
        "contact_emails": ["contact@example.com"],
        "custom_fields": [{"key": "age", "value": "33"}],
        "favorite_agent": agent or {},
    }


@dataclass
class StoredCall:
    item: dict[str, Any]
    audio: bytes | None = None

    def started_at(self) -> datetime:
        return datetime.fromisoformat(self.item["Cdr"]["started_at"])


class CloudTalkApi(VendorApi):
    """The simulated company. Mutate it between polls to make time pass."""

    unknown_parameter = "Unknown parameter {}"

    def __init__(
        self,
        key_id: str = KEY_ID,
        key_secret: str = KEY_SECRET,
        *,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(BasicAuth(key_id, key_secret), clock=clock)
        self.budget = CostBudget(60, 60, clock)
        self.calls: dict[str, StoredCall] = {}
        self.route("GET", r"/api/calls/index\.json", self._listing, params=LISTING_PARAMS)
        self.route("GET", r"/api/calls/recording/(?P<id>\d+)\.json", self._recording)

    def add_call(self, item: dict[str, Any], audio: bytes | None = None) -> None:
        """Serve ``item``; with ``audio``, its recording."""
        with self.lock:
            self.calls[str(item["Cdr"]["id"])] = StoredCall(item, audio)

    def add_recording(self, call_id: int, audio: bytes) -> None:
        """The call's recording is there (a late one: the call was listed before it)."""
        with self.lock:
            stored = self.calls[str(call_id)]
            stored.audio = audio
            stored.item["Cdr"]["recorded"] = True

    def listing_pages(self) -> list[int]:
        """The page number of every listing request so far."""
        listings = self.requests_to("/api/calls/index.json")
        return [int(request.param("page") or 1) for request in listings]

    def error(self, status: int, message: str) -> Answer:
        return Answer.json({"responseData": {"status": status, "message": message}}, status)

    def before_route(self, request: Request) -> Answer | None:
        listing = request.path == "/api/calls/index.json"
        if listing and "application/json" not in (request.header("accept") or ""):
            return self.error(406, "Not Acceptable: send Accept: application/json")
        message, names = "Too Many Requests", RATE_HEADERS
        return self.spend(self.budget, message=message, headers=names, headers_on="refusal")

    def _listing(self, request: Request, _match: re.Match[str]) -> Answer:
        try:
            bounds = {
                name: datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)
                for name in ("date_from", "date_to")
                if (value := request.param(name)) is not None
            }
        except ValueError:
            return self.error(400, "date_from and date_to are YYYY-MM-DD HH:MM:SS")
        start, end = bounds.get("date_from", EARLIEST), bounds.get("date_to", LATEST)
        limit, page = self.paging(request, "limit", 10, MAX_LIMIT)
        with self.lock:
            matching = sorted(
                (stored for stored in self.calls.values() if start <= stored.started_at() < end),
                key=lambda stored: (stored.started_at(), int(stored.item["Cdr"]["id"])),
            )
            data, pages = page_of(matching, page, limit)
            items = [stored.item for stored in data]
        body = {
            "itemsCount": len(matching),
            "pageCount": pages if matching else 0,
            "pageNumber": page,
            "limit": limit,
            "data": items,
        }
        return Answer.json({"responseData": body})

    def _recording(self, _request: Request, match: re.Match[str]) -> Answer:
        with self.lock:
            stored = self.calls.get(match["id"])
            audio = stored.audio if stored is not None else None
        if audio is None:
            return self.error(404, "Not found.")
        return Answer(200, audio, content_type="audio/x-wav")
