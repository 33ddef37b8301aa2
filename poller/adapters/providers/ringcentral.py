"""RingCentral: the company call log, recordings on the media host, the JWT bearer grant.

What the adapter does, against RingCentral's REST API (``/restapi/v1.0``):

- **Auth**: ``POST /restapi/oauth/token`` with the JWT bearer grant and the app's client id and
  secret as Basic. The access token is cached and shared by every request of the provider (the
  worker's downloads included): minting counts against the Auth group, 5 a minute.
- **Listing**: ``GET /account/~/call-log`` with ``dateFrom``/``dateTo`` always sent (an omitted
  ``dateFrom`` means "24 hours before ``dateTo``"), ``type=Voice``, ``view=Detailed`` and
  ``recordingType`` so only recorded calls come back; ``perPage`` up to 1000, then
  ``navigation.nextPage.uri``. The call log is used rather than ``call-log-sync``: the poller
  already keeps its own cursor and re-lists windows for late recordings, which ISync cannot do
  (it is a change feed capped at 250 changes, and re-running FSync re-lists everything anyway).
- **One recording, one call**: a conversation can have several legs and several call-log
  records. The records of a page are grouped by ``telephonySessionId`` and their recordings
  (on the record and on its legs) deduplicated on the recording id; each recording becomes one
  call whose provider id is the recording id, so the same recording listed twice (on two
  records, on two pages, in two windows) is one row. ``telephonySessionId`` is optional in the
  spec (RingCentral's own call-log sample has none): such a record is a call keyed on its
  recording id all the same.
- **Direction and rep**: the direction is the record's; the rep is the internal party of that
  direction (``to`` of an inbound call, ``from`` of an outbound one), read from the leg that
  carries the recording in that direction, whatever the order of the legs (RingCentral
  documents none), and from the record itself when no such leg exists. Its extension's email
  comes from the account's extension list (``GET /account/~/extension``), cached and
  refreshed. A record without a direction names only its extension (never a party that could
  be the customer); without an extension either, it is skipped as ``rep_undecided``.
- **Download**: ``recording.contentUri`` on ``media.ringcentral.com``, with the Bearer token.
- **Throttling**: ``X-Rate-Limit-*`` headers feed the shared rate limiter (an exhausted group
  waits its ``-Window``); a 429 without ``Retry-After`` means 30 s, and nothing is sent during a
  penalty, since every request sent then restarts it.
- **Too short**: ``shortRecording`` marks a recording RingCentral did not keep; such calls end
  skipped with that reason.
- **Webhooks** (with ``webhook.enabled``): telephony session events of a call that ended with a
  recording nudge an early poll, and `webhooks subscribe` manages the WebHook subscription
  (:mod:`poller.adapters.webhooks.ringcentral`). The events need the app's CallControl
  permission.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, overload
from urllib.parse import quote, urljoin

from pydantic import Field, SecretStr

from poller.adapters.http import Authenticator, HttpError, HttpUnauthorized
from poller.adapters.http.auth import OAuthJwtBearer
from poller.adapters.http.paginators import (
    NextUrlPaginator,
    PageRequest,
    PageResponse,
    Paginator,
    PagingLoop,
)
from poller.adapters.providers.base import ERROR_KEYS, ProviderAdapter, RecordReader
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.adapters.webhooks.ringcentral import RingCentralSubscriptions, RingCentralVerifier
from poller.adapters.webhooks.settings import WebhookSettings
from poller.config_types import MINIMAL, BaseUrl
from poller.domain.call_record import (
    TEXT_LIMITS,
    CallRecord,
    DownloadRequest,
    ProviderCapabilities,
    RecordingLocator,
    host_key,
)
from poller.domain.clock import format_time
from poller.domain.raw_record import (
    field_text,
    id_text,
    sanitise_raw,
)
from poller.domain.redaction import MASK, mask_url_query
from poller.domain.states import Direction, RecordingState
from poller.domain.urls import host_for_humans
from poller.domain.windows import Window, request_bounds
from poller.ports.provider import (
    MalformedRecordError,
    PagingLoopError,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RecordPosition,
    SourceDeletion,
    TransientProviderError,
)
from poller.ports.webhooks import WebhookSubscriptions, WebhookVerifier

log = logging.getLogger(__name__)

API_PREFIX = "/restapi/v1.0/account/~"
TOKEN_PATH = "/restapi/oauth/token"  # noqa: S105  (a path, not a secret)
DEFAULT_PLATFORM = "https://platform.ringcentral.com"
DEFAULT_MEDIA = "https://media.ringcentral.com"
# RingCentral: "If Retry-After is absent, wait at least 30 s" after a 429.
PENALTY_WITHOUT_RETRY_AFTER = 30.0
_SECOND = timedelta(seconds=1)
_CONTENT_TYPES = {"audio/mpeg": "mp3", "audio/x-wav": "wav", "audio/wav": "wav"}


class RingCentralWebhookSettings(WebhookSettings):
    """``[provider.webhook]``: RingCentral's telephony session events (a call ended with a
    recording) nudge an early poll (with ``[webhooks] listen`` set); `webhooks subscribe`
    creates the subscription. The poll stays the source of truth: a lost event costs latency,
    never a call."""

    secret: SecretStr | None = None
    """The verification token: given to RingCentral when `webhooks subscribe` creates the
    subscription, and required in the Verification-Token header of every event. Unset, events
    are only checked by their shape and timestamp (RingCentral signs nothing), so anyone who
    can reach the receiver can cause an early poll (a poll only: events are never data)."""


class RingCentralSettings(ProviderSettingsBase):
    """``[provider]`` with ``kind = "ringcentral"``: the company call log, JWT auth, recordings
    from the media host. A REST API app (JWT auth flow) made in the RingCentral developer console;
    the sandbox is https://platform.devtest.ringcentral.com, its media host
    https://media.devtest.ringcentral.com.
    """

    kind: Literal["ringcentral"] = "ringcentral"
    """Selects the RingCentral adapter."""
    source_deletion_unsupported: ClassVar[str | None] = None

    client_id: str | None = Field(
        default=None, examples=["replace-with-your-client-id"], json_schema_extra=MINIMAL
    )
    """Client id of the REST API app (JWT auth flow) made in the RingCentral developer console."""
    client_secret: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The app's client secret."""
    jwt: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The JWT credential of an admin user whose role can read the company call log."""
    media_base_url: BaseUrl = DEFAULT_MEDIA
    """Where recordings' contentUri points; the token is sent there (sandbox:
    media.devtest.ringcentral.com).
    """
    recording_type: Literal["All", "Automatic", "OnDemand"] = "All"
    """Which recordings to list: "All", "Automatic" or "OnDemand" (calls without one are never
    listed).
    """
    per_page: Annotated[int, Field(gt=0, le=1000)] = 1000
    """Call-log records per page (at most 1000); fewer pages spare the Heavy rate group (10 a
    minute).
    """
    extension_cache_minutes: Annotated[float, Field(gt=0)] = 60.0
    """Minutes the extension list (reps' emails) is kept before it is listed again."""
    settle_delay_seconds: Annotated[int, Field(ge=0)] = 60
    """Seconds to wait before listing a window: a finished call shows up 15-30 s later."""
    max_window_hours: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[24.0])
    """Longest window one listing covers, in hours. Unset: RingCentral caps no query's span, so
    windows are sized by the calls they hold (an empty stretch is one request, a busy one split).
    """

    webhook: RingCentralWebhookSettings = RingCentralWebhookSettings()
    """This provider's webhook events, which nudge an early poll (see [webhooks])."""

    vendor_hosts: ClassVar[tuple[str, ...]] = (
        "platform.ringcentral.com",
        "media.ringcentral.com",
    )
    default_base_url: ClassVar[str | None] = DEFAULT_PLATFORM

    def requirements(self) -> list[str]:
        why = {
            "client_id": "the client id of the RingCentral app (JWT auth flow)",
            "client_secret": "the client secret of the RingCentral app",
            "jwt": "the JWT credential of a user allowed to read the company call log",
        }
        return [
            f"{self.config_key(key)}: required: {reason}"
            for key, reason in why.items()
            if getattr(self, key) in (None, "")
        ]


