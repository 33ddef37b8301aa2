"""A Twilio REST API (2010-04-01) simulator on 127.0.0.1: recordings, calls and their media.

It answers as Twilio's OpenAPI spec (twilio/twilio-oai, ``twilio_api_v2010.json``) documents:

- ``GET /2010-04-01/Accounts/{AccountSid}/Recordings.json`` with ``DateCreated``,
  ``DateCreated<`` and ``DateCreated>`` (``YYYY-MM-DD`` only; anything else is a 400),
  ``CallSid``, ``ConferenceSid``, ``IncludeSoftDeleted``, ``PageSize`` (1 to 1000, default 50),
  ``Page`` and ``PageToken``; any other parameter is refused. The page envelope carries
  ``recordings``, ``next_page_uri`` (relative, with an opaque ``PageToken``), ``page``,
  ``page_size``, ``start``, ``end``, ``uri``, ``first_page_uri`` and ``previous_page_uri``.
  ``DateCreated>`` keeps recordings created on or after midnight of its day; ``DateCreated<`` is
  read strictly, as before midnight of its day, so a client must not rely on it including
  the day it names.
- ``GET .../Recordings/{Sid}.json`` and ``GET .../Calls/{Sid}.json``.
- ``DELETE .../Recordings/{Sid}.json`` (DeleteRecording): 204 without a body; the recording's
  media goes, its metadata stays 40 days as ``status`` ``deleted`` (listed only with
  ``IncludeSoftDeleted=true``); a recording unknown or deleted already is a 404 (20404).
  Every delete is kept in ``deletes``.
- ``GET .../Recordings/{Sid}.mp3``: the audio, behind the same Basic auth ("Enforce HTTP Auth on
  Media URLs" on, as Twilio recommends). A dual-channel recording comes downmixed unless
  ``RequestedChannels=2`` is asked for; asking that of a mono one is refused (16113).
- HTTP Basic with ``AccountSid:AuthToken`` or ``ApiKeySid:ApiKeySecret``; errors are Twilio's
  JSON (``code``, ``message``, ``more_info``, ``status``): 20003 for refused credentials,
  20404 for unknown resources, 20429 with a 429 for too many concurrent requests.

Recording status callbacks (twilio.com/docs/voice/twiml/record, "Recording status callback
parameters"; twilio.com/docs/usage/webhooks/webhooks-security): :meth:`FakeTwilio.announce`
POSTs the form Twilio sends once a recording is ``completed`` (or ``absent``), signed as
twilio-python's ``RequestValidator`` checks it: ``X-Twilio-Signature`` is the base64
HMAC-SHA1, keyed with the Auth Token, of the URL Twilio was given followed by each form
parameter's name and value, sorted by name. Each delivery carries an
``I-Twilio-Idempotency-Token``, kept on a retry.

Records are built from the spec's examples (``readFull`` of ListRecording, ``readFullPage1``
of ListCall), so field names and formats (RFC 2822 dates, string durations) are Twilio's.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from poller.simulators.http_server import LocalHTTPServer, QuietHandler

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "twilio-auth-token-0123456789abcdef"
API_KEY_SID = "SK" + "b2" * 16
API_KEY_SECRET = "twilio-api-key-secret-fedcba9876543210"
API = "/2010-04-01"
LIST_PARAMS = frozenset(
    {
        "DateCreated",
        "DateCreated<",
        "DateCreated>",
        "CallSid",
        "ConferenceSid",
        "IncludeSoftDeleted",
        "PageSize",
        "Page",
        "PageToken",
    }
)
RECORDING_STATUS_CALLBACK = "recordingStatusCallback"
# Twilio's default read timeout for a callback is 15 s; the simulator waits less.
EVENT_TIMEOUT = 5.0
# Where the simulator keeps a recording's real creation time, whatever its fields say.
_AT = "__created_at"
_DAY_FORMAT = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def sid(prefix: str, seed: str) -> str:
    """A well-formed Twilio SID (two letters and 32 hex digits) derived from ``seed``."""
    return prefix + hashlib.md5(seed.encode(), usedforsecurity=False).hexdigest()


def rfc2822(at: datetime) -> str:
    return email.utils.format_datetime(at.astimezone(UTC)).replace("-0000", "+0000")


def twilio_recording(
    recording_sid: str,
    call_sid: str,
    at: datetime,
    *,
    status: str = "completed",
    duration: int = 4,
    channels: int = 1,
    account_sid: str = ACCOUNT_SID,
    media_url: str | None = None,
    error_code: int | None = None,
) -> dict[str, Any]:
    """A recording as ListRecording's ``readFull`` example has it."""
    base = f"{API}/Accounts/{account_sid}/Recordings/{recording_sid}"
    return {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "call_sid": call_sid,
        "conference_sid": None,
        "channels": channels,
        "date_created": rfc2822(at),
        "date_updated": rfc2822(at + timedelta(seconds=duration)),
        "start_time": rfc2822(at),
        "price": "-0.0025",
        "price_unit": "USD",
        "duration": str(duration) if status == "completed" else "-1",
        "sid": recording_sid,
        "source": "DialVerb",
        "status": status,
        "error_code": error_code,
        "uri": f"{base}.json",
        "subresource_uris": {
            "add_on_results": f"{base}/AddOnResults.json",
            "transcriptions": f"{base}/Transcriptions.json",
        },
        "encryption_details": None,
        "media_url": media_url or f"https://api.twilio.com{base}",
    }


