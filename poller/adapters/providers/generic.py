"""The generic adapter: any call-log API that answers a time window with JSON, driven by config.

What it does, per ``[provider.*]`` section of the config:

- ``listing``: ``GET base_url + path`` with the window as two query parameters (ISO 8601,
  Unix seconds or Unix milliseconds) plus fixed ones; the calls sit at a dotted path.
- ``paging``: a next-page token read from the body and sent back as a parameter, a next-page
  URL read from the body, or page numbers. A token or URL seen twice in one window, or a page
  number answered with the same items twice, stops the window (:class:`PagingLoopError`);
  ``max_pages`` bounds a window whatever the provider does.
- ``fields``: the dotted path (and time format) of each :class:`CallRecord` field.
- ``recording``: how a stored call turns into a download (below).

Recording URLs and secrets
--------------------------
Rows must never hold credentials, so :meth:`GenericProvider.normalise` stores the recording URL
(and every URL in the raw record) through :func:`poller.logs.redact_url`: a signed URL loses its
query string. Download resolution then works one of two ways:

- **Stable URL plus provider auth** (Twilio, RingCentral, Zoom style): the stored URL is intact
  and is used as it is, with the provider's auth headers.
- **Signed, expiring URL** (Aircall style): set ``recording.refetch_path`` (e.g.
  ``/v1/calls/{call_id}``). Before each download the adapter fetches the call again by id and
  reads a fresh URL at ``fields.recording_url`` (inside ``recording.refetch_item_path``).
  With ``refetch_path`` set this is always done, as a stored URL may have expired.

A stored URL that was redacted and no ``refetch_path`` is a configuration error, reported as a
:class:`PermanentProviderError` naming the key to set.

Credentials (auth headers) only ever go to the host of ``base_url`` and to
``recording.credential_hosts``: :class:`DownloadRequest` carries that list, API requests follow
redirects by hand and refuse to leave it, and a next-page URL elsewhere is an error.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests

from poller import __version__
from poller.adapters.http.retry import RetryPolicy
from poller.config import ConfigError, FieldSettings, ProviderSettings
from poller.domain.call_record import (
    MAX_ID_LENGTH,
    TEXT_LIMITS,
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
    parse_duration_seconds,
    parse_time,
    raw_text,
    sanitise_raw,
)
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window, request_bounds
from poller.logs import MASK, redact_text, redact_url
from poller.ports.provider import (
    ListedPage,
    MalformedRecordError,
    PageLimitExceeded,
    PagingLoopError,
    PermanentProviderError,
    ProviderError,
    RecordPosition,
    TransientProviderError,
)

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MILLISECOND = timedelta(milliseconds=1)
_MAX_REDIRECTS = 5
_AUDIO_SUFFIXES = {".mp3": "mp3", ".wav": "wav", ".m4a": "m4a", ".aac": "aac"}

__all__ = ["GenericProvider", "RetryPolicy", "format_time", "parse_time", "sanitise_raw"]


def _field(record: Any, path: str | None) -> Any:
    """A record's field at ``path``; an unmapped field (``None``) is missing, not the record."""
    return MISSING if path is None else dig(record, path)