@dataclass(frozen=True, slots=True)
class Extension:
    """One entry of the account's extension list: what names a rep."""

    id: str
    number: str | None
    name: str | None
    email: str | None


class RingCentralProvider(ProviderAdapter[RingCentralSettings]):
    """A :class:`poller.ports.provider.ProviderPort` for RingCentral's company call log."""

    kind: ClassVar[str] = "ringcentral"
    settings_model: ClassVar[type[ProviderSettingsBase]] = RingCentralSettings
    rate_limit_penalty_seconds: ClassVar[float] = PENALTY_WITHOUT_RETRY_AFTER
    # RingCentral's error answer: {"errorCode": "CMN-201", "message": ..., "errors": [...]}.
    error_keys: ClassVar[tuple[str, ...]] = (*ERROR_KEYS, "errorCode")

    def __init__(self, settings: RingCentralSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._extensions: dict[str, Extension] = {}
        self._extensions_at: datetime | None = None
        self._extensions_lock = threading.Lock()
        self._webhook_verifier: RingCentralVerifier | None = None
        self.page_limit = 10_000
        self._capabilities = ProviderCapabilities(
            max_window=(
                timedelta(hours=settings.max_window_hours) if settings.max_window_hours else None
            ),
            max_rows_per_query=None,
            settle_delay=timedelta(seconds=settings.settle_delay_seconds),
            history_limit=None,
        )

    # -- what the base class asks ---------------------------------------------------------

    @property
    def capabilities(self) -> ProviderCapabilities:
        return self._capabilities

    def items_path(self) -> str | None:
        return "records"

    def authenticator(self) -> Authenticator:
        settings = self.settings
        assert settings.client_id is not None  # requirements() reports a missing key first
        assert settings.client_secret is not None and settings.jwt is not None
        return OAuthJwtBearer(
            token_url=self._url(TOKEN_PATH),
            assertion=settings.jwt,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            config_hint=", ".join(
                settings.config_key(key) for key in ("jwt", "client_id", "client_secret")
            ),
        )

    def credential_hosts(self) -> set[str]:
        return super().credential_hosts() | {host_key(self.settings.media_base_url)}

    def explicit_credential_hosts(self) -> set[str]:
        if "media_base_url" in self.settings.model_fields_set:
            return {host_key(self.settings.media_base_url)}
        return set()

    def first_request(self, window: Window) -> PageRequest:
        start, end = request_bounds(window, _SECOND)
        params = {
            "dateFrom": format_time(start, "iso8601"),
            "dateTo": format_time(end, "iso8601"),
            "type": "Voice",
            "view": "Detailed",
            "recordingType": self.settings.recording_type,
            "perPage": str(self.settings.per_page),
            "page": "1",
        }
        return PageRequest(self._url(f"{API_PREFIX}/call-log"), params)

    def max_pages(self) -> int:
        return self.page_limit

    def paginator(self) -> Paginator:
        return NextUrlPaginator(next_url_path="navigation.nextPage.uri")

    def page_records(self, body: Any, where: str) -> Sequence[Any]:
        """The page's recordings: records grouped by session, one item per recording id."""
        records = super().page_records(body, where)
        self._refresh_extensions_if_stale()
        return PageRecordings(records)

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        if not isinstance(raw.get("records"), list):
            # A bare record, kept as unmapped before it was grouped (a record without
            # telephonySessionId once was): mapped as its page would group it now.
            grouped = recordings_of([raw])
            if len(grouped) == 1 and isinstance(grouped[0], Mapping):
                raw = grouped[0]
        return _RecordingMapper(self, raw, position).record()

    def resolve_download(self, call: RecordingLocator) -> DownloadRequest:
        url = call.recording_url
        if url is None or MASK in url:
            # A contentUri carrying a signature is never stored: ask for the recording again.
            url = self._fresh_content_uri(call)
        return self.download_request(url, None)

    # -- webhook events ------------------------------------------------------------------------

    def webhook_verifier(self) -> WebhookVerifier | None:
        webhook = self.settings.webhook
        if not webhook.enabled:
            return None
        if self._webhook_verifier is None:
            # Built once, so its warning about a missing token is logged once.
            self._webhook_verifier = RingCentralVerifier(
                webhook.secret, timedelta(seconds=webhook.max_event_age_seconds)
            )
        return self._webhook_verifier

    def webhook_subscriptions(self) -> WebhookSubscriptions | None:
        webhook = self.settings.webhook
        if not webhook.enabled:
            return None
        return RingCentralSubscriptions(
            provider=self.name,
            http=self.http,
            base_url=self.base_url,
            verification_token=webhook.secret,
            errors=self.provider_error,
            clock=self.clock,
        )

    def delete_recording(self, call: RecordingLocator) -> SourceDeletion:
        """``DELETE /account/~/call-recordings`` with one id (the endpoint takes a list; one a
        request keeps a 404 about this recording alone). Heavy group; the app needs the
        EditCallLog permission and the JWT's user EditCompanyCallRecordings."""
        recording_id = call.recording_id or call.provider_call_id
        try:
            return self.send_delete(
                self._url(f"{API_PREFIX}/call-recordings"),
                f"delete recording {recording_id}",
                json_body={"records": [{"id": recording_id}]},
            )
        except ProviderAuthError as exc:
            if exc.status != 403:
                raise
            raise PermanentProviderError(
                f"{exc}; deleting needs the app permission EditCallLog (Edit Call Log) and the "
                "user permission EditCompanyCallRecordings for the JWT's user",
                status=403,
            ) from None

    def deletion_problems(self) -> list[str]:
        """The app's EditCallLog, read from the scope of the token RingCentral grants, and the
        JWT user's EditCompanyCallRecordings, asked of ``authz-profile/check`` (Light group)."""
        problems: list[str] = []
        try:
            self.auth.headers_for_request()  # a token, minted if need be
        except HttpError as exc:
            raise self.provider_error(exc) from None
        granted = getattr(self.auth, "granted_scope", None)
        if granted is None:
            problems.append(
                "RingCentral's token names no scope: whether the app has the EditCallLog "
                "permission cannot be told before a delete"
            )
        elif "EditCallLog" not in granted.split():
            problems.append(
                "the app lacks the EditCallLog permission (Edit Call Log) that deleting "
                "recordings needs: add it to the app in the RingCentral developer console"
            )
        page = self.get_json(
            PageRequest(
                self._url(f"{API_PREFIX}/extension/~/authz-profile/check"),
                {"permissionId": "EditCompanyCallRecordings"},
            ),
            "the EditCompanyCallRecordings permission check",
        )
        if not (isinstance(page.body, Mapping) and page.body.get("successful") is True):
            problems.append(
                "the JWT's user lacks the EditCompanyCallRecordings permission that deleting "
                "recordings needs: give the user a role that has it"
            )
        return problems

    def provider_error(self, exc: HttpError) -> ProviderError:
        if isinstance(exc, HttpUnauthorized):
            keys = ", ".join(
                self.settings.config_key(key) for key in ("jwt", "client_id", "client_secret")
            )
            return ProviderAuthError(
                f"{exc}: RingCentral refused the credentials; check {keys} and that the app has "
                "the Read Call Log, Read Call Recording and Read Accounts permissions",
                status=exc.status,
            )
        error = super().provider_error(exc)
        if (
            isinstance(error, TransientProviderError)
            and error.status == 429
            and error.retry_after is None
        ):
            error.retry_after = PENALTY_WITHOUT_RETRY_AFTER
        return error

    # -- the extension list ------------------------------------------------------------------

    def extension(self, extension_id: str) -> Extension | None:
        """The extension ``extension_id`` as last listed; one early refresh if it is new."""
        found = self._extensions.get(extension_id)
        if found is None and self._extensions_age() > timedelta(minutes=1):
            self._refresh_extensions()
            found = self._extensions.get(extension_id)
        return found

    def _extensions_age(self) -> timedelta:
        if self._extensions_at is None:
            return timedelta.max
        return self.clock() - self._extensions_at

    def _refresh_extensions_if_stale(self) -> None:
        if self._extensions_age() >= timedelta(minutes=self.settings.extension_cache_minutes):
            self._refresh_extensions()

    def _refresh_extensions(self) -> None:
        with self._extensions_lock:
            listed: dict[str, Extension] = {}
            request: PageRequest | None = PageRequest(
                self._url(f"{API_PREFIX}/extension"), {"perPage": "1000", "page": "1"}
            )
            paginator = self.paginator()
            pages = 0
            while request is not None and pages < 100:
                pages += 1
                page = self.get_json(request, f"the extension list (page {pages})")
                items = page.body.get("records") if isinstance(page.body, Mapping) else None
                if not isinstance(items, list):
                    raise PermanentProviderError(
                        "the extension list has no records; does the app have the "
                        "ReadAccounts permission?"
                    )
                for item in items:
                    extension = _extension_of(item)
                    if extension is not None:
                        listed[extension.id] = extension
                try:
                    request = paginator.next_request(
                        request, PageResponse(page.url, page.body, page.headers, items)
                    )
                except PagingLoop as exc:
                    raise PagingLoopError(f"the extension list: {exc}") from None
                if request is not None and not self.hosts.may_send_credentials(request.url):
                    raise PermanentProviderError(
                        f"the extension list's next page is at {host_for_humans(request.url)}, not "
                        "RingCentral; refusing to send credentials"
                    )
            self._extensions = listed
            self._extensions_at = self.clock()
            log.debug("provider %s: %d extensions listed", self.name, len(listed))

    # -- helpers -----------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.base_url + "/", path.lstrip("/"))

    def _fresh_content_uri(self, call: RecordingLocator) -> str:
        if not call.recording_id:
            raise PermanentProviderError(
                f"call {call.provider_call_id} has no recording id to download"
            )
        path = f"{API_PREFIX}/recording/{quote(call.recording_id, safe='')}"
        page = self.get_json(PageRequest(self._url(path)), f"recording {call.recording_id}")
        body = page.body
        found = body.get("contentUri") if isinstance(body, Mapping) else None
        if not isinstance(found, str) or not found.strip():
            raise TransientProviderError(
                f"call {call.provider_call_id}: RingCentral returned no contentUri for it yet"
            )
        return urljoin(self.base_url + "/", found.strip())


def _extension_of(item: Any) -> Extension | None:
    if not isinstance(item, Mapping):
        return None
    extension_id = field_text(item.get("id"))
    if extension_id is None:
        return None
    contact = item.get("contact")
    email = field_text(contact.get("email")) if isinstance(contact, Mapping) else None
    return Extension(
        id=extension_id,
        number=field_text(item.get("extensionNumber")),
        name=field_text(item.get("name")),
        email=email,
    )


def recordings_of(records: Sequence[Any]) -> list[Any]:
    """One item per recording of a page, in page order (see :class:`PageRecordings`)."""
    return list(PageRecordings(records))


@dataclass(slots=True)
class _Recording:
    """Which records of a page make one item: their positions, and what groups them."""

    session: str | None
    recording_id: str | None
    indices: list[int]
    # Not a JSON object: passed on as it is, for the base to report at its position.
    bare: bool = False


class PageRecordings(Sequence[Any]):
    """One item per recording of a page, in page order, built from its records when read.

    Records are grouped by ``telephonySessionId`` (``None`` when a record has none); within a
    session each recording id (on a record or on one of its legs) gives one item
    ``{"telephonySessionId", "recordingId", "records"}`` holding every record of the session
    that carries it. A record with no recording at all (``shortRecording``) is an item of its
    own; anything that is not a JSON object passes through unchanged, so the base reports it
    at its position.

    Grouping needs the whole page, but not the whole page decoded at once: the records are
    read once for their ids and dropped, and a chunk of items reads its records again (the
    page reader decodes them lazily), so a poll holds a chunk of records, not a page.
    """

    def __init__(self, records: Sequence[Any]) -> None:
        self._records = records
        self._items: list[_Recording] = []
        by_key: dict[tuple[str | None, str], _Recording] = {}
        for index, record in enumerate(records):
            if not isinstance(record, Mapping):
                self._items.append(_Recording(None, None, [index], bare=True))
                continue
            session = id_text(record.get("telephonySessionId"))
            recording_ids = _recording_ids(record)
            if not recording_ids:
                self._items.append(_Recording(session, None, [index]))
                continue
            for recording_id in recording_ids:
                key = (session, recording_id)
                item = by_key.get(key)
                if item is None:
                    item = by_key[key] = _Recording(session, recording_id, [])
                    self._items.append(item)
                item.indices.append(index)

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._item(item) for item in self._items[index]]
        return self._item(self._items[index])

    def _item(self, item: _Recording) -> Any:
        if item.bare:
            return self._records[item.indices[0]]
        return {
            "telephonySessionId": item.session,
            "recordingId": item.recording_id,
            "records": [self._records[index] for index in item.indices],
        }


