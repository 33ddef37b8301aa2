"""Outreach: the calls its users log (Outreach Voice and dialers that write to it), through the
generic adapter.

What the profile fixes (Outreach's REST API v2, a JSON:API 1.0 API, as its OpenAPI document and
its "Getting started" and "Making requests" pages describe it):

- ``GET /api/v2/calls`` with ``filter[updatedAt]=<start>..<end>`` (ISO 8601, the range filter),
  ``sort=updatedAt``, ``count=false`` and ``page[size]``; the calls sit under ``data`` and
  ``links.next`` is the URL of the next page (its ``page[after]`` cursor is opaque), absent on
  the last. Every request carries ``Content-Type: application/vnd.api+json`` (Outreach answers
  415 without it).
- OAuth 2 only (Outreach issues no API keys): an app authorised once by a user gives a refresh
  token, exchanged at ``/oauth/token`` with ``client_id``, ``client_secret`` and
  ``redirect_uri`` in the form. Access tokens live two hours. The refresh token is kept,
  rotated and sealed, in the state database (``auth = "oauth_refresh_token"``).
- The rate limit: 10,000 requests an hour per user, counted with the user's other
  integrations; ``X-RateLimit-Limit/Remaining/Reset`` on every answer, 429 past it.
- The recording: the ``recordingUrl`` attribute. Where it points and whether it expires is not
  documented (a dialer that logs the call may write any http(s) URL), so it is never trusted
  from the listing: before each download the call is fetched again by id
  (``GET /api/v2/calls/{id}``). Outreach's tokens go only to its API host; a recording on
  another host downloads only from hosts the config's ``download_hosts`` allows, and without
  them.

Why ``updatedAt`` and not the call's time: it is the filter Outreach documents for incremental
reads, and a recording attached after the call moves ``updatedAt``, so the call is listed
again once it has one. ``createdAt`` is when the row was written, not when the call was made.

What configuration cannot say, and this module's hook does (:class:`OutreachProvider`):

- The call names its rep only by the ``user`` relationship's id; the rep's email and name come
  from ``GET /api/v2/users/{id}``, once per user per adapter.
- The call's start is ``dialedAt``; an inbound call that was never dialed falls back to
  ``answeredAt``, then ``createdAt``.
- The other party is ``to`` on an outbound call and ``from`` on an inbound one; the rep's own
  number is left out (Outreach's local presence dials from a number picked for the prospect).
- A call without a ``recordingUrl`` that was not answered, or that was not to be recorded
  (``shouldRecordCall`` false), has no recording to wait for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urljoin

from pydantic import Field, SecretStr

from poller.adapters.providers.profiles.base import (
    ProfileProvider,
    ProfileSettings,
    contact_field,
)
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.config_types import MINIMAL, NonBlank
from poller.domain.call_record import TEXT_LIMITS, CallRecord
from poller.domain.paths import present
from poller.domain.raw_record import field_text, sanitise_raw
from poller.domain.states import RecordingState
from poller.ports.provider import RecordPosition

API_HOST = "api.outreach.io"
JSON_API = "application/vnd.api+json"
# Outreach's documented maximum page (its offset paging's page[limit]); the cursor's page[size]
# states none, so the same bound is kept.
MAX_PAGE_SIZE = 1000
# 10,000 requests an hour per user is 166 a minute.
HOURLY_LIMIT_PER_MINUTE = 166
# Where the call's start may sit, in order: an inbound call is not dialed.
START_FIELDS = ("dialedAt", "answeredAt", "createdAt")


class OutreachSettings(ProfileSettings):
    """``[provider]`` with ``kind = "outreach"``: the calls Outreach's users log, with their
    recordings. Set the OAuth app's credentials and the refresh token of its authorisation; the
    profile fixes the requests, fields and paging.
    """

    kind: Literal["outreach"] = "outreach"
    """Which adapter talks to the phone system: "outreach" is Outreach's calls."""
    client_id: NonBlank | None = Field(
        default=None, examples=["replace-with-your-application-id"], json_schema_extra=MINIMAL
    )
    """The Outreach OAuth app's Application ID."""
    client_secret: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The Outreach OAuth app's Application Secret."""
    redirect_uri: Annotated[str, Field(pattern=r"^https?://\S+$")] | None = Field(
        default=None,
        examples=["https://poller.example.com/outreach/callback"],
        json_schema_extra=MINIMAL,
    )
    """The app's redirect URI, exactly as registered: Outreach's token endpoint asks for it on
    every refresh."""
    refresh_token: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The seed: the refresh token Outreach gave when a user authorised the app (with the
    calls.read and users.read scopes). Used once; the rotated one lives, encrypted, in the
    state database. Set a new one here to start over.
    """
    token_encryption_key: SecretStr | None = None
    """Key (32 characters or more) that encrypts the stored tokens; unset: a key derived from
    client_secret and the provider's name."""
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = 100
    """Calls per page (page[size]), 1 to 1000."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[90.0])
    """How many days back a first poll or backfill may reach; unset: as far as asked."""
    requests_per_minute: Annotated[int, Field(gt=0, le=HOURLY_LIMIT_PER_MINUTE)] | None = 80
    """Requests per minute to stay under. Outreach allows 10,000 an hour per user (166 a
    minute), shared with the user's other integrations; the default leaves half to them."""

    profile_title: ClassVar[str] = "Outreach"
    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    required_keys: ClassVar[Mapping[str, str]] = {
        "client_id": "the OAuth app's Application ID",
        "client_secret": "the OAuth app's Application Secret",
        "redirect_uri": "the OAuth app's redirect URI",
        "refresh_token": "the refresh token of the app's authorisation",
    }

    def needs_token_store(self) -> bool:
        # The refresh token rotates: it must outlive the process, in the state database.
        return True

    def generic_values(self) -> Mapping[str, Any]:
        base = self.api_base_url or f"https://{API_HOST}"
        return {
            "auth": "oauth_refresh_token",
            "token_url": urljoin(base + "/", "oauth/token"),
            "client_auth": "body",
            "token_params": {"redirect_uri": self.redirect_uri or ""},
            "listing": {
                "path": "/api/v2/calls",
                "start_param": "",
                "end_param": "",
                "time_format": "iso8601",
                "items_path": "data",
                "params": {
                    "filter[updatedAt]": "{start}..{end}",
                    "sort": "updatedAt",
                    "count": "false",
                },
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "next_url",
                "next_url_path": "links.next",
                "page_size_param": "page[size]",
                "page_size": self.page_size,
            },
            "fields": {
                "call_id": "id",
                "started_at": "attributes.dialedAt",  # or a fallback, in the hook
                "ended_at": "attributes.completedAt",
                "duration": None,  # completedAt less the start
                "direction": "attributes.direction",
                "rep_email": None,  # looked up, in the hook
                "rep_phone": None,
                "rep_provider_id": "relationships.user.data.id",
                "contact_name": None,
                "contact_phone": None,  # by direction, in the hook
                "recording_url": "attributes.recordingUrl",
            },
            "recording": {
                "refetch_path": "/api/v2/calls/{call_id}",
                "refetch_item_path": "data",
            },
        }


