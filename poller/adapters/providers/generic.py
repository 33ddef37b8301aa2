"""The generic adapter: any call-log API that answers a time window with JSON, driven by config.

What it does, per ``[provider.*]`` section of the config:

- ``listing``: ``GET base_url + path`` with the window as two query parameters or placed
  inside fixed ones by a template, in ISO 8601, Unix seconds or milliseconds or a strftime
  pattern, in a configured time zone (:mod:`~poller.adapters.providers.generic_listing`);
  the calls sit at a dotted path.
- ``paging``: a next-page token read from the body and sent back as a parameter, a next-page
  URL read from the body or a ``Link`` header, page numbers or offsets (the paginators of
  :mod:`poller.adapters.http.paginators`), ended early by a last-page flag or a page count
  the body carries.
- ``fields``: the dotted path (and time format) of each :class:`CallRecord` field.
- ``recording``: how a stored call turns into a download (below).

Recording URLs and secrets
--------------------------
Rows must never hold credentials, so :meth:`GenericProvider.map_record` stores the recording URL
through :func:`redact_url`: a signed URL loses its query string (and the raw record keeps no
URL query value at all, see :func:`~poller.domain.raw_record.sanitise_raw`). How a stored call
then becomes a download (the stored URL, a fresh one by ``refetch_path``, a path built from the
record by ``download_path``, or a JSON step first) is :mod:`.generic_download`.

Credentials only ever go to the host of ``base_url``, to ``recording.credential_hosts`` and to
the OAuth token host; recordings only come from those and ``download_hosts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urljoin

from pydantic import BeforeValidator, Field, field_validator, model_validator

from poller.adapters.http import Authenticator
from poller.adapters.http.paginators import (
    LinkHeaderPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    PageCountPaginator,
    PageNumberPaginator,
    PageRequest,
    Paginator,
    SinglePage,
    TokenPaginator,
)
from poller.adapters.providers.base import ProviderAdapter, RecordReader
from poller.adapters.providers.generic_download import RecordingResolver, RecordingSettings
from poller.adapters.providers.generic_listing import (
    FieldTimeFormat,
    TimeZoneName,
    WindowTimeFormat,
    bound_texts,
    record_time,
    templated,
    window_params,
    zone_for,
)
from poller.adapters.providers.settings import (
    AuthSettings,
    ProviderSettingsBase,
    authenticator_for,
)
from poller.adapters.webhooks.generic import GenericVerifier, missing_secret
from poller.adapters.webhooks.settings import GenericWebhookSettings
from poller.config_types import (
    MINIMAL,
    BaseUrl,
    DottedPath,
    OptionalPath,
    ParamName,
    Section,
    UrlPath,
    unset_if_empty,
)
from poller.domain.call_record import (
    MAX_ID_LENGTH,
    TEXT_LIMITS,
    CallRecord,
    DownloadRequest,
    ProviderCapabilities,
    RecordingLocator,
    host_key,
)
from poller.domain.paths import MISSING, dig, present
from poller.domain.raw_record import (
    field_text,
    sanitise_raw,
)
from poller.domain.redaction import redact_url
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import (
    RecordPosition,
)
from poller.ports.webhooks import WebhookVerifier

DirectionName = Literal["inbound", "outbound"]

DEFAULT_DIRECTION_VALUES: dict[str, DirectionName] = {
    "inbound": "inbound",
    "incoming": "inbound",
    "in": "inbound",
    "outbound": "outbound",
    "outgoing": "outbound",
    "out": "outbound",
    "outbound-api": "outbound",
    "outbound-dial": "outbound",
}


class ListingSettings(Section):
    """``[provider.listing]``: the call-log request of the generic adapter."""

    path: UrlPath = "/calls"
    """Path of the call-log request, appended to base_url."""
    start_param: Annotated[ParamName | None, BeforeValidator(unset_if_empty)] = "from"
    """Query parameter that carries the window's start ("" when a template in params places
    it).
    """
    end_param: Annotated[ParamName | None, BeforeValidator(unset_if_empty)] = "to"
    """Query parameter that carries the window's end ("" when the API takes only a start, or
    a template in params places it).
    """
    time_format: WindowTimeFormat = Field(default="iso8601", examples=["%Y-%m-%d %H:%M:%S"])
    """Format of the window's bounds: "iso8601" (UTC, written with a Z suffix), "unix_s",
    "unix_ms" or a strftime pattern such as "%Y-%m-%d %H:%M:%S" (written in time_zone).
    """
    time_zone: TimeZoneName = Field(default="UTC", examples=["America/New_York"])
    """IANA time zone of times written without an offset: window bounds in a strftime pattern
    without %z, and record times without one (the API's account zone, if its docs say so).
    """
    items_path: OptionalPath = "calls"
    """Where the list of calls sits in the response ("" when the response is the list itself)."""
    params: dict[str, str] = Field(default={}, examples=[{"filter[updatedAt]": "{start}..inf"}])
    """Fixed query parameters sent with every listing request. A name or value may hold
    {start} and {end}, replaced by the window's bounds in time_format ({{ and }} are literal
    braces): "filter=type==callrecording;createdTime=ge={start}". Values are percent-encoded
    on the wire like any query value; write them unencoded.
    """
    max_window_hours: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[720.0])
    """Longest window the API accepts in one query, in hours; longer windows are split."""
    max_rows_per_query: Annotated[int, Field(gt=0)] | None = Field(default=None, examples=[10000])
    """Most rows the API returns for one query; a window that hits it is split and listed again."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[180.0])
    """How many days of history the API keeps; the window never starts earlier."""
    settle_delay_seconds: Annotated[int, Field(ge=0)] = 0
    """Seconds the provider needs before a finished call shows up in its log (adds to poll's
    delay).
    """

    @field_validator("params")
    @classmethod
    def _known_placeholders(cls, value: dict[str, str]) -> dict[str, str]:
        templated(value)
        return value

    @model_validator(mode="after")
    def _window_is_sent(self) -> ListingSettings:
        if self.start_param is None and "start" not in templated(self.params):
            raise ValueError(
                "start_param is empty, so a name or value in params must hold {start}; "
                "otherwise the window's start is never sent"
            )
        return self


