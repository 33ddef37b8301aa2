"""A local Siro on 127.0.0.1: the external API, the API gateway and signed storage URLs.

One server plays all three hosts: the external API lives under ``/api-externalApi``, the
gateway at the root, and signed upload URLs under ``/upload/<id>?X-Goog-Signature=...``.
It behaves as the contract in siro-api.md describes, including the strict parts: unknown body
keys are a 422 ZodError, and a PUT whose headers differ from the ones its URL was signed with
is a 403, as Google Cloud Storage answers.

Switches on :class:`SiroServerState` choose between the forms Siro's documents disagree on
(the phone quickstart's signed-url body, 422s worded with code "custom"), a create answer
without an id, a recordings list that lags and where upload URLs point;
:meth:`SiroServerState.fail_next` scripts faults per route. Every request is recorded
(headers, JSON body; for a PUT its size and sha256, hashed while streaming, never held whole).

Usage::

    with FakeSiro(signed_url_size_field="fileSizeInBytes") as siro:
        client = SiroHttpClient(SiroSettings(**siro.settings_values()))
        ...
        assert siro.state.requests_for("signed-url")[-1].json == {...}
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import socket
import struct
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, cast
from urllib.parse import parse_qs, urlsplit

from poller.domain.call_record import host_key
from poller.domain.clock import utcnow
from poller.simulators.chaos import Chaos
from poller.simulators.http_server import LocalHTTPServer, QuietHandler

EXTERNAL_PREFIX = "/api-externalApi"
# The fake's own copy of Siro's mapping, so a wrong mapping in the client cannot hide here.
SIGNED_CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "aac": "audio/aac"}


def sniff_audio(head: bytes) -> str | None:
    """Which of Siro's file types a body starts like, by its first bytes; ``None``: none.

    Siro's transcription would fail on a body that is not what ``fileType`` declared (an m4a
    sent as "aac"): the fake refuses to create a recording from one.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:3] == b"ID3":
        return "mp3"
    if len(head) >= 2 and head[0] == 0xFF:
        if head[1] & 0xF6 == 0xF0:  # ADTS: frame sync, layer 00
            return "aac"
        if head[1] & 0xE0 == 0xE0 and (head[1] >> 1) & 3 == 1:  # MPEG audio, layer III
            return "mp3"
    return None


CREATE_FIELDS = frozenset(
    {
        "fileUrl",
        "fileType",
        "title",
        "userId",
        "userEmail",
        "userPhone",
        "organizationId",
        "conversationType",
        "integrationConnectionId",
        "crmObjects",
        "contactPhone",
        "contactName",
        "dateCreated",
        "discoverable",
        "result",
    }
)
_CHUNK = 64 * 1024

