"""A simulator of Webex's Converged Recordings API (Webex Calling's call recordings) and its
OAuth token endpoint, built on the simulator kit.

It answers as Webex's OpenAPI document for Converged Recordings and the developer guide
"Converged Recordings APIs for Webex Calling" describe:

- ``POST /v1/access_token``: ``grant_type=refresh_token`` with ``client_id``,
  ``client_secret`` and ``refresh_token`` in the form; the answer carries ``access_token``,
  ``expires_in``, ``refresh_token``, ``refresh_token_expires_in`` and ``token_type``.
- ``Authorization: Bearer <access token>`` on every API request; otherwise 401.
- ``GET /v1/admin/convergedRecordings``: ``from`` (inclusive) and ``to`` (exclusive) on the
  recording's ``createTime``, at most 30 days apart; ``max`` 1 to 100 (default 10); the
  filters ``status``, ``serviceType``, ``format``, ``ownerId``, ``ownerEmail``, ``ownerType``,
  ``storageRegion``, ``locationId``, ``topic``. ``{"items": [...]}``, newest first, and a
  ``Link: <...>; rel="next"`` header while more follow.
- ``GET /v1/convergedRecordings/{id}``: the recording with ``temporaryDirectDownloadLinks``
  (``audioDownloadLink``, ``expiration``), links that expire three hours after the request.
- Errors as Webex writes them: ``{"message", "errors": [{"description"}], "trackingId"}``;
  429 with ``Retry-After``.

Where the documents leave it open, the strictest reading: refresh tokens rotate and a replayed
one revokes the grant (:mod:`poller.simulators.oauth_server`); an unknown query parameter, a
time without a zone or a span over 30 days is 400; the audio link is on a host of its own,
signed, refusing any credentials sent along.
"""

from __future__ import annotations

import re
import secrets
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from poller.simulators.kit import (
    Answer,
    MediaHost,
    Request,
    VendorApi,
    cursor_page,
    serve,
    url_with,
)
from poller.simulators.oauth_server import IssuedBearer, OAuthTokenIssuer

CLIENT_ID = "C0123456789abcdef-webex-integration"
CLIENT_SECRET = "webex-integration-secret-0001"
MAX_PAGE_SIZE = 100
MAX_SPAN = timedelta(days=30)
LINK_LIFETIME = 3 * 3600
LISTING_PARAMS = {
    *("max", "from", "to", "status", "serviceType", "format", "ownerId", "ownerEmail"),
    *("ownerType", "storageRegion", "locationId", "topic", "cursor"),
}


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def webex_recording(
    recording_id: str,
    recorded_at: datetime,
    *,
    owner_email: str = "rep1@example.com",
    owner_type: str = "user",
    owner_id: str | None = None,
    duration: int = 60,
    status: str = "available",
) -> dict[str, Any]:
    """A recording with every property of Webex's ``RecordingObject``; the file is generated
    (``createTime``) a little after the call ends."""
    return {
        "id": recording_id,
        "topic": f"Call with {owner_email}",
        "createTime": iso(recorded_at + timedelta(seconds=duration + 30)),
        "timeRecorded": iso(recorded_at),
        "ownerId": owner_id or str(uuid.uuid5(uuid.NAMESPACE_URL, owner_email)),
        "ownerType": owner_type,
        "ownerEmail": owner_email,
        "format": "MP3",
        "durationSeconds": duration,
        "sizeBytes": 4000 * duration,
        "serviceType": "calling",
        "storageRegion": "US",
        "status": status,
        "serviceData": {
            "locationId": "02a43ee9-17ae-4e0c-9e79-720e3a6503fd",
            "callSessionId": str(uuid.uuid5(uuid.NAMESPACE_OID, recording_id)),
        },
    }


@dataclass
class StoredRecording:
    record: dict[str, Any]
    audio_key: str
    # A detail answer served as it is (a published example), instead of one with fresh links.
    detail: dict[str, Any] | None = None

    def created(self) -> datetime:
        return datetime.fromisoformat(self.record["createTime"])