class PagingSettings(Section):
    """``[provider.paging]``: how the generic adapter walks the pages of one window."""

    mode: Literal["none", "token", "next_url", "link_header", "page_number", "offset"] = "token"
    """"token" (a next-page token in the body), "next_url" (a next-page URL in the body),
    "link_header" (an RFC 8288 Link: <...>; rel="next" header), "page_number" (page=1, 2, ...),
    "offset" (offset=0, 100, ...; needs page_size) or "none".
    """
    token_path: DottedPath = "next_page_token"  # noqa: S105  (a JSON path, not a secret)
    """Where the next-page token sits in the response (mode = "token")."""
    token_param: ParamName = "page_token"  # noqa: S105  (a parameter name, not a secret)
    """Query parameter the token is sent back in (mode = "token")."""
    next_url_path: DottedPath = "next"
    """Where the next page's URL sits in the response (mode = "next_url")."""
    page_param: ParamName = "page"
    """Query parameter of the page number (mode = "page_number")."""
    offset_param: ParamName = "offset"
    """Query parameter of the offset (mode = "offset")."""
    first_page: Annotated[int, Field(ge=0)] = 1
    """Number of the first page (mode = "page_number")."""
    page_size_param: Annotated[ParamName | None, BeforeValidator(unset_if_empty)] = Field(
        default=None, examples=["per_page"]
    )
    """Query parameter of the page size; needs page_size."""
    page_size: Annotated[int, Field(gt=0)] | None = Field(default=None, examples=[100])
    """Rows per page to ask for; with page_number, a shorter page is the last one (unless
    last_page_path or total_pages_path is set: then the body says).
    """
    last_page_path: OptionalPath = Field(default=None, examples=["lastPage"])
    """Where a boolean sits that is true on the last page (8x8's lastPage): the listing ends
    there, even if the body still holds a next-page token (mode = "token" or "page_number").
    """
    total_pages_path: OptionalPath = Field(default=None, examples=["meta.total_pages"])
    """Where the number of pages sits in the response (CallRail's total_pages, CloudTalk's
    responseData.pageCount): the listing ends at that page, not at an empty or short one
    (mode = "page_number").
    """
    max_pages: Annotated[int, Field(gt=0, le=1_000_000)] = 10_000
    """Safety net: most pages one window may take before the window is failed."""

    @model_validator(mode="after")
    def _page_size_pair(self) -> PagingSettings:
        if self.page_size_param is not None and self.page_size is None:
            raise ValueError("page_size_param is set, so page_size is needed too")
        if self.mode == "offset" and self.page_size is None:
            raise ValueError("offset paging needs page_size (and page_size_param)")
        if self.last_page_path is not None and self.mode not in ("token", "page_number"):
            raise ValueError('last_page_path works with mode = "token" or "page_number"')
        if self.total_pages_path is not None and self.mode != "page_number":
            raise ValueError('total_pages_path works with mode = "page_number"')
        return self


