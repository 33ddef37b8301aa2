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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from poller.simulators.kit import (
    Answer,
    MediaHost,
    Refused,
    Request,
    Simulator,
    cursor_page,
    int_param,
    strict_time,
    url_with,
    zulu,
)
from poller.simulators.oauth_server import OAuthApi, OAuthTokenIssuer

CLIENT_ID = "C0123456789abcdef-webex-integration"
CLIENT_SECRET = "webex-integration-secret-0001"
MAX_PAGE_SIZE = 100
MAX_SPAN = timedelta(days=30)
LINK_LIFETIME = 3 * 3600
LISTING_PARAMS = {
    *("max", "from", "to", "status", "serviceType", "format", "ownerId", "ownerEmail"),
    *("ownerType", "storageRegion", "locationId", "topic", "cursor"),
}


iso = partial(zulu, timespec="seconds")


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


class WebexApi(OAuthApi):
    """The simulated Webex org's recordings. Mutate it between polls to make time pass."""

    unknown_parameter = "Invalid query parameter: {}"

    def __init__(self, *, rotate: bool = True, clock: Callable[[], float] = time.time):
        issuer = OAuthTokenIssuer(
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            client_auth="body",
            expires_in=1209599,
            rotate=rotate,
        )
        refresh_lifetime = {"refresh_token_expires_in": 7776000}
        super().__init__(issuer, r"/v1/access_token", lambda: refresh_lifetime, clock=clock)
        self.media = MediaHost(clock=clock)
        self.hosts = [self.media]
        self.recordings: dict[str, StoredRecording] = {}
        self.route("GET", r"/v1/admin/convergedRecordings", self._listing, params=LISTING_PARAMS)
        self.route("GET", r"/v1/convergedRecordings/(?P<id>[^/]+)", self._one)

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
        return self.requests_to("/v1/admin/convergedRecordings")

    def error(self, status: int, message: str) -> Answer:
        body = {
            "message": message,
            "errors": [{"description": message}],
            "trackingId": f"ROUTER_{secrets.token_hex(8).upper()}",
        }
        return Answer.json(body, status)

    def _listing(self, request: Request, _match: re.Match[str]) -> Answer:
        try:
            now = datetime.fromtimestamp(self.clock(), UTC)
            end = _time(request.param("to"), now)
            start = _time(request.param("from"), end - timedelta(days=7))
        except ValueError as exc:
            return self.error(400, str(exc))
        try:
            size = int_param(request, "max", 10, 1, MAX_PAGE_SIZE)
        except ValueError:
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
                raise Refused(400, "Invalid cursor") from None
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
    return default if value is None else strict_time(value, ".*")


class WebexSimulator(Simulator):
    """The API (with its token endpoint) and the download host, each on its own 127.0.0.1
    port; use as a context manager."""

    def __init__(self, *, rotate: bool = True, clock: Callable[[], float] = time.time):
        super().__init__(WebexApi(rotate=rotate, clock=clock))
        self.api: WebexApi