class OutreachProvider(ProfileProvider):
    """Outreach's calls: the generic adapter plus the hook above."""

    kind: ClassVar[str] = "outreach"
    settings_model: ClassVar[type[ProviderSettingsBase]] = OutreachSettings
    api_headers: ClassVar[Mapping[str, str]] = {"Content-Type": JSON_API}

    user_id_path: ClassVar[str | None] = "relationships.user.data.id"
    user_path: ClassVar[str] = "api/v2/users/{id}"
    user_body_path: ClassVar[str] = "data.attributes"

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        record = self.with_user(super().map_record(_with_start(raw), position))
        attributes = raw.get("attributes")
        attributes = attributes if isinstance(attributes, Mapping) else {}
        contact = contact_field(record.direction, outbound="to", inbound="from")
        state = record.recording_state
        if state is RecordingState.PENDING and _no_recording_coming(attributes):
            state = RecordingState.NONE
        return replace(
            record,
            raw=sanitise_raw(raw),
            contact_phone=field_text(attributes.get(contact), TEXT_LIMITS["contact_phone"])
            if contact
            else None,
            recording_state=state,
        )


def _with_start(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """``raw`` with its start at ``attributes.dialedAt``: the first of :data:`START_FIELDS` set.
    Only what is mapped changes; the stored raw record is the call as Outreach sent it."""
    attributes = raw.get("attributes")
    if not isinstance(attributes, Mapping) or present(attributes.get(START_FIELDS[0])):
        return raw
    start = next((attributes[name] for name in START_FIELDS if present(attributes.get(name))), None)
    if start is None:
        return raw
    return {**raw, "attributes": {**attributes, START_FIELDS[0]: start}}


def _no_recording_coming(attributes: Mapping[str, Any]) -> bool:
    outcome = (field_text(attributes.get("outcome")) or "").lower()
    return outcome == "not answered" or attributes.get("shouldRecordCall") is False
