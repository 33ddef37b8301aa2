"""A scriptable fake of a phone system's call-log API, served on a real socket.

It answers window queries with the parameter names and time format it is told to use, pages
with tokens, next-page URLs or page numbers, checks auth, can fail chosen pages, can hand out a
paging token twice, and serves recording audio registered per call. Use it with
:class:`poller.simulators.http_server.LocalHTTPServer`::

    api = FakeCallLog(page_size=100)
    api.add_call(quickstart_call("call-1", started), started)
    with serve(api) as server:
        ...  # point provider.base_url at server.url

The window is compared with each call's ``at`` instant (given when the call is added), so the
records themselves can be shaped however a test likes, malformed ones included.

Window bounds it cannot read (a missing parameter, a value not in its time format, an ISO
time with ``+00:00`` where it takes only ``Z``) are refused with HTTP 400, as an API refuses
them. A window may also sit inside a filter parameter: :func:`range_filter` reads Outreach's
``filter[updatedAt]=<from>..<to|inf>``, :func:`rsql_filter` 8x8's
``filter=type==callrecording;createdTime=ge=<ms>``.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit
from zoneinfo import ZoneInfo

from poller.simulators.chaos import Chaos
from poller.simulators.http_server import LocalHTTPServer, QuietHandler
from poller.simulators.oauth_server import OAuthTokenIssuer

Paging = Literal["none", "token", "next_url", "link_header", "page_number", "offset"]
# "iso8601", "unix_s", "unix_ms" or a strftime pattern ("%Y-%m-%d %H:%M:%S").
TimeFormat = str
# Reads the window's (start, end) texts from a listing's query; ValueError: the API refuses it.
WindowReader = Callable[[dict[str, str]], tuple[str, str | None]]
Bounds = Literal["half_open", "inclusive", "exclusive"]

QUICKSTART_REP_EMAIL = "rep@yourcompany.com"


def quickstart_call(
    call_id: str,
    started_at: datetime,
    *,
    recording_url: str | None = None,
    email: str = QUICKSTART_REP_EMAIL,
    number: str = "+14251234563",
    contact_name: str = "Jane Smith",
    contact_phone: str = "+15551234567",
) -> dict[str, Any]:
    """A record shaped like the payload of Siro's phone-integration quickstart."""
    return {
        "call_id": call_id,
        "email": email,
        "number": number,
        "recording_url": recording_url,
        "started_at": started_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "contact_name": contact_name,
        "contact_phone": contact_phone,
    }


def range_filter(param: str) -> WindowReader:
    """Outreach's range filter: ``param=<from>..<to>``, either side ``inf``/``neginf``."""

    def read(query: dict[str, str]) -> tuple[str, str | None]:
        value = query.get(param)
        if value is None or value.count("..") != 1:
            raise ValueError(f"{param} must be a range <from>..<to>")
        start, end = value.split("..")
        if start in ("", "neginf"):
            raise ValueError(f"{param}: this listing needs a start")
        return start, None if end == "inf" else end

    return read


def rsql_filter(param: str, attribute: str) -> WindowReader:
    """8x8's RSQL filter: ``;``-joined clauses, ``attribute=ge=<ms>`` (or ``gt``) the start
    and ``attribute=lt=<ms>`` (or ``le``) the end; ``name==value`` clauses pass."""

    def read(query: dict[str, str]) -> tuple[str, str | None]:
        start: str | None = None
        end: str | None = None
        for clause in query.get(param, "").split(";"):
            name, _, rest = clause.partition("=")
            if rest.startswith("="):
                continue  # name==value
            operator, _, value = rest.partition("=")
            if name != attribute or operator not in ("ge", "gt", "le", "lt") or not value:
                raise ValueError(f"{param}: cannot read the clause {clause!r}")
            if operator in ("ge", "gt"):
                start = value
            else:
                end = value
        if start is None:
            raise ValueError(f"{param}: no {attribute}=ge=<ms> clause")
        return start, end

    return read


