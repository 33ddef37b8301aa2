"""CloudTalk: its call history and recordings, through the generic adapter.

What the profile fixes (CloudTalk's API v1.7 as its OpenAPI document,
``developers.cloudtalk.io/swagger.json``, describes it):

- ``GET /api/calls/index.json`` with ``date_from`` / ``date_to`` written
  ``YYYY-MM-DD HH:MM:SS`` (the document's own example; read as UTC, the zone it gives every
  time), ``limit`` (1 to 1,000) and ``page`` from 1. The calls sit under
  ``responseData.data``, each as ``{Cdr, Contact, Agent, ...}``; ``responseData.pageCount``
  says where the listing ends.
- HTTP Basic with an API key's id and secret; ``Accept: application/json`` on every JSON
  request (the document says requests without it may be refused).
- The rate limit: 60 requests a minute for the whole company; a 429 carries
  ``X-CloudTalkAPI-ResetTime`` and no ``Retry-After``.
- The recording: ``GET /api/calls/recording/{Cdr.id}.json``, which answers WAV bytes despite
  its name, with the same credentials. ``Cdr.recording_link`` is a web page to play the call,
  never the audio: it is not read.

What configuration cannot say, and this module's hook does (:class:`CloudTalkProvider`):

- Whether a call has a recording is the boolean ``Cdr.recorded``, which the generic status
  mapping (text values) cannot read.
- ``Cdr.public_external`` is the other party's number "in E.164 format", yet the document's
  example writes it as a bare number (``421904247371``); without its ``+`` it would be read as a
  number of ``siro.phone_default_region``.
- The call's length: ``billsec``, ``talking_time`` and the span from ``started_at`` to
  ``ended_at`` do not agree in the document's example, so the longest is kept (a recording
  longer than its call's length is stopped as an audio bomb).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr

from poller.adapters.providers.profiles.base import ProfileProvider, ProfileSettings
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.config_types import MINIMAL
from poller.domain.call_record import TEXT_LIMITS, CallRecord
from poller.domain.paths import dig
from poller.domain.raw_record import field_text
from poller.domain.states import RecordingState
from poller.ports.provider import RecordPosition

API_HOST = "my.cloudtalk.io"
# CloudTalk's limit for the whole company, shared with its other integrations.
COMPANY_REQUESTS_PER_MINUTE = 60


class CloudTalkSettings(ProfileSettings):
    """``[provider]`` with ``kind = "cloudtalk"``: CloudTalk's call history and its recordings.
    Set an API key's id and secret; the profile fixes the requests, fields and paging.
    """

    kind: Literal["cloudtalk"] = "cloudtalk"
    """Which adapter talks to the phone system: "cloudtalk" is CloudTalk's call history."""
    username: str | None = Field(
        default=None, examples=["ABCDEFGHIJ1234567890"], json_schema_extra=MINIMAL
    )
    """The API key's Access Key ID (CloudTalk: Account, Settings, API keys), sent as the HTTP
    Basic user name."""
    password: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The API key's Access Key Secret, sent as the HTTP Basic password."""
    page_size: Annotated[int, Field(ge=1, le=1000)] = 1000
    """Calls per page, 1 to 1,000 (CloudTalk's own bound); large pages spare the company's
    60 requests a minute."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[90.0])
    """How many days back a first poll or backfill may reach; unset: as far as asked."""
    requests_per_minute: Annotated[int, Field(gt=0, le=COMPANY_REQUESTS_PER_MINUTE)] | None = 30
    """Requests per minute to stay under. CloudTalk allows 60 a minute for the whole company,
    shared with its other integrations; the default leaves half of it to them.
    """

    profile_title: ClassVar[str] = "CloudTalk"
    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    required_keys: ClassVar[Mapping[str, str]] = {
        "username": "the API key's id",
        "password": "the API key's secret",
    }

    def generic_values(self) -> Mapping[str, Any]:
        return {
            "auth": "basic",
            "listing": {
                "path": "/api/calls/index.json",
                "start_param": "date_from",
                "end_param": "date_to",
                "time_format": "%Y-%m-%d %H:%M:%S",
                "time_zone": "UTC",
                "items_path": "responseData.data",
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "page_number",
                "page_param": "page",
                "first_page": 1,
                "page_size_param": "limit",
                "page_size": self.page_size,
                "total_pages_path": "responseData.pageCount",
            },
            "fields": {
                "call_id": "Cdr.id",
                "started_at": "Cdr.started_at",
                "ended_at": "Cdr.ended_at",
                "duration": "Cdr.billsec",
                "direction": "Cdr.type",
                "direction_values": {"incoming": "inbound", "outgoing": "outbound"},
                "rep_email": "Agent.email",
                "rep_name": "Agent.fullname",
                "rep_provider_id": "Agent.id",
                "rep_phone": None,  # public_internal is a company number, often shared
                "contact_name": "Contact.name",
                "contact_phone": None,  # public_external, given its "+" in the hook
                "recording_url": None,  # recording_link is a play page, not the audio
            },
            "recording": {
                "download_path": "/api/calls/recording/{call_id}.json",
                "format": "wav",
            },
        }


class CloudTalkProvider(ProfileProvider):
    """CloudTalk's call history: the generic adapter plus the hook above."""

    kind: ClassVar[str] = "cloudtalk"
    settings_model: ClassVar[type[ProviderSettingsBase]] = CloudTalkSettings

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        record = super().map_record(raw, position)
        recorded = dig(raw, "Cdr.recorded")
        state = record.recording_state
        reason = None
        if recorded is True:
            state = RecordingState.READY
        elif recorded is False:
            state, reason = RecordingState.NONE, "CloudTalk reports the call was not recorded"
        else:
            state = RecordingState.PENDING  # not said: wait, as for a recording not yet there
        return replace(
            record,
            rep_provider_id=record.rep_provider_id
            or field_text(dig(raw, "Cdr.user_id"), TEXT_LIMITS["rep_provider_id"]),
            contact_phone=_e164(dig(raw, "Cdr.public_external")),
            duration_seconds=_longest(raw, record),
            recording_state=state,
            no_recording_reason=reason,
        )


def _e164(value: Any) -> str | None:
    text = field_text(value, TEXT_LIMITS["contact_phone"])
    # A full international number, not an extension (an internal call's other end).
    if text is not None and text.isdigit() and 8 <= len(text) <= 15:
        return "+" + text
    return text


def _longest(raw: Mapping[str, Any], record: CallRecord) -> int | None:
    candidates = [record.duration_seconds]
    talking = field_text(dig(raw, "Cdr.talking_time"))
    if talking is not None and talking.isdigit():
        candidates.append(int(talking))
    if record.ended_at is not None and record.ended_at >= record.started_at:
        candidates.append(int((record.ended_at - record.started_at).total_seconds()))
    known = [value for value in candidates if value is not None]
    return max(known) if known else None
