"""A simulator of CallRail's API v3 (calls, call recordings), built on the simulator kit.

It answers as CallRail's reference (``apidocs.callrail.com``) describes it:

- ``Authorization: Token token="<API key>"`` on every request; otherwise 401.
- ``GET /v3/a/{account_id}/calls.json``: ``start_date`` / ``end_date`` as an ISO 8601 date
  (``2016-10-17``, the whole day) or date and time (``2015-09-05T14:00``) in the zone
  ``time_zone`` names, by default the API user's (here ``America/New_York``); ``sort`` and
  ``order`` (default newest first); ``fields`` adds fields beyond the default ones
  (``agent_email`` among them); ``per_page`` 1 to 250 (default 100), ``page`` from 1. The answer
  is ``{"page", "per_page", "total_pages", "total_records", "calls": [...]}``, ``start_time``
  in the requested zone with its offset, ``recording`` the link of the recording endpoint or
  ``null``.
- ``GET /v3/a/{account_id}/calls/{id}/recording.json``: ``{"url": ...}``, a link on the app
  host (``app.callrail.com``) that redirects to the MP3 on a storage host.
- 1,000 requests an hour and 10,000 a day for the account; over either, 429 without headers.
- Errors as ``{"error": "..."}``.

Where the reference leaves it open, the strictest reading: a parameter it does not list, a
date in another form (seconds included), a zone not in its list or a ``per_page`` out of range
is refused with 400; ``end_date`` with a time is exclusive ("calls before 10 AM"); the app
host's link and the storage URL refuse any credentials sent along; a call without a recording
answers 404 at the recording endpoint; calls older than 25 months are refused.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

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

API_KEY = "callrail-api-key-0001"
ACCOUNT_ID = "227799611"
USER_ZONE = "America/New_York"
MAX_PER_PAGE = 250
# A few of the reference's time zone names; enough to refuse a made-up one.
TIME_ZONES = {
    *("user", "Etc/UTC", "America/New_York", "America/Chicago", "America/Denver"),
    *("America/Los_Angeles", "Europe/London", "Europe/Berlin"),
}
DEFAULT_FIELDS = (
    *("answered", "business_phone_number", "customer_city", "customer_country"),
    *("customer_name", "customer_phone_number", "customer_state", "direction", "duration"),
    *("id", "recording", "recording_duration", "recording_player", "start_time"),
    *("tracking_phone_number", "voicemail"),
)
# Of the fields the reference offers beyond the default ones, those a seeded call carries.
EXTRA_FIELDS = {"agent_email"}
LISTING_PARAMS = {
    *("page", "per_page", "start_date", "end_date", "date_range", "time_zone", "fields"),
    *("sort", "order", "company_id", "tracker_id", "call_type", "answer_status", "device"),
    *("direction", "lead_status", "tags", "tags[]", "search", "relative_pagination", "offset"),
}
SORTABLE = {"start_time", "duration", "customer_name", "customer_phone_number", "answered"}
DATE_ONLY = re.compile(r"\d{4}-\d\d-\d\d")
DATE_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
RETENTION = timedelta(days=25 * 30)


def callrail_call(
    call_id: str,
    started_at: datetime,
    *,
    agent_email: str | None = "rep1@example.com",
    direction: str = "inbound",
    customer: str = "+13036231131",
    customer_name: str = "RUEGSEGGER SIMO",
    answered: bool = True,
    voicemail: bool = False,
    duration: int = 60,
) -> dict[str, Any]:
    """A call with the reference's default fields and ``agent_email``; ``start_time`` is aware
    (written in the requested zone when served), ``recording`` filled when served."""
    return {
        "answered": answered,
        "business_phone_number": "+13038160000" if answered else None,
        "customer_city": "Denver",
        "customer_country": "US",
        "customer_name": customer_name,
        "customer_phone_number": customer,
        "customer_state": "CO",
        "direction": direction,
        "duration": duration,
        "id": call_id,
        "recording": None,
        "recording_duration": None,
        "recording_player": None,
        "start_time": started_at,
        "tracking_phone_number": "+13038163491",
        "voicemail": voicemail,
        "agent_email": agent_email,
    }


@dataclass
class StoredCall:
    call: dict[str, Any]
    audio_key: str | None = None

    @property
    def started_at(self) -> datetime:
        # A published call carries its time as CallRail wrote it; a seeded one as a datetime.
        at = self.call["start_time"]
        return datetime.fromisoformat(at) if isinstance(at, str) else at


class CallRailApp(VendorApi):
    """``app.callrail.com``: a recording link with its access key redirects to the audio."""

    def __init__(self, media: MediaHost, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.media = media
        self.links: dict[str, str] = {}  # access key -> media key
        self.route(
            "GET", r"/calls/(?P<id>[A-Za-z0-9]+)/recording/redirect", self._redirect, public=True
        )

    def link(self, call_id: str, media_key: str) -> str:
        access_key = secrets.token_hex(10)
        with self.lock:
            self.links[access_key] = media_key
        return f"{self.url}/calls/{call_id}/recording/redirect?access_key={access_key}"

    def _redirect(self, request: Request, _match: re.Match[str]) -> Answer:
        if request.header("authorization"):
            return self.error(400, "credentials sent to a recording link")
        with self.lock:
            key = self.links.get(request.param("access_key") or "")
        if key is None:
            return self.error(403, "access key does not match")
        return Answer(302, headers={"Location": self.media.signed_url(key, ttl=24 * 3600)})


class CallRailApi(VendorApi):
    """The simulated account. Mutate it between polls to make time pass."""

    def __init__(
        self,
        api_key: str = API_KEY,
        account_id: str = ACCOUNT_ID,
        *,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(HeaderAuth("authorization", f'Token token="{api_key}"'), clock=clock)
        self.account_id = account_id
        self.hourly = CostBudget(1000, 3600, clock)
        self.daily = CostBudget(10_000, 86_400, clock)
        self.media = MediaHost(clock=clock)
        self.app = CallRailApp(self.media, clock=clock)
        self.calls: dict[str, StoredCall] = {}
        account = r"/v3/a/(?P<account>[A-Za-z0-9]+)"
        self.route("GET", account + r"/calls\.json", self._listing)
        self.route("GET", account + r"/calls/(?P<id>[A-Za-z0-9]+)/recording\.json", self._recording)

    def add_call(self, call: dict[str, Any], audio: bytes | None = None) -> None:
        """Serve ``call``; with ``audio``, its recording."""
        with self.lock:
            self.calls[call["id"]] = StoredCall(call)
        if audio is not None:
            self.add_recording(call["id"], audio)

    def add_recording(self, call_id: str, audio: bytes) -> None:
        """The call's recording is there (a late one: the call was listed before it)."""
        self.media.put(f"rec-{call_id}", audio, content_type="audio/mpeg", signed_only=True)
        with self.lock:
            self.calls[call_id].audio_key = f"rec-{call_id}"

    def listing_pages(self) -> list[int]:
        """The page number of every listing request so far."""
        with self.lock:
            listings = [r for r in self.requests if r.path.endswith("/calls.json")]
        return [int(request.param("page") or 1) for request in listings]

    def before_route(self, request: Request) -> Answer | None:
        with self.lock:
            hour, _, _ = self.hourly.charge(1)
            day, _, _ = self.daily.charge(1)
        if hour and day:
            return None
        return self.error(429, "Too Many Requests")

    def _serve(self, stored: StoredCall, zone: ZoneInfo, fields: set[str]) -> dict[str, Any]:
        wanted = (*DEFAULT_FIELDS, *sorted(fields))
        call = {key: stored.call[key] for key in wanted if key in stored.call}
        call["start_time"] = _stamp(stored.started_at, zone)
        if stored.audio_key is not None:
            base = f"https://api.callrail.com/v3/a/{self.account_id}/calls/{stored.call['id']}"
            call["recording"] = f"{base}/recording.json"
            call["recording_duration"] = str(stored.call["duration"])
            call["recording_player"] = (
                f"https://app.callrail.com/calls/{stored.call['id']}/recording"
            )
        return call

    def _listing(self, request: Request, match: re.Match[str]) -> Answer:
        if match["account"] != self.account_id:
            return self.error(404, "Account not found")
        unknown = sorted(set(request.query) - LISTING_PARAMS)
        if unknown:
            return self.error(400, f"Unknown parameter {unknown[0]}")
        zone_name = request.param("time_zone") or "user"
        if zone_name not in TIME_ZONES:
            return self.error(400, f"Invalid time_zone {zone_name}")
        zone = ZoneInfo(USER_ZONE if zone_name == "user" else zone_name)
        fields = {name for name in (request.param("fields") or "").split(",") if name}
        if fields - EXTRA_FIELDS:
            return self.error(400, f"Invalid fields: {', '.join(sorted(fields - EXTRA_FIELDS))}")
        try:
            start = _bound(request.param("start_date"), zone, end=False)
            end = _bound(request.param("end_date"), zone, end=True)
            per_page = int(request.param("per_page") or 100)
            page = int(request.param("page") or 1)
        except ValueError as exc:
            return self.error(400, str(exc))
        if not 1 <= per_page <= MAX_PER_PAGE or page < 1:
            return self.error(400, f"per_page is 1 to {MAX_PER_PAGE} and page at least 1")
        if start is not None and start < datetime.fromtimestamp(self.clock(), UTC) - RETENTION:
            return self.error(400, "Date range is outside the data retention period")
        sort, order = request.param("sort") or "start_time", request.param("order") or "desc"
        if sort not in SORTABLE or order not in ("asc", "desc"):
            return self.error(400, "Invalid sort or order")
        with self.lock:
            matching = [
                stored
                for stored in self.calls.values()
                if (start is None or stored.started_at >= start)
                and (end is None or stored.started_at < end)
            ]
            matching.sort(key=lambda stored: (_sort_key(stored, sort), stored.call["id"]))
            if order == "desc":
                matching.reverse()
            data, pages = page_of(matching, page, per_page)
            calls = [self._serve(stored, zone, fields) for stored in data]
        body = {
            "page": page,
            "per_page": per_page,
            "total_pages": pages if matching else 0,
            "total_records": len(matching),
            "calls": calls,
        }
        return Answer.json(body)

    def _recording(self, _request: Request, match: re.Match[str]) -> Answer:
        if match["account"] != self.account_id:
            return self.error(404, "Account not found")
        with self.lock:
            stored = self.calls.get(match["id"])
            key = stored.audio_key if stored is not None else None
        if key is None:
            return self.error(404, "Not Found")
        return Answer.json({"url": self.app.link(match["id"], key)})


