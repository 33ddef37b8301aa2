"""Zoom Phone: the account's call recordings, each uploaded once with its owner as the rep.

What it speaks, per Zoom's API reference and its official SDK (``@zoom/rivet``):

- **Auth**: Server-to-Server OAuth. ``POST https://zoom.us/oauth/token`` with
  ``grant_type=account_credentials`` and ``account_id`` as a form body and the client id and
  secret as HTTP Basic. Tokens live one hour and come without a refresh token: a new one is
  minted a minute ahead of expiry and again after a 401 (:class:`OAuthClientCredentials`).
- **Listing**: ``GET https://api.zoom.us/v2/phone/recordings`` (account level), ``from``/``to``
  as ``yyyy-MM-ddTHH:mm:ssZ`` filtered on the start time, at most one month apart (windows are
  split by the core through :attr:`ZoomProvider.capabilities`), ``page_size`` up to 300 and
  ``next_page_token``. A token expires after 15 minutes; Zoom then refuses the page, and the
  window is listed again from its first page on the next cycle.
- **One recording, one call**: a row per recording ``id`` (a transferred call can carry a
  recording per owner), with the Zoom ``call_id`` kept in the raw record.
- **Rep**: the recording's ``owner`` when it is a ``user``. A recording owned by a call queue
  (or a common area, an auto receptionist...) names the agent who took it in ``accepted_by``
  (inbound) or placed it in ``outgoing_by`` (outbound), by name and extension only; the queue
  itself is never the rep. The item has no email, so the rep is looked up in
  ``GET /v2/phone/users``: an owner by its id, an agent by extension, else by a name no other
  user has (cached, refreshed every ``users_refresh_minutes`` and when an unknown owner or
  agent shows up). An agent that is no phone user keeps its name and extension, for
  ``[siro.rep_map]``.
- **Contact**: the caller of an inbound recording, the callee of an outbound one.
- **Download**: ``download_url`` (on ``zoom.us``) with ``Authorization: Bearer``; Zoom refuses
  tokens in the query string. A ``download_url`` that carried a query string is stored without
  it; before downloading, the recording is fetched again
  (``GET /v2/phone/call_logs/{call_id}/recordings``) for the full URL.
- **Rate limits**: per account and endpoint category, plus daily caps. A 429 names its
  ``X-RateLimit-Type`` (``QPS`` or ``Daily-limit``) and, for a daily cap, a ``Retry-After``
  instant. A daily cap without ``Retry-After`` lasts until 00:00 UTC (Zoom's own wording).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from urllib.parse import quote, urljoin

from pydantic import Field, SecretStr

from poller.adapters.http import Authenticator, HttpError, HttpTransient
from poller.adapters.http.auth import OAuthClientCredentials
from poller.adapters.http.paginators import (
    PageRequest,
    PageResponse,
    Paginator,
    TokenPaginator,
)
from poller.adapters.providers.base import ERROR_KEYS, ProviderAdapter, RecordReader
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.adapters.webhooks.settings import WebhookSettings
from poller.adapters.webhooks.zoom import ZoomWebhookVerifier, zoom_console_steps
from poller.config_types import MINIMAL, BaseUrl, NonBlank, PositiveSeconds
from poller.domain.call_record import (
    TEXT_LIMITS,
    CallRecord,
    DownloadRequest,
    ProviderCapabilities,
    RecordingLocator,
    host_key,
)
from poller.domain.clock import format_time
from poller.domain.paths import present
from poller.domain.raw_record import (
    field_text,
    sanitise_raw,
)
from poller.domain.redaction import MASK, mask_url_query
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window, request_bounds
from poller.ports.provider import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RecordPosition,
    SourceDeletion,
    TransientProviderError,
)
from poller.ports.webhooks import WebhookSubscriptions, WebhookVerifier

if TYPE_CHECKING:
    from poller.adapters.http.client import JsonPage

log = logging.getLogger(__name__)

ZOOM_API_URL = "https://api.zoom.us/v2"
ZOOM_TOKEN_URL = "https://zoom.us/oauth/token"  # noqa: S105 (an address, not a secret)
ACCOUNT_CREDENTIALS_GRANT = "account_credentials"
# "The date range must be within one month": 27 days, widened by a second each side, fit in
# any month, February included.
MAX_WINDOW = timedelta(days=27)
MAX_PAGE_SIZE = 300
USERS_PAGE_SIZE = 100
# A per-second limit lifts within a second or two; how long a 429 without Retry-After waits.
QPS_RETRY_AFTER = 2.0
_SECOND = timedelta(seconds=1)
NEXT_PAGE_TOKEN = "next_page_token"  # noqa: S105 (a parameter name)
# The one owner type that is a person; every other owner only says where the call came in.
USER_OWNER = "user"


class ZoomWebhookSettings(WebhookSettings):
    """``[provider.webhook]``: Zoom Phone's events (a recording completed, a call ended) nudge
    an early poll (with ``[webhooks] listen`` set). Zoom has no subscription API we use:
    `webhooks subscribe` prints the Marketplace steps. The poll stays the source of truth: a lost
    event costs latency, never a call."""

    secret: SecretStr | None = None
    """The Secret Token of the app's Event Subscriptions (Zoom App Marketplace > your app >
    Feature). Zoom signs every event with it (x-zm-signature) and the URL validation is answered
    with it; required with enabled."""


class ZoomSettings(ProviderSettingsBase):
    """``[provider]`` with ``kind = "zoom"``: Zoom Phone's call recordings, read by a
    Server-to-Server OAuth app of the account; listing, paging and fields are built in.
    """

    kind: Literal["zoom"] = "zoom"
    """Selects the Zoom Phone adapter."""
    source_deletion_unsupported: ClassVar[str | None] = None

    account_id: NonBlank | None = Field(
        default=None, examples=["replace-with-your-account-id"], json_schema_extra=MINIMAL
    )
    """The app's Account ID (App Credentials page of the Zoom App Marketplace)."""
    client_id: NonBlank | None = Field(
        default=None, examples=["replace-with-your-client-id"], json_schema_extra=MINIMAL
    )
    """The app's Client ID."""
    client_secret: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The app's Client Secret."""
    token_url: BaseUrl = ZOOM_TOKEN_URL
    """Zoom's OAuth token endpoint; change only to test against a simulator."""
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = MAX_PAGE_SIZE
    """Recordings per listing page, 1 to 300."""
    users_refresh_minutes: Annotated[float, Field(gt=0)] = 60.0
    """Minutes the phone users' emails (the reps) are cached; an unknown owner reloads them sooner.
    """
    settle_delay_seconds: Annotated[float, Field(ge=0)] = 60.0
    """Seconds after a call Zoom may still file its recording (adds to poll's delay)."""
    # Zoom's daily cap lifts at 00:00 UTC, named in its Retry-After: up to a day is genuine.
    max_retry_after_seconds: PositiveSeconds = Field(
        default=24 * 3600.0,
        description="longest wait a Retry-After may impose (a daily cap lasts up to a day)",
    )

    webhook: ZoomWebhookSettings = ZoomWebhookSettings()
    """This provider's webhook events, which nudge an early poll (see [webhooks])."""

    vendor_hosts: ClassVar[tuple[str, ...]] = ("api.zoom.us", "zoom.us")
    default_base_url: ClassVar[str | None] = ZOOM_API_URL

    def requirements(self) -> list[str]:
        why = "required by Zoom's Server-to-Server OAuth (the app's credentials)"
        missing = [
            f"{self.config_key(key)}: {why}"
            for key in ("account_id", "client_id", "client_secret")
            if getattr(self, key) in (None, "")
        ]
        if self.webhook.lacks_secret():
            missing.append(
                f"{self.config_key('webhook.secret')}: required with "
                f"{self.config_key('webhook.enabled')}: the Secret Token of the app's Event "
                "Subscriptions, which signs Zoom's events and answers its URL validation"
            )
        return missing