Route = Literal[
    "create-app",
    "access-token",
    "access-token-info",
    "caller-identity",
    "users",
    "connections",
    "signed-url",
    "put",
    "create",
    "list-recordings",
    "get-recording",
    "conversation-configurations",
]
_APP = rf"^{EXTERNAL_PREFIX}/v1/core/oauth/apps/(?P<client_id>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    (method, re.compile(pattern + r"/?$"), cast(Route, route))
    for method, pattern, route in [
        ("POST", rf"^{EXTERNAL_PREFIX}/v1/core/oauth/apps", "create-app"),
        ("POST", _APP + "/access-token", "access-token"),
        ("GET", _APP + "/access-token/(?P<token_id>[^/]+)", "access-token-info"),
        ("GET", rf"^{EXTERNAL_PREFIX}/v1/core/auth/caller-identity", "caller-identity"),
        ("GET", rf"^{EXTERNAL_PREFIX}/v1/core/users", "users"),
        ("GET", rf"^{EXTERNAL_PREFIX}/v1/core/integrations/connections", "connections"),
        ("POST", r"^/v1/core/recordings/signed-urls", "signed-url"),
        ("POST", r"^/v1/core/recordings/upload", "create"),
        ("GET", r"^/v1/core/recordings", "list-recordings"),
        ("GET", r"^/v1/core/recordings/(?P<recording_id>[^/]+)", "get-recording"),
        ("GET", r"^/v1/core/conversation-configurations", "conversation-configurations"),
        ("PUT", r"^/upload/(?P<upload_id>[^/]+)", "put"),
    ]
]


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or after) answering one request.

    The request, body included, is always read first, so a reset means "sent, answer lost".
    With ``after_processing`` the fake acts on the request (creates the recording, stores the
    upload) before the fault replaces or delays the answer.
    """

    status: int | None = None
    json_body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    reset: bool = False
    delay: float = 0.0
    after_processing: bool = False

    @classmethod
    def http(
        cls,
        status: int,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        after_processing: bool = False,
    ) -> Fault:
        body = json_body if json_body is not None else {"error": f"scripted HTTP {status}"}
        return cls(
            status=status, json_body=body, headers=headers or {}, after_processing=after_processing
        )

    @classmethod
    def rate_limited(cls, retry_after: str | None = None) -> Fault:
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls.http(429, {"error": "Too many requests"}, headers)

    @classmethod
    def server_error(cls, status: int = 500, *, after_processing: bool = False) -> Fault:
        return cls.http(status, {"error": "Internal error"}, after_processing=after_processing)

    @classmethod
    def connection_reset(cls, *, after_processing: bool = False) -> Fault:
        """Close the socket with an RST and no answer."""
        return cls(reset=True, after_processing=after_processing)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        """Act on the request, then wait before answering (the client's read timeout fires)."""
        return cls(delay=seconds, after_processing=True)


@dataclass(frozen=True)
class RecordedRequest:
    route: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: tuple[tuple[str, str], ...]
    json: Any = None
    body_size: int = 0
    body_sha256: str | None = None
    received_at: float = field(default_factory=time.monotonic)  # when the body was read

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def header_names(self) -> set[str]:
        return {key.lower() for key, _ in self.headers}


class ManualClock:
    """A clock tests move by hand; share one between the client and the fake to test expiry."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self.now += delta


@dataclass
class AccessTokenRecord:
    value: str
    token_id: str
    client_id: str
    user_id: str
    scope: str
    created_at: datetime
    expires_at: datetime
    revoked: bool = False


@dataclass
class StoredUpload:
    upload_id: str
    file_type: str
    size: int
    signature: str
    download_signature: str
    expires_at: datetime
    signed_headers: dict[str, str]
    received_size: int | None = None
    received_sha256: str | None = None
    received_type: str | None = None  # what the body looked like (sniff_audio)


def _default_users() -> list[dict[str, Any]]:
    return [
        {
            "id": f"user-{n}",
            "email": f"rep{n}@example.com",
            "organizationId": "org-fake",
            "phoneNumber": f"+1555000{n:04d}",
            "firstName": "Rep",
            "lastName": str(n),
            "memberTeamId": None,
            "coachTeamIds": [],
            "externalId": None,
            "createdAt": "2026-01-01T00:00:00.000Z",
            "disabled": False,
            "billable": True,
        }
        for n in range(1, 4)
    ]


def _default_connections() -> list[dict[str, Any]]:
    return [
        {
            "id": "conn-1",
            "name": "Salesforce",
            "externalAccountId": "sf-1",
            "organizationId": "org-fake",
            "integrationPlatform": "MERGE",
            "createdAt": "2026-01-01T00:00:00.000Z",
            "updatedAt": "2026-01-01T00:00:00.000Z",
            "isActive": True,
            "syncStatus": [],
        }
    ]


@dataclass
class SiroServerState:
    """Everything the fake knows and every switch a test can flip. Guarded by ``lock``."""

    organization_id: str = "org-fake"
    org_token: str = field(default_factory=lambda: "orgtok-" + secrets.token_urlsafe(24))
    client_id: str = "client-fake"
    client_secret: str = field(default_factory=lambda: "csecret-" + secrets.token_urlsafe(24))
    token_user_id: str = "user-1"
    clock: Callable[[], datetime] = utcnow

    # Where Siro's documents disagree, which form this Siro speaks.
    signed_url_size_field: Literal["fileSize", "fileSizeInBytes"] = "fileSize"
    signed_url_accepts_organization_id: bool = False
    # The phone quickstart's form requires organizationId (implies accepting it).
    signed_url_requires_organization_id: bool = False
    # How a 422 words unknown and missing keys: Zod's standard issues ("unrecognized_keys",
    # "invalid_type"), or one issue of code "custom" per key, as Siro has been seen answering:
    # {"code": "custom", "path": ["fileSize"], "message": "Unrecognized key(s) in object: ..."}.
    zod_key_issues: Literal["standard", "custom"] = "standard"
    # Answer a create with 201 and no recording id (the recording is made all the same).
    create_answers_without_id: bool = False
    # The same, only for creates whose title holds one of these strings.
    create_without_id_titles: tuple[str, ...] = ()
    # A recording shows up in the recordings list only this long after it was created.
    recordings_list_lag: timedelta = timedelta(0)
    # A recording's processingStatus becomes "complete" this long after it was made; None: it
    # stays "in-progress" (unless a test says otherwise, see disagree()).
    processing_time: timedelta | None = None
    # Where signed upload URLs point, e.g. "http://storage.example.com" or another local
    # server; None: this fake, which also takes the PUT.
    upload_url_base: str | None = None
    create_id_key: Literal["id", "recordingId"] = "id"
    create_app_client_id_key: Literal["clientID", "clientId"] = "clientID"
    return_upload_headers: bool = True
    # Refuse to create a recording whose uploaded bytes are not the declared fileType (as
    # Siro's transcription would fail on them). Off for client tests that PUT random bytes.
    verify_audio_type: bool = False
    token_info_available: bool = True

    signed_url_lifetime: timedelta = timedelta(minutes=15)
    token_lifetime: timedelta = timedelta(hours=16)
    users_default_page_size: int = 25
    users_max_page_size: int = 100  # the old Siro docs say only 25 per page ever worked
    recordings_default_limit: int = 25

    users: list[dict[str, Any]] = field(default_factory=_default_users)
    connections: list[dict[str, Any]] = field(default_factory=_default_connections)
    conversation_configurations: list[dict[str, Any]] = field(
        default_factory=lambda: [
            {"id": "org-fake-sales", "conversationType": "sales", "displayName": "Sales"},
            {"id": "org-fake-service", "conversationType": "service", "displayName": "Service"},
        ]
    )

    apps: dict[str, dict[str, str]] = field(default_factory=dict)
    tokens: dict[str, AccessTokenRecord] = field(default_factory=dict)
    uploads: dict[str, StoredUpload] = field(default_factory=dict)
    recordings: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: dict[str, deque[Fault]] = field(default_factory=lambda: defaultdict(deque))
    signed_url_expiry_overrides: deque[datetime] = field(default_factory=deque)
    base_url: str = ""
    # Random faults on every route but token minting (scripted faults come first).
    chaos: Chaos | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.apps.setdefault(
            self.client_id,
            {
                "clientSecret": self.client_secret,
                "appName": "fake",
                "owner": self.token_user_id,
                "organizationId": self.organization_id,
            },
        )

    # -- scripting --------------------------------------------------------------------------

    def fail_next(self, route: Route, *faults: Fault) -> None:
        """Apply ``faults`` to the next requests on ``route``, one each, in order."""
        with self.lock:
            self.faults[route].extend(faults)

    def expire_next_signed_url_at(self, *moments: datetime) -> None:
        """The next signed URLs report (and enforce) these ``expiresAt`` values."""
        with self.lock:
            self.signed_url_expiry_overrides.extend(moments)

    def revoke(self, token_value: str) -> None:
        with self.lock:
            self.tokens[token_value].revoked = True

    def revoke_all_tokens(self) -> None:
        with self.lock:
            for token in self.tokens.values():
                token.revoked = True

    def set_client_secret(self, secret: str) -> None:
        """The OAuth app takes ``secret`` from now on, as after an admin corrects it in Siro."""
        with self.lock:
            self.apps[self.client_id]["clientSecret"] = secret

    def add_recording(self, **fields: Any) -> dict[str, Any]:
        """Seed a recording (as if uploaded earlier), e.g. for reconciliation tests."""
        recording = {
            "id": fields.pop("id", str(uuid.uuid4())),
            "title": None,
            "dateCreated": _iso(self.clock()),
            "userId": None,
            "conversationType": None,
            "processingStatus": "complete",
            "transcriptionStatus": "complete",
            "deleted": False,
            **fields,
        }
        with self.lock:
            self.recordings[recording["id"]] = recording
        return recording

    def disagree(
        self,
        recording_id: str,
        *,
        deleted: bool | None = None,
        processing_status: str | None = None,
        duration_ms: int | None = None,
    ) -> None:
        """Make Siro's read-back of ``recording_id`` differ from what the poller stored: marked
        deleted, processing ended in "error", or another durationInMilliseconds."""
        with self.lock:
            recording = self.recordings[recording_id]
            if deleted is not None:
                recording["deleted"] = deleted
            if processing_status is not None:
                recording["processingStatus"] = processing_status
                recording["pinned_status"] = True
            if duration_ms is not None:
                recording["durationInMilliseconds"] = duration_ms

    # -- inspection -------------------------------------------------------------------------

    def requests_for(self, route: Route) -> list[RecordedRequest]:
        with self.lock:
            return [r for r in self.requests if r.route == route]

    @property
    def minted(self) -> list[AccessTokenRecord]:
        with self.lock:
            return sorted(self.tokens.values(), key=lambda t: t.created_at)

    def secrets(self) -> list[str]:
        """Every credential and signature this fake handed out or holds: none may be logged."""
        with self.lock:
            values = [self.org_token, *(app["clientSecret"] for app in self.apps.values())]
            values += list(self.tokens)
            for upload in self.uploads.values():
                values += [upload.signature, upload.download_signature]
            return values

    def take_fault(self, route: str) -> Fault | None:
        with self.lock:
            queue = self.faults.get(route)
            if queue:
                return queue.popleft()
        if self.chaos is None or route in ("access-token", "access-token-info"):
            return None
        return _chaos_fault(self.chaos)


def _chaos_fault(chaos: Chaos) -> Fault | None:
    picked = chaos.pick()
    if picked is None:
        return None
    mishap, after = picked
    if mishap == "server_error":
        return Fault.server_error(503 if after else 500, after_processing=after)
    if mishap == "rate_limited":
        return Fault.rate_limited("1")
    return Fault.connection_reset(after_processing=after)


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # sent as is (storage answers in XML)


class SiroHandler(QuietHandler):
    """Routes one request; the state lives in ``self.server.state``."""

    body_head: bytes = b""  # the first bytes of a PUT body, to tell what it holds

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle's algorithm and delayed
        # ACKs add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    @property
    def state(self) -> SiroServerState:
        state: SiroServerState = self.server.state  # type: ignore[attr-defined]
        return state

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    # -- the request cycle ------------------------------------------------------------------

    def _handle(self) -> None:
        try:
            self._serve()
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (a timeout test, a reset mid-upload): nothing to answer.
            self.close_connection = True

    def _serve(self) -> None:
        url = urlsplit(self.path)
        route, captured = _match(self.command, url.path)
        query = parse_qs(url.query)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._read_chunked_and_discard()
            self._answer(Answer(411, {"error": "Length Required"}))
            return
        if route == "put":
            size, digest = self._hash_body()
            json_body = None
        else:
            raw = self._read_body()
            size, digest = len(raw), hashlib.sha256(raw).hexdigest()
            try:
                json_body = json.loads(raw) if raw else None
            except ValueError:
                json_body = None
        with self.state.lock:
            self.state.requests.append(
                RecordedRequest(
                    route=route or "unknown",
                    method=self.command,
                    path=url.path,
                    query=query,
                    headers=tuple(self.headers.items()),
                    json=json_body,
                    body_size=size,
                    body_sha256=digest,
                )
            )
        if route is None:
            self._answer(
                Answer(
                    404, {"code": 404, "message": "The current request is not defined by this API."}
                )
            )
            return
        fault = self.state.take_fault(route)
        if fault is not None and not fault.after_processing and (fault.reset or fault.status):
            self._fail(fault)
            return
        answer = self._route(route, captured, query, json_body, size, digest)
        if fault is not None:
            if fault.reset or fault.status:
                self._fail(fault)
                return
            self.state.stopping.wait(fault.delay)
        self._answer(answer)

    def _fail(self, fault: Fault) -> None:
        if fault.delay:
            self.state.stopping.wait(fault.delay)
        if fault.reset:
            # SO_LINGER 0 turns close() into a TCP RST: the client sees a reset, not an answer.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        assert fault.status is not None
        self._answer(Answer(fault.status, fault.json_body, fault.headers))

    def _answer(self, answer: Answer) -> None:
        if answer.raw is not None:
            payload, content_type = answer.raw, "application/xml"
        elif answer.body is not None:
            payload, content_type = json.dumps(answer.body).encode(), "application/json"
        else:
            payload, content_type = b"", "application/json"
        self.send_response(answer.status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _hash_body(self) -> tuple[int, str]:
        """Read the body in chunks, hashing as it comes: a 100 MB PUT never sits in memory."""
        remaining = int(self.headers.get("Content-Length") or 0)
        digest = hashlib.sha256()
        size = 0
        self.body_head = b""
        while remaining > 0:
            chunk = self.rfile.read(min(_CHUNK, remaining))
            if not chunk:
                break
            if not self.body_head:
                self.body_head = chunk[:16]
            digest.update(chunk)
            size += len(chunk)
            remaining -= len(chunk)
        return size, digest.hexdigest()

    def _read_chunked_and_discard(self) -> None:
        while True:
            line = self.rfile.readline()
            length = int(line.split(b";")[0].strip() or b"0", 16)
            if length == 0:
                self.rfile.readline()
                return
            self.rfile.read(length + 2)

    # -- routes -----------------------------------------------------------------------------

    def _route(
        self,
        route: Route,
        captured: dict[str, str],
        query: dict[str, list[str]],
        body: Any,
        size: int,
        digest: str,
    ) -> Answer:
        state = self.state
        if route == "put":
            return self._put(captured["upload_id"], query, size, digest)
        if route in ("signed-url", "create", "list-recordings", "get-recording") or (
            route == "conversation-configurations"
        ):
            if not self._access_token_ok():
                return Answer(401, {"error": "Unauthorized"})
        elif self.headers.get("Authorization") != f"Bearer {state.org_token}":
            return Answer(401, {"error": "Unauthorized"})
        with state.lock:
            handler: Callable[..., Answer] = getattr(self, "_" + route.replace("-", "_"))
            return handler(captured=captured, query=query, body=body)

    def _access_token_ok(self) -> bool:
        value = self.headers.get("x-siro-auth-token")
        with self.state.lock:
            token = self.state.tokens.get(value or "")
            return token is not None and not token.revoked and self.state.clock() < token.expires_at

    def _create_app(self, *, body: Any, **_: Any) -> Answer:
        issues = _zod_object(body, {"appName", "owner", "organizationId"}, set())
        if issues:
            return _zod_error(issues)
        client_id = "client-" + uuid.uuid4().hex[:12]
        secret = "csecret-" + secrets.token_urlsafe(24)
        self.state.apps[client_id] = {
            "clientSecret": secret,
            "appName": body["appName"],
            "owner": body["owner"],
            "organizationId": body["organizationId"],
        }
        return Answer(
            201,
            {
                "appName": body["appName"],
                self.state.create_app_client_id_key: client_id,
                "clientSecret": secret,
            },
        )

    def _access_token(self, *, captured: dict[str, str], body: Any, **_: Any) -> Answer:
        app = self.state.apps.get(captured["client_id"])
        if app is None:
            return Answer(404, {"error": "OAuth app not found"})
        issues = _zod_object(body, {"clientSecret", "userId", "scope"}, set())
        if not issues and body["scope"] not in ("read", "write"):
            issues = [_issue("invalid_enum_value", ["scope"], "Expected 'read' | 'write'")]
        if issues:
            return _zod_error(issues)
        if body["clientSecret"] != app["clientSecret"]:
            return Answer(401, {"error": "Invalid client credentials"})
        now = self.state.clock()
        token = AccessTokenRecord(
            value="at-" + secrets.token_urlsafe(24),
            token_id="tok-" + uuid.uuid4().hex[:12],
            client_id=captured["client_id"],
            user_id=body["userId"],
            scope=body["scope"],
            created_at=now,
            expires_at=now + self.state.token_lifetime,
        )
        self.state.tokens[token.value] = token
        return Answer(201, {"accessTokenId": token.token_id, "accessToken": token.value})

    def _access_token_info(self, *, captured: dict[str, str], **_: Any) -> Answer:
        token = next(
            (t for t in self.state.tokens.values() if t.token_id == captured["token_id"]), None
        )
        if not self.state.token_info_available or token is None:
            return Answer(404, {"error": "Not found"})
        return Answer(
            200,
            {
                "data": {
                    "accessTokenId": token.token_id,
                    "oAuthAppId": token.client_id,
                    "userId": token.user_id,
                    "scope": token.scope,
                    "expiresAt": _iso(token.expires_at),
                    "createdAt": _iso(token.created_at),
                    "revokedAt": None,
                }
            },
        )

    def _caller_identity(self, **_: Any) -> Answer:
        return Answer(
            200,
            {
                "tokenId": "orgtoken-1",
                "tokenName": "fake",
                "organizationId": self.state.organization_id,
                "createdAt": "2026-01-01T00:00:00.000Z",
            },
        )

    def _users(self, *, query: dict[str, list[str]], **_: Any) -> Answer:
        size = int(_first(query, "pageSize") or self.state.users_default_page_size)
        size = min(size, self.state.users_max_page_size)
        return Answer(200, _page(self.state.users, _first(query, "cursor"), size))

    def _connections(self, *, query: dict[str, list[str]], **_: Any) -> Answer:
        return Answer(200, _page(self.state.connections, _first(query, "cursor"), 100))

    def _conversation_configurations(self, *, query: dict[str, list[str]], **_: Any) -> Answer:
        if _first(query, "organizationId") != self.state.organization_id:
            return Answer(403, {"error": "Forbidden"})
        return Answer(200, {"data": self.state.conversation_configurations})

    def _signed_url(self, *, body: Any, **_: Any) -> Answer:
        state = self.state
        size_field = state.signed_url_size_field
        required = {"fileType", size_field}
        optional = {"organizationId"} if state.signed_url_accepts_organization_id else set()
        if state.signed_url_requires_organization_id:
            required.add("organizationId")
        issues = _zod_object(body, required, optional, style=state.zod_key_issues)
        if (
            not issues
            and "organizationId" in body
            and body["organizationId"] != (state.organization_id)
        ):
            issues.append(_issue("custom", ["organizationId"], "Unknown organization"))
        if not issues:
            if body["fileType"] not in SIGNED_CONTENT_TYPES:
                issues.append(
                    _issue(
                        "invalid_enum_value",
                        ["fileType"],
                        f"Invalid enum value. Expected 'mp3' | 'aac' | 'wav', received "
                        f"'{body['fileType']}'",
                    )
                )
            size = body[size_field]
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                issues.append(
                    _issue("too_small", [size_field], "Number must be greater than or equal to 1")
                )
        if issues:
            return _zod_error(issues)
        upload_id = uuid.uuid4().hex
        expires_at = (
            state.signed_url_expiry_overrides.popleft()
            if state.signed_url_expiry_overrides
            else state.clock() + state.signed_url_lifetime
        )
        upload = StoredUpload(
            upload_id=upload_id,
            file_type=body["fileType"],
            size=body[size_field],
            signature=secrets.token_hex(32),
            download_signature=secrets.token_hex(32),
            expires_at=expires_at,
            signed_headers={
                "Content-Type": SIGNED_CONTENT_TYPES[body["fileType"]],
                "x-goog-content-length-range": f"0,{body[size_field]}",
            },
        )
        state.uploads[upload_id] = upload
        signing = "X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=fake%40siro"
        data: dict[str, Any] = {
            "uploadUrl": f"{state.upload_url_base or state.base_url}/upload/{upload_id}?{signing}"
            f"&X-Goog-Expires=900&X-Goog-Signature={upload.signature}",
            "downloadUrl": f"{state.base_url}/download/{upload_id}?{signing}"
            f"&X-Goog-Signature={upload.download_signature}",
            "expiresAt": _iso(expires_at),
        }
        if state.return_upload_headers:
            data["uploadHeaders"] = dict(upload.signed_headers)
        envelope = {"cursor": None, "pageSize": None, "limit": None, "total": None}
        return Answer(200, {"data": data, **envelope, "hasNextPage": False})

    def _put(self, upload_id: str, query: dict[str, list[str]], size: int, digest: str) -> Answer:
        with self.state.lock:
            upload = self.state.uploads.get(upload_id)
            now = self.state.clock()
        if upload is None or _first(query, "X-Goog-Signature") != upload.signature:
            return _storage_error(403, "SignatureDoesNotMatch", self.path)
        if now >= upload.expires_at:
            return _storage_error(400, "ExpiredToken", self.path)
        if self.headers.get("Authorization") is not None:
            return _storage_error(400, "InvalidAuthentication", self.path)
        sent = {name.lower(): value for name, value in self.headers.items()}
        signed = {name.lower(): value for name, value in upload.signed_headers.items()}
        unsigned_extensions = {
            name for name in sent if name.startswith("x-goog-") and name not in signed
        }
        if unsigned_extensions or any(sent.get(name) != value for name, value in signed.items()):
            return _storage_error(403, "SignatureDoesNotMatch", self.path)
        low, high = (int(part) for part in signed["x-goog-content-length-range"].split(","))
        declared = int(self.headers.get("Content-Length") or -1)
        if not (low <= size <= high) or size != declared:
            return _storage_error(400, "EntityTooLarge", self.path)
        with self.state.lock:
            upload.received_size = size
            upload.received_sha256 = digest
            upload.received_type = sniff_audio(self.body_head)
        return Answer(200)

    def _create(self, *, body: Any, **_: Any) -> Answer:
        state = self.state
        issues = _zod_object(body, {"fileUrl", "fileType"}, CREATE_FIELDS)
        if issues:
            return _zod_error(issues)
        if not any(body.get(key) for key in ("userId", "userEmail", "userPhone")):
            issues.append(
                _issue("custom", [], "At least one of userId, userEmail or userPhone is required")
            )
        if ("integrationConnectionId" in body) != ("crmObjects" in body):
            issues.append(
                _issue("custom", [], "integrationConnectionId and crmObjects go together")
            )
        upload = _upload_for_download_url(state, body["fileUrl"])
        if upload is None or upload.received_sha256 is None:
            issues.append(
                _issue("custom", ["fileUrl"], "fileUrl does not point to an uploaded file")
            )
        elif state.verify_audio_type and upload.received_type != body["fileType"]:
            issues.append(
                _issue(
                    "custom",
                    ["fileType"],
                    f"the uploaded file is not {body['fileType']} audio "
                    f"(it looks like {upload.received_type or 'something else'})",
                )
            )
        if issues:
            return _zod_error(issues)
        recording_id = str(uuid.uuid4())
        state.recordings[recording_id] = {
            "id": recording_id,
            "title": body.get("title"),
            "dateCreated": body.get("dateCreated") or _iso(state.clock()),
            "userId": body.get("userId"),
            "conversationType": body.get("conversationType"),
            "processingStatus": "in-progress",
            "transcriptionStatus": "pending",
            "deleted": False,
            "body": body,
            "made_at": state.clock(),
        }
        title = str(body.get("title") or "")
        if state.create_answers_without_id or any(
            part in title for part in state.create_without_id_titles
        ):
            return Answer(201, {"data": {}, "cursor": None})
        return Answer(201, {"data": {state.create_id_key: recording_id}, "cursor": None})

    def _get_recording(self, *, captured: dict[str, str], **_: Any) -> Answer:
        state = self.state
        recording = state.recordings.get(captured["recording_id"])
        if recording is None:
            return Answer(404, {"error": "Recording not found"})
        made_at = recording.get("made_at")
        if (
            state.processing_time is not None
            and not recording.get("pinned_status")
            and recording.get("processingStatus") == "in-progress"
            and made_at is not None
            and state.clock() >= made_at + state.processing_time
        ):
            recording["processingStatus"] = "complete"
        return Answer(200, {"data": _public(recording)})

    def _list_recordings(self, *, query: dict[str, list[str]], **_: Any) -> Answer:
        after = _parse_time(_first(query, "dateCreated:gt"))
        before = _parse_time(_first(query, "dateCreated:lt"))

        listed_from = self.state.clock() - self.state.recordings_list_lag

        def in_window(recording: dict[str, Any]) -> bool:
            created = _parse_time(recording["dateCreated"])
            made_at = recording.get("made_at")
            if made_at is not None and made_at > listed_from:
                return False  # not in the list yet
            return created is not None and (
                (after is None or created > after) and (before is None or created < before)
            )

        selected = sorted(
            (_public(r) for r in self.state.recordings.values() if in_window(r)),
            key=lambda r: r["dateCreated"],
        )
        limit = min(100, int(_first(query, "limit") or self.state.recordings_default_limit))
        return Answer(200, _page(selected, _first(query, "cursor"), limit))


class FakeSiro:
    """The fake server as a context manager, plus client settings that point at it."""

    def __init__(self, state: SiroServerState | None = None, **switches: Any) -> None:
        self.state = state or SiroServerState(**switches)
        self._server = LocalHTTPServer(SiroHandler, self.state)

    def __enter__(self) -> FakeSiro:
        self._server.__enter__()
        self.state.base_url = self._server.url
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.state.stopping.set()  # cut scripted delays short
        self._server.__exit__(exc_type, exc, tb)

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def storage_host(self) -> str:
        """The host (``host:port``) signed upload URLs point at, as siro.storage_hosts lists it."""
        return host_key(self.state.upload_url_base or self.url)

    @property
    def external_url(self) -> str:
        return self._server.url + EXTERNAL_PREFIX

    def settings_values(self, **overrides: Any) -> dict[str, Any]:
        """Plain values for a ``[siro]`` config section: fast timeouts and retries for tests."""
        values: dict[str, Any] = {
            "api_base_url": self.url,
            "external_api_base_url": self.external_url,
            "api_token": self.state.org_token,
            "client_id": self.state.client_id,
            "client_secret": self.state.client_secret,
            "token_user_id": self.state.token_user_id,
            "connect_timeout_seconds": 2.0,
            "read_timeout_seconds": 5.0,
            "max_retries": 3,
            "retry_initial_wait_seconds": 0.01,
            "retry_max_wait_seconds": 0.5,
            # Signed upload URLs point at this fake (plain http on a loopback address).
            "storage_hosts": [self.storage_host],
        }
        values.update(overrides)
        return {key: value for key, value in values.items() if value is not None}


# -- helpers ---------------------------------------------------------------------------------


def _match(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    for route_method, pattern, route in _ROUTES:
        found = pattern.match(path)
        if found and route_method == method:
            return route, found.groupdict()
    return None, {}


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _issue(code: str, path: list[str | int], message: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "path": path, "message": message, **extra}


def _zod_object(
    body: Any,
    required: set[str],
    allowed: set[str] | frozenset[str],
    *,
    style: Literal["standard", "custom"] = "standard",
) -> list[dict[str, Any]]:
    """Zod's strict-object checks: an object, required keys present, no unknown keys.

    ``style="custom"`` words each unknown or missing key as its own issue of code "custom",
    with the key in its path, as a refinement written by hand would.
    """
    if not isinstance(body, dict):
        return [_issue("invalid_type", [], "Expected object, received " + type(body).__name__)]
    issues = []
    unknown = sorted(set(body) - set(required) - set(allowed))
    if unknown and style == "custom":
        issues += [
            _issue("custom", [key], f"Unrecognized key(s) in object: ['{key}']") for key in unknown
        ]
    elif unknown:
        names = ", ".join(f"'{key}'" for key in unknown)
        issues.append(
            _issue("unrecognized_keys", [], f"Unrecognized key(s) in object: {names}", keys=unknown)
        )
    for key in sorted(required):
        if body.get(key) in (None, ""):
            if style == "custom":
                issues.append(_issue("custom", [key], "Required"))
            else:
                issues.append(
                    _issue(
                        "invalid_type", [key], "Required", expected="string", received="undefined"
                    )
                )
    return issues


def _public(recording: dict[str, Any]) -> dict[str, Any]:
    """A recording as Siro shows it, without what the fake keeps for itself."""
    return {k: v for k, v in recording.items() if k not in ("body", "made_at", "pinned_status")}


def _zod_error(issues: list[dict[str, Any]]) -> Answer:
    return Answer(422, {"name": "ZodError", "issues": issues})


def _storage_error(status: int, code: str, path: str) -> Answer:
    # Like GCS, the body echoes the request (signature included): the client must not repeat it.
    xml = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
        f"<Message>The request was refused.</Message><StringToSign>PUT {path}</StringToSign>"
        "</Error>"
    )
    return Answer(status, raw=xml.encode())


def _page(items: list[dict[str, Any]], cursor: str | None, size: int) -> dict[str, Any]:
    start = int(cursor.removeprefix("offset-")) if cursor else 0
    end = start + max(1, size)
    following = f"offset-{end}" if end < len(items) else None
    return {"data": items[start:end], "cursor": following, "hasNextPage": following is not None}


def _upload_for_download_url(state: SiroServerState, url: Any) -> StoredUpload | None:
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    upload_id = parts.path.rsplit("/", 1)[-1]
    upload = state.uploads.get(upload_id)
    if upload is None or _first(parse_qs(parts.query), "X-Goog-Signature") != (
        upload.download_signature
    ):
        return None
    return upload


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