class FieldSettings(Section):
    """``[provider.fields]``: the dotted path of each call field in a listed record.

    The defaults are the payload of Siro's phone-integration quickstart.
    """

    call_id: DottedPath = "call_id"
    """The provider's id of the call (required in every record)."""
    recording_id: OptionalPath = Field(default=None, examples=["recording.id"])
    """The provider's id of the recording, when it has one."""
    started_at: DottedPath = "started_at"
    """When the call started (required in every record)."""
    started_at_format: FieldTimeFormat = Field(default="iso8601", examples=["%Y-%m-%d %H:%M:%S"])
    """Format of started_at: "iso8601", "unix_s", "unix_ms", "rfc2822" or a strftime pattern;
    a time without an offset is in listing.time_zone.
    """
    ended_at: OptionalPath = Field(default=None, examples=["ended_at"])
    """When the call ended."""
    ended_at_format: FieldTimeFormat = "iso8601"
    """Format of ended_at."""
    duration: OptionalPath = Field(default=None, examples=["duration"])
    """How long the call lasted; computed from started_at and ended_at when not given."""
    duration_unit: Literal["seconds", "milliseconds"] = "seconds"
    """Unit of duration: "seconds" or "milliseconds"."""
    direction: OptionalPath = Field(default=None, examples=["direction"])
    """The call's direction."""
    direction_values: dict[str, DirectionName] = Field(
        default_factory=lambda: dict(DEFAULT_DIRECTION_VALUES),
    )
    """Provider direction values (any case) and what they mean."""
    rep_email: OptionalPath = "email"
    """The rep's email (Siro matches the rep by it)."""
    rep_phone: OptionalPath = "number"
    """The rep's phone number."""
    rep_provider_id: OptionalPath = Field(default=None, examples=["user.id"])
    """The rep's user id at the provider."""
    rep_name: OptionalPath = Field(default=None, examples=["user.name"])
    """The rep's name."""
    rep_extension: OptionalPath = Field(default=None, examples=["user.extension"])
    """The rep's extension."""
    contact_name: OptionalPath = "contact_name"
    """The other party's name."""
    contact_phone: OptionalPath = "contact_phone"
    """The other party's phone number."""
    recording_url: OptionalPath = "recording_url"
    """The recording's URL; without recording_status, a call with a URL has its recording ready."""
    recording_status: OptionalPath = Field(default=None, examples=["recording.status"])
    """The recording's status, when the API reports one."""
    recording_ready_values: list[str] = Field(default=["ready", "completed", "available", "done"])
    """Recording_status values meaning the recording can be downloaded (any case)."""
    recording_absent_values: list[str] = Field(
        default=["none", "absent", "not_recorded", "deleted"]
    )
    """Recording_status values meaning there is no recording; the call is skipped as no_recording.
    """

    @field_validator("direction_values", mode="before")
    @classmethod
    def _lower_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(key).lower(): direction for key, direction in value.items()}
        return value


