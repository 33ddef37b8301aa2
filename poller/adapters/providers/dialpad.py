"""Dialpad: the company call log of the Admin API v2, recordings through share links.

- **Auth:** a company-admin API key with the ``calls:list`` scope, sent as
  ``Authorization: Bearer <key>``.
- **Listing:** ``GET /api/v2/call`` (``call.list``) with ``started_after`` and
  ``started_before`` in UTC epoch milliseconds, paged by the opaque ``cursor`` of each
  ``CallCollection``. Dialpad answers newest first and lists a call only once it has ended.
- **Mapping:** ``target`` is who placed or took the call and ``contact`` the other party;
  times are epoch milliseconds and ``duration`` is in milliseconds. int64 fields may come as
  JSON strings (the spec's own examples do).
- **Rep:** only a ``target`` of type ``user`` is a rep. A call center, department, office or
  any other group target is where the call was routed, not who spoke: ``CallProto`` documents
  no field naming the agent of such a call (``operator_call_id`` is the id of another call,
  ``proxy_target`` the caller ID a user dialled out with), so it names no rep. Nor is
  ``internal_number`` then taken as the rep's phone: it is the group's line. Such a call is
  skipped when listed as ``rep_undecided``, its reason naming the group; Dialpad lists the
  agent's own leg of the call too, with its user target.
- **Recording:** the call recording is picked from ``recording_details`` (never a voicemail);
  it is fetched through ``POST /api/v2/recordingsharelink``, which returns an ``access_link``
  with the privacy the admin configured. ``was_recorded`` may be true before
  ``recording_details`` is filled in: such a call waits.
- **Rate limits:** 20 requests a second per company and 1,200 a minute for ``call.list``
  (``requests_per_minute``); 100 share links a minute (``share_links_per_minute``), kept apart
  so a busy download queue never stalls the listing.

Never losing a call, newest first
---------------------------------
The core commits every page as it comes and moves the cursor only past a span whose pages all
arrived, so when a later page fails the older calls are simply listed again next cycle. The
real risk is elsewhere: Dialpad files a call under its *start* time but lists it only once it
has *ended*. A call longer than the poll lookback would start in a window that was already
listed before it ended. Each window therefore also asks for calls that started up to
``long_call_hours`` earlier and keeps those of them that ended inside or after the window's
start: a call that ended after an earlier listing could not have been in it.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field, SecretStr

from poller.adapters.http import Authenticator, HttpError, RateLimiter
from poller.adapters.http.auth import BearerToken
from poller.adapters.http.paginators import PageRequest, Paginator, TokenPaginator
from poller.adapters.providers.base import ProviderAdapter, RecordReader
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.adapters.webhooks.dialpad import DialpadSubscriptions, DialpadWebhookVerifier
from poller.adapters.webhooks.settings import WebhookSettings
from poller.adapters.webhooks.vendor_api import json_api
from poller.config_types import MINIMAL
from poller.domain.call_record import (
    MAX_ID_LENGTH,
    TEXT_LIMITS,
    CallRecord,
    DownloadRequest,
    ProviderCapabilities,
    RecordingLocator,
)
from poller.domain.clock import format_time
from poller.domain.raw_record import (
    field_text,
    parse_number,
    sanitise_raw,
)
from poller.domain.redaction import mask_url_query
from poller.domain.states import Direction, RecordingState
from poller.domain.windows import Window, request_bounds
from poller.ports.provider import (
    ListedPage,
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RecordPosition,
    TransientProviderError,
)
from poller.ports.webhooks import WebhookSubscriptions, WebhookVerifier

SharePrivacy = Literal["owner", "admin", "company", "public"]

CALL_LIST_PATH = "/api/v2/call"
SHARE_LINK_PATH = "/api/v2/recordingsharelink"
# The only target type that is a person; the others (callcenter, department, office...) are groups.
USER_TARGET = "user"
_MILLISECOND = timedelta(milliseconds=1)
# Recordings of the call itself, best first; a voicemail is never the call's recording.
CALL_RECORDING_TYPES = ("callrecording", "admincallrecording")
# Fields that hold share links: whoever has one may listen, so they are never stored.
SHARE_LINK_FIELDS = frozenset(
    {
        "call_recording_share_links",
        "admin_call_recording_share_links",
        "voicemail_share_link",
        "csat_recording_urls",
        "screen_recording_urls",
    }
)
# A share link is reused while it is this young: a download retried after a passing failure
# must not spend another of the 100 links a minute.
SHARE_LINK_REUSE_SECONDS = 30 * 60
SHARE_LINK_CACHE_SIZE = 2048
# A download waits this long at most for its turn at a share link; longer, it is rescheduled.
SHARE_LINK_MAX_WAIT_SECONDS = 5.0


class DialpadWebhookSettings(WebhookSettings):
    """``[provider.webhook]``: Dialpad's call events (hangup, recording) nudge an early poll
    (with ``[webhooks] listen`` set); `webhooks subscribe` creates the webhook and its call
    event subscription. The poll stays the source of truth: a lost event costs latency, never
    a call."""

    secret: SecretStr | None = None
    """A long random string of your choice (not the API key): `webhooks subscribe` gives it to
    Dialpad as the webhook's secret, and Dialpad signs every event (an HS256 JWT) with it.
    Required with enabled: an unsigned event is refused."""


class DialpadSettings(ProviderSettingsBase):
    """``[provider]`` with ``kind = "dialpad"``: the company call log of Dialpad's Admin API v2,
    recordings downloaded through share links. base_url unset is https://dialpad.com; Dialpad's
    sandbox is https://sandbox.dialpad.com.
    """

    kind: Literal["dialpad"] = "dialpad"
    """Selects the Dialpad adapter."""
    source_deletion_unsupported: ClassVar[str | None] = (
        "Dialpad documents no endpoint that deletes a call recording (its API only manages "
        "recording share links)"
    )

    api_key: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """A company-admin API key with the calls:list scope, sent as Authorization: Bearer."""
    share_link_privacy: SharePrivacy = "public"
    """Privacy of the share link made to download each recording: "owner", "admin", "company" or
    "public". Dialpad serves a link's audio without a browser login only when it is public.
    """
    share_links_per_minute: Annotated[int, Field(gt=0, le=100)] = 100
    """Share links made per minute at most (Dialpad allows 100); past it a download waits its turn.
    """
    long_call_hours: Annotated[float, Field(ge=0, le=24)] = 4.0
    """Dialpad lists a call only once it has ended, under its start time: each window also asks for
    calls that started this many hours earlier, so a call longer than the lookback is kept.
    """
    requests_per_minute: Annotated[int, Field(gt=0)] | None = 1200
    """Listing requests per minute (Dialpad allows 1,200 for call.list, 20 a second per company)."""
    webhook: DialpadWebhookSettings = DialpadWebhookSettings()
    """This provider's webhook events, which nudge an early poll (see [webhooks])."""

    vendor_hosts: ClassVar[tuple[str, ...]] = ("dialpad.com",)
    default_base_url: ClassVar[str | None] = "https://dialpad.com"

    def requirements(self) -> list[str]:
        missing = super().requirements()
        if self.api_key is None or not self.api_key.get_secret_value():
            missing.append(
                f"{self.config_key('api_key')}: required: a Dialpad company-admin API key "
                "with the calls:list scope"
            )
        if self.webhook.lacks_secret():
            missing.append(
                f"{self.config_key('webhook.secret')}: required with "
                f"{self.config_key('webhook.enabled')}: Dialpad signs its events (a JWT) with "
                "it, and unsigned events are refused"
            )
        return missing


