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
  URLs, refusing any credentials sent along (as a presigned storage URL does), and
  :class:`LinkHost`: a vendor's web links that redirect to them;
- refusals: a handler raises :class:`Refused` (the vendor's error body follows), a route lists
  its query parameters and refuses any other (:attr:`VendorApi.unknown_parameter`),
  :meth:`VendorApi.spend` answers 429 past a budget with the vendor's headers;
- parameters: :func:`int_param`, :func:`strict_time` (a time in exactly the vendor's form),
  :func:`time_range` (``A..B``), :class:`Fiql` (``field=op=value;...`` filters);
- :class:`Simulator`: the API and its other hosts, each on its own 127.0.0.1 port
  (:func:`serve`, :mod:`poller.simulators.http_server`).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal, Protocol, Self, TypeVar
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

    def media_type(self) -> str:
        """The body's ``Content-Type`` without its parameters (``""`` when not sent)."""
        return (self.header("content-type") or "").split(";")[0].strip()


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


class Refused(Exception):
    """Raised by a handler (or a helper it calls): answer ``status`` with the vendor's error
    body carrying ``message``."""

    def __init__(self, status: int, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter  # the query parameter refused, for a body that names it


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
    vendor's revocation does. Client credentials come in HTTP Basic or in the form body
    (``basic_only``: HTTP Basic alone); ``form_only``: a body not sent as a form is refused.
    A vendor's own answer shape overrides :meth:`body`.
    """

    client_id: str
    client_secret: str
    lifetime: int = 3600
    clock: Callable[[], float] = time.time
    issued: dict[str, float] = field(default_factory=dict)
    minted: int = 0
    basic_only: bool = False
    form_only: bool = False

    def token_endpoint(self, request: Request, _match: re.Match[str]) -> Answer:
        form = request.form()
        sent = request.header("authorization") == basic_header(self.client_id, self.client_secret)
        in_form = (form.get("client_id"), form.get("client_secret"))
        if not sent and (self.basic_only or in_form != (self.client_id, self.client_secret)):
            return Answer.json({"error": "invalid_client"}, 401)
        if self.form_only and request.media_type() != "application/x-www-form-urlencoded":
            return Answer.json({"error": "invalid_request"}, 400)
        if form.get("grant_type") != "client_credentials":
            return Answer.json({"error": "unsupported_grant_type"}, 400)
        token = secrets.token_urlsafe(24)
        self.issued[token] = self.clock() + self.lifetime
        self.minted += 1
        return Answer.json(self.body(token))

    def body(self, token: str) -> dict[str, Any]:
        return {"access_token": token, "token_type": "bearer", "expires_in": self.lifetime}

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
        self.hosts: list[VendorApi] = []  # the vendor's other hosts, served alongside
        self._headers = threading.local()  # headers for the answer of this thread's request

    # The status of a query parameter the vendor refuses, and the message (``{}``: the
    # parameter) of one a route does not list.
    invalid_status: int = 400
    unknown_parameter: str = "unknown parameter {}"

    def route(
        self,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        public: bool = False,
        params: set[str] | None = None,
    ) -> None:
        """Answer ``method`` on paths matching ``pattern`` (whole path); ``public``: no auth;
        ``params``: the query parameters it takes, any other refused (after auth, scripted
        failures and :meth:`before_route`, as the vendor's handler would)."""
        if params is not None:
            handler = self._only(params, handler)
        self.routes.append((method, re.compile(pattern), handler, public))

    def _only(self, params: set[str], handler: Handler) -> Handler:
        def checked(request: Request, match: re.Match[str]) -> Answer:
            unknown = sorted(set(request.query) - params)
            if unknown:
                message = self.unknown_parameter.format(unknown[0])
                raise Refused(self.invalid_status, message, parameter=unknown[0])
            return handler(request, match)

        return checked

    def paging(
        self, request: Request, size: str, default: int, maximum: int, page: str = "page"
    ) -> tuple[int, int]:
        """(page size, page number from 1) from the query: ``size`` 1 to ``maximum``
        (``default`` when absent), else refused with :attr:`invalid_status`."""
        try:
            return int_param(request, size, default, 1, maximum), int_param(request, page, 1)
        except ValueError:
            message = f"{size} is 1 to {maximum} and {page} at least 1"
            raise Refused(self.invalid_status, message) from None

    def requests_to(self, path: str) -> list[Request]:
        """The requests so far to ``path`` (the whole path)."""
        with self.lock:
            return [request for request in self.requests if request.path == path]

    def spend(
        self,
        *budgets: CostBudget,
        cost: int = 1,
        message: str = "rate limit exceeded",
        retry_after: bool = False,
        headers: tuple[str, str, str] | None = None,
        headers_on: Literal["every", "refusal"] = "every",
    ) -> Answer | None:
        """Charge ``cost`` to each budget; past any, the 429 answer (``retry_after``: with the
        seconds to the window's end). ``headers`` names the limit, remaining and reset (a Unix
        time) headers of the first budget, sent on every answer or only on the 429."""
        with self.lock:
            charged = [budget.charge(cost) for budget in budgets]
        _, remaining, reset = charged[0]
        within = all(ok for ok, _, _ in charged)
        if headers is not None and (headers_on == "every" or not within):
            values = (budgets[0].limit, remaining, reset)
            self.add_headers(
                **{name: str(value) for name, value in zip(headers, values, strict=True)}
            )
        if within:
            return None
        answer = self.error(429, message)
        if retry_after:
            answer.headers["Retry-After"] = str(max(1, int(reset - self.clock())))
        return answer

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

    def answer_refused(self, request: Request, refusal: Refused) -> Answer:
        """The answer to a handler's :class:`Refused`; a vendor whose error body says more
        (the parameter and its value) overrides it."""
        return self.error(refusal.status, refusal.message)

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
            try:
                return self.before_route(request) or handler(request, match)
            except Refused as refused:
                return self.answer_refused(request, refused)
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


class Simulator(ExitStack):
    """A vendor's API and its other hosts (:attr:`VendorApi.hosts`), each on its own 127.0.0.1
    port while used as a context manager."""

    def __init__(self, api: VendorApi) -> None:
        super().__init__()
        self.api = api

    def __enter__(self) -> Self:
        super().__enter__()
        for host in (self.api, *self.api.hosts):
            self.enter_context(serve(host))
        return self

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def extra_hosts(self) -> list[str]:
        """``host:port`` of each host beyond the API, as ``download_hosts`` lists them."""
        return [host.url.removeprefix("http://") for host in self.api.hosts]

    @property
    def media_host(self) -> str:
        """``host:port`` of the first host beyond the API (the recordings' host)."""
        return self.extra_hosts[0]


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


def url_with(base: str, path: str, query: dict[str, list[str]], **changes: str | None) -> str:
    """An absolute next-page URL carrying every parameter of the request, with ``changes``
    (``None``: the parameter left out)."""
    params = {key: values[-1] for key, values in query.items()} | changes
    kept = {key: value for key, value in params.items() if value is not None}
    return f"{base}{path}?{urlencode(kept)}"


# -- parameters ------------------------------------------------------------------------------


def zulu(at: datetime, timespec: str = "milliseconds") -> str:
    """A time as many vendors write it: UTC, ``Z`` (milliseconds unless ``timespec`` says)."""
    return at.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def int_param(
    request: Request, name: str, default: int, low: int = 1, high: int | None = None
) -> int:
    """Query parameter ``name`` as an integer from ``low`` to ``high`` (``default`` when
    absent); raises ``ValueError`` for anything else."""
    text = request.param(name)
    value = default if text is None else int(text)
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} is {low} to {high if high is not None else 'any'}")
    return value


def strict_time(text: str, pattern: re.Pattern[str] | str, zone: tzinfo | None = None) -> datetime:
    """``text`` as an aware time, only if it is written exactly as ``pattern`` (a regular
    expression, matched whole) allows; a time without a zone is in ``zone``, and refused
    without one. Raises ``ValueError``."""
    if not re.fullmatch(pattern, text):
        raise ValueError(f"{text!r} is not a time written as the API takes it")
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        if zone is None:
            raise ValueError(f"{text!r} has a time without a zone")
        at = at.replace(tzinfo=zone)
    return at


def time_range(
    value: str | None, *, low: str = "neginf", high: str = "inf"
) -> tuple[datetime, datetime]:
    """A range ``A..B`` of zoned ISO 8601 times, ends inclusive; ``low`` or ``high`` for an
    open end, as is a missing ``value``. Raises ``ValueError``."""
    first, sep, last = (value or f"{low}..{high}").partition("..")
    if not sep:
        raise ValueError(f"a time filter is a range A..B, not {value!r}")
    ends = [
        EARLIEST if first == low else datetime.fromisoformat(first),
        LATEST if last == high else datetime.fromisoformat(last),
    ]
    if any(end.tzinfo is None for end in ends):
        raise ValueError(f"{value!r} has a time without a zone")
    return ends[0], ends[1]


FIQL_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "=gt=": lambda a, b: a > b,
    "=ge=": lambda a, b: a >= b,
    "=lt=": lambda a, b: a < b,
    "=le=": lambda a, b: a <= b,
}
_FIQL_COMPARISON = re.compile(r"(?P<field>[A-Za-z]+)(?P<op>==|!=|=gt=|=ge=|=lt=|=le=)(?P<value>.+)")


@dataclass
class Fiql:
    """A FIQL filter: AND terms (``;``), each a list of OR comparisons (``,`` in parentheses)."""

    terms: list[list[tuple[str, str, Any]]] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str, fields: Mapping[str, Callable[[str], Any]]) -> Fiql:
        """``fields``: each field the API filters on, with what reads its literal (raising
        ``ValueError`` for one the API refuses). Raises ``ValueError`` naming what is wrong."""
        terms = []
        for part in _fiql_split(text, ";"):
            grouped = part.startswith("(") and part.endswith(")")
            comparisons = []
            for alternative in _fiql_split(part[1:-1], ",") if grouped else [part]:
                match = _FIQL_COMPARISON.fullmatch(alternative)
                if match is None:
                    raise ValueError(f"cannot parse {alternative!r}")
                if match["field"] not in fields:
                    raise ValueError(f"unsupported filter field {match['field']}")
                value = fields[match["field"]](match["value"])
                comparisons.append((match["field"], match["op"], value))
            terms.append(comparisons)
        return cls(terms)

    def names(self) -> set[str]:
        return {name for term in self.terms for name, _, _ in term}

    def passes(self, values: Mapping[str, Any]) -> bool:
        """Whether an item with these field ``values`` (read as the literals are) passes."""
        return all(
            any(FIQL_OPERATORS[op](values[name], value) for name, op, value in term)
            for term in self.terms
        )


def _fiql_split(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator`` outside parentheses; raises on unbalanced ones."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            raise ValueError("unbalanced parentheses")
        if char == separator and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth != 0 or not current:
        raise ValueError("unbalanced parentheses or an empty term")
    return [*parts, current]


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


class LinkHost(VendorApi):
    """A vendor's web host of recording links (``pattern``) that redirect to the recording's
    signed URL on ``media`` (alive ``ttl`` seconds). A link carries an access key; it opens
    without credentials and refuses any sent along (400); a wrong key is 403."""

    def __init__(
        self,
        media: MediaHost,
        pattern: str,
        *,
        ttl: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self.media = media
        self.ttl = ttl
        self.links: dict[str, str] = {}  # access key -> media key
        self.route("GET", pattern, self._redirect, public=True)

    def link(self, path: str, media_key: str) -> str:
        """A new link at ``path`` (which ``pattern`` matches) to the media's ``media_key``."""
        access_key = secrets.token_hex(10)
        with self.lock:
            self.links[access_key] = media_key
        return f"{self.url}{path}?access_key={access_key}"

    def _redirect(self, request: Request, _match: re.Match[str]) -> Answer:
        if request.header("authorization"):
            return self.error(400, "credentials sent to a recording link")
        with self.lock:
            key = self.links.get(request.param("access_key") or "")
        if key is None:
            return self.error(403, "access key does not match")
        return Answer(302, headers={"Location": self.media.signed_url(key, self.ttl)})