def twilio_call(
    call_sid: str,
    at: datetime,
    *,
    from_: str,
    to: str,
    direction: str = "inbound",
    status: str = "completed",
    duration: int = 4,
    caller_name: str | None = None,
    account_sid: str = ACCOUNT_SID,
) -> dict[str, Any]:
    """A call as ListCall's ``readFullPage1`` example has it (the parent leg)."""
    base = f"{API}/Accounts/{account_sid}/Calls/{call_sid}"
    return {
        "account_sid": account_sid,
        "answered_by": None,
        "api_version": "2010-04-01",
        "caller_name": caller_name,
        "date_created": rfc2822(at),
        "date_updated": rfc2822(at + timedelta(seconds=duration)),
        "direction": direction,
        "duration": str(duration),
        "end_time": rfc2822(at + timedelta(seconds=duration)),
        "forwarded_from": None,
        "from": from_,
        "from_formatted": from_,
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": None,
        "price": "-0.200",
        "price_unit": "USD",
        "sid": call_sid,
        "start_time": rfc2822(at),
        "status": status,
        "subresource_uris": {"recordings": f"{base}/Recordings.json"},
        "to": to,
        "to_formatted": to,
        "trunk_sid": None,
        "uri": f"{base}.json",
        "queue_time": "0",
    }


@dataclass
class Failure:
    status: int
    times: int | None  # None: every request
    retry_after: str | None = None


