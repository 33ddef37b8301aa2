"""Twilio Programmable Voice (REST API 2010-04-01): recordings, joined with their calls.

What is polled
--------------
``GET /2010-04-01/Accounts/{AccountSid}/Recordings.json`` lists recordings, so every row here
is one recording, keyed on its SID (``RE…``): a call recorded twice is two uploads. Its
``DateCreated>`` / ``DateCreated<`` filters take whole days (``YYYY-MM-DD``, GMT), so a window is
asked for as the days it overlaps and the answer is cut back to the window on ``date_created``.
Windows of the same day list the same recordings again; rows key on the SID, so that is harmless.
Pages follow ``next_page_uri`` (relative, carrying Twilio's opaque ``PageToken``).

``status`` decides the recording state: ``completed`` is ready, ``processing`` (and the
in-call states) waits, ``absent`` and ``deleted`` are skipped with Twilio's reason
(``IncludeSoftDeleted=true`` lists the deleted ones, so a recording deleted while it was
waiting is skipped as deleted rather than expiring). A recording encrypted with Twilio's Call
Recording Encryption cannot be decrypted here and is skipped with that reason.

Parties and the rep
-------------------
A recording says nothing about who spoke, so its call is read (``Calls/{CallSid}.json``, the
parent leg) for ``from``, ``to``, ``direction`` and ``caller_name``; finished calls are cached
(bounded). Twilio has no notion of a sales rep: which side is the rep follows
:attr:`TwilioSettings.rep_parties` and ``rep_emails`` (their docstrings tell how). A phone
number becomes the rep's phone, a client identity or SIP address its provider id.

Auth and media
--------------
HTTP Basic with ``AccountSid:AuthToken``, or an API key (``SK…``) and its secret, the account
SID still in every path. Media is ``Recordings/{Sid}.mp3`` on the API host, fetched with the same
Basic credentials (Twilio's "Enforce HTTP Auth on Media URLs"); a dual-channel recording is
asked for with ``RequestedChannels=2``, as Twilio would otherwise downmix a conference's. A
recording kept in external storage (``media_url`` on another host) is downloaded from there
without credentials; that host must be in ``download_hosts``, and a signed ``media_url`` is never
stored: the recording is read again for a fresh one at download time.

Rate limits
-----------
Twilio limits concurrent requests per account and answers 429 (error 20429) beyond them; the
guarded client retries those within its bounds, honouring ``Retry-After`` when sent.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Annotated, Any, ClassVar, Literal, TypedDict
from urllib.parse import quote, urljoin, urlsplit

from pydantic import BeforeValidator, Field, SecretStr, model_validator

from poller.adapters.http import Authenticator, HttpError, HttpUnauthorized
from poller.adapters.http.auth import BasicAuth
from poller.adapters.http.paginators import NextUrlPaginator, PageRequest, Paginator
from poller.adapters.providers.base import ERROR_KEYS, ProviderAdapter, RecordReader
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.adapters.webhooks.settings import WebhookSettings
from poller.adapters.webhooks.twilio import TwilioWebhookVerifier, twilio_console_steps
from poller.config_types import MINIMAL, BaseUrl
from poller.domain.call_record import (
    TEXT_LIMITS,
    CallRecord,
    DownloadRequest,
    ProviderCapabilities,
    RecordingLocator,
    host_key,
)
from poller.domain.paths import present
from poller.domain.raw_record import (
    clean_text,
    field_text,
    parse_time,
    sanitise_raw,
)
from poller.domain.redaction import MASK, mask_url_query
from poller.domain.states import Direction, RecordingState
from poller.domain.urls import UnsafeUrl
from poller.domain.windows import Window
from poller.ports.provider import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    RecordPosition,
    SourceDeletion,
    TransientProviderError,
)
from poller.ports.webhooks import WebhookSubscriptions, WebhookVerifier

API_VERSION = "2010-04-01"
TWILIO_API_HOST = "api.twilio.com"
_DAY = timedelta(days=1)
# Calls whose details can no longer change; others are read again next time.
_FINAL_CALL_STATES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
_WAITING_STATES = frozenset({"processing", "in-progress", "paused", "stopped"})
# Every value of the spec's call direction. Elastic SIP Trunking: "trunking-originating" is a
# PSTN call coming in to the customer's own infrastructure, "trunking-terminating" one going
# out from it to the PSTN.
_DIRECTIONS = {
    "inbound": Direction.INBOUND,
    "outbound-api": Direction.OUTBOUND,
    "outbound-dial": Direction.OUTBOUND,
    "trunking-originating": Direction.INBOUND,
    "trunking-terminating": Direction.OUTBOUND,
}
_AUDIO_SUFFIXES = {".mp3": "mp3", ".wav": "wav"}


class _Parties(TypedDict, total=False):
    """The rep and contact fields of a :class:`CallRecord` that a call's parties fill, or why
    no party can be called the rep."""

    rep_phone: str | None
    rep_provider_id: str | None
    rep_name: str | None
    rep_email: str | None
    contact_phone: str | None
    contact_name: str | None
    rep_undecided_reason: str | None


def _not_the_example(prefix: str) -> BeforeValidator:
    """Refuse the example's ``ACxxxx...`` as the placeholder it is: `config init` writes it, and
    "should match pattern" would not tell the user that the value still needs replacing."""

    def check(value: object) -> object:
        if isinstance(value, str) and re.fullmatch(rf"{prefix}x+", value.strip(), re.IGNORECASE):
            raise ValueError(
                f"still the example's placeholder; set your own SID ({prefix} followed by 32 hex"
                " digits, from the Twilio Console)"
            )
        return value

    return BeforeValidator(check)


AccountSid = Annotated[str, _not_the_example("AC"), Field(pattern=r"^AC[0-9a-fA-F]{32}$")]
ApiKeySid = Annotated[str, _not_the_example("SK"), Field(pattern=r"^SK[0-9a-fA-F]{32}$")]


class TwilioWebhookSettings(WebhookSettings):
    """``[provider.webhook]``: Twilio's recording status callbacks (a recording completed)
    nudge an early poll (with ``[webhooks] listen`` set). Twilio has no subscription: the
    callback URL is set on each call or TwiML, and `webhooks subscribe` prints where. The poll
    stays the source of truth: a lost callback costs latency, never a call."""

    secret: SecretStr | None = None
    """Unset: callbacks are checked with the provider's auth_token, which Twilio signs them
    with. Set it to the secret of the SharedKey a Webhook Rule signs with instead, or, when the
    provider authenticates with an API key, to the account's Auth Token."""
    public_url: BaseUrl | None = None
    """The exact URL given to Twilio as the recordingStatusCallback (the TLS proxy's https://
    address with the path /webhooks/<provider name>, no query): Twilio signs the URL it calls, so
    it is required with enabled."""