def _recording_ids(record: Mapping[str, Any]) -> list[str]:
    ids: list[str] = []
    for holder in [record, *_legs(record)]:
        recording = holder.get("recording")
        if isinstance(recording, Mapping):
            recording_id = id_text(recording.get("id"))
            if recording_id is not None and recording_id not in ids:
                ids.append(recording_id)
    return ids


def _recording_id(holder: Mapping[str, Any]) -> str | None:
    recording = holder.get("recording")
    return id_text(recording.get("id")) if isinstance(recording, Mapping) else None


def _direction(holder: Mapping[str, Any] | None) -> Direction | None:
    text = field_text(holder.get("direction")) if holder is not None else None
    return {"inbound": Direction.INBOUND, "outbound": Direction.OUTBOUND}.get((text or "").lower())


def _legs(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    legs = record.get("legs")
    if not isinstance(legs, list):
        return []
    return [leg for leg in legs if isinstance(leg, Mapping)]


class _RecordingMapper:
    """One grouped recording (see :func:`recordings_of`) as a :class:`CallRecord`."""

    def __init__(
        self, provider: RingCentralProvider, item: Mapping[str, Any], position: RecordPosition
    ) -> None:
        self.provider = provider
        self.item = item
        self.read = RecordReader(item, position, provider.clock())

    def malformed(self, reason: str) -> MalformedRecordError:
        return self.read.malformed(reason)

    def record(self) -> CallRecord:
        item = self.item
        records = item.get("records")
        if not isinstance(records, list) or not records:
            raise self.malformed("has no call-log records: not a call-log record")
        session = id_text(item.get("telephonySessionId"))
        recording_id = id_text(item.get("recordingId"))
        first = records[0] if isinstance(records[0], Mapping) else {}
        call_id = self.read.call_id_from(
            recording_id or session or first.get("id"),
            missing="has no recording id, telephonySessionId or id",
            name="call id",
        )
        starts = self._starts(records)
        started_at = min(starts)
        # The earliest record carrying the recording, and the legs that recorded it: the rep's
        # (a transferred call lists the recording again on the later records of its session).
        paired = sorted(zip(starts, records, strict=True), key=lambda pair: pair[0])
        in_order = [record for _, record in paired]
        record, legs, recording = self._recorded(in_order, recording_id)
        duration = record.get("duration")
        if duration is not None and (
            isinstance(duration, bool) or not isinstance(duration, int) or duration < 0
        ):
            raise self.malformed(f"duration {duration!r} at records[].duration is not seconds")
        ended_at = started_at + timedelta(seconds=duration) if duration is not None else None

        # The record's direction is the call's; a leg's is only that leg's (an inbound call's
        # record can list an outbound leg first), and RingCentral documents no leg order.
        direction = _direction(record) or next(
            (leg_direction for leg in legs if (leg_direction := _direction(leg))), None
        )
        leg = next((leg for leg in legs if _direction(leg) is direction), None)
        rep_party: Mapping[str, Any] = {}
        contact_party: Mapping[str, Any] = {}
        if direction is not None:
            inbound = direction is Direction.INBOUND
            rep_side, contact_side = ("to", "from") if inbound else ("from", "to")
            rep_party = _party(leg, record, rep_side)
            contact_party = _party(leg, record, contact_side)

        # An extension is always one of the account's own: never the customer.
        extension_id = (
            _extension_id(leg)
            or _extension_id(record)
            or next(
                (leg_extension for other in legs if (leg_extension := _extension_id(other))), None
            )
        )
        extension = self.provider.extension(extension_id) if extension_id else None
        undecided = None
        if direction is None and extension_id is None:
            # Without a direction either party may be the customer.
            undecided = (
                "RingCentral gives the record neither a direction (Inbound or Outbound) nor an "
                "extension, so which of its parties is the rep is unknown"
            )

        content_uri = field_text(recording.get("contentUri")) if recording else None
        media_base_url = self.provider.settings.media_base_url
        state = self._state(record, recording, content_uri)

        def limited(value: str | None, name: str) -> str | None:
            return value[: TEXT_LIMITS[name]] if value is not None else None

        return CallRecord(
            provider_call_id=call_id,
            started_at=started_at,
            recording_state=state,
            raw=sanitise_raw(item),
            recording_id=recording_id,
            ended_at=ended_at,
            duration_seconds=duration,
            direction=direction,
            rep_email=limited(extension.email if extension else None, "rep_email"),
            rep_phone=limited(field_text(rep_party.get("phoneNumber")), "rep_phone"),
            rep_provider_id=limited(extension_id, "rep_provider_id"),
            rep_name=limited(
                (extension.name if extension else None) or field_text(rep_party.get("name")),
                "rep_name",
            ),
            rep_extension=limited(
                (extension.number if extension else None)
                or field_text(rep_party.get("extensionNumber")),
                "rep_extension",
            ),
            contact_name=limited(field_text(contact_party.get("name")), "contact_name"),
            contact_phone=limited(field_text(contact_party.get("phoneNumber")), "contact_phone"),
            # A signed contentUri's query, under whatever name, is read again to download.
            recording_url=mask_url_query(urljoin(media_base_url, content_uri))
            if content_uri
            else None,
            recording_too_short=state is RecordingState.NONE and _short(record, leg),
            rep_undecided_reason=undecided,
        )

    def _recorded(
        self, records: list[Any], recording_id: str | None
    ) -> tuple[Mapping[str, Any], list[Mapping[str, Any]], Mapping[str, Any] | None]:
        """The first record carrying the recording, the legs that carry it (its master legs
        when only the record does) and the recording itself."""
        for record in records:
            if not isinstance(record, Mapping) or recording_id is None:
                continue
            legs = [leg for leg in _legs(record) if _recording_id(leg) == recording_id]
            holder = record if _recording_id(record) == recording_id else next(iter(legs), None)
            if holder is not None:
                recording = holder["recording"]
                return record, legs or _masters(record), recording
        first = records[0]
        if not isinstance(first, Mapping):
            raise self.malformed("records[0] is not a JSON object")
        return first, _masters(first), None

    def _starts(self, records: list[Any]) -> list[datetime]:
        times: list[datetime] = []
        for record in records:
            value = record.get("startTime") if isinstance(record, Mapping) else None
            started = self.read.time(value, "iso8601", "started_at (records[].startTime)")
            if started is None:
                raise self.malformed("started_at has no value at records[].startTime")
            times.append(started)
        return times

    def _state(
        self,
        record: Mapping[str, Any],
        recording: Mapping[str, Any] | None,
        content_uri: str | None,
    ) -> RecordingState:
        if recording is None:
            return RecordingState.NONE
        if content_uri is None or record.get("result") == "In Progress":
            return RecordingState.PENDING
        return RecordingState.READY


def _masters(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [leg for leg in _legs(record) if leg.get("master") is True]


def _party(
    leg: Mapping[str, Any] | None, record: Mapping[str, Any], side: str
) -> Mapping[str, Any]:
    for holder in (leg, record):
        party = holder.get(side) if holder is not None else None
        if isinstance(party, Mapping) and party:
            return party
    return {}


def _extension_id(holder: Mapping[str, Any] | None) -> str | None:
    if holder is None:
        return None
    extension = holder.get("extension")
    if isinstance(extension, Mapping):
        found = field_text(extension.get("id"))
        if found is not None:
            return found
    return field_text(holder.get("extensionId"))


def _short(record: Mapping[str, Any], leg: Mapping[str, Any] | None) -> bool:
    return record.get("shortRecording") is True or (
        leg is not None and leg.get("shortRecording") is True
    )
