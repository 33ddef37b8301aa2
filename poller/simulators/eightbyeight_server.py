"""A simulator of 8x8's Cloud Storage Service (call recordings), built on the simulator kit.

It answers as 8x8's developer docs describe it ("Cloud Storage Service Bulk Download", "Cloud
Storage Service Objects", the ``searchobject`` and ``downloadobject`` references, "OAuth
Authentication for 8x8 XCaaS APIs"):

- ``POST /oauth/v2/token``: the API key and secret by HTTP Basic, a form body with
  ``grant_type=client_credentials``; the answer writes ``expires_in`` as a string ("1799") and
  ``token_type`` as ``BearerToken``, as 8x8's sample does.
- ``Authorization: Bearer <access token>`` on every storage request; otherwise 401.
- ``GET /storage/{region}/v3/regions``: the account's regions (any region answers it).
- ``GET /storage/{region}/v3/objects``: ``filter`` (FIQL: ``;`` AND, ``,`` OR, parentheses,
  ``==``, ``!=``, ``=gt=``, ``=ge=``, ``=lt=``, ``=le=``; times in Unix milliseconds),
  ``pageKey`` (the offset, from 0), ``limit`` (1 to 100, default 100), ``sortField``,
  ``sortDirection``. Without ``objectState`` in the filter only AVAILABLE objects are
  returned. The answer is ``{"lastPage", "pageKey", "pageSize", "content"}``; ``pageKey`` is
  the offset of the next page and is incremented on the last page too.
- ``GET /storage/{region}/v3/objects/{id}/content``: the audio of an AVAILABLE object.

Where the docs leave it open, the strictest reading: a parameter not documented, a filter field
other than ``type``, ``objectState``, ``createdTime`` and ``updatedTime``, a time that is not
whole milliseconds, or a region the account does not have is refused with 400; the content of
an object that is not AVAILABLE is 404; ``createdTime`` is written without a zone (UTC); a
recording is listed PENDING while it is being stored, and appears with the ``createdTime`` of
the call's start.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from poller.simulators.kit import Answer, Fiql, OAuthTokens, Request, Simulator, VendorApi

CLIENT_ID = "8x8-api-key-0001"
CLIENT_SECRET = "8x8-api-secret-0001"
TOKEN_LIFETIME = 1799
MAX_LIMIT = 100
LISTING_PARAMS = {"filter", "pageKey", "limit", "sortField", "sortDirection"}
TIME_FIELDS = ("createdTime", "updatedTime")
TEXT_FIELDS = ("type", "objectState")


def call_recording(
    object_id: str,
    started_at: datetime,
    *,
    user_email: str | None = "rep1@example.com",
    user_name: str = "Rep One",
    direction: str = "OUTBOUND",
    address: str | None = "+16695555518",
    duration_ms: int = 60_000,
    state: str = "AVAILABLE",
    extension: str = "117209",
) -> dict[str, Any]:
    """A ``callrecording`` object with the fields and tags of 8x8's published example."""
    start_ms = int(started_at.timestamp() * 1000)
    tags = {
        "guid": object_id,
        "pbxId": "EhS7MdQXSX2zElaIeTt49Q",
        "callId": str(start_ms),
        "ipbxid": "acmecorp",
        "address": address,
        "endTime": str(start_ms + duration_ms),
        "branchId": "ZANgBY7WRyOZq_HYzQ48wQ",
        "duration": str(duration_ms),
        "userName": user_name,
        "callLogId": f"3TYkxslLRn6kquFSYoSOxA{start_ms}",
        "direction": direction,
        "startTime": str(start_ms),
        "userEmail": user_email,
        "extensionId": "3TYkxslLRn6kquFSYoSOxA",
        "extensionNumber": extension,
        "media-processed": "true",
    }
    return {
        "id": object_id,
        "type": "callrecording",
        "mimeType": "audio/mpeg",
        "objectName": f"ipbx:acmecorp:callrecording:users:{extension}:{start_ms}_E.mp3",
        "checksumType": "MD5",
        "checksum": secrets.token_hex(16),
        "customerId": "0012J00002IZiaKQAT",
        "userId": "2xEVyEt2SFmZfL3v5UuEdw",
        "storedBytes": 28224,
        "createdTime": _stamp(started_at),
        "updatedTime": _stamp(started_at + timedelta(milliseconds=duration_ms + 10_000)),
        "objectState": state,
        "bucketId": "57b3ae7b-da6a-437d-b7eb-8d109f89ef2f",
        "tags": [{"key": key, "value": value} for key, value in tags.items() if value is not None],
        "shared": False,
    }


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None, microsecond=0).isoformat()


def _millis(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp() * 1000)


def _milliseconds(value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"a time is a Unix time in milliseconds, not {value!r}")
    return int(value)


# What each filter field's literal is: times in whole milliseconds, the others text.
FILTER_FIELDS: dict[str, Callable[[str], Any]] = {
    **dict.fromkeys(TIME_FIELDS, _milliseconds),
    **dict.fromkeys(TEXT_FIELDS, str),
}


def _comparable(item: dict[str, Any]) -> dict[str, Any]:
    """An object's fields as its filter's literals read (times in Unix milliseconds)."""
    return item | {name: _millis(item[name]) for name in TIME_FIELDS}


