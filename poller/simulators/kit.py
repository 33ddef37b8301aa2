"""The simulator kit: what every vendor simulator repeats, written once.

A vendor simulator built on it is a route table and its record shapes. The kit gives:

- :class:`VendorApi`: routes (method and path pattern to a handler), the requests it saw
  (:meth:`VendorApi.count`), auth checked before any route answers, and scripted failures
  (:meth:`VendorApi.fail`): a status (429 with or without ``Retry-After``, 5xx), a timeout
  (no answer for a while), a malformed body, a redirect, a dropped connection;
- auth checks: :class:`BearerAuth`, :class:`BasicAuth`, :class:`HeaderAuth` (an API-key
  header, ``Token token=...``, ``key:secret``) and :class:`OAuthTokens`, a token endpoint
  issuing short-lived tokens that the API then accepts until they expire;
- paging: :func:`page_of` (page numbers, with the page count), :func:`cursor_page` (an opaque
  cursor) and :func:`url_with` (a next-page URL carrying every parameter);
- :class:`CostBudget`: a rate limit counted in cost per window, as vendors publish them;
- :class:`MediaHost`: recordings served from their own host, by plain or signed, expiring
  URLs, refusing any credentials sent along (as a presigned storage URL does);
- :func:`serve`: each on its own 127.0.0.1 port (:mod:`poller.simulators.http_server`).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

from poller.simulators.http_server import LocalHTTPServer, QuietHandler

T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    """One request as a handler sees it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # names lower-cased
    body: bytes = b""

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def form(self) -> dict[str, str]:
        return {key: values[-1] for key, values in parse_qs(self.body.decode()).items()}