class GenericSettings(ProviderSettingsBase, AuthSettings):
    """``[provider]`` with ``kind = "generic"``: any JSON call-log API, every request and field
    named in config. Its defaults fit a call log whose records look like the payload of Siro's
    phone-integration quickstart (call_id, email, number, recording_url, started_at,
    contact_name, contact_phone). Paths are dotted: "data.calls", "user.email", "legs.0.from";
    an empty string switches an optional path off.
    """

    kind: Literal["generic"] = "generic"
    """Which adapter talks to the phone system: "generic" is a configurable JSON call-log API."""
    source_deletion_unsupported: ClassVar[str | None] = (
        "the generic kind knows no delete request: deleting at the source needs the vendor's "
        "documented DELETE endpoint for one recording, the permission it takes and its answers "
        "(success, 404 for a recording already gone), which only a native kind can declare"
    )

    base_url: BaseUrl | None = Field(
        default=None, examples=["https://voip.example.com/api"], json_schema_extra=MINIMAL
    )
    """Base URL of the provider's API; the listing path and single-call paths are appended."""
    listing: ListingSettings = ListingSettings()
    paging: PagingSettings = PagingSettings()
    fields: FieldSettings = FieldSettings()
    recording: RecordingSettings = RecordingSettings()
    webhook: GenericWebhookSettings = GenericWebhookSettings()
    """This provider's webhook events, which nudge an early poll (see [webhooks])."""

    def requirements(self) -> list[str]:
        webhook = missing_secret(self.webhook, key=self.config_key("webhook"))
        return super().requirements() + self.missing_auth_keys() + webhook

    def credential_keys(self) -> list[str]:
        # The scheme's keys (a username too), not whichever secrets happen to be set.
        return AuthSettings.credential_keys(self)


def _field(record: Any, path: str | None) -> Any:
    """A record's field at ``path``; an unmapped field (``None``) is missing, not the record."""
    return MISSING if path is None else dig(record, path)


