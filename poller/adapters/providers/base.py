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
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from poller import __version__
from poller.adapters.http import (
    Authenticator,
    HostRules,
    HttpClient,
    HttpError,
    HttpRefused,
    HttpTransient,
    HttpUnauthorized,
    JsonPage,
    Limits,
    NoAuth,
    RateLimiter,
    RetryPolicy,
)
from poller.adapters.http.paginators import PageRequest, PageResponse, Paginator, PagingLoop
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
    TransientProviderError,
)

log = logging.getLogger(__name__)

S = TypeVar("S", bound=ProviderSettingsBase)


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

    def __init__(
        self,
        settings: S,
        *,
        http: HttpClient | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        base_url = settings.api_base_url
        if base_url is None:
            raise PermanentProviderError(f"{settings.config_key('base_url')}: required")
        self.settings = settings
        self.clock = clock
        self.base_url = base_url
        self.name = settings.name
        self.auth = self.authenticator()
        self.hosts = self.host_rules()
        self.http = http or HttpClient(
            limits=Limits(
                connect_timeout=settings.connect_timeout_seconds,
                read_timeout=settings.read_timeout_seconds,
                deadline=settings.deadline_seconds,
                max_body_bytes=settings.max_page_bytes,
                body_limit_key=settings.config_key("max_page_bytes"),
                deadline_key=settings.config_key("deadline_seconds"),
            ),
            hosts=self.hosts,
            retry=retry or RetryPolicy(max_tries=settings.max_retries + 1),
            auth=self.auth,
            rate_limiter=RateLimiter(
                rate=settings.requests_per_minute,
                period=60.0,
                penalty=self.rate_limit_penalty_seconds,
                name=f"provider {settings.name}",
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

    @classmethod
    def requirements(cls, settings: ProviderSettingsBase) -> list[str]:
        """Settings this kind cannot work without that are unset, each as "key: why"."""
        if settings.api_base_url is None:
            return [f"{settings.config_key('base_url')}: required to poll the call log"]
        return []

    def items_path(self) -> str | None:
        """Where a page's records sit; ``None``: the body is the list."""
        return None

    def max_pages(self) -> int:
        """The most pages one window may take, whatever the provider's paging says."""
        return 10_000

    def page_items(self, body: Any, where: str) -> list[Any]:
        """The records of a page, at :meth:`items_path`.

        A page without that key is an error rather than an empty page: an answer like
        ``{"error": "maintenance"}`` must not move the cursor past calls it did not list.
        """
        path = self.items_path()
        items = body if path is None else dig(body, path)
        key = self.settings.config_key("listing.items_path")
        if items is MISSING:
            # An answer without the calls (`{"error": "maintenance"}`) is no empty page.
            seen = sorted(str(name) for name in body)[:10] if isinstance(body, Mapping) else []
            raise PermanentProviderError(
                f"{where}: the response has nothing at {key} {path!r}; its top-level keys: "
                f"{', '.join(clean_text(name)[:40] for name in seen) or 'none'}"
            )
        if items is None:
            return []
        if not isinstance(items, list):
            raise PermanentProviderError(f"{where}: {key} {path!r} is not a list in the response")
        return items

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
        for number in range(1, limit + 1):
            where = f"page {number} of window {window}"
            page = self.get_json(request, where)
            items = self.page_items(page.body, where)
            yield self.listed_page(window, number, items, page.headers)
            try:
                following = paginator.next_request(
                    request, PageResponse(page.url, page.body, page.headers, items)
                )
            except PagingLoop as exc:
                raise PagingLoopError(f"window {window}: after page {number}, {exc}") from None
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

    def listed_page(
        self, window: Window, number: int, items: Sequence[Any], headers: Mapping[str, str]
    ) -> ListedPage:
        records: list[CallRecord] = []
        malformed: list[MalformedRecordError] = []
        for index, item in enumerate(items):
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
        )

    # -- plumbing for subclasses -----------------------------------------------------------

    def get_json(self, request: PageRequest, what: str) -> JsonPage:
        """One authenticated GET, its failures as :class:`ProviderError`."""
        try:
            return self.http.get_json(request.url, params=request.params, what=what)
        except HttpError as exc:
            raise self.provider_error(exc) from None

    def provider_error(self, exc: HttpError) -> ProviderError:
        message = str(exc)
        if isinstance(exc, HttpTransient):
            return TransientProviderError(message, status=exc.status, retry_after=exc.retry_after)
        if isinstance(exc, HttpUnauthorized):
            return ProviderAuthError(
                f"{message}: the provider refused the credentials; check "
                f"{self.settings.config_key('auth')} and its keys",
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

    def rate_limited_hosts(self) -> dict[str, RateLimiter]:
        """This provider's own hosts and the limiter its requests to them share."""
        limiter = self.http.rate_limiter
        if limiter is None:
            return {}
        return dict.fromkeys(self.hosts.credential_hosts, limiter)