class DialpadProvider(ProviderAdapter[DialpadSettings]):
    """A :class:`poller.ports.provider.ProviderPort` for Dialpad's call log."""

    kind: ClassVar[str] = "dialpad"
    settings_model: ClassVar[type[ProviderSettingsBase]] = DialpadSettings

    def __init__(self, settings: DialpadSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        if settings.requests_per_minute is not None and self.http.rate_limiter is not None:
            # Spread over the minute: 1,200 a minute in one burst would break the 20 a second.
            self.http.rate_limiter = self.steady_limiter(
                settings.requests_per_minute, name=f"provider {settings.name}"
            )
        self.share_limiter = self.steady_limiter(
            settings.share_links_per_minute,
            name=f"provider {settings.name}'s share links",
            max_wait=SHARE_LINK_MAX_WAIT_SECONDS,
        )
        # Share links have their own limit: their 429s must not pause the call listing.
        from poller.adapters.http.client import HttpClient

        self.share_http = HttpClient(
            limits=self.http.limits,
            hosts=self.http.hosts,
            retry=self.http.retry,
            auth=self.http.auth,
            rate_limiter=self.share_limiter,
            user_agent=self.http.user_agent,
        )
        self._links: OrderedDict[tuple[str, str, str], tuple[float, str]] = OrderedDict()
        self._links_lock = threading.Lock()

    def steady_limiter(self, per_minute: int, *, name: str, max_wait: float = 30.0) -> RateLimiter:
        """``per_minute`` requests a minute, evenly spaced rather than in one burst."""
        rate = max(1, per_minute // 60)
        return RateLimiter(
            rate=rate,
            period=rate * 60.0 / per_minute,
            name=name,
            max_wait=max_wait,
            monotonic=self.monotonic,
            sleep=self.sleep,
            wall_clock=self.clock,
        )

    # -- what the base class asks ---------------------------------------------------------

    @property
    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities()

    def authenticator(self) -> Authenticator:
        key = self.settings.api_key
        assert key is not None  # `config check` and requirements() report a missing key first
        return BearerToken(key)

    def items_path(self) -> str | None:
        return "items"

    def page_records(self, body: Any, where: str) -> Sequence[Any]:
        # Proto3 JSON leaves empty fields out: an empty collection is `{}`. Anything else
        # without its items, `items: null` (Dialpad's printer never writes one), or no items
        # beside an error is no empty page: the cursor must not pass it.
        if isinstance(body, Mapping) and not body:
            return []
        return super().page_records(body, where)

    def first_request(self, window: Window) -> PageRequest:
        start, end = request_bounds(window, _MILLISECOND)
        start -= timedelta(hours=self.settings.long_call_hours)
        return PageRequest(
            urljoin(self.base_url + "/", CALL_LIST_PATH.lstrip("/")),
            {
                "started_after": format_time(start, "unix_ms"),
                "started_before": format_time(end, "unix_ms"),
            },
        )

    def paginator(self) -> Paginator:
        return TokenPaginator(token_path="cursor", token_param="cursor")  # noqa: S106

    def list_window(self, window: Window) -> Iterator[ListedPage]:
        for page in super().list_window(window):
            kept = [record for record in page.records if _belongs_to(record, window)]
            yield page if len(kept) == len(page.records) else replace(page, records=kept)

    def webhook_verifier(self) -> WebhookVerifier | None:
        webhook = self.settings.webhook
        secret = webhook.active_secret()
        if secret is None:
            return None
        return DialpadWebhookVerifier(secret, max_age_seconds=webhook.max_event_age_seconds)

    def webhook_subscriptions(self) -> WebhookSubscriptions | None:
        """The webhook and its call event subscription, with the API key; ``subscribe``
        sends provider.webhook.secret as the webhook's secret."""
        return DialpadSubscriptions(
            self.name,
            self.base_url,
            json_api(self.http, self.provider_error),
            self.settings.webhook.secret,
            setting=self.settings.config_key("webhook.secret"),
        )

    def provider_error(self, exc: HttpError) -> ProviderError:
        error = super().provider_error(exc)
        if isinstance(error, ProviderAuthError):
            return ProviderAuthError(
                f"{exc}: Dialpad refused the API key; check {self.settings.config_key('api_key')}"
                " (a company-admin key with the calls:list scope that has not expired)",
                status=error.status,
            )
        return error

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        read = RecordReader(raw, position, self.clock())
        call_id = read.call_id_from(
            raw.get("call_id"), missing="call_id has no value", name="call_id"
        )
        started_at = read.time(raw.get("date_started"), "unix_ms", "date_started (as started_at)")
        if started_at is None:
            raise read.malformed("date_started (as started_at) has no value")
        ended_at = read.time(raw.get("date_ended"), "unix_ms", "date_ended (as started_at)")
        duration = read.duration(
            raw.get("duration"), "milliseconds", started_at=started_at, ended_at=ended_at
        )

        target = _object(raw.get("target"))
        rep = target if _is_user(target) else {}
        contact = _object(raw.get("contact"))
        state, recording_id, recording_url = self._recording(raw, read)

        def text(value: Any, field: str) -> str | None:
            return field_text(value, TEXT_LIMITS[field])

        return CallRecord(
            provider_call_id=call_id,
            started_at=started_at,
            recording_state=state,
            raw=sanitise_raw({k: v for k, v in raw.items() if k not in SHARE_LINK_FIELDS}),
            recording_id=recording_id,
            ended_at=ended_at,
            duration_seconds=duration,
            direction=_direction(raw.get("direction")),
            rep_email=text(rep.get("email"), "rep_email"),
            # The internal number is the user's own line only when the target is a user.
            rep_phone=text(rep.get("phone"), "rep_phone")
            or (text(raw.get("internal_number"), "rep_phone") if rep else None),
            rep_provider_id=text(rep.get("id"), "rep_provider_id"),
            rep_name=text(rep.get("name"), "rep_name"),
            contact_name=text(contact.get("name"), "contact_name"),
            contact_phone=text(contact.get("phone"), "contact_phone")
            or text(raw.get("external_number"), "contact_phone"),
            recording_url=recording_url,
            rep_undecided_reason=None if rep else _group_target_reason(target),
        )

    def resolve_download(self, call: RecordingLocator) -> DownloadRequest:
        recording_type, _, recording_id = (call.recording_id or "").partition(":")
        if recording_type not in CALL_RECORDING_TYPES or not recording_id:
            raise PermanentProviderError(
                f"call {call.provider_call_id} has no Dialpad call recording id to share"
            )
        link = self._share_link(call.provider_call_id, recording_type, recording_id)
        path = urlsplit(link).path.lower()
        # Anyone holding a share link can listen: it never appears in a message or the table.
        return self.download_request(
            link, "mp3" if path.endswith(".mp3") else None, secret_path=True
        )

    # -- recordings and share links --------------------------------------------------

    def _recording(
        self,
        raw: Mapping[str, Any],
        read: RecordReader,
    ) -> tuple[RecordingState, str | None, str | None]:
        details = raw.get("recording_details")
        if details is not None and not isinstance(details, list):
            raise read.malformed("recording_details is not a list")
        chosen = _call_recording(details or [])
        if chosen is not None:
            recording_type, recording_id = chosen["recording_type"], field_text(chosen.get("id"))
            assert recording_id is not None
            stored_id = f"{recording_type}:{recording_id}"
            if len(stored_id) > MAX_ID_LENGTH:
                raise read.malformed(f"recording id longer than {MAX_ID_LENGTH} characters")
            url = field_text(chosen.get("url"))
            return RecordingState.READY, stored_id, mask_url_query(url) if url else None
        if raw.get("was_recorded") is True:
            # Recorded, but Dialpad has not filled recording_details in yet.
            return RecordingState.PENDING, None, None
        return RecordingState.NONE, None, None

    def _share_link(self, call_id: str, recording_type: str, recording_id: str) -> str:
        privacy = self.settings.share_link_privacy
        key = (recording_type, recording_id, privacy)
        now = self.monotonic()
        with self._links_lock:
            cached = self._links.get(key)
            if cached is not None and now - cached[0] < SHARE_LINK_REUSE_SECONDS:
                return cached[1]
        what = f"share link of call {call_id}'s recording"
        try:
            answer = self.share_http.request(
                "POST",
                urljoin(self.base_url + "/", SHARE_LINK_PATH.lstrip("/")),
                json={
                    "recording_id": recording_id,
                    "recording_type": recording_type,
                    "privacy": privacy,
                },
                what=what,
                idempotent=False,
            )
        except HttpError as exc:
            raise self.provider_error(exc) from None
        link = _access_link(answer.body)
        if link is None:
            raise TransientProviderError(f"{what}: Dialpad's answer has no access_link")
        with self._links_lock:
            self._links[key] = (now, link)
            self._links.move_to_end(key)
            while len(self._links) > SHARE_LINK_CACHE_SIZE:
                self._links.popitem(last=False)
        return link


def _belongs_to(record: CallRecord, window: Window) -> bool:
    """Whether ``record``, listed for ``window``, is one of its calls (see the module doc)."""
    if window.contains(record.started_at):
        return True
    ended = record.ended_at
    return record.started_at < window.start and ended is not None and ended >= window.start


def _call_recording(details: list[Any]) -> dict[str, Any] | None:
    """The recording of the call itself: a call recording before an admin one, the longest."""
    candidates = [
        item
        for item in details
        if isinstance(item, dict)
        and item.get("recording_type") in CALL_RECORDING_TYPES
        and field_text(item.get("id")) is not None
    ]
    if not candidates:
        return None

    def rank(item: dict[str, Any]) -> tuple[int, float]:
        length = parse_number(item.get("duration")) or 0.0
        return (CALL_RECORDING_TYPES.index(item["recording_type"]), -length)

    return min(candidates, key=rank)


def _access_link(body: bytes) -> str | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    link = document.get("access_link") if isinstance(document, dict) else None
    return link if isinstance(link, str) and link.startswith(("https://", "http://")) else None


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _group_target_reason(target: Mapping[str, Any]) -> str:
    """Why a call whose target is no user names no rep, for the skipped row."""
    if not target:
        return "the Dialpad call has no target, so it names no one who took or placed it"
    kind = field_text(target.get("type")) or "target of no type"
    name = field_text(target.get("name"))
    where = f"{kind} {name!r}" if name else kind
    return (
        f"the Dialpad call went to the {where}, not a person, and Dialpad names no agent for "
        "such a call; the agent's own leg is listed as a call of its own"
    )


def _is_user(target: Mapping[str, Any]) -> bool:
    kind = field_text(target.get("type"))
    return kind is not None and kind.lower() == USER_TARGET


def _direction(value: Any) -> Direction | None:
    text = field_text(value)
    if text is None:
        return None
    return {"inbound": Direction.INBOUND, "outbound": Direction.OUTBOUND}.get(text.lower())