def _stamp(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).isoformat(timespec="milliseconds")


def _sort_key(stored: StoredCall, sort: str) -> Any:
    value = stored.call.get(sort)
    return value if value is not None else ""


def _bound(value: str | None, zone: ZoneInfo, *, end: bool) -> datetime | None:
    """A date filter as the reference reads it: a whole day (inclusive), or a minute."""
    if value is None:
        return None
    if DATE_ONLY.fullmatch(value):
        day = date.fromisoformat(value) + timedelta(days=1 if end else 0)
        return datetime(day.year, day.month, day.day, tzinfo=zone)
    if DATE_TIME.fullmatch(value):
        return datetime.fromisoformat(value).replace(tzinfo=zone)
    raise ValueError(f"Invalid date {value}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM")


class CallRailSimulator(ExitStack):
    """The API, the app host and the storage host, each on its own 127.0.0.1 port; use as a
    context manager."""

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__()
        self.api = CallRailApi(api_key=api_key, clock=clock)

    def __enter__(self) -> CallRailSimulator:
        super().__enter__()
        self.enter_context(serve(self.api))
        self.enter_context(serve(self.api.app))
        self.enter_context(serve(self.api.media))
        return self

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def recording_hosts(self) -> list[str]:
        """The app and storage hosts, as ``download_hosts`` names them."""
        return [
            self.api.app.url.removeprefix("http://"),
            self.api.media.url.removeprefix("http://"),
        ]
