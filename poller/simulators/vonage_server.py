"""A simulator of Vonage Business Communications' Call Recording API, built on the kit.

It answers as Vonage's OpenAPI document (``_open_api/definitions/call-recording.yml`` of
``Vonage/vbc-developer``) and its "Create an Access Token" guide describe:

- ``POST /token``: the OAuth 2 password grant of an integration user, ``username`` ending in
  ``@vbc.prod``, the consumer key and secret as ``client_id`` and ``client_secret`` in the form
  (:class:`~poller.simulators.oauth_server.OAuthTokenIssuer`, strict as RFC 6749 reads).
- ``Authorization: Bearer <access token>`` on every API request; otherwise 401.
- ``GET /t/vbc.prod/call_recording/api/accounts/{account_id}/company_call_recordings`` (and
  the same under ``/call_recording/v1/api/``, which Vonage's guides use): the filters
  ``start:gte``, ``start:lte``, ``call_direction``, ``call_id``, ``caller_id``, ``cnam``,
  ``dnis``, ``duration:gte``, ``duration:lte``, ``extension``; ``order`` (default
  ``start:DESC``), ``page`` (default 1), ``page_size`` (default 10). The answer is a HAL page:
  ``{"_embedded": {"recordings": [...]}, "_links", "page", "page_size", "total_items",
  "total_pages"}``.
- ``GET /t/vbc.prod/call_recording/api/audio/recording/{id}`` (and under ``/v1/api/``): the
  audio.
- ``GET /t/vbc.prod/provisioning/api/accounts/{account_id}/extensions`` (Vonage's provisioning
  document): ``page``, ``page_size`` and its filters; ``{"page_size", "page", "total_pages",
  "total_items", "_links", "_embedded": {"data": [...]}}``, each extension with its
  ``extension_number`` and ``user`` (``email``, ``first_name``, ``last_name``...). The
  document types ``data`` as one object; a list endpoint answers a list, as here. With
  ``provisioning_subscribed`` off it answers 403, as for an application not subscribed to the
  Provisioning API.

Where the document leaves it open, the strictest reading: a parameter it does not list, a time
not written ``yyyy-MM-ddTHH:mm:ss+HHMM`` (its example's form: no ``Z``, no colon in the
offset), a ``page`` below 1, a ``page_size`` outside 1 to 100, or an account other than the
user's own (or ``self``) is refused with 400; ``caller_id`` is served as a string.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from poller.simulators.kit import Answer, Refused, Request, Simulator, page_of
from poller.simulators.oauth_server import OAuthApi, OAuthTokenIssuer

ACCOUNT_ID = "549825"
USERNAME = "api_user_549825"
PASSWORD = "vbc-integration-password-0001"
CLIENT_ID = "vbc-consumer-key-0001"
CLIENT_SECRET = "vbc-consumer-secret-0001"
MAX_PAGE_SIZE = 100
FILTERS = {"call_direction", "call_id", "caller_id", "cnam", "dnis", "extension"}
LISTING_PARAMS = FILTERS | {
    *("start:gte", "start:lte", "duration:gte", "duration:lte"),
    *("order", "page", "page_size"),
}
EXTENSION_PARAMS = {"page", "page_size", "location_id", "phone_number", "login_name", "email"}
ORDERS = ("start:ASC", "start:DESC")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}$")
_PREFIX = r"/t/vbc\.prod/call_recording(?:/v1)?/api"


def company_recording(
    recording_id: int,
    started_at: datetime,
    *,
    direction: str = "OUTBOUND",
    extension: str = "101",
    caller_id: str = "17325550100",
    cnam: str = "JOHN SMITH",
    dnis: str = "14155550101",
    duration_ms: int = 60_000,
) -> dict[str, Any]:
    """A company call recording with the fields of Vonage's ``CompanyCallRecording`` schema."""
    api = f"https://api.vonage.com/t/vbc.prod/call_recording/api/accounts/{ACCOUNT_ID}"
    start = _stamp(started_at)
    return {
        "_links": {"self": {"href": f"{api}/company_call_recordings/{recording_id}"}},
        "call_direction": direction,
        "call_id": f"c91150a6-8cc4-4e73-9fef-{recording_id:012d}",
        "caller_id": caller_id,
        "cnam": cnam,
        "dnis": dnis,
        "download_url": f"https://api.vonage.com/t/vbc.prod/call_recording/api/audio/recording/{recording_id}",
        "duration": duration_ms,
        "end": _stamp(started_at + timedelta(milliseconds=duration_ms)),
        "extensions": [extension],
        "file_name": f"{ACCOUNT_ID}.{recording_id}.{int(started_at.timestamp() * 1000)}.mp3",
        "file_size_in_bytes": 100000,
        "id": recording_id,
        "rule_ids": [1989],
        "start": start,
    }


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")