class GenericProvider(ProviderAdapter[GenericSettings]):
    """A :class:`poller.ports.provider.ProviderPort` for plain JSON call-log APIs."""

    kind: ClassVar[str] = "generic"
    settings_model: ClassVar[type[ProviderSettingsBase]] = GenericSettings

    def __init__(self, settings: GenericSettings, **kwargs: Any) -> None:
        self.fields = settings.fields
        self.zone = zone_for(settings.listing.time_zone)
        super().__init__(settings, **kwargs)
        self.downloads = RecordingResolver(self, settings.recording, settings.fields.recording_url)
        listing = settings.listing
        self._capabilities = ProviderCapabilities(
            max_window=timedelta(hours=listing.max_window_hours)
            if listing.max_window_hours
            else None,
            max_rows_per_query=listing.max_rows_per_query,
            settle_delay=timedelta(seconds=listing.settle_delay_seconds),
            history_limit=timedelta(days=listing.history_days) if listing.history_days else None,
        )

    # -- what the base class asks ---------------------------------------------------------

    def webhook_verifier(self) -> WebhookVerifier | None:
        """The shared token or HMAC check of ``webhook``, when its events are enabled; raises
        ``ConfigError`` when they are and no secret is set."""
        webhook = self.settings.webhook
        if not webhook.enabled:
            return None
        return GenericVerifier.from_settings(webhook, key=self.settings.config_key("webhook"))

    @property
    def capabilities(self) -> ProviderCapabilities:
        return self._capabilities

    def items_path(self) -> str | None:
        return self.settings.listing.items_path

    def items_label(self) -> str:
        return f"{self.settings.config_key('listing.items_path')} {self.items_path()!r}"

    def authenticator(self) -> Authenticator:
        return authenticator_for(self.settings, token_store=self.token_store, store_key=self.name)

    def credential_hosts(self) -> set[str]:
        return super().credential_hosts() | self.explicit_credential_hosts()

    def explicit_credential_hosts(self) -> set[str]:
        hosts = set(self.settings.recording.credential_hosts) | set(self.settings.token_hosts)
        if self.settings.token_url:
            hosts.add(host_key(self.settings.token_url))
        return hosts

    def first_request(self, window: Window) -> PageRequest:
        listing, paging = self.settings.listing, self.settings.paging
        params = window_params(
            listing.params,
            start_param=listing.start_param,
            end_param=listing.end_param,
            bounds=bound_texts(window, listing.time_format, self.zone),
        )
        if paging.page_size_param is not None and paging.page_size is not None:
            params[paging.page_size_param] = str(paging.page_size)
        if paging.mode == "page_number":
            params[paging.page_param] = str(paging.first_page)
        elif paging.mode == "offset":
            params[paging.offset_param] = "0"
        return PageRequest(urljoin(self.base_url + "/", listing.path.lstrip("/")), params)

    def paginator(self) -> Paginator:
        paging = self.settings.paging
        if paging.mode == "token":
            return TokenPaginator(
                token_path=paging.token_path,
                token_param=paging.token_param,
                last_page_path=paging.last_page_path,
            )
        if paging.mode == "next_url":
            return NextUrlPaginator(next_url_path=paging.next_url_path)
        if paging.mode == "link_header":
            return LinkHeaderPaginator()
        if paging.mode == "page_number" and (paging.last_page_path or paging.total_pages_path):
            return PageCountPaginator(
                page_param=paging.page_param,
                first_page=paging.first_page,
                last_page_path=paging.last_page_path,
                total_pages_path=paging.total_pages_path,
            )
        if paging.mode == "page_number":
            return PageNumberPaginator(
                page_size=paging.page_size,
                page_param=paging.page_param,
                first_page=paging.first_page,
            )
        if paging.mode == "offset":
            return OffsetPaginator(page_size=paging.page_size, offset_param=paging.offset_param)
        return SinglePage()

    def max_pages(self) -> int:
        return self.settings.paging.max_pages

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        fields = self.fields

        read = RecordReader(raw, position, self.clock())
        call_id = read.call_id_from(
            _field(raw, fields.call_id),
            missing=f"call_id has no value at path {fields.call_id}",
            name="call id",
        )
        started_at = record_time(
            read, "started_at", fields.started_at, fields.started_at_format, self.zone
        )
        if started_at is None:
            raise read.malformed(f"started_at has no value at path {fields.started_at}")
        ended_at = record_time(read, "ended_at", fields.ended_at, fields.ended_at_format, self.zone)
        duration = read.duration(
            _field(raw, fields.duration),
            fields.duration_unit,
            started_at=started_at,
            ended_at=ended_at,
        )

        recording_id = field_text(_field(raw, fields.recording_id))
        if recording_id is not None and len(recording_id) > MAX_ID_LENGTH:
            raise read.malformed(f"recording id longer than {MAX_ID_LENGTH} characters")

        recording_url = field_text(_field(raw, fields.recording_url))
        if recording_url is not None:
            recording_url = urljoin(self.base_url + "/", recording_url)

        def text(name: str) -> str | None:
            return field_text(_field(raw, getattr(fields, name)), TEXT_LIMITS[name])

        return CallRecord(
            provider_call_id=call_id,
            started_at=started_at,
            recording_state=self._recording_state(raw, recording_url, recording_id),
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
        return self.downloads.resolve(call)

    # -- helpers -------------------------------------------------------------------------

    def _recording_state(
        self, raw: Mapping[str, Any], url: str | None, recording_id: str | None
    ) -> RecordingState:
        fields, recording = self.fields, self.settings.recording
        # A path built from the record (download_path) needs no URL in it. A URL field the
        # record has, null or empty (CallRail's "recording"), still says there is none yet.
        built = recording.builds_url(recording_id)
        if built and fields.recording_url is not None:
            hint = _field(raw, fields.recording_url)
            built = hint is MISSING or present(hint)
        downloadable = url is not None or built or recording.refetch_path is not None
        if fields.recording_status is None:
            return RecordingState.READY if url is not None or built else RecordingState.PENDING
        status = field_text(_field(raw, fields.recording_status))
        lowered = status.lower() if status else None
        if lowered in {value.lower() for value in fields.recording_absent_values}:
            return RecordingState.NONE
        if lowered in {value.lower() for value in fields.recording_ready_values} and downloadable:
            return RecordingState.READY
        return RecordingState.PENDING

    def _direction(self, raw: Mapping[str, Any]) -> Direction | None:
        value = field_text(_field(raw, self.fields.direction))
        if value is None:
            return None
        mapped = self.fields.direction_values.get(value.lower())
        return Direction(mapped) if mapped else None