class TwilioSettings(ProviderSettingsBase):
    """``[provider]`` with ``kind = "twilio"``: Twilio Programmable Voice. Every row is a
    recording, keyed on its SID (RE...), joined with its call for the parties and direction.
    """

    kind: Literal["twilio"] = "twilio"
    """Selects the Twilio adapter."""
    source_deletion_unsupported: ClassVar[str | None] = None

    account_sid: AccountSid | None = Field(
        default=None, examples=["ACxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"], json_schema_extra=MINIMAL
    )
    """The Account SID (AC followed by 32 hex digits), from the Twilio Console's account dashboard.
    """
    auth_token: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The account's Auth Token. Or leave it unset and use an API key (below); not both."""
    api_key_sid: ApiKeySid | None = Field(
        default=None, examples=["SKxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"]
    )
    """An API key SID (SK...), made in the Console under API keys & tokens; the account SID stays.
    """
    api_key_secret: SecretStr | None = None
    """That API key's secret."""
    page_size: Annotated[int, Field(ge=1, le=1000)] = 1000
    """Recordings per listing page (Twilio allows 1 to 1000)."""
    max_pages: Annotated[int, Field(gt=0, le=1_000_000)] = 10_000
    """The most pages one window may take."""
    rep_parties: list[str] = Field(default=["client:*"])
    """Which party of a call (its from or to) is the rep: shell patterns over Twilio's party
    strings, phone numbers in E.164 or client identities. When neither side matches, the rep is
    the Twilio side: the callee of an inbound call, the caller of an outbound one; a call of
    another direction is skipped as rep_undecided rather than attributed to a guess.
    """
    rep_emails: dict[str, str] = Field(default={})
    """A rep's party -> the rep's email (Twilio has none); a listed party is a rep too. A client
    identity is also the rep's provider id, which siro.rep_map.provider_id can map instead.
    """
    call_cache_size: Annotated[int, Field(ge=0, le=1_000_000)] = 4096
    """Finished calls remembered (their from, to and direction), so each is read from Twilio once.
    """

    webhook: TwilioWebhookSettings = TwilioWebhookSettings()
    """This provider's webhook events, which nudge an early poll (see [webhooks])."""

    vendor_hosts: ClassVar[tuple[str, ...]] = (TWILIO_API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{TWILIO_API_HOST}"

    @model_validator(mode="after")
    def _one_credential(self) -> TwilioSettings:
        if self.auth_token is not None and (
            self.api_key_sid is not None or self.api_key_secret is not None
        ):
            raise ValueError("set either auth_token or api_key_sid and api_key_secret, not both")
        return self

    def requirements(self) -> list[str]:
        key = self.config_key
        missing = super().requirements()
        if self.account_sid is None:
            missing.append(f"{key('account_sid')}: required: the Account SID (AC…) in every path")
        if self.api_key_sid is not None or self.api_key_secret is not None:
            for name in ("api_key_sid", "api_key_secret"):
                if getattr(self, name) is None:
                    missing.append(f"{key(name)}: required with {key('api_key_sid')}")
        elif self.auth_token is None:
            missing.append(
                f"{key('auth_token')}: required (or {key('api_key_sid')} and "
                f"{key('api_key_secret')}) to authenticate to Twilio"
            )
        if self.webhook.enabled:
            if self.webhook.public_url is None:
                missing.append(
                    f"{key('webhook.public_url')}: required with {key('webhook.enabled')}: "
                    "Twilio signs the exact URL it calls, so the verifier needs it"
                )
            if self.webhook.secret is None and self.auth_token is None:
                missing.append(
                    f"{key('webhook.secret')}: required with {key('webhook.enabled')} when "
                    "authenticating with an API key: Twilio signs its callbacks with the "
                    "account's Auth Token (or a Webhook Rule's SharedKey); put that here"
                )
        return missing


class TwilioProvider(ProviderAdapter[TwilioSettings]):
    """A :class:`poller.ports.provider.ProviderPort` over Twilio's recordings and calls."""

    kind: ClassVar[str] = "twilio"
    settings_model: ClassVar[type[ProviderSettingsBase]] = TwilioSettings
    # Twilio's error answer: {"code": 20500, "message": ..., "more_info": ..., "status": 500}.
    error_keys: ClassVar[tuple[str, ...]] = (*ERROR_KEYS, "code")

    def __init__(self, settings: TwilioSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.account_url = (
            f"{self.base_url.rstrip('/')}/{API_VERSION}/Accounts/"
            f"{quote(settings.account_sid or '', safe='')}"
        )
        self._calls: OrderedDict[str, Mapping[str, Any]] = OrderedDict()
        self._calls_lock = threading.Lock()

    # -- what the base class asks ---------------------------------------------------------

    @property
    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities()

    def authenticator(self) -> Authenticator:
        settings = self.settings
        if settings.api_key_sid is not None and settings.api_key_secret is not None:
            return BasicAuth(settings.api_key_sid, settings.api_key_secret)
        assert settings.auth_token is not None  # requirements() reports it first
        return BasicAuth(settings.account_sid or "", settings.auth_token)

    def first_request(self, window: Window) -> PageRequest:
        # Day-precise filters: from the window's first day to the day after its last instant,
        # which holds the whole window whether Twilio reads "<" as before or through that day.
        first_day = window.start.date()
        after_last_day = (window.end - timedelta(microseconds=1)).date() + _DAY
        return PageRequest(
            f"{self.account_url}/Recordings.json",
            {
                "DateCreated>": first_day.isoformat(),
                "DateCreated<": after_last_day.isoformat(),
                "IncludeSoftDeleted": "true",
                "PageSize": str(self.settings.page_size),
            },
        )

    def paginator(self) -> Paginator:
        return NextUrlPaginator(next_url_path="next_page_uri")

    def max_pages(self) -> int:
        return self.settings.max_pages

    def items_path(self) -> str | None:
        # A list page names its list after the resource: `recordings`.
        return "recordings"

    def before_mapping(self, items: Sequence[Any], window: Window) -> Sequence[Any]:
        items = self._in_window(items, window)
        # The calls of a chunk are read before its records are mapped, so a call Twilio cannot
        # serve right now (429, 5xx) fails the span to be listed again, instead of its
        # recordings being filed as unreadable.
        for item in items:
            call_sid = item.get("call_sid") if isinstance(item, Mapping) else None
            if isinstance(call_sid, str) and call_sid:
                self._call(call_sid)
        return items

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        read = RecordReader(raw, position, self.clock())
        sid = read.call_id_from(
            raw.get("sid"), missing="sid: the recording has no SID", name="sid:"
        )
        created = read.time(raw.get("date_created"), "rfc2822", "started_at: date_created")
        started_at = (
            read.time(raw.get("start_time"), "rfc2822", "started_at: start_time") or created
        )
        if started_at is None:
            raise read.malformed(
                "started_at: the recording has neither start_time nor date_created"
            )
        # A recording still processing says "-1": not known yet.
        unknown = str(raw.get("duration")).strip() == "-1"
        duration = None if unknown else read.duration(raw.get("duration"))

        try:
            state, absent_reason = _recording_state(raw)
        except ValueError as exc:
            raise read.malformed(str(exc)) from None
        call_sid = field_text(raw.get("call_sid"))
        call = self._call(call_sid) if call_sid else {}
        if call is None:
            raise read.malformed(f"call_sid: Twilio has no call {call_sid}")
        parties = self._parties(call)
        location = self._media_location(raw, sid)
        document = dict(raw)
        if call:
            document["call"] = {
                key: call.get(key)
                for key in ("sid", "from", "to", "direction", "status", "start_time", "end_time")
            }
        return CallRecord(
            provider_call_id=sid,
            started_at=started_at,
            recording_state=state,
            raw=sanitise_raw(document),
            recording_id=sid,
            ended_at=started_at + timedelta(seconds=duration) if duration is not None else None,
            duration_seconds=duration,
            direction=_DIRECTIONS.get(str(call.get("direction") or "").lower()),
            recording_url=mask_url_query(location) if location else None,
            no_recording_reason=absent_reason,
            **parties,
        )

    def resolve_download(self, call: RecordingLocator) -> DownloadRequest:
        url = call.recording_url
        if url is None or MASK in url:
            # A signed external-storage URL was not stored: read the recording for a fresh one.
            sid = call.recording_id or call.provider_call_id
            page = self.get_json(
                PageRequest(f"{self.account_url}/Recordings/{quote(sid, safe='')}.json"),
                f"recording {sid}",
            )
            body = page.body if isinstance(page.body, Mapping) else {}
            url = self._media_location(body, sid)
            if url is None:
                raise TransientProviderError(f"recording {sid}: Twilio returned no media URL yet")
        return self.download_request(url, _format_from(url))

    def delete_recording(self, call: RecordingLocator) -> SourceDeletion:
        """``DELETE Accounts/{AccountSid}/Recordings/{Sid}.json``; Twilio keeps the deleted
        recording's metadata 40 days."""
        sid = call.recording_id or call.provider_call_id
        return self.send_delete(
            f"{self.account_url}/Recordings/{quote(sid, safe='')}.json", f"delete recording {sid}"
        )

    def webhook_verifier(self) -> WebhookVerifier | None:
        settings = self.settings
        webhook = settings.webhook
        if not webhook.enabled or settings.account_sid is None:
            return None
        return TwilioWebhookVerifier(
            account_sid=settings.account_sid,
            auth_token=settings.auth_token,
            shared_key=webhook.secret,
        )

    def webhook_subscriptions(self) -> WebhookSubscriptions | None:
        # The recording status callback is set per call or TwiML: nothing to subscribe to.
        return twilio_console_steps(self.name)

    def provider_error(self, exc: HttpError) -> ProviderError:
        detail = _twilio_error(exc)
        if isinstance(exc, HttpUnauthorized):
            key = self.settings.config_key
            used = (
                f"{key('api_key_sid')} and {key('api_key_secret')}"
                if self.settings.api_key_sid is not None
                else f"{key('account_sid')} and {key('auth_token')}"
            )
            return ProviderAuthError(
                f"{exc}{f' ({detail})' if detail else ''}: Twilio refused the credentials; "
                f"check {used}",
                status=exc.status,
            )
        error = super().provider_error(exc)
        if detail:
            error.args = (f"{error.args[0]} ({detail})", *error.args[1:])
        return error

    # -- internals -----------------------------------------------------------------------

    def _in_window(self, items: Sequence[Any], window: Window) -> list[Any]:
        """The recordings created inside ``window``; unreadable ones stay, to be reported."""
        kept = []
        for item in items:
            created: datetime | None = None
            if isinstance(item, Mapping):
                try:
                    created = parse_time(item.get("date_created"), "rfc2822")
                except ValueError:
                    created = None
            if created is None or window.contains(created):
                kept.append(item)
        return kept

    def _call(self, call_sid: str) -> Mapping[str, Any] | None:
        """``Calls/{CallSid}.json``, from the cache when the call has ended; ``None``: no such
        call (404)."""
        with self._calls_lock:
            cached = self._calls.get(call_sid)
            if cached is not None:
                self._calls.move_to_end(call_sid)
                return cached
        url = f"{self.account_url}/Calls/{quote(call_sid, safe='')}.json"
        try:
            page = self.get_json(PageRequest(url), f"call {call_sid}")
        except PermanentProviderError as exc:
            if exc.status == 404:
                return None
            raise
        call = page.body if isinstance(page.body, Mapping) else {}
        if str(call.get("status") or "") in _FINAL_CALL_STATES and self.settings.call_cache_size:
            with self._calls_lock:
                self._calls[call_sid] = call
                while len(self._calls) > self.settings.call_cache_size:
                    self._calls.popitem(last=False)
        return call

    def _parties(self, call: Mapping[str, Any]) -> _Parties:
        """Rep and contact fields: which of ``from``/``to`` is the rep, and what each is."""
        caller, callee = field_text(call.get("from")), field_text(call.get("to"))
        if caller is None and callee is None:
            return {}
        direction = _DIRECTIONS.get(str(call.get("direction") or "").lower())
        if self._is_rep(caller):
            rep, contact = caller, callee
        elif self._is_rep(callee) or direction is Direction.INBOUND:
            rep, contact = callee, caller
        elif direction is Direction.OUTBOUND:
            rep, contact = caller, callee
        else:
            # Without a known direction either side may be the customer: naming one the rep
            # would send a customer's number to Siro as a user's.
            return {"rep_undecided_reason": self._undecided(call.get("direction"))}
        fields: _Parties = {}
        if rep is not None:
            if _is_number(rep):
                fields["rep_phone"] = _fit("rep_phone", rep)
            else:
                fields["rep_provider_id"] = _fit("rep_provider_id", rep)
                if rep.startswith("client:"):
                    fields["rep_name"] = _fit("rep_name", rep.removeprefix("client:"))
            fields["rep_email"] = _fit("rep_email", self.settings.rep_emails.get(rep))
        if contact is not None:
            if _is_number(contact):
                fields["contact_phone"] = _fit("contact_phone", contact)
            elif contact.startswith("client:"):
                fields["contact_name"] = _fit("contact_name", contact.removeprefix("client:"))
        if contact == caller and (name := field_text(call.get("caller_name"))):
            fields["contact_name"] = _fit("contact_name", name)
        return fields

    def _undecided(self, direction: Any) -> str:
        key = self.settings.config_key
        told = (
            f"direction {clean_text(str(direction))[:40]!r}"
            if present(direction)
            else "no direction"
        )
        return (
            f"Twilio gives the call {told}, so which of its from and to is the rep is unknown, "
            f"and neither matches {key('rep_parties')} or {key('rep_emails')}; add the rep's "
            "party there, list the call again (`siro-poller backfill` over its time), then "
            "`siro-poller calls retry` it"
        )

    def _is_rep(self, party: str | None) -> bool:
        if party is None:
            return False
        if party in self.settings.rep_emails:
            return True
        lowered = party.lower()
        return any(fnmatchcase(lowered, pattern.lower()) for pattern in self.settings.rep_parties)

    def _media_location(self, raw: Mapping[str, Any], sid: str) -> str | None:
        """Where the audio is: Twilio's own ``.mp3``, or the external store's ``media_url``."""
        media_url = field_text(raw.get("media_url"))
        if media_url is not None:
            absolute = urljoin(self.base_url + "/", media_url)
            try:
                external = host_key(absolute) not in self.credential_hosts()
            except UnsafeUrl:
                external = True  # the download refuses it, naming why
            if external:
                return absolute
        media = f"{self.account_url}/Recordings/{quote(sid, safe='')}.mp3"
        # Twilio downmixes some dual-channel recordings (conferences) unless asked for both
        # channels, and refuses that request for a mono one (warning 16113).
        return f"{media}?RequestedChannels=2" if raw.get("channels") == 2 else media


def _recording_state(raw: Mapping[str, Any]) -> tuple[RecordingState, str | None]:
    """The state of a recording and, when there is none to fetch, Twilio's reason; raises
    :class:`ValueError` for a status Twilio does not document."""
    status = (field_text(raw.get("status")) or "").lower()
    if status == "completed":
        if present(raw.get("encryption_details")):
            return RecordingState.NONE, (
                "Twilio recording encrypted with Call Recording Encryption; the poller "
                "cannot decrypt it"
            )
        return RecordingState.READY, None
    if status in _WAITING_STATES:
        return RecordingState.PENDING, None
    if status == "absent":
        code = raw.get("error_code")
        because = f" (Twilio error {code})" if present(code) else ""
        return RecordingState.NONE, f"Twilio reports the recording absent{because}"
    if status == "deleted":
        return RecordingState.NONE, "the recording was deleted in Twilio"
    raise ValueError(f"status: {status or 'no value'!r} is not a Twilio recording status")


def _fit(name: str, value: str | None) -> str | None:
    return value[: TEXT_LIMITS[name]] if value is not None else None


def _is_number(party: str) -> bool:
    digits = party.removeprefix("+")
    return digits.isdigit() and len(digits) >= 3


def _format_from(url: str) -> str | None:
    path = urlsplit(url).path.lower()
    return next((fmt for suffix, fmt in _AUDIO_SUFFIXES.items() if path.endswith(suffix)), None)


def _twilio_error(exc: HttpError) -> str | None:
    """Twilio's own error code and message from an error answer's JSON body, if any."""
    response = exc.response
    if response is None:
        return None
    try:
        body = json.loads(response.body[:4096])
    except (ValueError, RecursionError):
        return None
    if not isinstance(body, Mapping) or not present(body.get("code")):
        return None
    message = clean_text(str(body.get("message") or ""))[:200]
    return f"Twilio error {clean_text(str(body['code']))[:12]}" + (
        f": {message}" if message else ""
    )