@dataclass
class FakeTwilio:
    """The simulator's state and script; mutate it between polls to simulate time passing."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    api_keys: dict[str, str] = field(default_factory=lambda: {API_KEY_SID: API_KEY_SECRET})
    enforce_media_auth: bool = True
    # Recordings in creation order (Twilio does not document its sort order).
    recordings: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[str, dict[str, Any]] = field(default_factory=dict)
    media: dict[str, bytes] = field(default_factory=dict)
    # What a dual-channel recording's media is without RequestedChannels=2: Twilio's downmix.
    downmixed: dict[str, bytes] = field(default_factory=dict)
    # What a test makes of each listing page's bytes (a hostile or broken vendor's page).
    rewrite_listing: Callable[[bytes], bytes] | None = None
    # Scripted answers per route ("list", "call", "recording", "media").
    failures: dict[str, deque[Failure]] = field(default_factory=dict)
    # From this page on, next_page_uri points at the page itself.
    loop_at_page: int | None = None
    # next_page_uri made absolute on this base instead of relative.
    next_url_base: str | None = None
    redirect_listing_to: str | None = None
    # Credentials revoked (every request refused) after this many listing pages were served.
    credential_uses: int | None = None
    requests: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    # Every DELETE of a recording: (its sid, the status answered).
    deletes: list[tuple[str, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _listings: int = 0

    # -- recording status callbacks -----------------------------------------------------------
    # Where callbacks are posted (the recordingStatusCallback given on the calls).
    webhook_url: str | None = None
    # The URL as given to Twilio, when it differs from where the simulator posts (a TLS proxy
    # in front of the receiver): Twilio signs the URL it was given.
    public_url: str | None = None
    # What callbacks are signed with; None: the Auth Token, as Twilio does by default.
    webhook_secret: str | None = None
    # When true, announce sends nothing: a callback lost on the way.
    drop_events: bool = False
    # (event name, status answered) of every callback sent.
    events_sent: list[tuple[str, int]] = field(default_factory=list)

    # -- scripting ---------------------------------------------------------------------------

    def add(
        self,
        recording: dict[str, Any],
        call: dict[str, Any] | None = None,
        audio: bytes | None = None,
        *,
        at: datetime | None = None,
    ) -> None:
        """A recording; ``at`` is when Twilio created it (default: its ``date_created``)."""
        created = at or _created(recording)
        assert created is not None, "a recording with an unreadable date_created needs `at`"
        with self.lock:
            self.recordings.append({**recording, _AT: created})
            self.recordings.sort(key=lambda r: r[_AT])
            if call is not None:
                self.calls[call["sid"]] = call
            if audio is not None:
                self.media[recording["sid"]] = audio

    def update(self, recording_sid: str, **changes: Any) -> None:
        with self.lock:
            for recording in self.recordings:
                if recording["sid"] == recording_sid:
                    recording.update(changes)

    def fail(
        self, route: str, status: int, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        with self.lock:
            self.failures.setdefault(route, deque()).append(Failure(status, times, retry_after))

    def requests_to(self, route: str) -> list[dict[str, list[str]]]:
        with self.lock:
            return [query for kind, _, query in self.requests if kind == route]

    # -- recording status callbacks -----------------------------------------------------------

    def send_events_to(self, url: str, secret: str | None = None) -> None:
        """The recordingStatusCallback URL and, if given, the key callbacks are signed with
        (a Webhook Rule's SharedKey); otherwise the Auth Token signs them."""
        with self.lock:
            self.webhook_url = url
            if secret is not None:
                self.webhook_secret = secret

    def signed_event(self, call_id: str) -> tuple[dict[str, str], bytes]:
        """The recording status callback of the recording ``call_id`` (its SID), signed."""
        with self.lock:
            recording = next(r for r in self.recordings if r["sid"] == call_id)
            url = self.public_url or self.webhook_url
            secret = self.webhook_secret or self.auth_token
        if url is None:
            raise RuntimeError("no recordingStatusCallback URL: call send_events_to first")
        status = str(recording.get("status") or "completed")
        form = {
            "AccountSid": str(recording.get("account_sid") or self.account_sid),
            "CallSid": str(recording.get("call_sid") or ""),
            "RecordingSid": call_id,
            "RecordingUrl": f"https://api.twilio.com{API}/Accounts/"
            f"{recording.get('account_sid') or self.account_sid}/Recordings/{call_id}",
            "RecordingStatus": status,
            "RecordingDuration": str(recording.get("duration") or "0"),
            "RecordingChannels": str(recording.get("channels") or 1),
            "RecordingStartTime": str(recording.get("start_time") or ""),
            "RecordingSource": str(recording.get("source") or "DialVerb"),
            "ErrorCode": str(recording.get("error_code") or 0),
        }
        body = urlencode(form).encode()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
            "X-Twilio-Signature": callback_signature(secret, url, form),
        }
        return headers, body

    def announce(self, call_id: str) -> list[int]:
        """Send the callback Twilio sends once ``call_id``'s recording is processed."""
        if self.drop_events:
            return []
        headers, body = self.signed_event(call_id)
        url = self.webhook_url
        assert url is not None  # signed_event refused first
        response = requests.post(url, data=body, headers=headers, timeout=EVENT_TIMEOUT)
        with self.lock:
            self.events_sent.append((RECORDING_STATUS_CALLBACK, response.status_code))
        return [response.status_code]

    # -- answering ---------------------------------------------------------------------------

    def scripted(self, route: str) -> Failure | None:
        with self.lock:
            queue = self.failures.get(route)
            if not queue:
                return None
            failure = queue[0]
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    queue.popleft()
            return failure

    def authorised(self, header: str | None, route: str) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        valid = (user == self.account_sid and password == self.auth_token) or (
            user in self.api_keys and self.api_keys[user] == password
        )
        if not valid:
            return False
        with self.lock:
            if route == "list":
                self._listings += 1
            return self.credential_uses is None or self._listings <= self.credential_uses

    def list_page(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        unknown = sorted(set(query) - LIST_PARAMS)
        if unknown:
            return 400, error(20001, f"Unknown parameter {unknown[0]}", 400)
        one = {name: values[-1] for name, values in query.items()}
        bounds: dict[str, date] = {}
        for name in ("DateCreated", "DateCreated<", "DateCreated>"):
            if name in one:
                if not _DAY_FORMAT.match(one[name]):
                    return 400, error(20001, f"{name} must be YYYY-MM-DD", 400)
                bounds[name] = date.fromisoformat(one[name])
        try:
            size = int(one.get("PageSize", "50"))
            page = int(one.get("Page", "0"))
        except ValueError:
            return 400, error(20001, "PageSize and Page must be integers", 400)
        if not 1 <= size <= 1000 or page < 0:
            return 400, error(20001, "PageSize must be between 1 and 1000", 400)
        soft_deleted = one.get("IncludeSoftDeleted", "false").lower() == "true"
        with self.lock:
            matching = [
                r for r in self.recordings if _matches(r, bounds, one, soft_deleted=soft_deleted)
            ]
        start = 0
        token = one.get("PageToken")
        if token is not None:
            after = token.removeprefix("PA")
            position = next((i for i, r in enumerate(matching) if r["sid"] == after), None)
            if position is None:
                return 400, error(20001, "Invalid PageToken", 400)
            start = position + 1
        chunk = [_public(r) for r in matching[start : start + size]]
        filters = {k: v for k, v in one.items() if k not in ("Page", "PageSize", "PageToken")}

        def uri(page_number: int, page_token: str | None) -> str:
            params = {**filters, "PageSize": str(size), "Page": str(page_number)}
            if page_token is not None:
                params["PageToken"] = page_token
            return f"{path}?{urlencode(params)}"

        next_uri: str | None = None
        if start + size < len(matching) and chunk:
            next_uri = uri(page + 1, "PA" + chunk[-1]["sid"])
            if self.loop_at_page is not None and page + 1 >= self.loop_at_page:
                next_uri = uri(page, token)
            if self.next_url_base is not None:
                next_uri = self.next_url_base + next_uri
        body = {
            "recordings": chunk,
            "next_page_uri": next_uri,
            "page": page,
            "page_size": size,
            "start": start,
            "end": start + len(chunk) - 1 if chunk else start,
            "uri": uri(page, token),
            "first_page_uri": uri(0, None),
            "previous_page_uri": uri(page - 1, None) if page > 0 else None,
        }
        return 200, body


def callback_signature(secret: str, url: str, form: dict[str, str]) -> str:
    """``X-Twilio-Signature``: base64 HMAC-SHA1 of the URL and the sorted names and values."""
    signed = url + "".join(name + form[name] for name in sorted(form))
    return base64.b64encode(hmac.new(secret.encode(), signed.encode(), "sha1").digest()).decode()


def error(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _created(recording: dict[str, Any]) -> datetime | None:
    try:
        return email.utils.parsedate_to_datetime(recording.get("date_created") or "")
    except (TypeError, ValueError):
        return None


def _public(recording: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in recording.items() if key != _AT}


def _matches(
    recording: dict[str, Any], bounds: dict[str, date], one: dict[str, str], *, soft_deleted: bool
) -> bool:
    if recording.get("status") == "deleted" and not soft_deleted:
        return False
    for name in ("CallSid", "ConferenceSid"):
        key = "call_sid" if name == "CallSid" else "conference_sid"
        if name in one and recording.get(key) != one[name]:
            return False
    day = recording[_AT].astimezone(UTC).date()
    if "DateCreated" in bounds and day != bounds["DateCreated"]:
        return False
    if "DateCreated>" in bounds and day < bounds["DateCreated>"]:
        return False
    return not ("DateCreated<" in bounds and day >= bounds["DateCreated<"])


class _TwilioHandler(QuietHandler):
    server: Any
    # Headers and body go out as separate writes: without this, each answer waits on a
    # delayed ACK, and a page of call joins crawls.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        api: FakeTwilio = self.server.state
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        route, resource = _route(parts.path, api.account_sid)
        with api.lock:
            api.requests.append((route, parts.path, query))
        if route == "unknown":
            return self._json(404, error(20404, "The requested resource was not found", 404))
        failure = api.scripted(route)
        if failure is not None:
            return self._fail(failure)
        needs_auth = route != "media" or api.enforce_media_auth
        if needs_auth and not api.authorised(self.headers.get("Authorization"), route):
            self.send_response(401)
            body = json.dumps(error(20003, "Authenticate", 401)).encode()
            self.send_header("WWW-Authenticate", 'Basic realm="Twilio API"')
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        if route == "list":
            if api.redirect_listing_to is not None:
                self.send_response(302)
                self.send_header("Location", api.redirect_listing_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            status, page = api.list_page(parts.path, query)
            return self._json(status, page, rewrite=api.rewrite_listing)
        if route == "call":
            with api.lock:
                call = api.calls.get(resource)
            if call is None:
                return self._json(404, error(20404, f"Call {resource} was not found", 404))
            return self._json(200, call)
        with api.lock:
            recording = next((r for r in api.recordings if r["sid"] == resource), None)
            audio = api.media.get(resource)
        if route == "recording":
            if recording is None:
                return self._json(404, error(20404, f"Recording {resource} was not found", 404))
            return self._json(200, _public(recording))
        if recording is None or audio is None or recording.get("status") != "completed":
            return self._json(404, error(20404, f"Recording {resource} was not found", 404))
        requested = query.get("RequestedChannels", [None])[-1]
        if requested == "2" and recording.get("channels") != 2:
            message = "Cannot download a dual-channel presentation of a mono recording"
            return self._json(400, error(16113, message, 400))
        if requested != "2":
            with api.lock:
                audio = api.downmixed.get(resource, audio)
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", str(len(audio)))
        self.end_headers()
        self.wfile.write(audio)
        return None

    def do_DELETE(self) -> None:
        api: FakeTwilio = self.server.state
        parts = urlsplit(self.path)
        route, resource = _route(parts.path, api.account_sid)
        with api.lock:
            api.requests.append(("delete", parts.path, {}))
        if route != "recording":
            return self._json(404, error(20404, "The requested resource was not found", 404))
        failure = api.scripted("delete")
        if failure is not None:
            return self._fail(failure)
        if not api.authorised(self.headers.get("Authorization"), "delete"):
            return self._json(
                401,
                error(20003, "Authenticate", 401),
                {"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        with api.lock:
            recording = next(
                (
                    r
                    for r in api.recordings
                    if r["sid"] == resource and r.get("status") != "deleted"
                ),
                None,
            )
            if recording is not None:
                recording["status"] = "deleted"
                api.media.pop(resource, None)
            api.deletes.append((resource, 204 if recording is not None else 404))
        if recording is None:
            return self._json(404, error(20404, f"Recording {resource} was not found", 404))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()
        return None

    def _fail(self, failure: Failure) -> None:
        code = 20429 if failure.status == 429 else 20500
        message = "Too Many Requests" if failure.status == 429 else "Internal Server Error"
        if failure.status < 500 and failure.status != 429:
            code, message = 20001, "Bad request"
        headers = {"Retry-After": failure.retry_after} if failure.retry_after else {}
        self._json(failure.status, error(code, message, failure.status), headers)

    def _json(
        self,
        status: int,
        body: Any,
        headers: dict[str, str] | None = None,
        *,
        rewrite: Callable[[bytes], bytes] | None = None,
    ) -> None:
        encoded = json.dumps(body).encode()
        if rewrite is not None:
            encoded = rewrite(encoded)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(encoded)))
        self.send_header("Twilio-Concurrent-Requests", "1")
        self.send_header("Twilio-Request-Id", "RQ" + "0" * 32)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(encoded)


def _route(path: str, account_sid: str) -> tuple[str, str]:
    prefix = f"{API}/Accounts/{account_sid}/"
    if not path.startswith(prefix):
        return "unknown", ""
    rest = path[len(prefix) :]
    if rest == "Recordings.json":
        return "list", ""
    for route, pattern in (
        ("recording", r"^Recordings/([^/]+)\.json$"),
        ("media", r"^Recordings/([^/]+)\.mp3$"),
        ("call", r"^Calls/([^/]+)\.json$"),
    ):
        found = re.match(pattern, rest)
        if found:
            return route, found.group(1)
    return "unknown", ""


def serve(api: FakeTwilio) -> LocalHTTPServer:
    return LocalHTTPServer(_TwilioHandler, api)


@dataclass
class ExternalStorage:
    """A bucket of an external recording store: signed URLs, and no provider credentials."""

    objects: dict[str, bytes] = field(default_factory=dict)
    signature: str = "X-Goog-Signature=deadbeefcafe"
    requests: list[tuple[str, bool]] = field(default_factory=list)


class _StorageHandler(QuietHandler):
    server: Any

    def do_GET(self) -> None:
        storage: ExternalStorage = self.server.state
        parts = urlsplit(self.path)
        storage.requests.append((parts.path, "Authorization" in self.headers))
        audio = storage.objects.get(parts.path)
        if "Authorization" in self.headers or parts.query != storage.signature or audio is None:
            self.send_response(403)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", str(len(audio)))
        self.end_headers()
        self.wfile.write(audio)


def serve_storage(storage: ExternalStorage) -> LocalHTTPServer:
    return LocalHTTPServer(_StorageHandler, storage)
