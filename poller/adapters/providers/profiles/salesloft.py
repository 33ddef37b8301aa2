"""Salesloft: the call data records of its dialer, through the generic adapter.

What the profile fixes (Salesloft's v2 API as its OpenAPI document describes it):

- ``GET /v2/call_data_records.json`` with ``created_at[gte]`` / ``created_at[lt]`` (ISO 8601),
  ``sort_by=created_at``, ``sort_direction=ASC`` and ``per_page`` (1 to 100); the records sit
  under ``data`` and ``metadata.paging.next_page`` names the next page (``null`` after the
  last).
- A Bearer token: a Salesloft API key, or an OAuth access token.
- The rate limit: 600 cost a minute for the whole team, shared with its other integrations; a
  page past the 100th costs 3 to 30. The profile never asks for page 101: a window that fills
  100 pages is split in halves and listed again (:class:`FirstPagesOnly` and
  ``max_rows_per_query``).
- The recording: ``recording.url`` with ``recording.recording_status``. Whether that URL is
  signed or expires is not documented, so it is never trusted from the listing: before each
  download the record is fetched again by id (``GET /v2/call_data_records/{id}.json``) for a
  fresh URL. Salesloft's credentials go only to its API host; a URL on another host is
  downloaded without them, and only from hosts the config's ``download_hosts`` allows.

What configuration cannot say, and this module's hook does (:class:`SalesloftProvider`):

- The record names its rep only by Salesloft user id (``user: {id, _href}``); the rep's email
  and name come from ``GET /v2/users/{id}.json``, once per user per adapter.
- The other party's number is ``to`` on an outbound call and ``from`` on an inbound one. The
  rep's own number is left out: with Local Dial, an outbound call's ``from`` is a number picked
  for the prospect's area, not the rep's.
- A recording is ready only once the record carries its URL; a call that ended busy,
  unanswered, cancelled or failed, without one, has none to wait for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr

from poller.adapters.http.paginators import PageRequest, PageResponse, Paginator, TokenPaginator
from poller.adapters.providers.profiles.base import (
    ProfileProvider,
    ProfileSettings,
    contact_field,
)
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.config_types import MINIMAL
from poller.domain.call_record import TEXT_LIMITS, CallRecord
from poller.domain.paths import dig
from poller.domain.raw_record import field_text
from poller.domain.states import RecordingState
from poller.ports.provider import RecordPosition

API_HOST = "api.salesloft.com"
# Pages past this one cost more of the team's budget (3, 8, 10, then 30 each).
LAST_CHEAP_PAGE = 100
# Call outcomes after which no recording is coming.
NOT_CONNECTED = frozenset({"busy", "no-answer", "canceled", "failed"})


class SalesloftSettings(ProfileSettings):
    """``[provider]`` with ``kind = "salesloft"``: the call data records of Salesloft's dialer,
    every call placed or received through Salesloft. Set the API key; the profile fixes the
    requests, fields and paging.
    """

    kind: Literal["salesloft"] = "salesloft"
    """Which adapter talks to the phone system: "salesloft" is Salesloft's call data records."""
    token: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The Salesloft API key (or an OAuth access token), sent as a Bearer token; it needs read
    access to call data records and users."""
    page_size: Annotated[int, Field(ge=1, le=100)] = 100
    """Call data records per page, 1 to 100 (Salesloft's own bound)."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[90.0])
    """How many days back a first poll or backfill may reach; unset: as far as asked."""
    requests_per_minute: Annotated[int, Field(gt=0, le=600)] | None = 300
    """Requests per minute to stay under. Salesloft allows 600 cost a minute for the whole team,
    shared with its other integrations; the default leaves half of it to them.
    """

    profile_title: ClassVar[str] = "Salesloft"
    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    required_keys: ClassVar[Mapping[str, str]] = {"token": "the Salesloft API key"}

    def generic_values(self) -> Mapping[str, Any]:
        return {
            "auth": "bearer",
            "listing": {
                "path": "/v2/call_data_records.json",
                "start_param": "created_at[gte]",
                "end_param": "created_at[lt]",
                "time_format": "iso8601",
                "items_path": "data",
                "params": {"sort_by": "created_at", "sort_direction": "ASC"},
                # What FirstPagesOnly lets through: a window that fills it is split.
                "max_rows_per_query": LAST_CHEAP_PAGE * self.page_size,
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "token",
                "token_path": "metadata.paging.next_page",
                "token_param": "page",
                "page_size_param": "per_page",
                "page_size": self.page_size,
                "max_pages": LAST_CHEAP_PAGE,
            },
            "fields": {
                "call_id": "id",
                "started_at": "created_at",
                "ended_at": None,
                "duration": "duration",
                "direction": "direction",
                "rep_email": None,
                "rep_phone": None,
                "rep_provider_id": "user.id",
                "contact_name": None,
                "contact_phone": None,  # by direction, in the hook
                "recording_url": "recording.url",
                "recording_status": "recording.recording_status",
                "recording_ready_values": ["completed"],
                "recording_absent_values": ["not_recorded"],
            },
            "recording": {
                "refetch_path": "/v2/call_data_records/{call_id}.json",
                "refetch_item_path": "data",
            },
        }


@dataclass
class FirstPagesOnly(TokenPaginator):
    """Salesloft's ``next_page``, up to page :data:`LAST_CHEAP_PAGE`: a listing stops there as
    at an API's row cap, and the poll splits the window (``max_rows_per_query``)."""

    last_page: int = LAST_CHEAP_PAGE

    def following(self, current: PageRequest, page: PageResponse) -> PageRequest | None:
        following = super().following(current, page)
        if following is None or following.params is None:
            return following
        number = following.params.get(self.token_param, "")
        if not number.isdigit() or int(number) > self.last_page:
            return None
        return following


class SalesloftProvider(ProfileProvider):
    """Salesloft's call data records: the generic adapter plus the hook above."""

    kind: ClassVar[str] = "salesloft"
    settings_model: ClassVar[type[ProviderSettingsBase]] = SalesloftSettings
    user_id_path: ClassVar[str | None] = "user.id"
    user_path: ClassVar[str] = "v2/users/{id}.json"

    def paginator(self) -> Paginator:
        paging = self.settings.paging
        return FirstPagesOnly(token_path=paging.token_path, token_param=paging.token_param)

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        record = self.with_user(super().map_record(raw, position))
        contact = contact_field(record.direction, outbound="to", inbound="from")
        state = record.recording_state
        listed_url = field_text(dig(raw, "recording.url")) is not None
        if state is RecordingState.READY and not listed_url:
            # "completed" without a URL: the refetch before download would find none either.
            state = RecordingState.PENDING
        status = (field_text(raw.get("status")) or "").lower()
        if state is RecordingState.PENDING and not listed_url and status in NOT_CONNECTED:
            state = RecordingState.NONE
        return replace(
            record,
            contact_phone=field_text(raw.get(contact), TEXT_LIMITS["contact_phone"])
            if contact
            else None,
            recording_state=state,
        )
