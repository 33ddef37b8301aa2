"""The provider base class: the one listing loop every adapter shares.

An adapter is a small subclass (vdirsyncer's ``storage/google.py`` over ``storage/dav.py``):
it names its settings model and its kind, and says

- how a window becomes the first listing request (:meth:`ProviderAdapter.first_request`),
- how pages follow each other (:meth:`ProviderAdapter.paginator`),
- where the records sit in a page (:meth:`ProviderAdapter.page_items`),
- how one record becomes a :class:`CallRecord` (:meth:`ProviderAdapter.map_record`),
- how a stored call becomes a download (:meth:`ProviderAdapter.resolve_download`),
- which credentials it sends (:meth:`ProviderAdapter.authenticator`) and to which hosts.

Everything else is written once here, over the guarded HTTP layer: timeouts and a total
deadline, a byte cap per page, redirects checked hop by hop, credentials kept to the provider's
own hosts, bounded retries honouring ``Retry-After``, the rate limiter, paging-loop detection
and the page limit, and turning every per-record failure into a :class:`MalformedRecordError`
with its position, so one bad record never stops a page.

A page is read by :mod:`~poller.adapters.providers.page_reader`: a record that does not decode
(a 5,000-digit integer, nesting 2,000 deep) is that record's failure, not the page's, and the
records reach :meth:`ProviderAdapter.listed_page` :data:`RECORDS_PER_CHUNK` at a time, so the
memory a poll takes does not grow with the records on a page.
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from poller import __version__
from poller.adapters.http import (
    Authenticator,
    HostRules,
    HttpError,
    HttpRefused,
    HttpTransient,
    HttpUnauthorized,
    NoAuth,
    RateLimiter,
    RetryPolicy,
)
from poller.adapters.http.paginators import (
    PageRequest,
    PageResponse,
    Paginator,
    PagingError,
    PagingLoop,
)
from poller.adapters.providers.page_reader import (
    PageRecords,
    TooManyRecords,
    UnreadableRecord,
    read_page,
)
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.domain.call_record import (
    MAX_ID_LENGTH,
    CallRecord,
    DownloadRequest,
    ProviderCapabilities,
    RateLimitHints,
    RecordingLocator,
    host_key,
)
from poller.domain.clock import utcnow
from poller.domain.paths import MISSING, dig, present
from poller.domain.raw_record import (
    check_call_time,
    clean_text,
    field_text,
    parse_duration_seconds,
    parse_time,
    raw_text,
    shown,
)
from poller.domain.redaction import redact_text
from poller.domain.urls import host_for_humans
from poller.domain.windows import Window
from poller.ports.provider import (
    ListedPage,
    MalformedRecordError,
    PageLimitExceeded,
    PagingLoopError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderRefused,
    RecordPosition,
    SourceDeletion,
    TransientProviderError,
)
from poller.ports.token_store import OAuthTokenStore
from poller.ports.webhooks import WebhookSubscriptions, WebhookVerifier

if TYPE_CHECKING:
    from poller.adapters.http.client import HttpClient, JsonPage

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ProviderSettingsBase)

# Records mapped and written together (one transaction each): what a poll holds at once.
RECORDS_PER_CHUNK = 1000
# Top-level keys whose value, beside a page without records, says the page failed.
ERROR_KEYS = ("error", "errors")
# Said on every JSON request: some APIs (CloudTalk) may refuse a GET that does not ask for JSON.
ACCEPT_JSON = {"Accept": "application/json"}


class RecordReader:
    """Reads one raw record's fields with the checks every adapter makes.

    Each failure is that record's :class:`MalformedRecordError`, carrying its position, its
    call id once known and its raw text; ``label`` names the field as the vendor calls it.
    """

    def __init__(self, raw: Mapping[str, Any], position: RecordPosition, now: datetime) -> None:
        self.raw = raw
        self.position = position
        self.now = now
        self.call_id: str | None = None

    def malformed(self, reason: str) -> MalformedRecordError:
        return MalformedRecordError(self.position, reason, self.call_id, raw=raw_text(self.raw))

    def call_id_from(self, value: Any, *, missing: str, name: str) -> str:
        """The record's id: present, and short enough for its column."""
        if isinstance(value, str) and "\x00" in value:
            # Dropping the NUL would make it another call's id (`a\0b` is not `ab`).
            raise self.malformed(f"{name} {shown(value)} holds a NUL character")
        text = field_text(value)
        if text is None:
            raise self.malformed(missing)
        if len(text) > MAX_ID_LENGTH:
            raise self.malformed(f"{name} longer than {MAX_ID_LENGTH} characters")
        self.call_id = text
        return text

    def time(self, value: Any, time_format: str, label: str) -> datetime | None:
        """An instant in ``time_format``, between 1970 and a day from now; ``None`` if absent."""
        if not present(value):
            return None
        try:
            return check_call_time(parse_time(value, time_format), self.now)
        except ValueError as exc:
            raise self.malformed(f"{label} {exc}") from None

    def duration(
        self,
        value: Any,
        unit: str = "seconds",
        *,
        started_at: datetime | None = None,
        ended_at: datetime | None = None,
    ) -> int | None:
        """Whole seconds from ``value``, or from the two instants when the vendor gives none."""
        if present(value):
            try:
                return parse_duration_seconds(value, unit)
            except ValueError as exc:
                raise self.malformed(f"duration {exc}") from None
        if started_at is not None and ended_at is not None and ended_at >= started_at:
            return round((ended_at - started_at).total_seconds())
        return None


