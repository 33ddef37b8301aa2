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
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from poller.simulators.kit import (
    EARLIEST,
    LATEST,
    Answer,
    CostBudget,
    HeaderAuth,
    LinkHost,
    MediaHost,
    Refused,
    Request,
    Simulator,
    VendorApi,
    page_of,
    strict_time,
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
DATE_OR_MINUTE = re.compile(r"\d{4}-\d\d-\d\d(T\d\d:\d\d)?")
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


class CallRailApi(VendorApi):
    """The simulated account. Mutate it between polls to make time pass."""

    unknown_parameter = "Unknown parameter {}"

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
        # app.callrail.com: a recording link with its access key redirects to the audio.
        link = r"/calls/[A-Za-z0-9]+/recording/redirect"
        self.app = LinkHost(self.media, link, ttl=24 * 3600, clock=clock)
        self.calls: dict[str, StoredCall] = {}
        self.hosts = [self.app, self.media]
        account = r"/v3/a/(?P<account>[A-Za-z0-9]+)"
        self.route("GET", account + r"/calls\.json", self._listing, params=LISTING_PARAMS)
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
        listings = self.requests_to(f"/v3/a/{self.account_id}/calls.json")
        return [int(request.param("page") or 1) for request in listings]

    def before_route(self, request: Request) -> Answer | None:
        return self.spend(self.hourly, self.daily, message="Too Many Requests")

    def _serve(self, stored: StoredCall, zone: ZoneInfo, fields: set[str]) -> dict[str, Any]:
        wanted = (*DEFAULT_FIELDS, *sorted(fields))
        call = {key: stored.call[key] for key in wanted if key in stored.call}
        call["start_time"] = _stamp(stored.started_at, zone)
        if stored.audio_key is not None:
            base = f"https://api.callrail.com/v3/a/{self.account_id}/calls/{stored.call['id']}"
            call["recording"] = f"{base}/recording.json"
            call["recording_duration"] = str(stored.call["duration"])
            call["recording_player"] = f"https://app.callrail.com/calls/{call['id']}/recording"
        return call

    def _listing(self, request: Request, match: re.Match[str]) -> Answer:
        self._account(match)
        zone_name = request.param("time_zone") or "user"
        if zone_name not in TIME_ZONES:
            return self.error(400, f"Invalid time_zone {zone_name}")
        zone = ZoneInfo(USER_ZONE if zone_name == "user" else zone_name)
        fields = {name for name in (request.param("fields") or "").split(",") if name}
        if fields - EXTRA_FIELDS:
            return self.error(400, f"Invalid fields: {', '.join(sorted(fields - EXTRA_FIELDS))}")
        start = _bound(request.param("start_date"), zone, end=False)
        end = _bound(request.param("end_date"), zone, end=True)
        per_page, page = self.paging(request, "per_page", 100, MAX_PER_PAGE)
        if EARLIEST < start < datetime.fromtimestamp(self.clock(), UTC) - RETENTION:
            return self.error(400, "Date range is outside the data retention period")
        sort, order = request.param("sort") or "start_time", request.param("order") or "desc"
        if sort not in SORTABLE or order not in ("asc", "desc"):
            return self.error(400, "Invalid sort or order")
        with self.lock:
            matching = sorted(
                (stored for stored in self.calls.values() if start <= stored.started_at < end),
                key=lambda stored: (_sort_key(stored, sort), stored.call["id"]),
                reverse=order == "desc",
            )
            data, pages = page_of(matching, page, per_page)
            calls = [self._serve(stored, zone, fields) for stored in data]
        return Answer.json(
            {
                "page": page,
                "per_page": per_page,
                "total_pages": pages if matching else 0,
                "total_records": len(matching),
                "calls": calls,
            }
        )

    def _account(self, match: re.Match[str]) -> None:
        if match["account"] != self.account_id:
            raise Refused(404, "Account not found")

    def _recording(self, _request: Request, match: re.Match[str]) -> Answer:
        self._account(match)
        with self.lock:
            stored = self.calls.get(match["id"])
            key = stored.audio_key if stored is not None else None
        if key is None:
            return self.error(404, "Not Found")
        link = self.app.link(f"/calls/{match['id']}/recording/redirect", key)
        return Answer.json({"url": link})


def _stamp(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).isoformat(timespec="milliseconds")


def _sort_key(stored: StoredCall, sort: str) -> Any:
    value = stored.call.get(sort)
    return value if value is not None else ""


def _bound(value: str | None, zone: ZoneInfo, *, end: bool) -> datetime:
    """A date filter as the reference reads it: a whole day (inclusive), or a minute."""
    if value is None:
        return LATEST if end else EARLIEST
    try:
        at = strict_time(value, DATE_OR_MINUTE, zone)
    except ValueError:
        raise Refused(400, f"Invalid date {value}: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return at + timedelta(days=1) if end and "T" not in value else at


class CallRailSimulator(Simulator):
    """The API, the app host and the storage host, each on its own 127.0.0.1 port; use as a
    context manager."""

    def __init__(self, api_key: str = API_KEY, *, clock: Callable[[], float] = time.time):
        super().__init__(CallRailApi(api_key=api_key, clock=clock))
        self.api: CallRailApi

    # The app and storage hosts, as ``download_hosts`` names them.
    recording_hosts = Simulator.extra_hosts