def _instant(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z")


class VonageApi(OAuthApi):
    """The simulated VBC account. Mutate it between polls to make time pass."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        issuer = OAuthTokenIssuer(
            CLIENT_ID,
            CLIENT_SECRET,
            grants=("password",),
            client_auth="body",
            username=f"{USERNAME}@vbc.prod",
            password=PASSWORD,
            expires_in=86400,
        )
        super().__init__(issuer, r"/token", _granted, clock=clock)
        self.recordings: dict[int, tuple[dict[str, Any], bytes]] = {}
        listing = rf"{_PREFIX}/accounts/(?P<account>[^/]+)/company_call_recordings"
        self.route("GET", listing, self._listing, params=LISTING_PARAMS)
        self.route("GET", rf"{_PREFIX}/audio/recording/(?P<id>[^/]+)", self._audio)
        provisioning = r"/t/vbc\.prod/provisioning(?:/v1)?/api/accounts/(?P<account>[^/]+)"
        self.route("GET", rf"{provisioning}/extensions", self._extensions, params=EXTENSION_PARAMS)
        self.extensions: dict[str, dict[str, Any]] = {}
        self.provisioning_subscribed = True

    def add(self, recording: dict[str, Any], audio: bytes) -> None:
        with self.lock:
            self.recordings[recording["id"]] = (recording, audio)

    def add_extension(self, number: str, email: str | None, name: str = "Rep One") -> None:
        """An extension of the account, with its user (None: an extension without one)."""
        first, _, last = name.partition(" ")
        user = None
        if email is not None:
            user = {
                "id": 2111111 + len(self.extensions),
                "email": email,
                "login_name": email.partition("@")[0],
                "first_name": first,
                "last_name": last,
            }
        with self.lock:
            self.extensions[number] = {
                "extension_number": number,
                "user": user,
                "location_id": 145214,
                "vtt_enabled": True,
                "dnd_enabled": False,
                "caller_id": name,
                "external_id": f"ext{number:0>12}",
                "block_caller_id": False,
                "dids": [],
                "extension_handsets": [],
            }

    def listing_requests(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.endswith("/company_call_recordings")]

    def error(self, status: int, message: str) -> Answer:
        return Answer.json({"error": message, "status": status}, status)

    def before_route(self, request: Request) -> Answer | None:
        # An application not subscribed to the Provisioning API is refused before anything.
        unsubscribed = "/provisioning/" in request.path and not self.provisioning_subscribed
        return self.error(403, "Forbidden") if unsubscribed else None

    def _listing(self, request: Request, match: re.Match[str]) -> Answer:
        self._account(match)
        bounds = {op: request.param(f"start:{op}") for op in ("gte", "lte")}
        if any(value is not None and not _TIME.match(value) for value in bounds.values()):
            return self.error(400, "start:gte and start:lte are yyyy-MM-ddTHH:mm:ssZ (+0000)")
        size, page = self.paging(request, "page_size", 10, MAX_PAGE_SIZE)
        order = request.param("order") or "start:DESC"
        if order not in ORDERS:
            return self.error(400, f"order is one of {ORDERS}")
        with self.lock:
            matching = [
                dict(item) for item, _ in self.recordings.values() if _passes(item, request)
            ]
        matching.sort(key=lambda item: (_instant(item["start"]), item["id"]))
        if order == "start:DESC":
            matching.reverse()
        content, pages = page_of(matching, page, size)
        base = f"{self.url}{request.path}"
        links = {
            name: {"href": f"{base}?page={number}"}
            for name, number in (("first", 1), ("self", page), ("last", pages))
        }
        if page > 1:
            links["prev"] = {"href": f"{base}?page={page - 1}"}
        if page < pages:
            links["next"] = {"href": f"{base}?page={page + 1}"}
        return Answer.json(
            {
                "_embedded": {"recordings": content},
                "_links": links,
                "page": page,
                "page_size": size,
                "total_items": len(matching),
                "total_pages": pages,
            }
        )

    def _extensions(self, request: Request, match: re.Match[str]) -> Answer:
        self._account(match)
        size, page = self.paging(request, "page_size", 10, MAX_PAGE_SIZE)
        with self.lock:
            ordered = [self.extensions[number] for number in sorted(self.extensions)]
        content, pages = page_of(ordered, page, size)
        return Answer.json(
            {
                "page_size": size,
                "page": page,
                "total_pages": pages,
                "total_items": len(ordered),
                "_links": {"self": {"href": f"{self.url}{request.path}?page={page}"}},
                "_embedded": {"data": content},
            }
        )

    def _account(self, match: re.Match[str]) -> None:
        if match["account"] not in (ACCOUNT_ID, "self"):
            raise Refused(400, f"account {match['account']} is not the user's")

    def _audio(self, _request: Request, match: re.Match[str]) -> Answer:
        with self.lock:
            stored = self.recordings.get(int(match["id"])) if match["id"].isdigit() else None
        if stored is None:
            return self.error(404, "Not Found")
        return Answer(200, stored[1], content_type="audio/mpeg")


def _granted() -> dict[str, Any]:
    # Vonage's answer also carries these; the poller needs none of them (the password grant is
    # simply repeated when the token runs out).
    return {
        "refresh_token": secrets.token_hex(16),
        "scope": "openid",
        "id_token": secrets.token_urlsafe(32),
    }


def _passes(item: dict[str, Any], request: Request) -> bool:
    start = _instant(item["start"])
    gte, lte = request.param("start:gte"), request.param("start:lte")
    if (gte and start < _instant(gte)) or (lte and start > _instant(lte)):
        return False
    for name in ("duration:gte", "duration:lte"):
        value = request.param(name)
        if value and not (
            item["duration"] >= int(value)
            if name.endswith("gte")
            else item["duration"] <= int(value)
        ):
            return False
    for name in FILTERS:
        wanted = request.param(name)
        have = item["extensions"] if name == "extension" else [item[name]]
        if wanted is not None and wanted not in have:
            return False
    return True


class VonageSimulator(Simulator):
    """The API (token endpoint included) on a 127.0.0.1 port; use as a context manager."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(VonageApi(clock=clock))
        self.api: VonageApi
