"""Aircall (Public API v1): the call log of ``GET /v1/calls``, recordings by signed URL.

What the API does, and what this adapter does about it:

- **Auth**: HTTP Basic with ``api_id:api_token`` from the Aircall dashboard. The credentials only
  ever go to the API host.
- **Listing**: ``GET /v1/calls?from=&to=&order=asc&per_page=50`` (Unix seconds on the call's
  creation time); the calls sit under ``calls`` and the next page is ``meta.next_page_link``.
  Ascending order over a closed window keeps page numbers stable while new calls arrive.
- **The 10,000-row cap**: a query returns at most the first 10,000 matching calls, whatever the
  paging. The capability ``max_rows_per_query`` makes the poll cycle halve a window that came
  back full and list both halves again.
- **Recordings**: ``recording`` is a signed MP3 URL that expires within the hour, served from
  Aircall's storage, not the API. It is never stored (the row keeps it with every query value
  masked); right before a download the call is read again (``GET /v1/calls/{id}``) and its
  fresh URL fetched *without* the Aircall credentials. A finished call that was answered but
  has no recording yet waits, as late recordings do; one nobody answered never gets a
  recording and is skipped, and
  so is a finished call on a line whose live recording is switched off
  (``number.live_recording_activated`` false), at once rather than after
  ``recording_wait_hours``.
- **Rate limit**: 60 requests a minute per company by default, announced in
  ``X-AircallApi-Limit``, ``-Remaining`` and ``-Reset`` (a Unix time). The shared limiter pauses
  every request when ``Remaining`` reaches 0; a 429's wait is read from ``-Reset``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr

from poller.adapters.http import Authenticator, BasicAuth, HostRules, RetryPolicy
from poller.adapters.http.errors import HttpError, HttpTransient, HttpUnauthorized
from poller.adapters.http.paginators import NextUrlPaginator, PageRequest, Paginator
from poller.adapters.http.retry import capped_wait
from poller.adapters.providers.base import ProviderAdapter, RecordReader
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.adapters.webhooks.aircall import AircallSubscriptions, AircallWebhookVerifier
from poller.adapters.webhooks.settings import WebhookSettings
from poller.adapters.webhooks.vendor_api import json_api
from poller.config_types import MINIMAL
from poller.domain.call_record import (
    TEXT_LIMITS,
    CallRecord,
    DownloadRequest,
    ProviderCapabilities,
    RateLimitHints,
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
    ProviderAuthError,
    ProviderError,
    RecordPosition,
    SourceDeletion,
    TransientProviderError,
)
from poller.ports.webhooks import WebhookSubscriptions, WebhookVerifier

API_HOST = "api.aircall.io"
# Where the signed recording URLs point: Aircall's storage on Amazon S3. Aircall does not
# document the bucket's host (names vary by region), so the storage domain is allowed; the URL
# is fetched without credentials, and a host outside it needs provider.download_hosts.
MEDIA_HOSTS = frozenset({"*.amazonaws.com"})
# "For performance reasons, list endpoints are limited to a maximum of 10,000 records per
# query, even when pagination is used."
ROW_CAP = 10_000
MAX_PER_PAGE = 50
# The API serves about the last six months of calls.
HISTORY = timedelta(days=180)
# `call.ended` fires about 30 s after hang-up, once the call's data is complete.
SETTLE_DELAY = timedelta(seconds=60)
_SECOND = timedelta(seconds=1)
_ANONYMOUS = "anonymous"


class AircallWebhookSettings(WebhookSettings):
    """``[provider.webhook]``: Aircall's call.hungup and call.ended events nudge an early poll
    (with ``[webhooks] listen`` set); `webhooks subscribe` creates the webhook. The poll stays
    the source of truth: a lost event costs latency, never a call."""

    secret: SecretStr | None = None
    """The webhook's token, which Aircall chooses when the webhook is created (`webhooks
    subscribe` shows it once) and puts in the body of every event; required with enabled."""


class AircallSettings(ProviderSettingsBase):
    """``[provider]`` with ``kind = "aircall"``: an Aircall company account, by API key;
    listing, paging, fields and recordings are built in. Aircall caps a query at 10,000 calls
    (busy windows are split) and serves about 6 months back.
    """

    kind: Literal["aircall"] = "aircall"
    """Selects the Aircall adapter."""
    source_deletion_unsupported: ClassVar[str | None] = None

    api_id: str | None = Field(default=None, examples=["your-api-id"], json_schema_extra=MINIMAL)
    """The API ID of an API key made in the Aircall dashboard (Integrations & API > API Keys)."""
    api_token: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """That key's API token (shown once)."""
    per_page: Annotated[int, Field(ge=1, le=MAX_PER_PAGE)] = MAX_PER_PAGE
    """Calls per listing page, at most 50 (Aircall's maximum)."""
    requests_per_minute: Annotated[int, Field(gt=0)] | None = 60
    """Aircall allows 60 requests a minute per company unless it raised yours; the X-AircallApi-*
    headers are obeyed either way.
    """
    webhook: AircallWebhookSettings = AircallWebhookSettings()
    """This provider's webhook events, which nudge an early poll (see [webhooks])."""

    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    def requirements(self) -> list[str]:
        problems = super().requirements()
        if not self.api_id:
            problems.append(f"{self.config_key('api_id')}: required to sign in to Aircall")
        if self.api_token is None or not self.api_token.get_secret_value():
            problems.append(f"{self.config_key('api_token')}: required to sign in to Aircall")
        if self.webhook.lacks_secret():
            problems.append(
                f"{self.config_key('webhook.secret')}: required with "
                f"{self.config_key('webhook.enabled')}: the token Aircall gave the webhook "
                "(`webhooks subscribe` shows it once)"
            )
        return problems


@dataclass(frozen=True)
class _ResetAwareRetry(RetryPolicy):
    """The retry policy, waiting out a 429 until the ``X-AircallApi-Reset`` it names.

    Aircall documents no ``Retry-After`` on its 429; without this the policy would retry at
    once, into the same exhausted window.
    """

    reset_wait: Callable[[BaseException], float | None] = field(
        default=lambda _error: None, repr=False, compare=False
    )

    def wait_before(self, retry: int, error: BaseException) -> float | None:
        if getattr(error, "retry_after", None) is None:
            wait = self.reset_wait(error)
            if wait is not None:
                return None if wait > self.max_delay else wait
        return super().wait_before(retry, error)


class AircallProvider(ProviderAdapter[AircallSettings]):
    """A :class:`poller.ports.provider.ProviderPort` for Aircall's Public API v1."""

    kind: ClassVar[str] = "aircall"
    settings_model: ClassVar[type[ProviderSettingsBase]] = AircallSettings

    def __init__(
        self,
        settings: AircallSettings,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        policy = retry or RetryPolicy(max_tries=settings.max_retries + 1, sleep=sleep)
        aware = _ResetAwareRetry(
            max_tries=policy.max_tries,
            base_delay=policy.base_delay,
            max_delay=policy.max_delay,
            sleep=policy.sleep,
            jitter=policy.jitter,
            reset_wait=self._reset_wait,
        )
        super().__init__(settings, retry=aware, sleep=sleep, **kwargs)

    # -- what the base class asks ---------------------------------------------------------

    @property
    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            max_rows_per_query=ROW_CAP, settle_delay=SETTLE_DELAY, history_limit=HISTORY
        )

    def authenticator(self) -> Authenticator:
        token = self.settings.api_token
        assert token is not None  # requirements() reports it first
        return BasicAuth(self.settings.api_id or "", token)

    def host_rules(self) -> HostRules:
        rules = super().host_rules()
        return replace(rules, allowed=rules.allowed | MEDIA_HOSTS)

    def items_path(self) -> str | None:
        return "calls"

    def first_request(self, window: Window) -> PageRequest:
        start, end = request_bounds(window, _SECOND)
        params = {
            "from": format_time(start, "unix_s"),
            "to": format_time(end, "unix_s"),
            "order": "asc",
            "per_page": str(self.settings.per_page),
            # Without it a call's contact is not filled in.
            "fetch_contact": "true",
        }
        return PageRequest(f"{self.base_url}/v1/calls", params)

    def paginator(self) -> Paginator:
        return NextUrlPaginator(next_url_path="meta.next_page_link")

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        read = RecordReader(raw, position, self.clock())
        listed_id = raw.get("id")
        call_id = read.call_id_from(
            # Text as it came: the id check refuses a NUL that cleaning would drop.
            listed_id if isinstance(listed_id, str) else _identifier(listed_id),
            missing="id has no value (the call's id)",
            name="id",
        )
        started_at = read.time(raw.get("started_at"), "unix_s", "started_at")
        if started_at is None:
            raise read.malformed("started_at has no value (Unix seconds)")
        answered_at = read.time(raw.get("answered_at"), "unix_s", "answered_at")
        ended_at = read.time(raw.get("ended_at"), "unix_s", "ended_at")
        duration = read.duration(raw.get("duration"))

        user = _object(raw.get("user"))
        number = _object(raw.get("number"))
        recording_url = field_text(raw.get("recording"))
        recording_state, no_recording_reason = _recording_state(raw, answered_at, recording_url)
        return CallRecord(
            provider_call_id=call_id,
            started_at=started_at,
            recording_state=recording_state,
            no_recording_reason=no_recording_reason,
            raw=sanitise_raw(raw),
            ended_at=ended_at,
            duration_seconds=duration,
            direction=_direction(raw.get("direction")),
            rep_email=field_text(user.get("email"), TEXT_LIMITS["rep_email"]),
            rep_name=field_text(user.get("name"), TEXT_LIMITS["rep_name"]),
            rep_provider_id=_identifier(user.get("id")),
            # The Aircall line the call went through: the rep's number to the contact.
            rep_phone=field_text(number.get("digits"), TEXT_LIMITS["rep_phone"]),
            contact_name=_contact_name(_object(raw.get("contact"))),
            contact_phone=_contact_phone(raw),
            recording_url=mask_url_query(recording_url) if recording_url else None,
        )

    def resolve_download(self, call: RecordingLocator) -> DownloadRequest:
        """The call read again for a fresh signed URL, fetched without Aircall's credentials."""
        call_id = call.provider_call_id
        url = f"{self.base_url}/v1/calls/{quote(call_id, safe='')}"
        page = self.get_json(PageRequest(url), f"call {call_id}")
        found = page.body.get("call") if isinstance(page.body, Mapping) else None
        fresh = field_text(found.get("recording")) if isinstance(found, Mapping) else None
        if fresh is None:
            raise TransientProviderError(
                f"call {call_id}: Aircall returned no recording URL for it (yet)"
            )
        request = self.download_request(fresh, "mp3")
        # The URL is its own credential: nothing of the API key goes to the storage host.
        return replace(request, headers={}, credential_hosts=frozenset())

    def delete_recording(self, call: RecordingLocator) -> SourceDeletion:
        """``DELETE /v1/calls/{id}/recording``: irreversible, and on AI Assist accounts it takes
        the transcript and insights with it."""
        call_id = call.provider_call_id
        return self.send_delete(
            f"{self.base_url}/v1/calls/{quote(call_id, safe='')}/recording",
            f"delete the recording of call {call_id}",
        )

    def webhook_verifier(self) -> WebhookVerifier | None:
        webhook = self.settings.webhook
        secret = webhook.active_secret()
        if secret is None:
            return None
        return AircallWebhookVerifier(secret, max_age_seconds=webhook.max_event_age_seconds)

    def webhook_subscriptions(self) -> WebhookSubscriptions | None:
        """``/v1/webhooks`` with the API key; :meth:`AircallSubscriptions.created_token` gives
        the token Aircall chose for the webhook."""
        return AircallSubscriptions(
            self.name, self.base_url, json_api(self.http, self.provider_error)
        )

    def provider_error(self, exc: HttpError) -> ProviderError:
        if isinstance(exc, HttpUnauthorized):
            key = self.settings.config_key
            return ProviderAuthError(
                f"{exc}: Aircall refused the API key; check {key('api_id')} and "
                f"{key('api_token')} (Dashboard > Integrations & API > API Keys)",
                status=exc.status,
            )
        error = super().provider_error(exc)
        if isinstance(error, TransientProviderError) and error.retry_after is None:
            error.retry_after = self._reset_wait(exc)
        return error

    # -- internals -----------------------------------------------------------------------

    def _reset_wait(self, error: BaseException) -> float | None:
        """Seconds until an exhausted window resets, read from a 429's Aircall headers."""
        if not isinstance(error, HttpTransient) or error.status != 429 or error.response is None:
            return None
        now = self.clock()
        hints = RateLimitHints.from_headers(error.response.headers, now)
        if hints.reset_at is None:
            return None
        # The reset has a resolution of one second: never ask again before it has passed.
        return capped_wait(
            float(max(0, math.ceil((hints.reset_at - now).total_seconds()))),
            cap=self.settings.max_retry_after_seconds,
            who=f"provider {self.name}'s X-AircallAPI-Reset",
            setting=self.settings.config_key("max_retry_after_seconds"),
        )


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _identifier(value: Any) -> str | None:
    """An Aircall id (a JSON number) as text: ``123456``, never ``123456.0``."""
    number = parse_number(value) if not isinstance(value, str) else None
    if number is not None and number.is_integer():
        return str(int(number))
    return field_text(value)


def _direction(value: Any) -> Direction | None:
    text = field_text(value)
    if text is None:
        return None
    return {"inbound": Direction.INBOUND, "outbound": Direction.OUTBOUND}.get(text.lower())


def _recording_state(
    raw: Mapping[str, Any], answered_at: datetime | None, recording_url: str | None
) -> tuple[RecordingState, str | None]:
    """The recording's state and, when the call will never have one, why (``None``: generic)."""
    if recording_url is not None:
        return RecordingState.READY, None
    if field_text(raw.get("status")) != "done":
        return RecordingState.PENDING, None
    # A finished call nobody answered (missed, abandoned, sent to voicemail) is never recorded.
    if answered_at is None:
        return RecordingState.NONE, None
    line = _object(raw.get("number"))
    if line.get("live_recording_activated") is False:
        name = field_text(line.get("name")) or field_text(line.get("digits")) or "of the call"
        return RecordingState.NONE, (
            f"the Aircall line {name} does not record calls "
            "(number.live_recording_activated is false)"
        )
    # An answered one may get its recording after the call ended.
    return RecordingState.PENDING, None


def _contact_name(contact: Mapping[str, Any]) -> str | None:
    parts = [field_text(contact.get(key)) for key in ("first_name", "last_name")]
    name = " ".join(part for part in parts if part) or field_text(contact.get("company_name"))
    return name[: TEXT_LIMITS["contact_name"]] if name else None


def _contact_phone(raw: Mapping[str, Any]) -> str | None:
    """``raw_digits`` (the other party's number), else the contact's first number."""
    digits = field_text(raw.get("raw_digits"), TEXT_LIMITS["contact_phone"])
    if digits is not None and digits.lower() != _ANONYMOUS:
        return digits
    numbers = _object(raw.get("contact")).get("phone_numbers")
    if isinstance(numbers, list):
        for entry in numbers:
            value = field_text(_object(entry).get("value"), TEXT_LIMITS["contact_phone"])
            if value is not None:
                return value
    return None