class ProviderAdapter(ABC, Generic[S]):
    """A :class:`poller.ports.provider.ProviderPort` over HTTP and JSON; subclass per vendor."""

    kind: ClassVar[str]
    settings_model: ClassVar[type[ProviderSettingsBase]]
    # The pause after a 429 that names no Retry-After, if the vendor documents one.
    rate_limit_penalty_seconds: ClassVar[float] = 5.0
    # Top-level keys of the vendor's error answers: beside no records, the page failed.
    error_keys: ClassVar[tuple[str, ...]] = ERROR_KEYS
    # Headers every request to the vendor's API carries (a JSON:API media type, say); never
    # sent with a recording download.
    api_headers: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        settings: S,
        *,
        http: HttpClient | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        token_store: OAuthTokenStore | None = None,
    ) -> None:
        """``clock``, ``sleep`` and ``monotonic`` are the adapter's time: its rate limiters
        wait on them, and so does its retry policy unless ``retry`` is given. ``token_store``
        keeps OAuth tokens that must outlive the process (a rotating refresh token)."""
        base_url = settings.api_base_url
        if base_url is None:
            raise PermanentProviderError(f"{settings.config_key('base_url')}: required")
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.monotonic = monotonic
        self.base_url = base_url
        self.name = settings.name
        self.token_store = token_store
        self.auth = self.authenticator()
        self.hosts = self.host_rules()
        from poller.adapters.http.client import HttpClient, Limits

        self.http = http or HttpClient(
            limits=Limits(
                connect_timeout=settings.connect_timeout_seconds,
                read_timeout=settings.read_timeout_seconds,
                deadline=settings.deadline_seconds,
                max_body_bytes=settings.max_page_bytes,
                body_limit_key=settings.config_key("max_page_bytes"),
                deadline_key=settings.config_key("deadline_seconds"),
                max_retry_after=settings.max_retry_after_seconds,
                retry_after_key=settings.config_key("max_retry_after_seconds"),
                read_timeout_key=settings.config_key("read_timeout_seconds"),
                url_keys=settings.url_keys(),
            ),
            hosts=self.hosts,
            retry=retry or RetryPolicy(max_tries=settings.max_retries + 1, sleep=sleep),
            auth=self.auth,
            rate_limiter=RateLimiter(
                rate=settings.requests_per_minute,
                period=60.0,
                penalty=self.rate_limit_penalty_seconds,
                max_pause=settings.max_retry_after_seconds,
                max_pause_key=settings.config_key("max_retry_after_seconds"),
                name=f"provider {settings.name}",
                monotonic=monotonic,
                sleep=sleep,
                wall_clock=clock,
            ),
            user_agent=f"siro-poller/{__version__}",
        )
        bind = getattr(self.auth, "bind", None)
        if bind is not None:
            # OAuth tokens are minted through the same guarded client (token host included).
            bind(self.http)

    # -- what a subclass says -------------------------------------------------------------

    @abstractmethod
    def first_request(self, window: Window) -> PageRequest:
        """The request of the window's first page."""

    @abstractmethod
    def paginator(self) -> Paginator:
        """A fresh paginator for one listing."""

    @abstractmethod
    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        """One record as a call; raise :class:`MalformedRecordError` naming what is wrong."""

    @abstractmethod
    def resolve_download(self, call: RecordingLocator) -> DownloadRequest:
        """How to fetch the recording of a call whose recording is ready."""

    @property
    @abstractmethod
    def capabilities(self) -> ProviderCapabilities: ...

    def items_path(self) -> str | None:
        """Where a page's records sit; ``None``: the body is the list."""
        return None

    def items_label(self) -> str:
        """Where a page's records sit, as a failed page's error names it."""
        path = self.items_path()
        return repr(path) if path is not None else "the top level"

    def max_pages(self) -> int:
        """The most pages one window may take, whatever the provider's paging says."""
        return 10_000

    def page_items(self, body: Any, where: str) -> list[Any]:
        """The records of a page, at :meth:`items_path`, as a list (see :meth:`page_records`)."""
        items = self.page_records(body, where)
        return items if isinstance(items, list) else list(items)

    def page_records(self, body: Any, where: str) -> Sequence[Any]:
        """The records of a page, at :meth:`items_path`, as the page reader left them.

        A page without that key, with ``null`` there, or with no records beside an error
        (a key of :attr:`error_keys`) is an error rather than an empty page: an answer like
        ``{"error": "maintenance"}`` must not move the cursor past calls it did not list.
        """
        path = self.items_path()
        items = body if path is None else dig(body, path)
        label = self.items_label()
        if items is MISSING:
            # An answer without the calls (`{"error": "maintenance"}`) is no empty page.
            seen = sorted(str(name) for name in body)[:10] if isinstance(body, Mapping) else []
            raise PermanentProviderError(
                f"{where}: the response has nothing at {label}; its top-level keys: "
                f"{', '.join(clean_text(name)[:40] for name in seen) or 'none'}"
            )
        if items is None:
            raise PermanentProviderError(
                f"{where}: {label} is null in the response, not a list of records"
            )
        if not isinstance(items, list | PageRecords):
            raise PermanentProviderError(f"{where}: {label} is not a list in the response")
        if not items and isinstance(body, Mapping):
            error = next((body[name] for name in self.error_keys if present(body.get(name))), None)
            if error is not None:
                raise PermanentProviderError(
                    f"{where}: the response has no records and an error: {shown(error, limit=200)}"
                )
        return items

    def reads_records_in_chunks(self) -> bool:
        """Whether a page's records go to :meth:`listed_page` a chunk at a time. An adapter
        that reshapes a page's records (its own page_items or listed_page) gets them whole."""
        kind = type(self)
        return (
            kind.page_items is ProviderAdapter.page_items
            and kind.listed_page is ProviderAdapter.listed_page
        )

    def authenticator(self) -> Authenticator:
        return NoAuth()

    def credential_hosts(self) -> set[str]:
        """Hosts that receive the provider's credentials: its API host and the vendor's own."""
        return {host_key(self.base_url), *self.settings.vendor_hosts}

    def host_rules(self) -> HostRules:
        settings = self.settings
        configured = {host_key(self.base_url)} if settings.base_url else set()
        exact_downloads = {entry for entry in settings.download_hosts if "*" not in entry}
        return HostRules.build(
            allowed={*settings.download_hosts, *settings.vendor_hosts},
            credential_hosts=self.credential_hosts(),
            # Hosts the operator wrote down may be private; the vendor's never are.
            explicit_hosts=configured | exact_downloads | self.explicit_credential_hosts(),
            https_only=self.base_url.startswith("https://"),
            config_key=settings.config_key("download_hosts"),
        )

    def explicit_credential_hosts(self) -> set[str]:
        """Credential hosts the operator configured (not the vendor's defaults)."""
        return set()

    # -- the port, written once ----------------------------------------------------------

    def list_window(self, window: Window) -> Iterator[ListedPage]:
        request = self.first_request(window)
        paginator = self.paginator()
        limit = self.max_pages()
        chunked = self.reads_records_in_chunks()
        parse = partial(
            read_page,
            items_path=self.items_path(),
            max_records=self.settings.max_records_per_page,
            limit_key=self.settings.config_key("max_records_per_page"),
            lazy=chunked,
        )
        for number in range(1, limit + 1):
            where = f"page {number} of window {window}"
            page = self.get_json(request, where, parse=parse)
            items: Sequence[Any]
            if chunked:
                items = self.page_records(page.body, where)
                for first in range(0, max(len(items), 1), RECORDS_PER_CHUNK):
                    chunk = items[first : first + RECORDS_PER_CHUNK]
                    yield self.listed_chunk(window, number, chunk, page.headers, first_index=first)
            else:
                items = self.page_items(page.body, where)
                yield self.listed_page(window, number, items, page.headers)
            try:
                following = paginator.next_request(
                    request, PageResponse(page.url, page.body, page.headers, items)
                )
            except PagingLoop as exc:
                raise PagingLoopError(f"window {window}: after page {number}, {exc}") from None
            except PagingError as exc:
                raise PermanentProviderError(f"window {window}: page {number}: {exc}") from None
            if following is None:
                return
            if not self.hosts.may_send_credentials(following.url):
                raise PermanentProviderError(
                    f"window {window}: the next page of page {number} is at "
                    f"{host_for_humans(following.url)}, not the provider; refusing to send "
                    "credentials"
                )
            request = following
        raise PageLimitExceeded(f"window {window}: more than {limit} pages")

    def normalise(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        """:meth:`map_record`, with every failure of one record reported as that record's."""
        if isinstance(raw, UnreadableRecord):
            raise MalformedRecordError(position, raw.reason, raw=raw.stored)
        if not isinstance(raw, Mapping):
            raise MalformedRecordError(position, "is not a JSON object", raw=raw_text(raw))
        try:
            return self.map_record(raw, position)
        except Exception as exc:  # one record never stops its page: overflow, recursion...
            raise self.malformed(exc, raw, position) from None

    def malformed(self, exc: Exception, raw: Any, position: RecordPosition) -> MalformedRecordError:
        """``exc``, raised while reading the record ``raw``, as that record's error."""
        if isinstance(exc, MalformedRecordError):
            if exc.raw is None:
                exc.raw = raw_text(raw)
            return exc
        detail = redact_text(clean_text(str(exc)), self.http.secrets())[:200]
        reason = f"could not be mapped: {type(exc).__name__}: {detail}"
        return MalformedRecordError(position, reason, raw=raw_text(raw))

    def before_mapping(self, items: Sequence[Any], window: Window) -> Sequence[Any]:
        """What a subclass does with a chunk of a page's items before they are mapped (look up
        what they refer to, drop what is outside the window): by default, nothing."""
        return items

    def listed_page(
        self, window: Window, number: int, items: Sequence[Any], headers: Mapping[str, str]
    ) -> ListedPage:
        return self.listed_chunk(window, number, items, headers, first_index=0)

    def listed_chunk(
        self,
        window: Window,
        number: int,
        items: Sequence[Any],
        headers: Mapping[str, str],
        *,
        first_index: int,
    ) -> ListedPage:
        """``items``, which start at ``first_index`` on their page, as records."""
        items = self.before_mapping(items, window)
        records: list[CallRecord] = []
        malformed: list[MalformedRecordError] = []
        for index, item in enumerate(items, start=first_index):
            position = RecordPosition(window, number, index)
            try:
                records.append(self.normalise(item, position))
            except Exception as exc:  # a subclass's own normalise is guarded here too
                malformed.append(self.malformed(exc, item, position))
        return ListedPage(
            window=window,
            number=number,
            records=records,
            malformed=malformed,
            item_count=len(items),
            rate_limit=RateLimitHints.from_headers(headers, self.clock()),
            first_index=first_index,
        )

    # -- webhook events (an event only nudges a poll: poller.ports.webhooks) ---------------

    def webhook_verifier(self) -> WebhookVerifier | None:
        """How this kind's events prove their origin; None: this kind takes no events."""
        return None

    def webhook_subscriptions(self) -> WebhookSubscriptions | None:
        """This vendor's subscription API (or its console steps); None: nothing to manage."""
        return None

    # -- plumbing for subclasses -----------------------------------------------------------

    def get_json(
        self, request: PageRequest, what: str, *, parse: Callable[[bytes], Any] = json.loads
    ) -> JsonPage:
        """One authenticated GET, its failures as :class:`ProviderError`; ``parse`` decodes
        the body (see :meth:`HttpClient.get_json`)."""
        try:
            return self.http.get_json(
                request.url,
                params=request.params,
                what=what,
                parse=parse,
                headers={**ACCEPT_JSON, **self.api_headers},
            )
        except HttpError as exc:
            raise self.provider_error(exc) from None
        except TooManyRecords as exc:
            # Refused whole, before anything of it is written: the cursor stays before it.
            raise PermanentProviderError(f"{what}: {exc}") from None

    def provider_error(self, exc: HttpError) -> ProviderError:
        message = str(exc)
        if isinstance(exc, HttpTransient):
            return TransientProviderError(message, status=exc.status, retry_after=exc.retry_after)
        if isinstance(exc, HttpUnauthorized):
            if exc.check is not None:  # a refused token mint, which names its keys itself
                return ProviderAuthError(message, status=exc.status)
            keys = ", ".join(self.settings.credential_keys()) or self.settings.config_key("auth")
            return ProviderAuthError(
                f"{message}: the provider refused the credentials; check {keys}",
                status=exc.status,
            )
        if isinstance(exc, HttpRefused):
            return ProviderRefused(message)
        return PermanentProviderError(message, status=exc.status)

    def download_request(
        self, url: str, format_hint: str | None, *, secret_path: bool = False
    ) -> DownloadRequest:
        """A download of ``url`` under this provider's host rules, with its credentials."""
        try:
            self.hosts.check_url(url)
        except HttpRefused as exc:
            raise ProviderRefused(str(exc)) from None
        try:
            # May mint a token: a refused mint is the provider refusing its credentials.
            headers = dict(self.auth.headers_for_request())
        except HttpError as exc:
            raise self.provider_error(exc) from None
        return DownloadRequest(
            url=url,
            headers=headers,
            credential_hosts=frozenset(self.hosts.credential_hosts),
            download_hosts=frozenset(self.hosts.allowed),
            explicit_hosts=frozenset(self.hosts.explicit_hosts),
            https_only=self.hosts.https_only,
            format_hint=format_hint,
            hosts_config_key=self.hosts.config_key,
            secret_path=secret_path,
        )

    def send_delete(self, url: str, what: str, *, json_body: Any = None) -> SourceDeletion:
        """One authenticated DELETE through the guarded client (its deadline, host rules,
        bounded retries and the provider's rate limiter): any 2xx is ``deleted``, a 404
        ``gone`` (deleted already, which counts as done); any other answer raises
        :class:`ProviderError`. For the adapters that implement
        :class:`~poller.ports.provider.SourceDeleter`."""
        try:
            answer = self.http.request("DELETE", url, json=json_body, what=what)
        except HttpError as exc:
            if exc.status == 404:
                return SourceDeletion("gone", 404, f"{what}: 404, not found (deleted already)")
            raise self.provider_error(exc) from None
        return SourceDeletion("deleted", answer.status, f"{what}: HTTP {answer.status}")

    def rate_limited_hosts(self) -> dict[str, RateLimiter]:
        """This provider's own hosts and the limiter its requests to them share."""
        limiter = self.http.rate_limiter
        if limiter is None:
            return {}
        return dict.fromkeys(self.hosts.credential_hosts, limiter)
