"""A RingCentral simulator on 127.0.0.1: platform host and media host, as the API documents them.

The platform server answers

- ``POST /restapi/oauth/token``: the JWT bearer grant only, the app's client id and secret as
  HTTP Basic, the JWT as ``assertion`` (form encoded). Bad client: 401 ``invalid_client``; bad
  assertion or grant: 400 ``invalid_grant`` / ``unsupported_grant_type``.
- ``GET /restapi/v1.0/account/{accountId}/call-log``: ``dateFrom``/``dateTo`` (ISO 8601 with a
  timezone; ``dateFrom`` defaults to ``dateTo`` minus 24 h), ``type``, ``view``,
  ``recordingType``, ``page``/``perPage`` (capped at 1000), newest first, with ``records``,
  ``paging`` and ``navigation`` as in the spec's examples. Legs only in the Detailed view.
- ``GET /restapi/v1.0/account/{accountId}/extension``: the extension list (same envelope).
- ``GET /restapi/v1.0/account/{accountId}/recording/{recordingId}``: recording metadata.
- ``DELETE /restapi/v1.0/account/{accountId}/call-recordings`` with a JSON body
  ``{"records": [{"id": ...}]}`` (CallRecordingIds; Heavy group): deletes the files, not the
  call-log records, and answers 204. An id unknown or deleted already is a 404 (CMN-102; what
  RingCentral answers for a list with some unknown ids is not documented, so nothing of such a
  list is deleted). Without ``delete_permission`` (the app's EditCallLog), 403 CMN-401.
  Every delete is kept in ``deletes``.
- ``GET /restapi/v1.0/account/{accountId}/extension/~/authz-profile/check?permissionId=...``
  (Light): ``{"successful": ..., "details": {"permission": {"id": ...}}}`` for the JWT's user;
  ``user_permissions`` says which it has. A token's ``scope`` lists the app's permissions,
  EditCallLog among them while ``delete_permission`` holds.

The media server answers ``GET /restapi/v1.0/account/{accountId}/recording/{id}/content``.

Webhooks (see :mod:`poller.adapters.webhooks.ringcentral` for the sources):

- ``POST /restapi/v1.0/subscription`` (Medium group): ``eventFilters``, ``deliveryMode``
  ``{"transportType": "WebHook", "address", "verificationToken"}`` and ``expiresIn`` (1 to
  315360000 s; RingCentral's default when omitted is not documented here, 604800 is used).
  Before creating, the simulator POSTs a ``Validation-Token`` header to the address and creates
  the subscription only if a 200 echoing it comes back within 3 s, 1024 bytes at most (else 400
  ``SUB-525`` "WebHook server response is invalid"; an address it cannot reach, 400
  ``CMN-101`` on ``deliveryMode.address``).
- ``GET /restapi/v1.0/subscription`` (``records``), ``GET``/``PUT``/``DELETE
  /restapi/v1.0/subscription/{id}`` and ``POST .../{id}/renew`` (Light; PUT and DELETE
  Medium). ``status`` is ``Active``, ``Suspended`` or ``Blacklisted`` (with
  ``blacklistedData``); a blacklisted subscription is neither renewed nor updated, only
  deleted; an expired one is gone. Tests blacklist or suspend one with :meth:`blacklist` and
  :meth:`suspend`.
- Events: :meth:`RingCentralState.announce` sends the telephony session notification of a
  call that ended with its recording (``statusCode`` Disconnected) to every active
  subscription's address, with its ``Verification-Token``, or to :meth:`send_events_to`'s
  address when no subscription names it.

Every request needs ``Authorization: Bearer <token>`` (401 otherwise). Each response carries
``X-Rate-Limit-Group``, ``-Limit``, ``-Remaining`` and ``-Window`` for the operation's group
(Heavy: call log, recordings and media; Medium: extensions; Auth: tokens). A group used up
answers 429, with a penalty: every request sent while the penalty runs restarts it.
"""

from __future__ import annotations

import base64
import copy
import json
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

from poller.simulators.http_server import LocalHTTPServer, QuietHandler

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCOUNT = "400643090008"
# Documented defaults per group: requests per window, window and penalty (seconds).
DEFAULT_GROUPS: dict[str, tuple[int, int, int]] = {
    "Heavy": (10, 60, 60),
    "Medium": (40, 60, 60),
    "Light": (50, 60, 60),
    "Auth": (5, 60, 60),
}
_ACCOUNT_PATH = r"/restapi/v1\.0/account/(?P<account>~|\d+)"
_SUBSCRIPTION_PATH = "/restapi/v1.0/subscription"
WEBHOOK_MAX_LIFETIME = 315_360_000
DEFAULT_LIFETIME = 604_800
EVENT_TIMEOUT = 5.0
# RingCentral's creation handshake: answered within 3 s, in at most 1024 bytes.
VALIDATION_TIMEOUT = 3.0
VALIDATION_MAX_BYTES = 1024
WEBHOOK_USER_AGENT = "RingCentral-Webhook/8.3"
# The reason in RingCentral's own sample of a blacklisted subscription.
BLACKLIST_REASON = "I/O operation is failed. Details: [Read timed out]"


def iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    host: str
    at: float


@dataclass
class RingCentralState:
    client_id: str = "rc-client-id"
    client_secret: str = "rc-client-secret"
    jwt: str = "rc-jwt-credential"
    base_url: str = ""
    media_url: str = ""
    # Page URLs (navigation) are built on this base; a test may point them elsewhere.
    navigation_base: str | None = None
    groups: dict[str, tuple[int, int, int]] = field(default_factory=lambda: dict(DEFAULT_GROUPS))
    monotonic: Callable[[], float] = time.monotonic
    token_lifetime: int = 3600
    # A token is refused after this many uses (None: until it expires).
    token_uses: int | None = None
    records: list[dict[str, Any]] = field(default_factory=list)
    started: dict[str, datetime] = field(default_factory=dict)
    extensions: list[dict[str, Any]] = field(default_factory=list)
    media: dict[str, tuple[bytes, str, dict[str, str]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    # Every DELETE of call recordings: (the ids asked for, the status answered).
    deletes: list[tuple[tuple[str, ...], int]] = field(default_factory=list)
    deleted: set[str] = field(default_factory=set)
    # Whether the app has EditCallLog.
    delete_permission: bool = True
    # The JWT user's permissions, as authz-profile/check answers for them.
    user_permissions: set[str] = field(
        default_factory=lambda: {"ReadCallLog", "ReadCallRecording", "EditCompanyCallRecordings"}
    )
    tokens: dict[str, int] = field(default_factory=dict)
    tokens_issued: list[str] = field(default_factory=list)
    # Scripted failures of the call-log listing: (status, Retry-After or None), consumed in order;
    # with fail_forever the last one repeats.
    listing_failures: list[tuple[int, str | None]] = field(default_factory=list)
    fail_forever: bool = False
    redirect_listing_to: str | None = None
    # What a test makes of each listing page's bytes (a hostile or broken vendor's page).
    rewrite_listing: Callable[[bytes], bytes] | None = None
    loop_from_page: int | None = None
    # -- webhooks --
    wall_clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Each subscription's verificationToken (RingCentral never lists it back).
    verification_tokens: dict[str, str | None] = field(default_factory=dict)
    event_url: str | None = None
    event_secret: str | None = None
    drop_events: bool = False
    events_sent: list[tuple[str, int]] = field(default_factory=list)
    # Every creation handshake: (address, the status it answered, or 0 unreachable).
    handshakes: list[tuple[str, int]] = field(default_factory=list)
    _sequence: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    _sent: dict[str, list[float]] = field(default_factory=dict)
    _penalty_until: dict[str, float] = field(default_factory=dict)

    # -- scripting ------------------------------------------------------------------------

    def settings_values(self, **overrides: Any) -> dict[str, Any]:
        """Plain values for a ``[provider]`` config section of kind ringcentral that reaches
        this simulator with its app's credentials."""
        values: dict[str, Any] = {
            "kind": "ringcentral",
            "base_url": self.base_url,
            "media_base_url": self.media_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "jwt": self.jwt,
        }
        return values | overrides

    def add_extension(
        self, extension_id: int, number: str, name: str, email: str | None
    ) -> dict[str, Any]:
        first, _, last = name.partition(" ")
        contact: dict[str, Any] = {"firstName": first, "lastName": last}
        if email is not None:
            contact["email"] = email
        extension = {
            "uri": f"{self.base_url}/restapi/v1.0/account/{ACCOUNT}/extension/{extension_id}",
            "id": extension_id,
            "extensionNumber": number,
            "contact": contact,
            "name": name,
            "type": "User",
            "status": "Enabled",
        }
        self.extensions.append(extension)
        return extension

    def content_uri(self, recording_id: str, query: str = "") -> str:
        uri = f"{self.media_url}/restapi/v1.0/account/{ACCOUNT}/recording/{recording_id}/content"
        return f"{uri}?{query}" if query else uri

    def add_media(
        self,
        recording_id: str,
        body: bytes,
        content_type: str = "audio/mpeg",
        required_query: dict[str, str] | None = None,
    ) -> None:
        self.media[recording_id] = (body, content_type, dict(required_query or {}))

    def add_record(self, record: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
        """List ``record``; ``at`` places one whose startTime does not parse."""
        self.records.append(record)
        if at is not None:
            self.started[record["id"]] = at
        return record

    def start_of(self, record: dict[str, Any]) -> datetime | None:
        return self.started.get(record.get("id", "")) or _parse_iso_lenient(record.get("startTime"))

    def find(self, record_id: str) -> dict[str, Any]:
        return next(record for record in self.records if record["id"] == record_id)

    def listing_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/call-log")]

    def secrets(self) -> list[str]:
        tokens = [token for token in self.verification_tokens.values() if token]
        secret = [self.event_secret] if self.event_secret else []
        return [self.client_secret, self.jwt, *self.tokens_issued, *tokens, *secret]

    # -- webhooks -------------------------------------------------------------------------

    def send_events_to(self, url: str, secret: str | None = None) -> None:
        """Where events go without a subscription, and the verification token they carry."""
        self.event_url = url
        self.event_secret = secret

    def blacklist(
        self,
        subscription_id: str,
        reason: str = "I/O operation is failed. Details: [Read timed out]",
    ) -> None:
        """What RingCentral does to the subscription of an address that keeps failing."""
        with self.lock:
            record = self.subscriptions[subscription_id]
            record["status"] = "Blacklisted"
            record["blacklistedData"] = {"reason": reason, "blacklistedAt": iso(self.wall_clock())}

    def suspend(self, subscription_id: str) -> None:
        with self.lock:
            self.subscriptions[subscription_id]["status"] = "Suspended"

    def live_subscriptions(self) -> list[dict[str, Any]]:
        """The subscriptions not yet expired (an expired one is gone)."""
        now = self.wall_clock()
        with self.lock:
            for key, record in list(self.subscriptions.items()):
                expires = _parse_iso_lenient(record["expirationTime"])
                if expires is not None and expires <= now:
                    del self.subscriptions[key]
                    self.verification_tokens.pop(key, None)
            return [copy.deepcopy(record) for record in self.subscriptions.values()]

    def session_event(self, call_id: str, subscription_id: str | None = None) -> dict[str, Any]:
        """The telephony session notification of ``call_id`` (a call-log record id, a
        telephonySessionId or a recording id) once the call has ended: one party per side,
        Disconnected, the rep's carrying the session's recordings."""
        records = [
            record
            for record in self.records
            if call_id in (record.get("id"), record.get("telephonySessionId"))
            or call_id in _recording_ids(record)
        ]
        if not records:
            raise KeyError(f"no call {call_id!r} in the simulator")
        first = records[0]
        session = str(first.get("telephonySessionId") or f"s-{first['id']}")
        recordings = [
            {"id": recording_id, "active": False}
            for record in self.records
            if record.get("telephonySessionId") == session or record is first
            for recording_id in _recording_ids(record)
        ]
        extension = first.get("extension")
        extension_id = str(extension["id"]) if isinstance(extension, dict) else None
        outbound = first.get("direction") == "Outbound"
        base = session.removeprefix("s-")

        def party(number: int, rep: bool) -> dict[str, Any]:
            found: dict[str, Any] = {
                "accountId": ACCOUNT,
                "id": f"p-{base}-{number}",
                "direction": "Outbound" if outbound == rep else "Inbound",
                "to": dict(first.get("to") or {}),
                "from": dict(first.get("from") or {}),
                "status": {"code": "Disconnected", "reason": "CallFinished"},
                "missedCall": False,
                "standAlone": False,
                "muted": False,
            }
            if rep:
                if extension_id is not None:
                    found["extensionId"] = extension_id
                found["recordings"] = recordings
            return found

        with self.lock:
            self._sequence += 1
            sequence = self._sequence
        now = self.wall_clock()
        return {
            "uuid": str(random.randrange(10**18, 10**19)),
            "event": f"/restapi/v1.0/account/{ACCOUNT}/telephony/sessions",
            "timestamp": iso(now),
            "subscriptionId": subscription_id or str(uuid.uuid4()),
            "ownerId": extension_id or "400643091008",
            "body": {
                "sequence": sequence,
                "sessionId": str(first.get("sessionId") or base),
                "telephonySessionId": session,
                "serverId": "10.13.22.241.TAM",
                "eventTime": iso(now),
                "parties": [party(1, True), party(2, False)],
                "origin": {"type": "Call"},
            },
        }

    def signed_event(
        self, call_id: str, secret: str | None = None, subscription_id: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """The headers and body RingCentral would POST for ``call_id``; the verification
        token is ``secret``, else the one :meth:`send_events_to` gave."""
        token = secret if secret is not None else self.event_secret
        headers = {
            "Content-Type": "application/json; charset=UTF-8",
            "Accept": "application/json",
            "User-Agent": WEBHOOK_USER_AGENT,
        }
        if token:
            headers["Verification-Token"] = token
        body = json.dumps(self.session_event(call_id, subscription_id)).encode()
        return headers, body

    def announce(self, call_id: str) -> list[int]:
        """Send the event of ``call_id`` to every active subscription's address (and to
        :meth:`send_events_to`'s when no subscription names it); the statuses answered."""
        if self.drop_events:
            return []
        targets: list[tuple[str, str | None, str | None]] = []
        live = self.live_subscriptions()
        for record in live:
            if record["status"] == "Active" and any(
                "/telephony/sessions" in item for item in record["eventFilters"]
            ):
                targets.append(
                    (
                        record["deliveryMode"]["address"],
                        self.verification_tokens.get(record["id"]),
                        record["id"],
                    )
                )
        named = {record["deliveryMode"]["address"] for record in live}
        if self.event_url is not None and self.event_url not in named:
            targets.append((self.event_url, self.event_secret, None))
        statuses: list[int] = []
        for address, token, subscription_id in targets:
            headers, body = self.signed_event(call_id, token or "", subscription_id)
            event = json.loads(body)["event"]
            try:
                status = requests.post(
                    address, data=body, headers=headers, timeout=EVENT_TIMEOUT
                ).status_code
            except requests.RequestException:
                status = 0
            with self.lock:
                self.events_sent.append((event, status))
            statuses.append(status)
        return statuses

    # -- rate limits ----------------------------------------------------------------------

    def throttle(self, group: str) -> tuple[dict[str, str], float | None]:
        """The rate-limit headers of one request in ``group``, and its penalty if refused."""
        limit, window, penalty = self.groups[group]
        now = self.monotonic()
        with self.lock:
            if self._penalty_until.get(group, 0.0) > now:
                # Every request sent during the penalty restarts it.
                self._penalty_until[group] = now + penalty
                return self._headers(group, limit, 0, window), float(penalty)
            sent = [at for at in self._sent.get(group, []) if at > now - window]
            if len(sent) >= limit:
                self._penalty_until[group] = now + penalty
                self._sent[group] = sent
                return self._headers(group, limit, 0, window), float(penalty)
            sent.append(now)
            self._sent[group] = sent
            return self._headers(group, limit, limit - len(sent), window), None

    @staticmethod
    def _headers(group: str, limit: int, remaining: int, window: int) -> dict[str, str]:
        return {
            "X-Rate-Limit-Group": group,
            "X-Rate-Limit-Limit": str(limit),
            "X-Rate-Limit-Remaining": str(remaining),
            "X-Rate-Limit-Window": str(window),
        }


def call_record(
    record_id: str,
    at: datetime,
    *,
    session: str,
    direction: str = "Outbound",
    duration: int = 95,
    rep: tuple[int, str, str] | None = (400643091008, "101", "+16505550101"),
    contact: tuple[str, str | None] = ("+16505556678", "Jane Customer"),
    recording: dict[str, Any] | None = None,
    recording_on_leg: bool = True,
    short_recording: bool = False,
    result: str = "Call connected",
) -> dict[str, Any]:
    """A Detailed-view call-log record shaped like the spec's examples.

    ``rep`` is (extension id, extension number, phone number); the recording sits on the
    record and, with ``recording_on_leg``, on the rep's leg as well (as RingCentral lists it).
    """
    contact_number, contact_name = contact
    contact_party: dict[str, Any] = {"phoneNumber": contact_number, "location": "Palo Alto, CA"}
    if contact_name is not None:
        contact_party["name"] = contact_name
    rep_party: dict[str, Any] = {}
    extension: dict[str, Any] | None = None
    if rep is not None:
        extension_id, number, phone = rep
        rep_party = {"phoneNumber": phone, "extensionNumber": number, "name": "Rep " + number}
        extension = {
            "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT}/extension/"
            f"{extension_id}",
            "id": extension_id,
        }
    outbound = direction == "Outbound"
    parties = (rep_party, contact_party) if outbound else (contact_party, rep_party)
    base_leg: dict[str, Any] = {
        "startTime": iso(at),
        "duration": duration,
        "type": "Voice",
        "direction": direction,
        "action": "VoIP Call" if outbound else "Phone Call",
        "result": result,
        "from": {"phoneNumber": parties[0].get("phoneNumber", "+18882011073")},
        "to": {"phoneNumber": parties[1].get("phoneNumber", "+18882011073")},
        "transport": "PSTN",
        "legType": "SipToPstnMetered" if outbound else "Accept",
        "telephonySessionId": session,
    }
    rep_leg = {
        **base_leg,
        "from": parties[0],
        "to": parties[1],
        "transport": "VoIP",
        "master": True,
    }
    if extension is not None:
        rep_leg["extension"] = extension
    record: dict[str, Any] = {
        "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT}/call-log/"
        f"{record_id}?view=Detailed",
        "id": record_id,
        "sessionId": str(abs(hash(session)) % 10**12),
        "telephonySessionId": session,
        "startTime": iso(at),
        "duration": duration,
        "type": "Voice",
        "direction": direction,
        "action": base_leg["action"],
        "result": result,
        "from": parties[0],
        "to": parties[1],
        "transport": "VoIP",
        "lastModifiedTime": iso(at + timedelta(seconds=duration + 3)),
        "billing": {"costIncluded": 0.0, "costPurchased": 0.0},
        "legs": [base_leg, rep_leg] if not outbound else [rep_leg],
    }
    if extension is not None:
        record["extension"] = extension
    if recording is not None:
        record["recording"] = recording
        if recording_on_leg:
            rep_leg["recording"] = dict(recording)
    if short_recording:
        record["shortRecording"] = True
        rep_leg["shortRecording"] = True
    return record


def recording_of(state: RingCentralState, recording_id: str, query: str = "") -> dict[str, Any]:
    return {
        "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/{ACCOUNT}/recording/"
        f"{recording_id}",
        "id": recording_id,
        "type": "Automatic",
        "contentUri": state.content_uri(recording_id, query),
    }


class _Refusal(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def _error(status: int, code: str, message: str, **extra: str) -> _Refusal:
    return _Refusal(
        status,
        {
            "errorCode": code,
            "message": message,
            "errors": [{"errorCode": code, "message": message}],
        },
        extra,
    )


def _parse_iso(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _error(400, "CMN-101", f"Parameter [{name}] value is invalid.") from None
    if parsed.tzinfo is None:
        raise _error(400, "CMN-101", f"Parameter [{name}] value is invalid.")
    return parsed


class _Handler(QuietHandler):
    media_host = False

    @property
    def state(self) -> RingCentralState:
        return self.server.state  # type: ignore[attr-defined, no-any-return]

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        state = self.state
        with state.lock:
            state.requests.append(
                Recorded(
                    method,
                    parts.path,
                    query,
                    dict(self.headers.items()),
                    "media" if self.media_host else "platform",
                    state.monotonic(),
                )
            )
        try:
            status, payload, headers = self._route(method, parts.path, query, body)
        except _Refusal as refusal:
            self._send(refusal.status, json.dumps(refusal.body).encode(), refusal.headers)
            return
        if isinstance(payload, bytes):
            self._send(status, payload, headers)
        else:
            headers.setdefault("Content-Type", "application/json")
            self._send(status, json.dumps(payload).encode(), headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # -- routing --------------------------------------------------------------------------

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        if self.media_host:
            match = re.fullmatch(_ACCOUNT_PATH + r"/recording/(?P<id>[^/]+)/content", path)
            if method != "GET" or match is None:
                raise _error(404, "CMN-102", "Resource for parameter [path] is not found")
            limits = self._authorised("Heavy")
            return self._content(match["id"], query, limits)
        if path == "/restapi/oauth/token":
            if method != "POST":
                raise _error(405, "CMN-104", "Method not allowed")
            return self._token(body)
        if path == _SUBSCRIPTION_PATH or path.startswith(_SUBSCRIPTION_PATH + "/"):
            return self._subscription_api(method, path.removeprefix(_SUBSCRIPTION_PATH), body)
        if method == "DELETE" and re.fullmatch(_ACCOUNT_PATH + "/call-recordings", path):
            return self._delete_recordings(body)
        if method != "GET":
            raise _error(405, "CMN-104", "Method not allowed")
        if re.fullmatch(_ACCOUNT_PATH + "/call-log", path):
            return self._call_log(query)
        if re.fullmatch(_ACCOUNT_PATH + r"/extension/~/authz-profile/check", path):
            limits = self._authorised("Light")
            permission = (query.get("permissionId") or [""])[-1]
            granted = permission in self.state.user_permissions
            return (
                200,
                {"successful": granted, "details": {"permission": {"id": permission}}},
                limits,
            )
        if re.fullmatch(_ACCOUNT_PATH + "/extension", path):
            limits = self._authorised("Medium")
            return self._listing(self.state.extensions, path, query, limits)
        match = re.fullmatch(_ACCOUNT_PATH + r"/recording/(?P<id>[^/]+)", path)
        if match:
            limits = self._authorised("Heavy")
            return self._recording(match["id"], limits)
        raise _error(404, "CMN-102", f"Resource for parameter [path] is not found: {path}")

    def _throttled(self, group: str) -> dict[str, str]:
        headers, penalty = self.state.throttle(group)
        if penalty is not None:
            raise _Refusal(
                429,
                {"errorCode": "CMN-301", "message": "Request rate exceeded"},
                {**headers, "Retry-After": str(int(penalty))},
            )
        return headers

    def _authorised(self, group: str) -> dict[str, str]:
        header = self.headers.get("Authorization") or ""
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        state = self.state
        with state.lock:
            known = token is not None and token in state.tokens
            if known and state.token_uses is not None:
                state.tokens[token] -= 1  # type: ignore[index]
                known = state.tokens[token] >= 0  # type: ignore[index]
        if not known:
            raise _error(401, "TokenInvalid", "Token not found or expired")
        return self._throttled(group)

    def _token(self, body: bytes) -> tuple[int, Any, dict[str, str]]:
        state = self.state
        limits = self._throttled("Auth")
        expected = base64.b64encode(f"{state.client_id}:{state.client_secret}".encode()).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            raise _Refusal(
                401,
                {
                    "error": "invalid_client",
                    "errors": [{"errorCode": "OAU-123", "message": "Invalid client"}],
                    "error_description": "Invalid client",
                },
                limits,
            )
        if not (self.headers.get("Content-Type") or "").startswith(
            "application/x-www-form-urlencoded"
        ):
            raise _Refusal(415, {"error": "invalid_request"}, limits)
        form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != JWT_GRANT:
            raise _Refusal(400, {"error": "unsupported_grant_type"}, limits)
        if form.get("assertion") != state.jwt:
            raise _Refusal(
                400,
                {
                    "error": "invalid_grant",
                    "errors": [{"errorCode": "OAU-213", "message": "Token is expired"}],
                    "error_description": "Invalid JWT token",
                },
                limits,
            )
        with state.lock:
            value = f"rc-access-{len(state.tokens_issued) + 1:04d}-U0pXVGFjY2Vzcw"
            state.tokens_issued.append(value)
            state.tokens[value] = state.token_uses if state.token_uses is not None else 10**9
        return (
            200,
            {
                "access_token": value,
                "token_type": "bearer",
                "expires_in": state.token_lifetime,
                "refresh_token": f"rc-refresh-{len(state.tokens_issued):04d}",
                "refresh_token_expires_in": 604800,
                "scope": "ReadCallLog ReadCallRecording ReadAccounts"
                + (" EditCallLog" if state.delete_permission else ""),
                "owner_id": "400643091008",
                "endpoint_id": "AbCdEf",
            },
            limits,
        )

    def _call_log(self, query: dict[str, list[str]]) -> tuple[int, Any, dict[str, str]]:
        state = self.state
        limits = self._authorised("Heavy")
        with state.lock:
            failure = None
            if state.listing_failures:
                failure = state.listing_failures[0]
                if not (state.fail_forever and len(state.listing_failures) == 1):
                    state.listing_failures.pop(0)
        if failure is not None:
            status, retry_after = failure
            headers = {**limits}
            if retry_after is not None:
                headers["Retry-After"] = retry_after
            if status == 429:
                headers["X-Rate-Limit-Remaining"] = "0"
            raise _Refusal(status, {"errorCode": "CMN-301", "message": f"HTTP {status}"}, headers)
        if state.redirect_listing_to is not None:
            return 302, b"", {"Location": state.redirect_listing_to}

        def one(name: str) -> str | None:
            values = query.get(name)
            return values[-1] if values else None

        view = one("view") or "Simple"
        if view not in ("Simple", "Detailed"):
            raise _error(400, "CMN-101", "Parameter [view] value is invalid.")
        for name, allowed in (
            ("type", {"Voice", "Fax"}),
            ("direction", {"Inbound", "Outbound"}),
        ):
            if any(value not in allowed for value in query.get(name, [])):
                raise _error(400, "CMN-101", f"Parameter [{name}] value is invalid.")
        recording_type = one("recordingType")
        if recording_type is not None and recording_type not in ("Automatic", "OnDemand", "All"):
            raise _error(400, "CMN-101", "Parameter [recordingType] value is invalid.")
        date_to = _parse_iso(one("dateTo") or iso(datetime.now(UTC)), "dateTo")
        date_from_text = one("dateFrom")
        date_from = (
            _parse_iso(date_from_text, "dateFrom")
            if date_from_text
            else date_to - timedelta(hours=24)
        )
        with state.lock:
            records = list(state.records)
        chosen = []
        for record in records:
            at = state.start_of(record)
            if at is not None and not (date_from <= at <= date_to):
                continue
            if query.get("type") and record.get("type") not in query["type"]:
                continue
            if recording_type is not None and not _recorded(record, recording_type):
                continue
            chosen.append(record)
        # Newest first, as RingCentral lists the call log.
        chosen.sort(key=lambda r: state.start_of(r) or date_to, reverse=True)
        if view == "Simple":
            chosen = [{k: v for k, v in r.items() if k not in ("legs", "billing")} for r in chosen]
        path = "/restapi/v1.0/account/~/call-log"
        status, page, headers = self._listing(chosen, path, query, limits)
        if state.rewrite_listing is not None:
            return status, state.rewrite_listing(json.dumps(page).encode()), headers
        return status, page, headers

    def _listing(
        self,
        items: list[dict[str, Any]],
        path: str,
        query: dict[str, list[str]],
        limits: dict[str, str],
    ) -> tuple[int, Any, dict[str, str]]:
        state = self.state

        def number(name: str, default: int) -> int:
            values = query.get(name)
            if not values:
                return default
            try:
                value = int(values[-1])
            except ValueError:
                raise _error(400, "CMN-101", f"Parameter [{name}] value is invalid.") from None
            if value < 1:
                raise _error(400, "CMN-101", f"Parameter [{name}] value is invalid.")
            return value

        page = number("page", 1)
        per_page = min(number("perPage", 100), 1000)
        start = (page - 1) * per_page
        records = items[start : start + per_page]
        base = (state.navigation_base or state.base_url) + path

        def page_uri(n: int) -> dict[str, str]:
            params = {k: v for k, v in query.items() if k not in ("page", "perPage")}
            flat = [(k, v) for k, values in params.items() for v in values]
            return {"uri": f"{base}?{urlencode([*flat, ('page', n), ('perPage', per_page)])}"}

        last_page = max(1, -(-len(items) // per_page))
        navigation: dict[str, Any] = {"firstPage": page_uri(1), "lastPage": page_uri(last_page)}
        if state.loop_from_page is not None and page >= state.loop_from_page:
            navigation["nextPage"] = page_uri(page)
        elif start + per_page < len(items):
            navigation["nextPage"] = page_uri(page + 1)
        if page > 1:
            navigation["previousPage"] = page_uri(page - 1)
        paging: dict[str, Any] = {"page": page, "perPage": per_page}
        if records:
            paging.update(pageStart=start, pageEnd=start + len(records) - 1)
        return (
            200,
            {
                "uri": page_uri(page)["uri"],
                "records": records,
                "paging": paging,
                "navigation": navigation,
            },
            limits,
        )

    def _recording(
        self, recording_id: str, limits: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        state = self.state
        for record in state.records:
            for holder in [record, *record.get("legs", [])]:
                recording = holder.get("recording")
                if isinstance(recording, dict) and recording.get("id") == recording_id:
                    _, content_type, _ = state.media.get(recording_id, (b"", "audio/mpeg", {}))
                    return (
                        200,
                        {
                            "uri": recording.get("uri"),
                            "id": recording_id,
                            "contentUri": recording.get("contentUri"),
                            "contentType": content_type,
                            "duration": record.get("duration"),
                        },
                        limits,
                    )
        raise _error(404, "CMN-102", "Resource for parameter [recordingId] is not found")

    def _delete_recordings(self, body: bytes) -> tuple[int, Any, dict[str, str]]:
        state = self.state
        limits = self._authorised("Heavy")
        try:
            document = json.loads(body or b"null")
            ids = tuple(str(item["id"]) for item in document["records"])
        except (ValueError, KeyError, TypeError):
            raise _error(400, "CMN-101", "Parameter [records] value is invalid.") from None
        if not ids:
            raise _error(400, "CMN-101", "Parameter [records] value is invalid.")
        if not state.delete_permission:
            with state.lock:
                state.deletes.append((ids, 403))
            raise _error(
                403,
                "CMN-401",
                "In order to call this API endpoint, application needs to have [EditCallLog] "
                "permission",
            )
        with state.lock:
            known = {
                recording["id"]
                for record in state.records
                for holder in [record, *record.get("legs", [])]
                if isinstance(recording := holder.get("recording"), dict)
            } | set(state.media)
            if any(i not in known or i in state.deleted for i in ids):
                state.deletes.append((ids, 404))
                missing = True
            else:
                state.deleted.update(ids)
                for recording_id in ids:
                    state.media.pop(recording_id, None)
                state.deletes.append((ids, 204))
                missing = False
        if missing:
            raise _error(404, "CMN-102", "Resource for parameter [recordingId] is not found")
        return 204, b"", limits

    def _content(
        self, recording_id: str, query: dict[str, list[str]], limits: dict[str, str]
    ) -> tuple[int, Any, dict[str, str]]:
        found = self.state.media.get(recording_id)
        if found is None:
            raise _error(404, "CMN-102", "Resource for parameter [callRecordingId] is not found")
        body, content_type, required = found
        if any(query.get(name, [None])[-1] != value for name, value in required.items()):
            raise _error(403, "CMN-408", "In order to call this API endpoint, signature needed")
        return 200, body, {**limits, "Content-Type": content_type}

    # -- the Subscription API -----------------------------------------------------------------

    def _subscription_api(
        self, method: str, rest: str, body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        state = self.state
        if rest == "":
            if method == "GET":
                limits = self._authorised("Light")
                return (
                    200,
                    {
                        "uri": state.base_url + _SUBSCRIPTION_PATH,
                        "records": [_public(r) for r in state.live_subscriptions()],
                    },
                    limits,
                )
            if method == "POST":
                limits = self._authorised("Medium")
                return 200, self._create_subscription(_json_object(body)), limits
            raise _error(405, "CMN-104", "Method not allowed")
        match = re.fullmatch(r"/(?P<id>[^/]+)(?P<renew>/renew)?", rest)
        if match is None:
            raise _error(404, "CMN-102", "Resource for parameter [path] is not found")
        subscription_id, renew = match["id"], match["renew"] is not None
        group = "Medium" if method in ("PUT", "DELETE") else "Light"
        limits = self._authorised(group)
        live = {record["id"]: record for record in state.live_subscriptions()}
        if subscription_id not in live:
            raise _error(404, "CMN-102", "Resource for parameter [subscriptionId] is not found")
        if renew:
            if method != "POST":
                raise _error(405, "CMN-104", "Method not allowed")
            return 200, self._renew(subscription_id, None, None), limits
        if method == "GET":
            return 200, _public(live[subscription_id]), limits
        if method == "DELETE":
            with state.lock:
                state.subscriptions.pop(subscription_id, None)
                state.verification_tokens.pop(subscription_id, None)
            return 204, b"", limits
        if method == "PUT":
            document = _json_object(body)
            filters = _event_filters(document)
            lifetime = _lifetime(document)
            return 200, self._renew(subscription_id, filters, lifetime), limits
        raise _error(405, "CMN-104", "Method not allowed")

    def _create_subscription(self, document: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        filters = _event_filters(document)
        delivery = document.get("deliveryMode")
        if not isinstance(delivery, dict):
            raise _error(400, "CMN-100", "Parameter [deliveryMode] is required")
        if delivery.get("transportType") != "WebHook":
            # Only WebHook delivery is simulated.
            raise _error(400, "CMN-101", "Parameter [deliveryMode.transportType] value is invalid")
        address = delivery.get("address")
        if not isinstance(address, str) or not address.startswith(("http://", "https://")):
            raise _error(400, "CMN-101", "Parameter [deliveryMode.address] value is invalid")
        token = delivery.get("verificationToken")
        if token is not None and not isinstance(token, str):
            raise _error(
                400, "CMN-101", "Parameter [deliveryMode.verificationToken] value is invalid"
            )
        lifetime = _lifetime(document) or DEFAULT_LIFETIME
        self._validate_address(address)
        now = state.wall_clock()
        subscription_id = str(uuid.uuid4())
        record = {
            "uri": f"{state.base_url}{_SUBSCRIPTION_PATH}/{subscription_id}",
            "id": subscription_id,
            "creationTime": iso(now),
            "status": "Active",
            "eventFilters": filters,
            "expirationTime": iso(now + timedelta(seconds=lifetime)),
            "expiresIn": lifetime,
            "deliveryMode": {"transportType": "WebHook", "encryption": False, "address": address},
        }
        with state.lock:
            state.subscriptions[subscription_id] = record
            state.verification_tokens[subscription_id] = token
        return _public(record)

    def _validate_address(self, address: str) -> None:
        """RingCentral's creation handshake: the address must echo Validation-Token."""
        token = str(uuid.uuid4())
        headers = {
            "Validation-Token": token,
            "Content-Type": "application/json; charset=UTF-8",
            "User-Agent": WEBHOOK_USER_AGENT,
        }
        try:
            answer = requests.post(address, headers=headers, timeout=VALIDATION_TIMEOUT)
        except requests.RequestException:
            with self.state.lock:
                self.state.handshakes.append((address, 0))
            raise _error(
                400, "CMN-101", "Parameter [deliveryMode.address] value is invalid"
            ) from None
        with self.state.lock:
            self.state.handshakes.append((address, answer.status_code))
        size = len(answer.content) + sum(
            len(name) + len(value) + 4 for name, value in answer.headers.items()
        )
        if (
            answer.status_code != 200
            or answer.headers.get("Validation-Token") != token
            or size > VALIDATION_MAX_BYTES
        ):
            raise _error(400, "SUB-525", "WebHook server response is invalid")

    def _renew(
        self, subscription_id: str, filters: list[str] | None, lifetime: int | None
    ) -> dict[str, Any]:
        state = self.state
        with state.lock:
            record = state.subscriptions[subscription_id]
            if record["status"] == "Blacklisted":
                # Never reactivated: RingCentral's documented fix is delete and create anew.
                raise _error(
                    400, "CMN-101", "Parameter [subscriptionId] value is invalid: blacklisted"
                )
            if filters is not None:
                record["eventFilters"] = filters
            if lifetime is not None:
                record["expiresIn"] = lifetime
            record["status"] = "Active"
            record["expirationTime"] = iso(
                state.wall_clock() + timedelta(seconds=record["expiresIn"])
            )
            return _public(record)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    """A copy to answer with, so no answer shares state a test changes later."""
    return copy.deepcopy(record)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"null")
    except ValueError:
        raise _error(400, "CMN-101", "Request body is invalid") from None
    if not isinstance(document, dict):
        raise _error(400, "CMN-101", "Request body is invalid")
    return document


def _event_filters(document: dict[str, Any]) -> list[str]:
    filters = document.get("eventFilters")
    if (
        not isinstance(filters, list)
        or not filters
        or not all(isinstance(item, str) and item.startswith("/restapi/") for item in filters)
    ):
        raise _error(400, "CMN-101", "Parameter [eventFilters] value is invalid")
    return list(filters)


def _lifetime(document: dict[str, Any]) -> int | None:
    lifetime = document.get("expiresIn")
    if lifetime is None:
        return None
    if (
        isinstance(lifetime, bool)
        or not isinstance(lifetime, int)
        or not 1 <= lifetime <= WEBHOOK_MAX_LIFETIME
    ):
        raise _error(400, "CMN-101", "Parameter [expiresIn] value is invalid")
    return lifetime


def _recording_ids(record: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    for holder in [record, *record.get("legs", [])]:
        recording = holder.get("recording")
        if isinstance(recording, dict) and recording.get("id") and recording["id"] not in ids:
            ids.append(str(recording["id"]))
    return ids


class _MediaHandler(_Handler):
    media_host = True


def _parse_iso_lenient(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _recorded(record: dict[str, Any], recording_type: str) -> bool:
    if record.get("shortRecording") is True:
        return True
    for holder in [record, *record.get("legs", [])]:
        recording = holder.get("recording")
        if isinstance(recording, dict) and (
            recording_type == "All" or recording.get("type") == recording_type
        ):
            return True
    return False


@contextmanager
def serve(state: RingCentralState | None = None) -> Iterator[RingCentralState]:
    """The platform and the media host, each on its own port, sharing ``state``."""
    state = state or RingCentralState()
    with (
        LocalHTTPServer(_Handler, state) as platform,
        LocalHTTPServer(_MediaHandler, state) as media,
    ):
        state.base_url = platform.url
        state.media_url = media.url
        yield state