class ZoomProvider(ProviderAdapter[ZoomSettings]):
    """A :class:`poller.ports.provider.ProviderPort` over the Zoom Phone recordings API."""

    kind: ClassVar[str] = "zoom"
    settings_model: ClassVar[type[ProviderSettingsBase]] = ZoomSettings
    # Zoom's error answer: {"code": 300, "message": ...}.
    error_keys: ClassVar[tuple[str, ...]] = (*ERROR_KEYS, "code")

    def __init__(self, settings: ZoomSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._users_lock = threading.Lock()
        self._users = PhoneUsers()
        self._users_fetched_at: datetime | None = None

    # -- what the base class asks ---------------------------------------------------------

    @property
    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            max_window=MAX_WINDOW,
            settle_delay=timedelta(seconds=self.settings.settle_delay_seconds),
        )

    def authenticator(self) -> Authenticator:
        settings = self.settings
        assert settings.client_id is not None and settings.client_secret is not None
        return OAuthClientCredentials(
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            extra_params={
                "grant_type": ACCOUNT_CREDENTIALS_GRANT,
                "account_id": settings.account_id or "",
            },
            client_auth="basic",
            config_hint=", ".join(
                settings.config_key(key) for key in ("account_id", "client_id", "client_secret")
            ),
            clock=self.clock,
        )

    def credential_hosts(self) -> set[str]:
        return super().credential_hosts() | {host_key(self.settings.token_url)}

    def explicit_credential_hosts(self) -> set[str]:
        token_host = host_key(self.settings.token_url)
        return set() if token_host in self.settings.vendor_hosts else {token_host}

    def items_path(self) -> str | None:
        return "recordings"

    def first_request(self, window: Window) -> PageRequest:
        start, end = request_bounds(window, _SECOND)
        params = {
            "from": format_time(start, "iso8601"),
            "to": format_time(end, "iso8601"),
            "query_date_type": "start_time",
            "page_size": str(self.settings.page_size),
        }
        return PageRequest(self._api("phone/recordings"), params)

    def paginator(self) -> Paginator:
        return TokenPaginator(token_path=NEXT_PAGE_TOKEN, token_param=NEXT_PAGE_TOKEN)

    def before_mapping(self, items: Sequence[Any], window: Window) -> Sequence[Any]:
        self._know_users(item for item in items if isinstance(item, Mapping))
        return items

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        read = RecordReader(raw, position, self.clock())
        recording_id = read.call_id_from(
            raw.get("id"), missing="id (the recording id) has no value", name="id"
        )
        started_at = read.time(raw.get("date_time"), "iso8601", "started_at (date_time)")
        if started_at is None:
            raise read.malformed("started_at (date_time) has no value")
        ended_at = read.time(raw.get("end_time"), "iso8601", "started_at (end_time)")
        duration = read.duration(raw.get("duration"), started_at=started_at, ended_at=ended_at)

        direction = _direction(raw.get("direction"))
        # The contact is the other party: the caller of an inbound call, the callee otherwise.
        party = "caller" if direction is Direction.INBOUND else "callee"
        rep = self._rep(raw, direction)
        url = field_text(raw.get("download_url"))
        if url is not None:
            url = urljoin(self.base_url + "/", url)
        return CallRecord(
            provider_call_id=recording_id,
            recording_id=recording_id,
            started_at=started_at,
            ended_at=ended_at,
            duration_seconds=duration,
            direction=direction,
            recording_state=RecordingState.READY if url else RecordingState.PENDING,
            raw=sanitise_raw(raw),
            rep_email=_limit(rep.email, "rep_email"),
            rep_provider_id=_limit(rep.user_id, "rep_provider_id"),
            rep_name=_limit(rep.name, "rep_name"),
            rep_extension=_limit(rep.extension, "rep_extension"),
            contact_name=_limit(field_text(raw.get(f"{party}_name")), "contact_name"),
            contact_phone=_limit(field_text(raw.get(f"{party}_number")), "contact_phone"),
            # Zoom signs file URLs with a token under its own names (jwt): no query value is
            # stored, and a masked URL is read again by call id to download.
            recording_url=mask_url_query(url) if url else None,
            rep_undecided_reason=_no_agent_reason(raw, direction) if rep == PhoneUser() else None,
        )

    def resolve_download(self, call: RecordingLocator) -> DownloadRequest:
        stored = call.recording_url
        if stored is None:
            raise PermanentProviderError(
                f"recording {call.provider_call_id} has no download_url to download"
            )
        url = stored
        if MASK in stored:
            url = self._fresh_download_url(call)
        return self.download_request(url, "mp3")

    def delete_recording(self, call: RecordingLocator) -> SourceDeletion:
        """``DELETE /phone/recordings/{recordingId}`` (scope phone:write:admin or
        phone_recording:write:admin); the row's provider id is the recording id."""
        recording_id = call.recording_id or call.provider_call_id
        return self.send_delete(
            f"{self.base_url.rstrip('/')}/phone/recordings/{quote(recording_id, safe='')}",
            f"delete recording {recording_id}",
        )

    # -- webhook events -------------------------------------------------------------------

    def webhook_verifier(self) -> WebhookVerifier | None:
        webhook = self.settings.webhook
        secret = webhook.active_secret()
        if secret is None:
            return None
        return ZoomWebhookVerifier(secret, max_event_age_seconds=webhook.max_event_age_seconds)

    def webhook_subscriptions(self) -> WebhookSubscriptions | None:
        # Event Subscriptions live in the app's Marketplace page: no API we use manages them.
        return zoom_console_steps(self.name)

    # -- errors: Zoom's rate limits ---------------------------------------------------------

    def get_json(
        self, request: PageRequest, what: str, *, parse: Callable[[bytes], Any] = json.loads
    ) -> JsonPage:
        try:
            return super().get_json(request, what, parse=parse)
        except PermanentProviderError as exc:
            if exc.status == 400 and NEXT_PAGE_TOKEN in (request.params or {}):
                raise TransientProviderError(
                    f"{exc}: Zoom refused the next_page_token (it lasts 15 minutes); the "
                    "window is listed again from its first page",
                    status=400,
                ) from None
            raise

    def provider_error(self, exc: HttpError) -> ProviderError:
        error = super().provider_error(exc)
        if isinstance(error, ProviderAuthError):
            keys = ", ".join(
                self.settings.config_key(key)
                for key in ("account_id", "client_id", "client_secret")
            )
            return ProviderAuthError(
                f"{exc}: Zoom refused the app's access; check {keys} and that the app is "
                "activated with the Zoom Phone scopes the README lists",
                status=exc.status,
            )
        if not (isinstance(exc, HttpTransient) and exc.status == 429):
            return error
        retry_after = exc.retry_after
        headers = exc.response.headers if exc.response is not None else {}
        limit_type = next(
            (value for name, value in headers.items() if name.lower() == "x-ratelimit-type"), ""
        )
        daily = limit_type.lower().startswith("daily")
        if retry_after is None:
            if daily:
                now = self.clock()
                midnight = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
                retry_after = (midnight - now).total_seconds()
            else:
                retry_after = QPS_RETRY_AFTER
        if daily and self.http.rate_limiter is not None:
            # A daily cap covers every request of the account: downloads wait for it too.
            self.http.rate_limiter.pause_for(retry_after)
        cap = "daily cap" if daily else "rate limit"
        return TransientProviderError(
            f"{exc}: Zoom's {cap} ({limit_type or 'no X-RateLimit-Type'}); next try in "
            f"{retry_after:.0f} s",
            status=429,
            retry_after=retry_after,
        )

    # -- helpers -------------------------------------------------------------------------

    def _api(self, path: str) -> str:
        return urljoin(self.base_url + "/", path)

    def _rep(self, raw: Mapping[str, Any], direction: Direction | None) -> PhoneUser:
        """Who the recording belongs to: its user owner, else the agent of its queue."""
        owner = _object(raw.get("owner"))
        users = self._users
        user_id = field_text(owner.get("id"))
        known = users.by_id.get(user_id) if user_id else None
        # An owner without a type is taken for a person only when it is one of the phone users.
        if _is_user(owner) or (owner.get("type") is None and known is not None):
            return PhoneUser(
                user_id=user_id,
                email=known.email if known else None,
                name=field_text(owner.get("name")),
                extension=_extension(owner.get("extension_number")),
            )
        agent = _agent(raw, direction)
        if agent is None:
            return PhoneUser()
        name = field_text(agent.get("name"))
        extension = _extension(agent.get("extension_number"))
        known = users.find(extension, name)
        if known is None:
            return PhoneUser(name=name, extension=extension)
        return PhoneUser(
            user_id=known.user_id,
            email=known.email,
            name=name or known.name,
            extension=extension or known.extension,
        )

    def _know_users(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Load the phone users if they are stale or a rep on the page is not among them."""
        refresh = timedelta(minutes=self.settings.users_refresh_minutes)
        with self._users_lock:
            now = self.clock()
            fetched = self._users_fetched_at
            stale = fetched is None or now - fetched >= refresh
            # A rep Zoom added since the last load is worth one more load, once a minute.
            unknown = any(not self._users.knows(item) for item in items) and (
                fetched is None or now - fetched >= timedelta(minutes=1)
            )
            if not (stale or unknown):
                return
            self._users = self._load_users()
            self._users_fetched_at = now

    def _load_users(self) -> PhoneUsers:
        users: list[PhoneUser] = []
        request: PageRequest | None = PageRequest(
            self._api("phone/users"), {"page_size": str(USERS_PAGE_SIZE)}
        )
        paginator = TokenPaginator(token_path=NEXT_PAGE_TOKEN, token_param=NEXT_PAGE_TOKEN)
        pages = 0
        while request is not None and pages < self.max_pages():
            pages += 1
            page = self.get_json(request, f"phone users, page {pages}")
            listed = page.body.get("users") if isinstance(page.body, Mapping) else None
            if not isinstance(listed, list):
                raise PermanentProviderError(
                    f"phone users, page {pages}: the response has no users list"
                )
            for user in listed:
                if isinstance(user, Mapping) and present(user.get("id")):
                    users.append(
                        PhoneUser(
                            user_id=str(user["id"]),
                            email=field_text(user.get("email")),
                            name=field_text(user.get("name")),
                            extension=_extension(user.get("extension_number")),
                        )
                    )
            request = paginator.next_request(
                request, PageResponse(page.url, page.body, page.headers, listed)
            )
        log.info("loaded %d Zoom Phone users for rep emails", len(users))
        return PhoneUsers.of(users)

    def _fresh_download_url(self, call: RecordingLocator) -> str:
        raw = getattr(call, "raw", None)
        call_id = field_text(raw.get("call_id")) if isinstance(raw, Mapping) else None
        if call_id is None:
            raise PermanentProviderError(
                f"recording {call.provider_call_id}: its download_url carried a query string, "
                "so it was not stored, and the stored record names no call_id to fetch it again"
            )
        page = self.get_json(
            PageRequest(self._api(f"phone/call_logs/{quote(call_id, safe='')}/recordings")),
            f"recording {call.provider_call_id}",
        )
        body = page.body if isinstance(page.body, Mapping) else {}
        url = field_text(body.get("download_url"))
        if url is None:
            raise TransientProviderError(
                f"recording {call.provider_call_id}: Zoom returned no download_url for it yet"
            )
        return urljoin(self.base_url + "/", url)


@dataclass(frozen=True, slots=True)
class PhoneUser:
    """A rep as the recording and ``GET /phone/users`` name it; any part may be unknown."""

    user_id: str | None = None
    email: str | None = None
    name: str | None = None
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class PhoneUsers:
    """The account's phone users, by id, by extension and by (case-folded) name."""

    by_id: Mapping[str, PhoneUser] = field(default_factory=dict)
    by_extension: Mapping[str, PhoneUser] = field(default_factory=dict)
    # Every user of a name: a name two users share names neither of them.
    by_name: Mapping[str, tuple[PhoneUser, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, users: Iterable[PhoneUser]) -> PhoneUsers:
        by_id: dict[str, PhoneUser] = {}
        by_extension: dict[str, PhoneUser] = {}
        by_name: dict[str, tuple[PhoneUser, ...]] = {}
        for user in users:
            if user.user_id is not None:
                by_id[user.user_id] = user
            if user.extension is not None:
                by_extension[user.extension] = user
            if user.name is not None:
                key = user.name.casefold()
                by_name[key] = (*by_name.get(key, ()), user)
        return cls(by_id, by_extension, by_name)

    def find(self, extension: str | None, name: str | None) -> PhoneUser | None:
        """The user with ``extension``, else the only user called ``name``."""
        if extension is not None and extension in self.by_extension:
            return self.by_extension[extension]
        namesakes = self.by_name.get(name.casefold(), ()) if name else ()
        return namesakes[0] if len(namesakes) == 1 else None

    def knows(self, item: Mapping[str, Any]) -> bool:
        """Whether the rep of a recording ``item`` is among these users (so no reload helps)."""
        owner = _object(item.get("owner"))
        if _is_user(owner):
            owner_id = field_text(owner.get("id"))
            return owner_id is None or owner_id in self.by_id
        agent = _agent(item, _direction(item.get("direction")))
        if agent is None:
            return True
        extension = _extension(agent.get("extension_number"))
        name = field_text(agent.get("name"))
        return (extension is None and name is None) or self.find(extension, name) is not None


def _is_user(owner: Mapping[str, Any]) -> bool:
    kind = field_text(owner.get("type"))
    return kind is not None and kind.lower() == USER_OWNER


def _agent(raw: Mapping[str, Any], direction: Direction | None) -> Mapping[str, Any] | None:
    """The agent of a queue's recording: who took it in, or who placed it out."""
    if direction is Direction.INBOUND:
        agent = raw.get("accepted_by")
    elif direction is Direction.OUTBOUND:
        agent = raw.get("outgoing_by")
    else:
        return None
    return agent if isinstance(agent, Mapping) else None


def _no_agent_reason(raw: Mapping[str, Any], direction: Direction | None) -> str:
    """Why a recording whose owner is no person names no rep, for the skipped row."""
    owner = _object(raw.get("owner"))
    kind = field_text(owner.get("type")) or "owner of no type"
    name = field_text(owner.get("name"))
    where = f"{kind} {name!r}" if name else kind
    if direction is Direction.INBOUND:
        missing = "names no agent in accepted_by"
    elif direction is Direction.OUTBOUND:
        missing = "names no agent in outgoing_by"
    else:
        missing = "has no direction to tell whether accepted_by or outgoing_by names its agent"
    return (
        f"the Zoom recording belongs to the {where}, not a person, and {missing}; "
        "it is never given to the queue"
    )


def _extension(value: Any) -> str | None:
    """An extension as text: ``1001`` and ``"1001"`` are the same extension."""
    if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer():
        return str(int(value))
    return field_text(value)


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _limit(value: str | None, name: str) -> str | None:
    return value[: TEXT_LIMITS[name]] if value is not None else None


def _direction(value: Any) -> Direction | None:
    text = field_text(value)
    lowered = text.lower() if text else None
    if lowered == "inbound":
        return Direction.INBOUND
    if lowered == "outbound":
        return Direction.OUTBOUND
    return None