@dataclass
class Answer:
    """What the simulator sends back; ``drop`` closes the connection without an answer."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"
    delay: float = 0.0
    drop: bool = False

    @classmethod
    def json(cls, value: Any, status: int = 200, **headers: str) -> Answer:
        return cls(status, json.dumps(value).encode(), dict(headers))


Handler = Callable[[Request, "re.Match[str]"], Answer]
FailureKind = Literal["status", "timeout", "malformed", "redirect", "drop"]


@dataclass
class Failure:
    """A scripted failure of the next ``times`` matching requests (``None``: every one)."""

    kind: FailureKind
    status: int = 500
    retry_after: int | None = None
    seconds: float = 0.0
    location: str = ""
    times: int | None = 1
    path: str = ""  # only requests whose path starts with this


class AuthCheck(Protocol):
    def accepts(self, request: Request) -> bool: ...


@dataclass
class BearerAuth:
    tokens: set[str]

    def accepts(self, request: Request) -> bool:
        return request.header("authorization") in {f"Bearer {token}" for token in self.tokens}


@dataclass
class BasicAuth:
    username: str
    password: str

    def accepts(self, request: Request) -> bool:
        return request.header("authorization") == basic_header(self.username, self.password)


@dataclass
class HeaderAuth:
    """A fixed header: ``X-Api-Key: k``, ``Authorization: Token token=k`` or ``k:s``."""

    name: str
    value: str

    def accepts(self, request: Request) -> bool:
        return request.header(self.name) == self.value


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass
class OAuthTokens:
    """An OAuth 2 client-credentials token endpoint and the bearer tokens it issued.

    Tokens live ``lifetime`` seconds on ``clock``; :meth:`expire_all` ends them early, as a
    vendor's revocation does. Client credentials come in HTTP Basic or in the form body.
    """

    client_id: str
    client_secret: str
    lifetime: int = 3600
    clock: Callable[[], float] = time.time
    issued: dict[str, float] = field(default_factory=dict)
    minted: int = 0

    def token_endpoint(self, request: Request, _match: re.Match[str]) -> Answer:
        form = request.form()
        sent = request.header("authorization") == basic_header(self.client_id, self.client_secret)
        in_form = (form.get("client_id"), form.get("client_secret"))
        if not sent and in_form != (self.client_id, self.client_secret):
            return Answer.json({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "client_credentials":
            return Answer.json({"error": "unsupported_grant_type"}, 400)
        token = secrets.token_urlsafe(24)
        self.issued[token] = self.clock() + self.lifetime
        self.minted += 1
        body = {"access_token": token, "token_type": "bearer", "expires_in": self.lifetime}
        return Answer.json(body)

    def accepts(self, request: Request) -> bool:
        sent = (request.header("authorization") or "").removeprefix("Bearer ")
        expiry = self.issued.get(sent)
        return expiry is not None and expiry > self.clock()

    def expire_all(self) -> None:
        self.issued.clear()


class VendorApi:
    """A route table with the behaviour every vendor simulator shares (see the module)."""

    def __init__(self, auth: AuthCheck | None = None, *, clock: Callable[[], float] = time.time):
        self.auth = auth
        self.clock = clock
        self.routes: list[tuple[str, re.Pattern[str], Handler, bool]] = []
        self.requests: list[Request] = []
        self.statuses: list[int] = []
        self.failures: deque[Failure] = deque()
        self.lock = threading.RLock()
        self.url = ""  # set once served
        self._headers = threading.local()  # headers for the answer of this thread's request

    def route(self, method: str, pattern: str, handler: Handler, *, public: bool = False) -> None:
        """Answer ``method`` on paths matching ``pattern`` (whole path); ``public``: no auth."""
        self.routes.append((method, re.compile(pattern), handler, public))

    def fail(self, kind: FailureKind = "status", *, times: int | None = 1, **how: Any) -> None:
        with self.lock:
            self.failures.append(Failure(kind, times=times, **how))

    def count(self, path_prefix: str = "", method: str | None = None) -> int:
        with self.lock:
            return sum(
                1
                for request in self.requests
                if request.path.startswith(path_prefix) and method in (None, request.method)
            )

    def error(self, status: int, message: str) -> Answer:
        """The vendor's error body; a simulator overrides it with the vendor's shape."""
        return Answer.json({"error": message}, status)

    def unauthorised(self, request: Request) -> Answer:
        return self.error(401, "unauthorized")

    def before_route(self, request: Request) -> Answer | None:
        """A vendor's own check after auth and scripted failures (its rate limit), or None."""
        return None

    def add_headers(self, **headers: str) -> None:
        """Headers for the answer to the request being handled (rate-limit headers, say)."""
        self._headers.pending.update(headers)

    def answer(self, request: Request) -> Answer:
        self._headers.pending = {}
        answer = self._answer(request)
        answer.headers.update(self._headers.pending)
        return answer

    def _answer(self, request: Request) -> Answer:
        with self.lock:
            self.requests.append(request)
        for method, pattern, handler, public in self.routes:
            match = pattern.fullmatch(request.path)
            if match is None or method != request.method:
                continue
            if not public and self.auth is not None and not self.auth.accepts(request):
                return self.unauthorised(request)
            scripted = self._scripted(request)
            if scripted is not None:
                return scripted
            return self.before_route(request) or handler(request, match)
        return self.error(404, "not found")

    def _scripted(self, request: Request) -> Answer | None:
        with self.lock:
            failure = next((f for f in self.failures if request.path.startswith(f.path)), None)
            if failure is None:
                return None
            if failure.times is not None:
                failure.times -= 1
                if failure.times <= 0:
                    self.failures.remove(failure)
        if failure.kind == "timeout":
            return Answer(delay=failure.seconds, drop=True)
        if failure.kind == "drop":
            return Answer(drop=True)
        if failure.kind == "malformed":
            return Answer(200, b'{"data": [{"id": 1,')
        if failure.kind == "redirect":
            return Answer(302, headers={"Location": failure.location})
        answer = self.error(failure.status, f"HTTP {failure.status}")
        if failure.retry_after is not None:
            answer.headers["Retry-After"] = str(failure.retry_after)
        return answer


class KitHandler(QuietHandler):
    server: Any
    # Headers and body go out as separate writes; without this, Nagle's algorithm and the
    # client's delayed ACK hold each answer back ~40 ms.
    disable_nagle_algorithm = True

    def _serve(self) -> None:
        api: VendorApi = self.server.state
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        request = Request(
            self.command,
            parts.path,
            parse_qs(parts.query, keep_blank_values=True),
            {name.lower(): value for name, value in self.headers.items()},
            self.rfile.read(length) if length else b"",
        )
        answer = api.answer(request)
        if answer.delay:
            time.sleep(answer.delay)
        if answer.drop:
            self.close_connection = True
            return
        with api.lock:
            api.statuses.append(answer.status)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


@contextmanager
def serve(api: VendorApi) -> Iterator[VendorApi]:
    """``api`` on its own 127.0.0.1 port until the block ends (its ``url`` set meanwhile)."""
    with LocalHTTPServer(KitHandler, api) as server:
        api.url = server.url
        yield api


# -- paging --------------------------------------------------------------------------------