def _put(document: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = document
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


@dataclass
class Failure:
    status: int
    times: int | None  # None: until cleared
    retry_after: str | None = None


@dataclass
class Recording:
    body: bytes | Path  # a path is streamed from disk: a large recording never sits in memory
    content_type: str = "audio/mpeg"
    require_auth: bool = True
    required_query: dict[str, str] = field(default_factory=dict)
    # Statuses to answer instead of the audio, one per request, before serving it.
    failures: deque[int] = field(default_factory=deque)
    served: int = 0


@dataclass
class Pointer:
    """A JSON answer on the way to the audio (an indirect download): ``body`` as it is, or
    called per request (a fresh signed URL or token each time)."""

    body: Any
    # These bytes instead of JSON (a vendor answering an HTML page).
    raw: bytes | None = None
    # Statuses to answer instead, one per request, before the body.
    failures: deque[int] = field(default_factory=deque)
    # Seconds to wait before answering (a slow vendor).
    delay_seconds: float = 0.0
    served: int = 0


@dataclass
class FakeCallLog:
    """The fake API's state and script. Mutate it between cycles to simulate time passing."""

    list_path: str = "/calls"
    start_param: str = "from"
    end_param: str | None = "to"
    time_format: TimeFormat = "iso8601"
    # The zone of window bounds written without an offset (a strftime pattern).
    time_zone: str = "UTC"
    # ISO 8601 bounds must end in "Z" (Freshcaller refuses "+00:00").
    iso_z_only: bool = False
    # Where the window's bounds are read from, when not start_param and end_param.
    window_reader: WindowReader | None = None
    bounds: Bounds = "half_open"
    items_path: str | None = "calls"
    paging: Paging = "token"
    page_size: int = 100
    page_size_param: str | None = None
    token_param: str = "page_token"
    token_path: str = "next_page_token"
    token_prefix: str = "tok-"
    # 8x8: the body names the next page key even on the last page.
    token_on_last_page: bool = False
    # Where the body says it is the last page (a boolean), or how many pages there are.
    last_page_path: str | None = None
    total_pages_path: str | None = None
    next_url_path: str = "next"
    page_param: str = "page"
    first_page: int = 1
    offset_param: str = "offset"
    row_cap: int | None = None
    # Auth the API insists on: ("bearer", token), ("basic", user, password),
    # ("api_key", header, key), ("oauth", client_id, client_secret) with tokens from
    # POST /oauth/token (client credentials, client authenticated by HTTP Basic),
    # ("issuer",) with tokens from ``issuer`` (password and rotating refresh-token grants,
    # poller.simulators.oauth_server), or None. A header template's check is ("api_key",
    # header, rendered value): the header must carry exactly that.
    auth: tuple[str, ...] | None = None
    issuer: OAuthTokenIssuer | None = None
    # With oauth: how many requests an access token serves before it is refused (expired).
    token_uses: int | None = None
    # Answer listing requests with a 302 to this URL instead.
    redirect_listing_to: str | None = None
    # With next_url paging: build next-page links on this base URL instead of the server's.
    next_url_base: str | None = None
    # Serve page N again as page N's own successor: the client gets a paging token twice.
    repeat_token_at_page: int | None = None
    # Single-call route `list_path/<id>`: the record sits at this key ("" = the body).
    single_item_key: str = "call"
    # Answer listings with HTTP 200 and this body instead of the calls (`{"error": ...}`).
    answer_instead: dict[str, Any] | None = None
    # The same with these bytes as they are: JSON Python would not write (a 5,000-digit
    # integer, nesting 2,000 deep) or pages too large to build as objects.
    answer_bytes_instead: bytes | None = None
    # Answer every listing with all the calls, whatever window it asks: an API that drops
    # (or misreads) the time filter.
    ignores_window: bool = False

    calls: dict[str, tuple[datetime, dict[str, Any]]] = field(default_factory=dict)
    recordings: dict[str, Recording] = field(default_factory=dict)
    # Indirect downloads: JSON answers that say where the audio is, and redirects to it.
    pointers: dict[str, Pointer] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    failures: dict[int, Failure] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    tokens_issued: dict[str, int] = field(default_factory=dict)
    # Where the server listens, for building recording URLs (set by the test once it runs).
    base_url: str = ""
    # Random faults on listings and recordings alike.
    chaos: Chaos | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)
    _anonymous: int = 0

    # -- scripting -------------------------------------------------------------------------

    def add_call(self, record: dict[str, Any], at: datetime, key: str | None = None) -> None:
        """Serve ``record`` for windows that contain ``at`` (replacing one with the same key)."""
        with self.lock:
            if key is None:
                call_id = record.get("call_id", record.get("id"))
                if call_id is None:
                    self._anonymous += 1
                    call_id = f"anonymous-{self._anonymous}"
                key = str(call_id)
            self.calls[key] = (at, record)

    def update_call(self, key: str, **changes: Any) -> None:
        with self.lock:
            at, record = self.calls[key]
            self.calls[key] = (at, {**record, **changes})

    def add_recording(
        self,
        path: str,
        body: bytes | Path,
        *,
        content_type: str = "audio/mpeg",
        require_auth: bool = True,
        required_query: dict[str, str] | None = None,
    ) -> str:
        """Serve ``body`` at ``path``; returns the path for building a ``recording_url``."""
        with self.lock:
            self.recordings[path] = Recording(
                body, content_type, require_auth, dict(required_query or {})
            )
        return path

    def add_pointer(self, path: str, body: Any, **options: Any) -> Pointer:
        """Answer ``path`` (authorised) with the JSON ``body`` (or ``body()``, per request)."""
        pointer = Pointer(body, **options)
        with self.lock:
            self.pointers[path] = pointer
        return pointer

    def add_redirect(self, path: str, location: str) -> None:
        """Answer ``path`` (authorised) with a 302 to ``location``, once: a one-time token."""
        with self.lock:
            self.redirects[path] = location

    def fail_page(
        self, page: int, status: int = 500, *, times: int | None = 1, retry_after: str | None = None
    ) -> None:
        """Answer listing page ``page`` (from 1) with ``status``, ``times`` times (None: always)."""
        with self.lock:
            self.failures[page] = Failure(status, times, retry_after)

    def clear_failures(self) -> None:
        with self.lock:
            self.failures.clear()

    def list_requests(self) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == self.list_path]

    # -- answering -------------------------------------------------------------------------

    def authorised(self, headers: dict[str, str]) -> bool:
        if self.auth is None:
            return True
        kind = self.auth[0]
        lowered = {name.lower(): value for name, value in headers.items()}
        if kind == "bearer":
            return lowered.get("authorization") == f"Bearer {self.auth[1]}"
        if kind == "basic":
            pair = f"{self.auth[1]}:{self.auth[2]}".encode()
            return lowered.get("authorization") == "Basic " + base64.b64encode(pair).decode()
        if kind == "api_key":
            return lowered.get(self.auth[1].lower()) == self.auth[2]
        if kind == "issuer":
            assert self.issuer is not None
            header = lowered.get("authorization", "")
            return header.startswith("Bearer ") and self.issuer.accepts(header[len("Bearer ") :])
        if kind == "oauth":
            token = lowered.get("authorization", "").removeprefix("Bearer ")
            with self.lock:
                uses = self.tokens_issued.get(token)
                if uses is None or (self.token_uses is not None and uses >= self.token_uses):
                    return False
                self.tokens_issued[token] = uses + 1
            return True
        raise AssertionError(f"unknown auth kind {kind}")

    def parse_time(self, value: str) -> datetime:
        if "%" in self.time_format:
            parsed = datetime.strptime(value, self.time_format)  # noqa: DTZ007
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=ZoneInfo(self.time_zone))
            return parsed.astimezone(UTC)
        if self.time_format == "iso8601":
            if self.iso_z_only and not value.endswith("Z"):
                raise ValueError(f"{value!r}: times must be UTC written with a Z suffix")
            return datetime.fromisoformat(value).astimezone(UTC)
        number = int(value)
        return datetime.fromtimestamp(
            number / 1000 if self.time_format == "unix_ms" else number, tz=UTC
        )

    def in_window(self, at: datetime, start: datetime, end: datetime | None) -> bool:
        after_start = at > start if self.bounds == "exclusive" else at >= start
        if end is None:
            return after_start
        before_end = at <= end if self.bounds == "inclusive" else at < end
        return after_start and before_end

    def page_of(self, query: dict[str, str]) -> tuple[int, int]:
        """(page number from 1, offset) of a listing request."""
        if self.paging == "token" and self.token_param in query:
            offset = int(query[self.token_param].removeprefix(self.token_prefix))
        elif (self.paging == "next_url" and "cursor" in query) or (
            self.paging == "link_header" and "cursor" in query
        ):
            offset = int(query["cursor"])
        elif self.paging == "page_number" and self.page_param in query:
            offset = (int(query[self.page_param]) - self.first_page) * self.size(query)
        elif self.paging == "offset" and self.offset_param in query:
            offset = int(query[self.offset_param])
        else:
            offset = 0
        return offset // self.size(query) + 1, offset

    def size(self, query: dict[str, str]) -> int:
        if self.page_size_param and self.page_size_param in query:
            return int(query[self.page_size_param])
        return self.page_size

    def listing(self, query: dict[str, str], base_url: str) -> tuple[int, Any, dict[str, str]]:
        """Status, body and extra headers of a listing request."""
        with self.lock:
            page, offset = self.page_of(query)
            failure = self.failures.get(page)
            if failure is not None and failure.times != 0:
                if failure.times is not None:
                    failure.times -= 1
                retry_after = {"Retry-After": failure.retry_after} if failure.retry_after else {}
                return failure.status, {"error": f"injected failure on page {page}"}, retry_after
            if self.answer_instead is not None:
                return 200, self.answer_instead, {}
            try:
                start, end = self.window_of(query)
            except (KeyError, ValueError) as exc:
                return 400, {"error": f"bad window: {exc}"}, {}
            matching = sorted(
                (
                    (at, key, record)
                    for key, (at, record) in self.calls.items()
                    if self.ignores_window or self.in_window(at, start, end)
                ),
                key=lambda item: (item[0], item[1]),
            )
            if self.row_cap is not None:
                matching = matching[: self.row_cap]
            size = self.size(query)
            items = [record for _at, _key, record in matching[offset : offset + size]]
            more = offset + size < len(matching)
            next_offset = offset + size
            if self.repeat_token_at_page is not None and page >= self.repeat_token_at_page:
                more, next_offset = True, offset
        body: dict[str, Any] = {}
        if self.items_path:
            _put(body, self.items_path, items)
        if self.paging == "token":
            following_token = more or self.token_on_last_page
            _put(
                body,
                self.token_path,
                f"{self.token_prefix}{next_offset}" if following_token else None,
            )
        if self.last_page_path:
            _put(body, self.last_page_path, not more)
        if self.total_pages_path:
            _put(body, self.total_pages_path, -(-len(matching) // size))
        headers: dict[str, str] = {}
        following = {k: v for k, v in query.items() if k != "cursor"}
        following["cursor"] = str(next_offset)
        link = f"{self.next_url_base or base_url}{self.list_path}?{urlencode(following)}"
        if self.paging == "next_url":
            _put(body, self.next_url_path, link if more else None)
        elif self.paging == "link_header" and more:
            # RFC 8288, as GitHub-style APIs send it: several links, "next" among them.
            headers["Link"] = f'<{base_url}{self.list_path}>; rel="first", <{link}>; rel="next"'
        return 200, (body if self.items_path else items), headers

    def window_of(self, query: dict[str, str]) -> tuple[datetime, datetime | None]:
        if self.window_reader is not None:
            start, end = self.window_reader(query)
        else:
            start = query[self.start_param]
            end = query[self.end_param] if self.end_param else None
        return self.parse_time(start), self.parse_time(end) if end is not None else None

    def single_call(self, key: str) -> tuple[int, Any]:
        with self.lock:
            found = self.calls.get(key)
        if found is None:
            return 404, {"error": "no such call"}
        record = found[1]
        return 200, {self.single_item_key: record} if self.single_item_key else record


class FakeProviderHandler(QuietHandler):
    server: Any

    def do_GET(self) -> None:
        api: FakeCallLog = self.server.state
        parts = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        headers = dict(self.headers.items())
        with api.lock:
            api.requests.append(
                {"path": parts.path, "query": query, "raw_query": parts.query, "headers": headers}
            )
        if api.chaos is not None and (mishap := api.chaos.pick()) is not None:
            self._mishap(mishap[0])
            return
        recording = api.recordings.get(parts.path)
        if recording is not None:
            self._recording(api, recording, query, headers)
            return
        if not api.authorised(headers):
            self._json(401, {"error": "unauthorised"})
            return
        pointer = api.pointers.get(parts.path)
        if pointer is not None:
            self._pointer(api, pointer)
            return
        with api.lock:
            location = api.redirects.pop(parts.path, None)
        if location is not None:
            self._send(302, b"", {"Location": location})
            return
        host = self.headers.get("Host", "")
        if parts.path == api.list_path and api.redirect_listing_to:
            self.send_response(302)
            self.send_header("Location", api.redirect_listing_to)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts.path == api.list_path and api.answer_bytes_instead is not None:
            self._send(200, api.answer_bytes_instead)
            return
        if parts.path == api.list_path:
            status, body, extra = api.listing(query, f"http://{host}")
            self._json(status, body, extra)
            return
        prefix = api.list_path.rstrip("/") + "/"
        if parts.path.startswith(prefix):
            status, body = api.single_call(parts.path.removeprefix(prefix))
            self._json(status, body)
            return
        self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        api: FakeCallLog = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[-1] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        with api.lock:
            api.requests.append({"path": self.path, "form": form, "headers": dict(self.headers)})
        if self.path == "/oauth/token" and api.issuer is not None:
            status, answer = api.issuer.answer(form, dict(self.headers.items()))
            self._json(status, answer)
            return
        if self.path != "/oauth/token" or api.auth is None or api.auth[0] != "oauth":
            self._json(404, {"error": "not found"})
            return
        pair = f"{api.auth[1]}:{api.auth[2]}".encode()
        expected = "Basic " + base64.b64encode(pair).decode()
        if self.headers.get("Authorization") != expected:
            self._json(401, {"error": "invalid_client"})
            return
        if form.get("grant_type") != "client_credentials":
            self._json(400, {"error": "unsupported_grant_type"})
            return
        with api.lock:
            token = f"access-{len(api.tokens_issued) + 1}"
            api.tokens_issued[token] = 0
        self._json(200, {"access_token": token, "token_type": "bearer", "expires_in": 3600})

    def _recording(
        self, api: FakeCallLog, recording: Recording, query: dict[str, str], headers: dict[str, str]
    ) -> None:
        if recording.require_auth and not api.authorised(headers):
            self._json(401, {"error": "unauthorised"})
            return
        if any(query.get(name) != value for name, value in recording.required_query.items()):
            self._json(403, {"error": "bad signature"})
            return
        with api.lock:
            failure = recording.failures.popleft() if recording.failures else None
            if failure is None:
                recording.served += 1
        if failure is not None:
            self._json(failure, {"error": f"scripted HTTP {failure}"}, {"Retry-After": "1"})
            return
        self.send_response(200)
        self.send_header("Content-Type", recording.content_type)
        if isinstance(recording.body, Path):
            self.send_header("Content-Length", str(recording.body.stat().st_size))
            self.end_headers()
            with recording.body.open("rb") as audio:
                shutil.copyfileobj(audio, self.wfile, 1 << 20)
            return
        self.send_header("Content-Length", str(len(recording.body)))
        self.end_headers()
        self.wfile.write(recording.body)

    def _pointer(self, api: FakeCallLog, pointer: Pointer) -> None:
        if pointer.delay_seconds:
            time.sleep(pointer.delay_seconds)
        with api.lock:
            failure = pointer.failures.popleft() if pointer.failures else None
            if failure is None:
                pointer.served += 1
        if failure is not None:
            self._json(failure, {"error": f"scripted HTTP {failure}"})
        elif pointer.raw is not None:
            self._send(200, pointer.raw)
        else:
            self._json(200, pointer.body() if callable(pointer.body) else pointer.body)

    def _mishap(self, mishap: str) -> None:
        if mishap == "drop":
            # SO_LINGER 0 turns close() into a TCP RST: the client sees a reset, no answer.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif mishap == "rate_limited":
            self._json(429, {"error": "slow down"}, {"Retry-After": "1"})
        else:
            self._json(503, {"error": "unavailable"})

    def _json(self, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), extra)

    def _send(self, status: int, payload: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)


def serve(api: FakeCallLog) -> LocalHTTPServer:
    """A server playing ``api``; use it as a context manager."""
    return LocalHTTPServer(FakeProviderHandler, api)