def format_time(value: datetime, time_format: str) -> str:
    if time_format == "unix_s":
        return str((value - _EPOCH) // _SECOND)
    if time_format == "unix_ms":
        return str((value - _EPOCH) // _MILLISECOND)
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _text(value: Any, limit: int | None = None) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = clean_text(str(value)).strip()
    if not text:
        return None
    return text[:limit] if limit is not None else text


def _fingerprint(items: list[Any]) -> str:
    try:
        encoded = json.dumps(items, sort_keys=True, default=str).encode()
    except (RecursionError, ValueError):  # a hostile record; its bounded form will do
        encoded = json.dumps([sanitise_raw(item) for item in items], sort_keys=True).encode()
    return hashlib.sha256(encoded).hexdigest()


def _safe_url(url: str) -> str:
    """A URL for messages: scheme, host and path only (queries carry tokens and filters)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class GenericProvider:
    """A :class:`poller.ports.provider.ProviderPort` for plain JSON call-log APIs."""

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if settings.base_url is None:
            raise ConfigError(["provider.base_url: required to poll the call log"])
        self.settings = settings
        self.clock = clock
        self.base_url = settings.base_url
        self.fields: FieldSettings = settings.fields
        self.retry = retry or RetryPolicy(max_tries=settings.max_retries + 1)
        self.timeout = (settings.connect_timeout_seconds, settings.read_timeout_seconds)
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = f"siro-poller/{__version__}"
        self.auth_headers = _auth_headers(settings)
        self.credential_hosts = frozenset(
            {host_key(self.base_url), *settings.recording.credential_hosts}
        )
        self.https_only = urlsplit(self.base_url).scheme == "https"
        listing = settings.listing
        self._capabilities = ProviderCapabilities(
            max_window=timedelta(hours=listing.max_window_hours)
            if listing.max_window_hours
            else None,
            max_rows_per_query=listing.max_rows_per_query,
            settle_delay=timedelta(seconds=listing.settle_delay_seconds),
            history_limit=timedelta(days=listing.history_days) if listing.history_days else None,
        )

    # -- the port ------------------------------------------------------------------------

    @property
    def capabilities(self) -> ProviderCapabilities:
        return self._capabilities

    def rate_limit_hints(self, headers: Mapping[str, str], received_at: datetime) -> RateLimitHints:
        return RateLimitHints.from_headers(headers, received_at)

    def list_window(self, window: Window) -> Iterator[ListedPage]:
        listing, paging = self.settings.listing, self.settings.paging
        resolution = _MILLISECOND if listing.time_format == "unix_ms" else _SECOND
        start, end = request_bounds(window, resolution)
        base_params: dict[str, str] = dict(listing.params)
        base_params[listing.start_param] = format_time(start, listing.time_format)
        if listing.end_param is not None:
            base_params[listing.end_param] = format_time(end, listing.time_format)
        if paging.page_size_param is not None and paging.page_size is not None:
            base_params[paging.page_size_param] = str(paging.page_size)

        url = urljoin(self.base_url + "/", listing.path.lstrip("/"))
        page_value = paging.first_page
        params: dict[str, str] | None = dict(base_params)
        if paging.mode == "page_number":
            params = {**base_params, paging.page_param: str(page_value)}
        seen: set[str] = set()
        previous_page: str | None = None

        for number in range(1, paging.max_pages + 1):
            body, headers = self._get_json(url, params, f"page {number} of window {window}")
            items = dig(body, listing.items_path)
            if items is MISSING:
                # An answer without the calls (`{"error": "maintenance"}`) is no empty page.
                seen_keys = sorted(map(str, body))[:10] if isinstance(body, Mapping) else []
                raise PermanentProviderError(
                    f"page {number} of window {window}: the response has nothing at "
                    f"provider.listing.items_path {listing.items_path!r}; its top-level keys: "
                    f"{', '.join(clean_text(key)[:40] for key in seen_keys) or 'none'}"
                )
            if items is None:
                items = []
            if not isinstance(items, list):
                raise PermanentProviderError(
                    f"page {number} of window {window}: provider.listing.items_path "
                    f"{listing.items_path!r} is not a list in the response"
                )
            yield self._page(window, number, items, headers)

            if paging.mode == "none":
                return
            if paging.mode == "token":
                token = dig(body, paging.token_path)
                if not present(token):
                    return
                key = str(token)
                if key in seen:
                    raise PagingLoopError(
                        f"window {window}: page {number} returned a paging token already "
                        "returned before; stopped to avoid a loop"
                    )
                seen.add(key)
                params = {**base_params, paging.token_param: key}
            elif paging.mode == "next_url":
                next_url = dig(body, paging.next_url_path)
                if not present(next_url) or not isinstance(next_url, str):
                    return
                absolute = urljoin(url, next_url)
                if absolute in seen:
                    raise PagingLoopError(
                        f"window {window}: page {number} returned a next-page URL already "
                        "returned before; stopped to avoid a loop"
                    )
                seen.add(absolute)
                if host_key(absolute) not in self.credential_hosts:
                    raise PermanentProviderError(
                        f"window {window}: the next-page URL of page {number} points at "
                        f"{host_key(absolute)}, not the provider; refusing to send credentials"
                    )
                url, params = absolute, None
            else:
                if not items or (paging.page_size is not None and len(items) < paging.page_size):
                    return
                fingerprint = _fingerprint(items)
                if fingerprint == previous_page:
                    raise PagingLoopError(
                        f"window {window}: page {number} repeated the previous page's items; "
                        "the provider seems to ignore provider.paging.page_param"
                    )
                previous_page = fingerprint
                page_value += 1
                params = {**base_params, paging.page_param: str(page_value)}
        raise PageLimitExceeded(
            f"window {window}: more than provider.paging.max_pages ({paging.max_pages}) pages"
        )

    def normalise(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        fields = self.fields
        if not isinstance(raw, Mapping):
            raise MalformedRecordError(position, "is not a JSON object", raw=raw_text(raw))
        now = self.clock()

        def malformed(reason: str, call_id: str | None = None) -> MalformedRecordError:
            return MalformedRecordError(position, reason, call_id, raw=raw_text(raw))

        call_id = _text(_field(raw, fields.call_id))
        if call_id is None:
            raise malformed(f"no call id at {fields.call_id!r}")
        if len(call_id) > MAX_ID_LENGTH:
            raise malformed(f"call id longer than {MAX_ID_LENGTH} characters")

        def timestamp(path: str | None, time_format: str, name: str) -> datetime | None:
            value = _field(raw, path)
            if not present(value):
                return None
            try:
                return check_call_time(parse_time(value, time_format), now)
            except ValueError as exc:
                raise malformed(f"{name} {exc}", call_id) from None

        started_at = timestamp(fields.started_at, fields.started_at_format, "started_at")
        if started_at is None:
            raise malformed(f"no start time at {fields.started_at!r}", call_id)
        ended_at = timestamp(fields.ended_at, fields.ended_at_format, "ended_at")

        duration: int | None = None
        duration_value = _field(raw, fields.duration)
        if present(duration_value):
            try:
                duration = parse_duration_seconds(duration_value, fields.duration_unit)
            except ValueError as exc:
                raise malformed(f"duration {exc}", call_id) from None
        elif ended_at is not None and ended_at >= started_at:
            duration = round((ended_at - started_at).total_seconds())

        recording_id = _text(_field(raw, fields.recording_id))
        if recording_id is not None and len(recording_id) > MAX_ID_LENGTH:
            raise malformed(f"recording id longer than {MAX_ID_LENGTH} characters", call_id)

        recording_url = _text(_field(raw, fields.recording_url))
        if recording_url is not None:
            recording_url = urljoin(self.base_url + "/", recording_url)

        def text(name: str) -> str | None:
            return _text(_field(raw, getattr(fields, name)), TEXT_LIMITS[name])

        return CallRecord(
            provider_call_id=call_id,
            started_at=started_at,
            recording_state=self._recording_state(raw, recording_url),
            raw=sanitise_raw(raw),
            recording_id=recording_id,
            ended_at=ended_at,
            duration_seconds=duration,
            direction=self._direction(raw),
            rep_email=text("rep_email"),
            rep_phone=text("rep_phone"),
            rep_provider_id=text("rep_provider_id"),
            rep_name=text("rep_name"),
            rep_extension=text("rep_extension"),
            contact_name=text("contact_name"),
            contact_phone=text("contact_phone"),
            recording_url=redact_url(recording_url) if recording_url else None,
        )

    def resolve_download(self, call: RecordingLocator) -> DownloadRequest:
        refetch_path = self.settings.recording.refetch_path
        stored = call.recording_url
        if refetch_path is not None:
            url = self._fresh_recording_url(call, refetch_path)
        elif stored is None:
            raise PermanentProviderError(
                f"call {call.provider_call_id} has no recording URL to download"
            )
        elif MASK in stored:
            raise PermanentProviderError(
                f"call {call.provider_call_id}: its recording URL is signed, so it was not "
                "stored; set provider.recording.refetch_path to fetch a fresh one"
            )
        else:
            url = stored
        download_hosts = frozenset(self.settings.download_hosts)
        return DownloadRequest(
            url=url,
            headers=dict(self.auth_headers),
            credential_hosts=self.credential_hosts,
            download_hosts=download_hosts,
            # Configured exact entries; only these may resolve to private addresses.
            explicit_hosts=self.credential_hosts
            | {host for host in download_hosts if not host.startswith("*.")},
            https_only=self.https_only,
            format_hint=self.settings.recording.format or _format_from(url),
        )

    # -- helpers -------------------------------------------------------------------------

    def _page(
        self, window: Window, number: int, items: list[Any], headers: Mapping[str, str]
    ) -> ListedPage:
        records: list[CallRecord] = []
        malformed: list[MalformedRecordError] = []
        for index, item in enumerate(items):
            position = RecordPosition(window, number, index)
            try:
                records.append(self.normalise(item, position))
            except MalformedRecordError as error:
                malformed.append(error)
            except Exception as exc:  # one record never stops its page: overflow, recursion...
                detail = redact_text(clean_text(str(exc)))[:200]
                reason = f"could not be mapped: {type(exc).__name__}: {detail}"
                malformed.append(MalformedRecordError(position, reason, raw=raw_text(item)))
        return ListedPage(
            window=window,
            number=number,
            records=records,
            malformed=malformed,
            item_count=len(items),
            rate_limit=self.rate_limit_hints(headers, utcnow()),
        )

    def _recording_state(self, raw: Mapping[str, Any], url: str | None) -> RecordingState:
        fields = self.fields
        downloadable = url is not None or self.settings.recording.refetch_path is not None
        if fields.recording_status is None:
            return RecordingState.READY if url is not None else RecordingState.PENDING
        status = _text(_field(raw, fields.recording_status))
        lowered = status.lower() if status else None
        if lowered in {value.lower() for value in fields.recording_absent_values}:
            return RecordingState.NONE
        if lowered in {value.lower() for value in fields.recording_ready_values} and downloadable:
            return RecordingState.READY
        return RecordingState.PENDING

    def _direction(self, raw: Mapping[str, Any]) -> Direction | None:
        value = _text(_field(raw, self.fields.direction))
        if value is None:
            return None
        mapped = self.fields.direction_values.get(value.lower())
        return Direction(mapped) if mapped else None

    def _fresh_recording_url(self, call: RecordingLocator, template: str) -> str:
        if "{recording_id}" in template and not call.recording_id:
            raise PermanentProviderError(
                f"call {call.provider_call_id} has no recording id for "
                "provider.recording.refetch_path"
            )
        path = template.replace("{call_id}", quote(call.provider_call_id, safe="")).replace(
            "{recording_id}", quote(call.recording_id or "", safe="")
        )
        url = urljoin(self.base_url + "/", path.lstrip("/"))
        body, _headers = self._get_json(url, None, f"call {call.provider_call_id}")
        item = dig(body, self.settings.recording.refetch_item_path)
        found = _text(_field(item, self.fields.recording_url)) if item is not MISSING else None
        if found is None:
            raise TransientProviderError(
                f"call {call.provider_call_id}: the provider returned no recording URL for it yet"
            )
        return urljoin(self.base_url + "/", found)

    def _get_json(
        self, url: str, params: Mapping[str, str] | None, what: str
    ) -> tuple[Any, Mapping[str, str]]:
        return self.retry.call(
            lambda: self._get_json_once(url, params, what),
            retry_on=(TransientProviderError,),
            on_retry=_log_retry,
        )

    def _get_json_once(
        self, url: str, params: Mapping[str, str] | None, what: str
    ) -> tuple[Any, Mapping[str, str]]:
        response = self._get_following_redirects(url, params, what)
        with response:
            if response.status_code >= 400:
                raise _status_error(response, what)
            try:
                body = response.json()
            except ValueError:
                raise PermanentProviderError(
                    f"{what}: the response from {_safe_url(response.url)} is not JSON",
                    status=response.status_code,
                ) from None
            return body, dict(response.headers)

    def _get_following_redirects(
        self, url: str, params: Mapping[str, str] | None, what: str
    ) -> requests.Response:
        # requests would follow redirects itself and keep custom headers (an API key) on the
        # way to another host; redirects are therefore followed here, credentials checked.
        for _hop in range(_MAX_REDIRECTS + 1):
            if host_key(url) not in self.credential_hosts:
                raise PermanentProviderError(
                    f"{what}: refusing to send credentials to {_safe_url(url)}, "
                    "which is not the provider's host"
                )
            try:
                response = self.session.get(
                    url,
                    params=params,
                    headers=self.auth_headers,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise TransientProviderError(
                    f"{what}: {type(exc).__name__} talking to {_safe_url(url)}"
                ) from None
            except requests.RequestException as exc:
                raise PermanentProviderError(
                    f"{what}: {type(exc).__name__} for {_safe_url(url)}"
                ) from None
            location = response.headers.get("Location")
            if not response.is_redirect or not location:
                return response
            response.close()
            url, params = urljoin(response.url, location), None
        raise PermanentProviderError(f"{what}: more than {_MAX_REDIRECTS} redirects")


def _status_error(response: requests.Response, what: str) -> ProviderError:
    status = response.status_code
    where = f"{what}: HTTP {status} from GET {_safe_url(response.url)}"
    if status == 429 or status == 408 or status >= 500:
        hints = RateLimitHints.from_headers(response.headers, utcnow())
        return TransientProviderError(where, status=status, retry_after=hints.retry_after_seconds)
    snippet = redact_text(response.text[:200]).strip() if response.text else ""
    return PermanentProviderError(f"{where}: {snippet}" if snippet else where, status=status)


def _log_retry(error: BaseException, tries: int, wait: float) -> None:
    log.warning("%s; retry %d in %.1f s", error, tries, wait)


def _auth_headers(settings: ProviderSettings) -> dict[str, str]:
    def secret(name: str, value: Any) -> str:
        if value is None:
            raise ConfigError([f"provider.{name}: required for provider.auth = {settings.auth!r}"])
        return str(value.get_secret_value())

    if settings.auth == "bearer":
        return {"Authorization": f"Bearer {secret('token', settings.token)}"}
    if settings.auth == "basic":
        if not settings.username:
            raise ConfigError(["provider.username: required for provider.auth = 'basic'"])
        pair = f"{settings.username}:{secret('password', settings.password)}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    if settings.auth == "api_key":
        return {settings.api_key_header: secret("api_key", settings.api_key)}
    return {}


def _format_from(url: str) -> str | None:
    path = urlsplit(url).path.lower()
    for suffix, audio_format in _AUDIO_SUFFIXES.items():
        if path.endswith(suffix):
            return audio_format
    return None