class WebexApi(VendorApi):
    """The simulated Webex org's recordings. Mutate it between polls to make time pass."""

    def __init__(self, *, rotate: bool = True, clock: Callable[[], float] = time.time):
        self.issuer = OAuthTokenIssuer(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            client_auth="body",
            expires_in=1209599,
            rotate=rotate,
        )
        super().__init__(IssuedBearer(self.issuer), clock=clock)
        self.media = MediaHost(clock=clock)
        self.recordings: dict[str, StoredRecording] = {}
        self.route("POST", r"/v1/access_token", self._token, public=True)
        self.route("GET", r"/v1/admin/convergedRecordings", self._listing)
        self.route("GET", r"/v1/convergedRecordings/(?P<id>[^/]+)", self._one)

    def seed_refresh_token(self, value: str | None = None) -> str:
        """A refresh token as a compliance officer's consent to the integration gives it."""
        return self.issuer.seed_refresh_token(value)

    def add_recording(
        self, record: dict[str, Any], audio: bytes, *, detail: dict[str, Any] | None = None
    ) -> None:
        """Serve ``record``, its audio on the media host; ``detail``: the answer to
        ``GET /v1/convergedRecordings/{id}``, as it is."""
        key = f"rec-{record['id']}"
        self.media.put(key, audio, "audio/mpeg", signed_only=True)
        with self.lock:
            self.recordings[record["id"]] = StoredRecording(record, key, detail)

    def listing_requests(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path == "/v1/admin/convergedRecordings"]

    def error(self, status: int, message: str) -> Answer:
        body = {
            "message": message,
            "errors": [{"description": message}],
            "trackingId": f"ROUTER_{secrets.token_hex(8).upper()}",
        }
        return Answer.json(body, status)

    def _token(self, request: Request, _match: re.Match[str]) -> Answer:
        status, body = self.issuer.answer(request.form(), request.headers)
        if status == 200:
            body["refresh_token_expires_in"] = 7776000
        return Answer.json(body, status)

    def _listing(self, request: Request, _match: re.Match[str]) -> Answer:
        unknown = sorted(set(request.query) - LISTING_PARAMS)
        if unknown:
            return self.error(400, f"Invalid query parameter: {unknown[0]}")
        try:
            now = datetime.fromtimestamp(self.clock(), UTC)
            end = _time(request.param("to"), now)
            start = _time(request.param("from"), end - timedelta(days=7))
            size = int(request.param("max") or 10)
        except ValueError as exc:
            return self.error(400, str(exc))
        if not 1 <= size <= MAX_PAGE_SIZE:
            return self.error(400, "max must be between 1 and 100")
        if start > end or end - start > MAX_SPAN:
            return self.error(400, "from must not be after to, and within 30 days of it")
        filters = {name: request.param(name) for name in ("serviceType", "ownerEmail", "ownerId")}
        status = request.param("status") or "available"
        with self.lock:
            matching = [
                stored
                for stored in self.recordings.values()
                if start <= stored.created() < end
                and stored.record["status"] == status
                and all(value in (None, stored.record[name]) for name, value in filters.items())
            ]
            matching.sort(key=lambda s: (s.created(), s.record["id"]), reverse=True)
            try:
                page, following = cursor_page(matching, request.param("cursor"), size)
            except ValueError:
                return self.error(400, "Invalid cursor")
            items = [dict(stored.record) for stored in page]
        answer = Answer.json({"items": items})
        if following is not None:
            link = url_with(self.url, request.path, request.query, cursor=following)
            answer.headers["Link"] = f'<{link}>; rel="next"'
        return answer

    def _one(self, _request: Request, match: re.Match[str]) -> Answer:
        with self.lock:
            stored = self.recordings.get(match["id"])
        if stored is None:
            return self.error(404, "The requested resource could not be found.")
        if stored.detail is not None:
            return Answer.json(stored.detail)
        expires = datetime.fromtimestamp(self.clock(), UTC) + timedelta(seconds=LINK_LIFETIME)
        # The notes and action items need the user's token; only the audio link is read.
        ai = f"{self.media.url}/ai/{stored.record['id']}"
        links = {
            "audioDownloadLink": self.media.signed_url(stored.audio_key, LINK_LIFETIME),
            "suggestedNotesDownloadLink": f"{ai}/notes",
            "actionItemsDownloadLink": f"{ai}/actionItems",
            "shortNotesDownloadLink": f"{ai}/shortNotes",
            "expiration": iso(expires),
        }
        return Answer.json({**stored.record, "temporaryDirectDownloadLinks": links})


def _time(value: str | None, default: datetime) -> datetime:
    if value is None:
        return default
    at = datetime.fromisoformat(value)
    if at.tzinfo is None:
        raise ValueError(f"{value!r} has no zone")
    return at


class WebexSimulator(ExitStack):
    """The API (with its token endpoint) and the download host, each on its own 127.0.0.1
    port; use as a context manager."""

    def __init__(self, *, rotate: bool = True, clock: Callable[[], float] = time.time):
        super().__init__()
        self.api = WebexApi(rotate=rotate, clock=clock)

    def __enter__(self) -> WebexSimulator:
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