def page_of(items: Sequence[T], page: int, per_page: int) -> tuple[list[T], int]:
    """Page ``page`` (from 1) of ``items`` and the number of pages (at least 1)."""
    first = (page - 1) * per_page
    return list(items[first : first + per_page]), max(1, -(-len(items) // per_page))


def cursor_page(items: Sequence[T], cursor: str | None, size: int) -> tuple[list[T], str | None]:
    """The page after ``cursor`` (None: the first) and the next page's opaque cursor."""
    offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
    following = offset + size
    token = base64.urlsafe_b64encode(str(following).encode()).decode()
    return list(items[offset:following]), token if following < len(items) else None


COMPARISONS: dict[str, Callable[[datetime, datetime], bool]] = {
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}


def bracket_filters(request: Request, fields: Sequence[str]) -> dict[tuple[str, str], datetime]:
    """Time filters written ``field[op]=ISO 8601`` (op one of :data:`COMPARISONS`), by (field,
    op); raises ``ValueError`` for a time that is not ISO 8601 with a zone."""
    found = {}
    for name in fields:
        for op in COMPARISONS:
            value = request.param(f"{name}[{op}]")
            if value is not None:
                at = datetime.fromisoformat(value)
                if at.tzinfo is None:
                    raise ValueError(f"{name}[{op}] has no zone")
                found[name, op] = at
    return found


def passes(filters: dict[tuple[str, str], datetime], times: dict[str, datetime]) -> bool:
    """Whether a record with these field ``times`` passes every one of ``filters``."""
    return all(COMPARISONS[op](times[name], at) for (name, op), at in filters.items())


def url_with(base: str, path: str, query: dict[str, list[str]], **changes: str) -> str:
    """An absolute next-page URL carrying every parameter of the request, with ``changes``."""
    params = {key: values[-1] for key, values in query.items()} | changes
    return f"{base}{path}?{urlencode(params)}"


@dataclass
class CostBudget:
    """``limit`` cost per ``window`` seconds (fixed windows on ``clock``)."""

    limit: int
    window: int = 60
    clock: Callable[[], float] = time.time
    _spent: dict[int, int] = field(default_factory=dict)

    def charge(self, cost: int) -> tuple[bool, int, int]:
        """(within the budget, what remains, Unix time the window ends) after spending ``cost``."""
        current = int(self.clock() // self.window)
        spent = self._spent.get(current, 0) + cost
        self._spent = {current: spent}
        return spent <= self.limit, max(0, self.limit - spent), (current + 1) * self.window


# -- the media host --------------------------------------------------------------------------


class MediaHost(VendorApi):
    """Recordings at ``/media/<key>``: plain, or signed and expiring (``?signature=&expires=``).

    With ``refuse_credentials`` a request carrying ``Authorization`` is refused, as a presigned
    storage URL refuses a second auth mechanism: proof that no credential reached this host.
    """

    def __init__(
        self, *, refuse_credentials: bool = True, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(clock=clock)
        self.refuse_credentials = refuse_credentials
        self.objects: dict[str, tuple[bytes, str, bool]] = {}
        self.grants: dict[str, tuple[str, float]] = {}
        self.route("GET", r"/media/(?P<key>[^/]+)", self._get, public=True)

    def put(
        self,
        key: str,
        body: bytes,
        content_type: str = "application/octet-stream",
        *,
        signed_only: bool = False,
    ) -> None:
        """Serve ``body`` at ``/media/<key>``; ``signed_only``: only through a signed URL."""
        with self.lock:
            self.objects[key] = (body, content_type, signed_only)

    def plain_url(self, key: str) -> str:
        return f"{self.url}/media/{key}"

    def signed_url(self, key: str, ttl: int = 3600) -> str:
        """A URL of ``key`` that opens it for ``ttl`` seconds."""
        signature = secrets.token_hex(16)
        expires = self.clock() + ttl
        with self.lock:
            self.grants[signature] = (key, expires)
        return (
            f"{self.plain_url(key)}?{urlencode({'expires': int(expires), 'signature': signature})}"
        )

    def expire_all(self) -> None:
        with self.lock:
            self.grants.clear()

    def _get(self, request: Request, match: re.Match[str]) -> Answer:
        key = match["key"]
        if self.refuse_credentials and request.header("authorization"):
            return Answer(400, b"credentials sent to a media host", content_type="text/plain")
        signature = request.param("signature")
        with self.lock:
            grant = self.grants.get(signature or "")
            stored = self.objects.get(key)
        if signature is not None and (grant is None or grant[0] != key):
            return Answer(403, b"signature does not match", content_type="text/plain")
        if grant is not None and grant[1] < self.clock():
            return Answer(403, b"request has expired", content_type="text/plain")
        if stored is None:
            return Answer(404, b"no such object", content_type="text/plain")
        if stored[2] and grant is None:
            return Answer(403, b"a signed URL is needed", content_type="text/plain")
        return Answer(200, stored[0], content_type=stored[1])