class EightByEightTokens(OAuthTokens):
    """8x8's token endpoint: client credentials by HTTP Basic only, its answer's shape."""

    def body(self, token: str) -> dict[str, Any]:
        issued_at = str(int(self.clock() * 1000))
        return {
            "access_token": token,
            "token_type": "BearerToken",
            "api_product_list": "[storage]",
            "status": "approved",
            "scope": "",
            "refresh_token_expires_in": "0",
            "expires_in": str(self.lifetime),
            "refresh_count": "0",
            "developer.email": "deprecated",
            "issued_at": issued_at,
            "client_id": "deprecated",
            "api_product_list_json": ["storage"],
        }


class EightByEightApi(VendorApi):
    """The simulated 8x8 customer. Mutate it between polls to make time pass."""

    def __init__(
        self,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        *,
        regions: tuple[str, ...] = ("us-east",),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tokens = EightByEightTokens(
            client_id, client_secret, TOKEN_LIFETIME, clock, basic_only=True, form_only=True
        )
        super().__init__(self.tokens, clock=clock)
        self.regions = regions
        # region -> object id -> (object, audio)
        self.objects: dict[str, dict[str, tuple[dict[str, Any], bytes | None]]] = {
            region: {} for region in regions
        }
        self.route("POST", r"/oauth/v2/token", self.tokens.token_endpoint, public=True)
        region = r"/storage/(?P<region>[^/]+)/v3"
        self.route("GET", rf"{region}/regions", self._regions)
        self.route("GET", rf"{region}/objects", self._listing, params=LISTING_PARAMS)
        self.route("GET", rf"{region}/objects/(?P<id>[^/]+)/content", self._content)

    def add(self, item: dict[str, Any], audio: bytes | None = None, region: str = "") -> None:
        """Store ``item`` (a :func:`call_recording`) with its audio in ``region``."""
        with self.lock:
            self.objects[region or self.regions[0]][item["id"]] = (item, audio)

    def make_available(self, object_id: str, audio: bytes, region: str = "") -> None:
        """A PENDING recording is stored: it becomes AVAILABLE with its audio."""
        with self.lock:
            item, _ = self.objects[region or self.regions[0]][object_id]
            item["objectState"] = "AVAILABLE"
            self.objects[region or self.regions[0]][object_id] = (item, audio)

    def listing_requests(self) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.path.endswith("/v3/objects")]

    def error(self, status: int, message: str) -> Answer:
        return Answer.json({"status": status, "message": message}, status)

    def _region(self, match: re.Match[str]) -> dict[str, tuple[dict[str, Any], bytes | None]]:
        stored = self.objects.get(match["region"])
        if stored is None:
            raise LookupError(match["region"])
        return stored

    def _regions(self, _request: Request, _match: re.Match[str]) -> Answer:
        return Answer.json(list(self.regions))

    def _listing(self, request: Request, match: re.Match[str]) -> Answer:
        try:
            stored = self._region(match)
        except LookupError:
            return self.error(400, f"{match['region']} is not one of the account's regions")
        try:
            text = request.param("filter")
            query = Fiql.parse(text, FILTER_FIELDS) if text else Fiql()
            offset = int(request.param("pageKey") or 0)
            limit = int(request.param("limit") or MAX_LIMIT)
        except ValueError as exc:
            return self.error(400, f"invalid request: {exc}")
        if not 1 <= limit <= MAX_LIMIT or offset < 0:
            return self.error(400, f"limit is 1 to {MAX_LIMIT} and pageKey at least 0")
        sort_field = request.param("sortField") or "createdTime"
        direction = request.param("sortDirection") or "ASC"
        if sort_field not in (*TIME_FIELDS, "id") or direction not in ("ASC", "DESC"):
            return self.error(400, "sortField or sortDirection not supported")
        if "objectState" not in query.names():
            query.terms.append([("objectState", "==", "AVAILABLE")])
        with self.lock:
            matching = [
                dict(item) for item, _ in stored.values() if query.passes(_comparable(item))
            ]
        matching.sort(key=lambda item: (item[sort_field], item["id"]))
        if direction == "DESC":
            matching.reverse()
        content = matching[offset : offset + limit]
        return Answer.json(
            {
                "lastPage": offset + limit >= len(matching),
                "pageKey": offset + limit,  # incremented on the last page too
                "pageSize": len(content),
                "content": content,
            }
        )

    def _content(self, _request: Request, match: re.Match[str]) -> Answer:
        try:
            stored = self._region(match)
        except LookupError:
            return self.error(400, f"{match['region']} is not one of the account's regions")
        with self.lock:
            item, audio = stored.get(match["id"], (None, None))
        if item is None or item["objectState"] != "AVAILABLE" or audio is None:
            return self.error(404, "The requested resource was not found.")
        return Answer(200, audio, content_type=item["mimeType"])


class EightByEightSimulator(Simulator):
    """The API (token endpoint included) on a 127.0.0.1 port; use as a context manager."""

    def __init__(
        self,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        *,
        regions: tuple[str, ...] = ("us-east",),
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(EightByEightApi(client_id, client_secret, regions=regions, clock=clock))
        self.api: EightByEightApi
