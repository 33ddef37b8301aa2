"""A simulator of JustCall's v2.1 call log, built on the simulator kit.

It answers as JustCall's OpenAPI document (``api-v21.json`` of ``developer.justcall.io``)
describes it:

- ``Authorization: <api_key>:<api_secret>`` on every API request; otherwise 401.
- ``GET /v2.1/calls``: ``from_datetime`` and ``to_datetime`` written ``yyyy-mm-dd hh:mm:ss`` or
  ``yyyy-mm-dd`` in the account's time zone (:attr:`JustCallApi.zone`), ``per_page`` 1 to 100
  (default 20), ``page``, ``sort`` (``id`` or ``datetime``, default ``id``), ``order`` (``asc`` or
  ``desc``, default ``desc``), ``last_call_id_fetched`` and the document's other filters. The
  answer is ``{"status", "count", "total_count", "current_page", "per_page", "next_page_link",
  "prev_page_link", "data"}``; a call gives its start in UTC (``call_date``, ``call_time``) and
  in the account's zone (``call_user_date``, ``call_user_time``).
- A call's recording is a ``/rec-redirect/<call sid>`` link on JustCall's web host, which
  redirects to the file.
- 30 requests a minute (the Team plan); over it, 429.

Where the documents leave it open, the strictest reading: an unlisted parameter, a time in any
other form (``T``, an offset) or a value out of range is refused with 400; both bounds are
inclusive; a 429 carries no Retry-After; the error body is ``{"status": "error", "message",
"error"}`` (as a third-party client's fixtures show it); ``next_page_link`` is empty after the
last page; the recording link needs no credentials and the file it redirects to is signed,
expires within the hour and is on a host of its own that refuses credentials.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from poller.simulators.kit import (
    Answer,
    CostBudget,
    HeaderAuth,
    MediaHost,
    Request,
    Simulator,
    VendorApi,
    page_of,
    strict_time,
    url_with,
)

API_KEY = "justcall-api-key-0001"
API_SECRET = "justcall-api-secret-0001"
ACCOUNT_ZONE = "America/New_York"
MAX_PER_PAGE = 100
PER_MINUTE = 30
LISTING_PARAMS = {
    *("fetch_queue_data", "fetch_ai_data", "from_datetime", "to_datetime", "contact_number"),
    *("justcall_number", "agent_id", "ai_agent_ids", "ivr_digit", "call_direction", "call_type"),
    *("call_traits", "disposition_codes", "page", "per_page", "sort", "order"),
    "last_call_id_fetched",
}
_DATETIME = re.compile(r"\d{4}-\d\d-\d\d( \d\d:\d\d:\d\d)?")


def justcall_call(
    call_id: int,
    at: datetime,
    *,
    agent_id: int | None = 1308,
    agent_email: str | None = "rep1@example.com",
    agent_name: str | None = "Rep One",
    direction: str = "Outgoing",
    kind: str = "Answered",
    contact_number: str = "+14155550101",
    contact_name: str = "",
    duration: int = 60,
    zone: str = ACCOUNT_ZONE,
) -> dict[str, Any]:
    """A call with the fields of JustCall's v2.1 call schema (``call_info.recording`` is
    filled when served, for a call whose recording is ready; ``queue_callback`` and
    ``justcall_ai`` come only with ``fetch_queue_data`` and ``fetch_ai_data``, never sent)."""
    utc = at.astimezone(UTC)
    local = at.astimezone(ZoneInfo(zone))
    return {
        "id": call_id,
        "call_sid": f"CA{call_id:030d}",
        "contact_number": contact_number,
        "contact_name": contact_name,
        "contact_email": "",
        "justcall_number": "+18005550100",
        "justcall_line_name": "Sales Line",
        "agent_id": agent_id,
        "agent_name": agent_name,
        "agent_email": agent_email,
        "agent_active": "Active",
        "call_date": utc.strftime("%Y-%m-%d"),
        "call_user_date": local.strftime("%Y-%m-%d"),
        # The hour unpadded, as the document's own example writes it ("8:25:43").
        "call_time": f"{utc.hour}:{utc:%M:%S}",
        "call_user_time": f"{local.hour}:{local:%M:%S}",
        "cost_incurred": 0.005,
        "call_info": {
            "direction": direction,
            "type": kind,
            "missed_call_reason": "",
            "status": "Unarchived",
            "disposition": "",
            "notes": "",
            "rating": "",
            "recording": "",
            "recording_child": "",
            "voicemail_transcription": "",
            "call_traits": [],
        },
        "call_duration": {
            "ring_time": 5,
            "friendly_duration": str(timedelta(seconds=duration)).rjust(8, "0"),
            "total_duration": duration,
            "queue_wait_time": 0,
            "hold_time": 0,
            "conversation_time": duration,
            "wrap_up_time": 0,
            "handle_time": duration,
        },
        "ivr_info": {"digit_pressed": "", "content": ""},
        "queue": {"entered_at_position": "", "exit_reason": ""},
    }


@dataclass
class StoredCall:
    record: dict[str, Any]
    audio_key: str | None = None

    def __post_init__(self) -> None:
        # When the call was, as filed when it was added (a test may break the record's fields).
        written = f"{self.record['call_date']} {self.record['call_time']}"
        self.when = datetime.strptime(written, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


class JustCallApi(VendorApi):
    """The simulated account's API. Mutate it between polls to make time pass."""

    unknown_parameter = "Invalid request parameters: {}"

    def __init__(
        self,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
        *,
        zone: str = ACCOUNT_ZONE,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(HeaderAuth("Authorization", f"{api_key}:{api_secret}"), clock=clock)
        self.zone: tzinfo = ZoneInfo(zone)
        self.budget = CostBudget(PER_MINUTE, 60, clock)
        self.media = MediaHost(clock=clock)
        self.web = VendorApi(clock=clock)  # justcall.io: the recording links
        self.calls: dict[str, StoredCall] = {}
        # Scripted misbehaviour: next_page_link on another host, or back to the same page.
        self.next_link_base: str | None = None
        self.loop_from_page: int | None = None
        self.hosts = [self.web, self.media]
        self.route("GET", r"/v2.1/calls", self._listing, params=LISTING_PARAMS)
        self.web.route("GET", r"/rec-redirect/(?P<sid>CA\w+)", self._recording, public=True)

    def add_call(self, record: dict[str, Any], audio: bytes | None = None) -> None:
        """Serve ``record``; with ``audio``, its recording is ready."""
        with self.lock:
            self.calls[str(record["id"])] = StoredCall(record)
        if audio is not None:
            self.add_recording(record["id"], audio)

    def add_recording(self, call_id: int, audio: bytes) -> None:
        """The call's recording is ready (a late one: the call was listed without it)."""
        key = f"call-{call_id}"
        self.media.put(key, audio, "audio/mpeg", signed_only=True)
        with self.lock:
            self.calls[str(call_id)].audio_key = key

    def error(self, status: int, message: str) -> Answer:
        reasons = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many"}
        body = {"status": "error", "message": message, "error": reasons.get(status, "Error")}
        return Answer.json(body, status)

    def before_route(self, request: Request) -> Answer | None:
        return self.spend(self.budget)

    def _served(self, stored: StoredCall) -> dict[str, Any]:
        record = dict(stored.record)
        if stored.audio_key is not None:
            link = f"{self.web.url}/rec-redirect/{record['call_sid']}"
            record["call_info"] = dict(record["call_info"], recording=link)
        return record

    def _bound(self, text: str | None, *, end: bool) -> datetime | None:
        if text is None:
            return None
        at = strict_time(text, _DATETIME, self.zone)
        # A date alone is the whole day.
        return at + timedelta(seconds=86399) if end and " " not in text else at

    def _listing(self, request: Request, _match: re.Match[str]) -> Answer:
        try:
            start = self._bound(request.param("from_datetime"), end=False)
            end = self._bound(request.param("to_datetime"), end=True)
        except ValueError:
            return self.error(400, "Invalid request parameters: datetimes are yyyy-mm-dd hh:mm:ss")
        per_page, page = self.paging(request, "per_page", 20, MAX_PER_PAGE)
        sort, order = request.param("sort") or "id", request.param("order") or "desc"
        if sort not in ("id", "datetime") or order not in ("asc", "desc"):
            return self.error(400, "Invalid request parameters: sort id|datetime, order asc|desc")
        with self.lock:
            matching = [
                stored
                for stored in self.calls.values()
                if (start is None or stored.when >= start) and (end is None or stored.when <= end)
            ]
            if sort == "id":
                matching.sort(key=lambda stored: stored.record["id"])
            else:
                matching.sort(key=lambda stored: (stored.when, stored.record["id"]))
            if order == "desc":
                matching.reverse()
            data, pages = page_of(matching, page, per_page)
            served = [self._served(stored) for stored in data]
        path = "/v2.1/calls"
        following = ""
        if page < pages and served:
            last = str(served[-1]["id"])
            looping = self.loop_from_page is not None and page >= self.loop_from_page
            following = url_with(
                self.next_link_base or self.url,
                path,
                request.query,
                page=str(page if looping else page + 1),
                last_call_id_fetched=last,
            )
        previous = url_with(self.url, path, request.query, page=str(page - 1)) if page > 1 else ""
        body = {
            "status": "success",
            "count": len(served),
            "total_count": len(matching),
            "current_page": page,
            "per_page": per_page,
            "next_page_link": following,
            "prev_page_link": previous,
            "data": served,
        }
        return Answer.json(body)

    def _recording(self, _request: Request, match: re.Match[str]) -> Answer:
        with self.lock:
            keys = {stored.record["call_sid"]: stored.audio_key for stored in self.calls.values()}
        key = keys.get(match["sid"])
        if key is None:
            return Answer(404, b"Recording not found", content_type="text/plain")
        return Answer(302, headers={"Location": self.media.signed_url(key)})


class JustCallSimulator(Simulator):
    """The API, its recording links' host and the media host, each on its own 127.0.0.1 port;
    use as a context manager."""

    def __init__(
        self,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
        *,
        zone: str = ACCOUNT_ZONE,
        clock: Callable[[], float] = time.time,
    ):
        super().__init__(JustCallApi(api_key, api_secret, zone=zone, clock=clock))
        self.api: JustCallApi

    # The recording links' host and the files' host, as ``download_hosts`` lists them.
    download_hosts = Simulator.extra_hosts
