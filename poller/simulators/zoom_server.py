"""A Zoom Phone simulator: the API host and the web host (token endpoint, recording files).

It answers as Zoom's API reference and official SDK (``@zoom/rivet``) document:

- ``POST /oauth/token`` on the web host (``zoom.us``): Server-to-Server OAuth, the client id and
  secret as HTTP Basic only, ``grant_type=account_credentials`` and ``account_id`` in the form
  body (the SDK) or the query string (the docs' example); tokens of 3600 s, no refresh token.
- ``GET /v2/phone/recordings`` on the API host: ``from``/``to`` (``yyyy-mm-dd`` or
  ``yyyy-MM-ddTHH:mm:ssZ``, at most one month apart, default the last 30 days),
  ``query_date_type``, ``page_size`` (max 300, default 30) and ``next_page_token`` (valid for
  15 minutes); ``{"next_page_token", "page_size", "total_records", "recordings": [...]}``.
- ``GET /v2/phone/users`` (``page_size`` max 100) and
  ``GET /v2/phone/call_logs/{id}/recordings`` (by call id or call log id).
- ``DELETE /v2/phone/recordings/{recordingId}``: 204; an unknown or deleted recording is 404
  (code 3301, as Zoom's recording APIs answer; unconfirmed for Phone). Kept in ``deletes``.
- ``GET /v2/phone/recording/download/{fileId}`` on the web host, Bearer only: a token in the
  query string is refused, as Zoom has done since February 2023.
- Errors as ``{"code": ..., "message": ...}``; 429s with ``X-RateLimit-Category`` and
  ``X-RateLimit-Type`` (``QPS`` or ``Daily-limit``), ``Retry-After`` as Zoom sends it, if at all.

Recordings are listed oldest first; Zoom does not document its order.

Webhook events, as Zoom sends them (developers.zoom.us/docs/api/webhooks; the event shapes of
``@zoom/rivet``'s ``PhoneRecordingCompletedEvent``): a JSON POST with ``x-zm-request-timestamp``
(epoch seconds) and ``x-zm-signature: v0=<hex HMAC-SHA256(secret token,
"v0:{timestamp}:{body}")>``. :meth:`ZoomPhone.announce` sends ``phone.recording_completed``
for a recording; :meth:`ZoomPhone.validate_endpoint` sends the ``endpoint.url_validation``
challenge, as the Marketplace's Validate button (and every 72 hours) does, and checks the
answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
from requests import Response

from poller.simulators.http_server import LocalHTTPServer, QuietHandler

ACCOUNT_ID = "zoom-account-0001"
CLIENT_ID = "zoom-client-id"
CLIENT_SECRET = "zoom-client-secret-value"
# The Secret Token of the app's Event Subscriptions: what events are signed with by default.
WEBHOOK_SECRET_TOKEN = "zoom-webhook-secret-token-value"
RECORDING_COMPLETED = "phone.recording_completed"
URL_VALIDATION = "endpoint.url_validation"
# What Zoom waits for an answer (it then retries the event later).
EVENT_TIMEOUT = 5.0
DOWNLOAD_PATH = "/v2/phone/recording/download/"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def recording_item(
    recording_id: str,
    at: datetime,
    *,
    call_id: str | None = None,
    download_url: str | None = None,
    direction: str = "outbound",
    owner_id: str = "zoom-user-1",
    owner_name: str = "Rita Rep",
    extension: int = 1001,
    rep_number: str = "+14155550100",
    contact_name: str = "Prospect Person",
    contact_number: str = "+14155550123",
    duration: int = 185,
) -> dict[str, Any]:
    """A ``/phone/recordings`` item, field for field as the API reference lists them."""
    rep = {"name": owner_name, "number": rep_number}
    contact = {"name": contact_name, "number": contact_number}
    caller, callee = (rep, contact) if direction == "outbound" else (contact, rep)
    # Who placed the call and who took it, by name and extension (the reference's example).
    owner_party = {"name": owner_name, "extension_number": str(extension)}
    contact_party = {"name": contact_name}
    outgoing_by, accepted_by = (
        (owner_party, contact_party) if direction == "outbound" else (contact_party, owner_party)
    )
    call_log_id = f"log-{recording_id}"
    item: dict[str, Any] = {
        "auto_delete_policy": "Off",
        "call_id": call_id or f"70725989{abs(hash(recording_id)) % 10**11:011d}",
        "call_log_id": call_log_id,
        "call_element_id": f"{at.astimezone(UTC):%Y%m%d}-{call_log_id}",
        "callee_name": callee["name"],
        "callee_number": callee["number"],
        "callee_number_type": 1,
        "caller_name": caller["name"],
        "caller_number": caller["number"],
        "caller_number_type": 1,
        "outgoing_by": outgoing_by,
        "accepted_by": accepted_by,
        "date_time": iso(at),
        "disclaimer_status": 0,
        "direction": direction,
        "duration": duration,
        "end_time": iso(at + timedelta(seconds=duration)),
        "id": recording_id,
        "owner": {
            "extension_number": extension,
            "id": owner_id,
            "name": owner_name,
            "type": "user",
            "extension_status": "inactive",
        },
        "recording_type": "Automatic",
        "site": {"id": "site-1", "name": "Main Office"},
        "transcript_download_url": "",
        "auto_delete_enable": False,
    }
    if download_url is not None:
        item["download_url"] = download_url
    return item


@dataclass
class ListingFailure:
    status: int
    times: int | None
    retry_after: str | None = None
    limit_type: str = "QPS"


@dataclass
class PageToken:
    query: tuple[str, str, str]
    offset: int
    issued_at: float


@dataclass
class ZoomPhone:
    """The simulator's state and script, shared by its two hosts."""

    account_id: str = ACCOUNT_ID
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    token_lifetime: int = 3600
    # How many requests an access token serves before Zoom calls it expired; None: its hour.
    token_uses: int | None = None
    page_token_ttl: float = 15 * 60
    # Answer page N with a token that leads back to page N.
    repeat_token_at_page: int | None = None
    # Answer listing requests with a 302 to this URL.
    redirect_listing_to: str | None = None
    # Answer next-page requests (those with a next_page_token) with a 302 to this base URL.
    next_page_redirect: str | None = None
    clock: Callable[[], float] = time.monotonic
    # What a test makes of each listing page's bytes (a hostile or broken vendor's page).
    rewrite_listing: Callable[[bytes], bytes] | None = None

    recordings: dict[str, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)
    users: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    failures: deque[ListingFailure] = field(default_factory=deque)
    tokens: dict[str, list[float]] = field(default_factory=dict)  # token -> [issued, uses]
    tokens_issued: list[str] = field(default_factory=list)
    page_tokens: dict[str, PageToken] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # Every DELETE /v2/phone/recordings/{id}: (recording id, the status answered).
    deletes: list[tuple[str, int]] = field(default_factory=list)
    api_url: str = ""
    web_url: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)

    # -- webhook events ----------------------------------------------------------------------
    webhook_url: str | None = None
    webhook_secret: str = WEBHOOK_SECRET_TOKEN
    # When true, announce sends nothing: an event Zoom dropped after its retries.
    drop_events: bool = False
    # (event name, status answered) of every event sent.
    events_sent: list[tuple[str, int]] = field(default_factory=list)
    # The wall clock the event timestamps are read from (a test may send a stale event).
    event_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    # -- scripting -------------------------------------------------------------------------

    def add_user(self, user_id: str, email: str, name: str = "Rita Rep", ext: int = 1001) -> None:
        with self.lock:
            self.users.append(
                {
                    "id": user_id,
                    "phone_user_id": f"pu-{user_id}",
                    "email": email,
                    "name": name,
                    "extension_id": f"ext-{user_id}",
                    "extension_number": ext,
                    "status": "activate",
                    "activation_status": "activated",
                    "site": {"id": "site-1", "name": "Main Office"},
                    "phone_numbers": [],
                    "calling_plans": [{"type": 200, "name": "US/CA Unlimited"}],
                }
            )

    def add_recording(self, item: dict[str, Any]) -> None:
        at = datetime.fromisoformat(str(item["date_time"]).replace("Z", "+00:00"))
        with self.lock:
            self.recordings[str(item["id"])] = (at, item)

    def add_file(self, file_id: str, audio: bytes) -> str:
        """Serve ``audio`` on the web host; returns its download_url."""
        with self.lock:
            self.files[file_id] = audio
        return f"{self.web_url}{DOWNLOAD_PATH}{file_id}"

    def update(self, recording_id: str, **fields: Any) -> None:
        with self.lock:
            self.recordings[recording_id][1].update(fields)

    def fail_listing(
        self,
        status: int,
        *,
        times: int | None = 1,
        retry_after: str | None = None,
        limit_type: str = "QPS",
    ) -> None:
        with self.lock:
            self.failures.append(ListingFailure(status, times, retry_after, limit_type))

    def listing_requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == "/v2/phone/recordings"]

    def requests_to(self, path_prefix: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"].startswith(path_prefix)]

    def secrets(self) -> list[str]:
        return [self.client_secret, self.webhook_secret, *self.tokens_issued]

    # -- webhook events ----------------------------------------------------------------------

    def send_events_to(self, url: str, secret: str | None = None) -> None:
        """The app's event notification endpoint URL and, if given, its Secret Token."""
        with self.lock:
            self.webhook_url = url
            if secret is not None:
                self.webhook_secret = secret

    def signed_event(self, call_id: str) -> tuple[dict[str, str], bytes]:
        """``phone.recording_completed`` for the recording ``call_id`` (its ``id``), signed."""
        with self.lock:
            _, item = self.recordings[call_id]
            recording = {key: item[key] for key in _EVENT_RECORDING_FIELDS if key in item}
            account_id = self.account_id
        site = recording.get("site")
        if isinstance(site, dict):
            recording["site"] = {"id": site.get("id")}
        owner = recording.get("owner")
        if isinstance(owner, dict) and owner.get("type") == "user":
            recording["user_id"] = owner.get("id")
        return self._signed(
            {
                "event": RECORDING_COMPLETED,
                "event_ts": int(self.event_clock().timestamp() * 1000),
                "payload": {"account_id": account_id, "object": {"recordings": [recording]}},
            }
        )

    def announce(self, call_id: str) -> list[int]:
        """Send the event Zoom sends once ``call_id``'s recording is ready; the statuses."""
        if self.drop_events:
            return []
        headers, body = self.signed_event(call_id)
        return [self._post(RECORDING_COMPLETED, headers, body).status_code]

    def validate_endpoint(self, url: str | None = None) -> bool:
        """The Marketplace's Validate button: send ``endpoint.url_validation`` with a fresh
        ``plainToken``; true if the answer is 200 with the token and its HMAC."""
        if url is not None:
            self.send_events_to(url)
        plain_token = secrets.token_urlsafe(16)
        headers, body = self._signed(
            {
                "payload": {"plainToken": plain_token},
                "event_ts": int(self.event_clock().timestamp() * 1000),
                "event": URL_VALIDATION,
            }
        )
        response = self._post(URL_VALIDATION, headers, body)
        if response.status_code != 200:
            return False
        try:
            answer = response.json()
        except ValueError:
            return False
        expected = hmac.new(
            self.webhook_secret.encode(), plain_token.encode(), hashlib.sha256
        ).hexdigest()
        return (
            isinstance(answer, dict)
            and answer.get("plainToken") == plain_token
            and hmac.compare_digest(str(answer.get("encryptedToken", "")), expected)
        )

    def _signed(self, event: dict[str, Any]) -> tuple[dict[str, str], bytes]:
        body = json.dumps(event, separators=(",", ":")).encode()
        timestamp = str(int(self.event_clock().timestamp()))
        digest = hmac.new(
            self.webhook_secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Zoom Marketplace/1.0a",
            "x-zm-request-timestamp": timestamp,
            "x-zm-signature": f"v0={digest}",
        }
        return headers, body

    def _post(self, event: str, headers: dict[str, str], body: bytes) -> Response:
        url = self.webhook_url
        if url is None:
            raise RuntimeError("no event notification endpoint: call send_events_to first")
        response = requests.post(url, data=body, headers=headers, timeout=EVENT_TIMEOUT)
        with self.lock:
            self.events_sent.append((event, response.status_code))
        return response


# The fields of a recording in phone.recording_completed (@zoom/rivet's
# PhoneRecordingCompletedEvent), a subset of the listing's.
_EVENT_RECORDING_FIELDS = (
    "id",
    "caller_number",
    "caller_number_type",
    "caller_name",
    "callee_number",
    "callee_number_type",
    "callee_name",
    "duration",
    "download_url",
    "date_time",
    "call_id",
    "call_log_id",
    "end_time",
    "recording_type",
    "site",
    "owner",
    "direction",
    "outgoing_by",
    "accepted_by",
)


class _ZoomHandler(QuietHandler):
    server_role = "api"

    @property
    def phone(self) -> ZoomPhone:
        state: tuple[ZoomPhone, str] = self.server.state  # type: ignore[attr-defined]
        return state[0]

    @property
    def role(self) -> str:
        state: tuple[ZoomPhone, str] = self.server.state  # type: ignore[attr-defined]
        return state[1]

    # -- plumbing --------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json;charset=UTF-8",
    ) -> None:
        payload = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _error(self, status: int, code: int, message: str, **headers: str) -> None:
        self._send(status, {"code": code, "message": message}, headers=headers)

    def _record(self, method: str, body: bytes = b"") -> tuple[str, dict[str, str]]:
        parts = urlsplit(self.path)
        params = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        with self.phone.lock:
            self.phone.requests.append(
                {
                    "method": method,
                    "role": self.role,
                    "path": parts.path,
                    "params": params,
                    "headers": dict(self.headers.items()),
                    "body": body.decode("utf-8", "replace"),
                }
            )
        return parts.path, params

    def _bearer_ok(self, params: dict[str, str]) -> bool:
        """Zoom takes tokens only in the Authorization header, and a token lives its hour."""
        phone = self.phone
        if "access_token" in params:
            self._error(401, 124, "Invalid access token.")
            return False
        header = self.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else ""
        with phone.lock:
            entry = phone.tokens.get(token)
            if entry is None:
                self._error(401, 124, "Invalid access token.")
                return False
            issued, uses = entry
            expired = phone.clock() - issued >= phone.token_lifetime or (
                phone.token_uses is not None and uses >= phone.token_uses
            )
            if expired:
                self._error(401, 124, "Access token is expired.")
                return False
            entry[1] = uses + 1
        return True

    # -- routes ----------------------------------------------------------------------------

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path, params = self._record("POST", body)
        if self.role != "web" or path != "/oauth/token":
            self._error(404, 404, "Not found.")
            return
        self._token(params, body)

    def do_GET(self) -> None:
        path, params = self._record("GET")
        if self.role == "web":
            if path.startswith(DOWNLOAD_PATH):
                self._download(path.removeprefix(DOWNLOAD_PATH), params)
            else:
                self._error(404, 404, "Not found.")
            return
        if not path.startswith("/v2/"):
            self._error(404, 404, "Not found.")
            return
        if path == "/v2/phone/recordings":
            self._recordings(params)
            return
        if not self._bearer_ok(params):
            return
        if path == "/v2/phone/users":
            self._users(params)
        elif match := re.fullmatch(r"/v2/phone/call_logs/([^/]+)/recordings", path):
            self._recording_of_call(match.group(1))
        else:
            self._error(404, 404, "Not found.")

    def do_DELETE(self) -> None:
        """``DELETE /v2/phone/recordings/{recordingId}``: 204 without a body; an unknown (or
        already deleted) recording is 404, code 3301 "Recording does not exist"."""
        path, params = self._record("DELETE")
        match = re.fullmatch(r"/v2/phone/recordings/([^/]+)", path)
        if self.role != "api" or match is None:
            self._error(404, 404, "Not found.")
            return
        if not self._bearer_ok(params):
            return
        recording_id = unquote(match.group(1))
        phone = self.phone
        with phone.lock:
            found = phone.recordings.pop(recording_id, None)
            phone.deletes.append((recording_id, 204 if found else 404))
        if found is None:
            self._error(404, 3301, "Recording does not exist.")
            return
        self._send(204)

    def _token(self, query: dict[str, str], body: bytes) -> None:
        phone = self.phone
        form = {
            key: values[-1] for key, values in parse_qs(body.decode("utf-8", "replace")).items()
        }
        expected = base64.b64encode(f"{phone.client_id}:{phone.client_secret}".encode()).decode()
        if "client_secret" in form or "client_secret" in query:
            # Zoom authenticates the client by HTTP Basic only.
            self._send(
                401, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
            )
            return
        if self.headers.get("Authorization") != f"Basic {expected}":
            self._send(
                401, {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
            )
            return
        grant = {**query, **form}
        if grant.get("grant_type") != "account_credentials":
            self._send(400, {"reason": "Unsupported grant type", "error": "unsupported_grant_type"})
            return
        if grant.get("account_id") != phone.account_id:
            self._send(400, {"reason": "Invalid request : Bad Request", "error": "invalid_request"})
            return
        token = "zat-" + secrets.token_urlsafe(24)
        with phone.lock:
            phone.tokens[token] = [phone.clock(), 0]
            phone.tokens_issued.append(token)
        self._send(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": phone.token_lifetime,
                "scope": "phone:read:list_recordings:admin phone:read:list_users:admin "
                "phone:read:call_recording:admin",
                "api_url": phone.api_url,
            },
        )

    def _failure(self) -> ListingFailure | None:
        phone = self.phone
        with phone.lock:
            if not phone.failures:
                return None
            failure = phone.failures[0]
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    phone.failures.popleft()
            return failure

    def _recordings(self, params: dict[str, str]) -> None:
        phone = self.phone
        if phone.redirect_listing_to is not None:
            self._send(302, headers={"Location": phone.redirect_listing_to})
            return
        if phone.next_page_redirect is not None and params.get("next_page_token"):
            location = f"{phone.next_page_redirect}/v2/phone/recordings?{urlsplit(self.path).query}"
            self._send(302, headers={"Location": location})
            return
        if not self._bearer_ok(params):
            return
        failure = self._failure()
        if failure is not None:
            self._fail(failure)
            return
        try:
            start, end = _range(params.get("from"), params.get("to"), datetime.now(UTC))
        except ValueError as exc:
            self._error(400, 300, str(exc))
            return
        query_date_type = params.get("query_date_type", "start_time")
        if query_date_type not in ("start_time", "end_time"):
            self._error(400, 300, "Invalid parameter: query_date_type.")
            return
        try:
            page_size = int(params.get("page_size", "30"))
        except ValueError:
            self._error(400, 300, "Invalid parameter: page_size.")
            return
        if not 1 <= page_size <= 300:
            self._error(400, 300, "The page_size must be between 1 and 300.")
            return
        query = (iso(start), iso(end), query_date_type)
        offset = 0
        with phone.lock:
            token = params.get("next_page_token")
            if token:
                known = phone.page_tokens.get(token)
                if (
                    known is None
                    or known.query != query
                    or phone.clock() - known.issued_at >= phone.page_token_ttl
                ):
                    self._error(400, 300, "The next page token is invalid or expired.")
                    return
                offset = known.offset
            key = "end_time" if query_date_type == "end_time" else "date_time"
            matching = sorted(
                ((_instant(item.get(key)) or at, item) for at, item in phone.recordings.values()),
                key=lambda pair: pair[0],
            )
            matching = [(at, item) for at, item in matching if start <= at <= end]
            page = [
                json.loads(json.dumps(item)) for _, item in matching[offset : offset + page_size]
            ]
            next_token = ""
            if offset + page_size < len(matching):
                number = offset // page_size + 1
                next_offset = offset + page_size
                next_token = secrets.token_urlsafe(16)
                if phone.repeat_token_at_page is not None and number >= phone.repeat_token_at_page:
                    # The page points at itself: the token it was asked with, or a new one.
                    next_offset = offset
                    next_token = token or next_token
                phone.page_tokens[next_token] = PageToken(query, next_offset, phone.clock())
        listing = {
            "next_page_token": next_token,
            "page_size": page_size,
            "total_records": len(matching),
            "recordings": page,
        }
        rewrite = phone.rewrite_listing
        self._send(
            200,
            listing,
            headers={"X-RateLimit-Category": "Medium"},
            raw=rewrite(json.dumps(listing).encode()) if rewrite is not None else None,
        )

    def _fail(self, failure: ListingFailure) -> None:
        headers: dict[str, str] = {}
        if failure.status == 429:
            headers = {"X-RateLimit-Category": "Medium", "X-RateLimit-Type": failure.limit_type}
            daily = failure.limit_type == "Daily-limit"
            message = (
                "You have exceeded the daily rate limit of your account."
                if daily
                else "You have reached the maximum per-second rate limit for this API. "
                "Try again later."
            )
            if daily:
                headers.update({"X-RateLimit-Limit": "30000", "X-RateLimit-Remaining": "0"})
        else:
            message = "Internal Error." if failure.status >= 500 else "Bad Request."
        if failure.retry_after is not None:
            headers["Retry-After"] = failure.retry_after
        self._error(
            failure.status, failure.status if failure.status == 429 else 300, message, **headers
        )

    def _users(self, params: dict[str, str]) -> None:
        phone = self.phone
        page_size = int(params.get("page_size", "30"))
        if not 1 <= page_size <= 100:
            self._error(400, 300, "The page_size must be between 1 and 100.")
            return
        offset = 0
        token = params.get("next_page_token")
        with phone.lock:
            if token:
                known = phone.page_tokens.get(token)
                if known is None or known.query != ("users", "", ""):
                    self._error(400, 300, "The next page token is invalid or expired.")
                    return
                offset = known.offset
            users = phone.users[offset : offset + page_size]
            next_token = ""
            if offset + page_size < len(phone.users):
                next_token = secrets.token_urlsafe(16)
                phone.page_tokens[next_token] = PageToken(
                    ("users", "", ""), offset + page_size, phone.clock()
                )
            total = len(phone.users)
        self._send(
            200,
            {
                "next_page_token": next_token,
                "page_size": page_size,
                "total_records": total,
                "users": users,
            },
        )

    def _recording_of_call(self, call_id: str) -> None:
        with self.phone.lock:
            found = next(
                (
                    item
                    for _, item in self.phone.recordings.values()
                    if call_id in (item.get("call_id"), item.get("call_log_id"))
                ),
                None,
            )
        if found is None:
            self._error(404, 404, "Call recording does not exist.")
            return
        # The single recording carries what the list item has, plus its call history id and
        # file_url (Zoom's changelog, April 2024 and January 2025).
        recording = dict(found)
        if "call_element_id" in found:
            recording.setdefault("call_history_id", found["call_element_id"])
        if "download_url" in found:
            recording.setdefault("file_url", found["download_url"])
        self._send(200, recording)

    def _download(self, file_id: str, params: dict[str, str]) -> None:
        if not self._bearer_ok(params):
            return
        with self.phone.lock:
            audio = self.phone.files.get(file_id)
        if audio is None:
            self._error(404, 3301, "File does not exist.")
            return
        self._send(200, raw=audio, content_type="audio/mpeg")


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _bound(value: str, name: str, *, end: bool) -> datetime:
    if _DATE.match(value):
        day = datetime.fromisoformat(value).replace(tzinfo=UTC)
        return day + timedelta(days=1) - timedelta(seconds=1) if end else day
    if _DATE_TIME.match(value):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise ValueError(f"Invalid parameter: {name}. Use yyyy-mm-dd or yyyy-MM-ddTHH:mm:ssZ.")


def _range(start: str | None, end: str | None, now: datetime) -> tuple[datetime, datetime]:
    """Zoom's ``from``/``to``: both inclusive, at most one month apart, default the last 30 days."""
    until = _bound(end, "to", end=True) if end else now
    since = _bound(start, "from", end=False) if start else until - timedelta(days=30)
    if until < since:
        raise ValueError("The 'to' date must be after the 'from' date.")
    month, year = since.month % 12 + 1, since.year + (since.month == 12)
    try:
        month_later = since.replace(year=year, month=month)
    except ValueError:  # 31 January: the month ends on the last day of February
        month_later = since.replace(year=year, month=month + 1, day=1) - timedelta(days=1)
    if until > month_later:
        raise ValueError("The date range must be within one month.")
    return since, until


@contextmanager
def serve_zoom(phone: ZoomPhone) -> Iterator[tuple[LocalHTTPServer, LocalHTTPServer]]:
    """The API host and the web host (token endpoint and files), each on its own port."""
    with (
        LocalHTTPServer(_ZoomHandler, (phone, "api")) as api,
        LocalHTTPServer(_ZoomHandler, (phone, "web")) as web,
    ):
        phone.api_url = api.url
        phone.web_url = web.url
        yield api, web
