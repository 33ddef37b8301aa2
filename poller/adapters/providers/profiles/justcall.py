"""JustCall: the call log of a JustCall account, through the generic adapter.

What the profile fixes (JustCall's v2.1 API as its OpenAPI document, ``api-v21.json`` of
``developer.justcall.io/reference``, describes it):

- ``GET https://api.justcall.io/v2.1/calls`` with ``from_datetime`` and ``to_datetime`` written
  ``YYYY-MM-DD HH:MM:SS`` in the account's time zone (``time_zone``; the API takes no offset),
  ``sort=datetime``, ``order=asc`` and ``per_page`` (1 to 100); the calls sit under ``data`` and
  ``next_page_link`` is the next page's URL (empty after the last).
- The header ``Authorization: <api_key>:<api_secret>`` (not HTTP Basic): the generic adapter's
  header template, which keeps the rendered value and both parts out of messages and logs.
- The rate limit: 30 to 60 requests a minute by plan.
- The recording: ``call_info.recording``, a ``https://justcall.io/rec-redirect/<call sid>``
  link. It carries no signature, so it is stored; the account's key goes only to the API host,
  never to ``justcall.io`` or wherever it redirects, which ``download_hosts`` must allow.

What configuration cannot say, and this module's hook does (:class:`JustCallProvider`):

- The call's start is two fields in UTC, ``call_date`` and ``call_time`` (``"8:25:43"``, the
  hour not always padded).
- A call that ended missed, busy, failed, blocked, unanswered, restricted or abandoned before
  ringing has no recording to wait for.
- The call also carries its start in the account's zone (``call_user_date``,
  ``call_user_time``): a difference from ``time_zone`` is logged once, as it means windows are
  asked for at the wrong hours.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr

from poller.adapters.http import HostRules
from poller.adapters.providers.base import RecordReader
from poller.adapters.providers.generic_listing import TimeZoneName
from poller.adapters.providers.profiles.base import ProfileProvider, ProfileSettings
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.config_types import MINIMAL
from poller.domain.call_record import CallRecord
from poller.domain.paths import dig
from poller.domain.raw_record import field_text
from poller.domain.states import RecordingState
from poller.ports.provider import RecordPosition

log = logging.getLogger(__name__)

API_HOST = "api.justcall.io"
# Where call_info.recording links point; it never receives the account's key.
RECORDING_HOST = "justcall.io"
MAX_PER_PAGE = 100
# call_info.type values after which no recording is coming (JustCall's CallInfoDTO).
NOT_RECORDED = frozenset(
    {
        *("missed", "abandoned before ringing", "busy", "failed", "blocked"),
        *("unanswered", "restricted"),
    }
)
_CLOCK_SLACK = timedelta(minutes=1)


class JustCallSettings(ProfileSettings):
    """``[provider]`` with ``kind = "justcall"``: the calls of a JustCall account. Set the API
    key and secret and the account's time zone; the profile fixes the requests and fields.
    """

    kind: Literal["justcall"] = "justcall"
    """Which adapter talks to the phone system: "justcall" is a JustCall account's calls."""
    api_key: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The JustCall API key (an account admin creates it in JustCall's API settings)."""
    api_secret: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The JustCall API secret shown with the key; sent with it as "<key>:<secret>"."""
    time_zone: TimeZoneName | None = Field(
        default=None, examples=["America/New_York"], json_schema_extra=MINIMAL
    )
    """The IANA time zone set in JustCall for the account: JustCall reads the window's bounds
    in it (its API takes no offset), so a wrong zone asks for the wrong hours."""
    page_size: Annotated[int, Field(ge=1, le=MAX_PER_PAGE)] = MAX_PER_PAGE
    """Calls per page, 1 to 100 (JustCall's own bound)."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[90.0])
    """How many days back a first poll or backfill may reach; unset: as far as asked."""
    requests_per_minute: Annotated[int, Field(gt=0)] | None = 25
    """Requests per minute to stay under. JustCall allows 30 to 60 a minute by plan (30 on
    Team); the default stays under the lowest.
    """

    profile_title: ClassVar[str] = "JustCall"
    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    required_keys: ClassVar[Mapping[str, str]] = {
        "api_key": "the JustCall API key",
        "api_secret": "its secret",
    }

    def requirements(self) -> list[str]:
        missing = super().requirements()
        if self.time_zone is None:
            missing.append(
                f"{self.config_key('time_zone')}: required: the account's time zone in JustCall "
                '(e.g. "America/New_York"), in which it reads the listing\'s times'
            )
        return missing

    def generic_values(self) -> Mapping[str, Any]:
        return {
            "auth": "header_template",
            "header_name": "Authorization",
            "header_template": "{api_key}:{api_secret}",
            "listing": {
                "path": "/v2.1/calls",
                "start_param": "from_datetime",
                "end_param": "to_datetime",
                "time_format": "%Y-%m-%d %H:%M:%S",
                "time_zone": self.time_zone or "UTC",
                "items_path": "data",
                "params": {"sort": "datetime", "order": "asc"},
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "next_url",
                "next_url_path": "next_page_link",
                "page_size_param": "per_page",
                "page_size": self.page_size,
            },
            "fields": {
                "call_id": "id",
                "started_at": "call_date",  # with call_time, in the hook
                "started_at_format": "%Y-%m-%d",
                "ended_at": None,
                "duration": "call_duration.total_duration",
                "direction": "call_info.direction",
                "rep_email": "agent_email",
                "rep_phone": None,
                "rep_provider_id": "agent_id",
                "rep_name": "agent_name",
                "contact_name": "contact_name",
                "contact_phone": "contact_number",
                "recording_url": "call_info.recording",
            },
        }


class JustCallProvider(ProfileProvider):
    """JustCall's calls: the generic adapter plus the hook above."""

    kind: ClassVar[str] = "justcall"
    settings_model: ClassVar[type[ProviderSettingsBase]] = JustCallSettings

    def __init__(self, settings: JustCallSettings, **kwargs: Any) -> None:
        self._zone_warned = False
        super().__init__(settings, **kwargs)

    def host_rules(self) -> HostRules:
        rules = super().host_rules()
        # The recording links' host: a download may go there, never the key.
        return replace(rules, allowed=rules.allowed | {RECORDING_HOST})

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        record = super().map_record(raw, position)
        read = RecordReader(raw, position, self.clock())
        started_at = _utc_start(raw)
        if started_at is None:
            raise read.malformed("call_date and call_time are not a UTC date and time")
        self._check_zone(raw, started_at)
        state = record.recording_state
        kind = (field_text(dig(raw, "call_info.type")) or "").lower()
        if state is RecordingState.PENDING and kind in NOT_RECORDED:
            state = RecordingState.NONE
        return replace(record, started_at=started_at, recording_state=state)

    def _check_zone(self, raw: Mapping[str, Any], started_at: datetime) -> None:
        if self._zone_warned:
            return
        local = _wall_clock(raw.get("call_user_date"), raw.get("call_user_time"))
        if local is None:
            return
        offset = local - started_at
        expected = started_at.astimezone(self.zone).utcoffset() or timedelta(0)
        if abs(offset - expected) > _CLOCK_SLACK:
            self._zone_warned = True
            log.warning(
                "provider %s: JustCall gives call %s's time in the account's zone as UTC%s, but "
                "%s = %r is UTC%s then: windows are asked for at the wrong hours and calls may "
                "be missed; set it to the account's time zone in JustCall",
                self.name,
                field_text(raw.get("id")),
                _offset_text(offset),
                self.settings.config_key("time_zone"),
                self.settings.listing.time_zone,
                _offset_text(expected),
            )


def _wall_clock(day: object, clock: object) -> datetime | None:
    """A date and a time of day as written, labelled UTC (the caller knows their zone)."""
    if not isinstance(day, str) or not isinstance(clock, str):
        return None
    try:
        written = datetime.strptime(f"{day.strip()} {clock.strip()}", "%Y-%m-%d %H:%M:%S")  # noqa: DTZ007
    except ValueError:
        return None
    return written.replace(tzinfo=UTC)


def _utc_start(raw: Mapping[str, Any]) -> datetime | None:
    return _wall_clock(raw.get("call_date"), raw.get("call_time"))


def _offset_text(offset: timedelta) -> str:
    minutes = round(offset.total_seconds() / 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
