"""Webex Calling: the call recordings Webex keeps (Webex as the call-recording provider), through
the generic adapter and the Converged Recordings API.

What the profile fixes (Webex's Converged Recordings API, as its OpenAPI document and the
developer guide "Converged Recordings APIs for Webex Calling" describe it):

- ``GET /v1/admin/convergedRecordings`` with ``from`` (inclusive) and ``to`` (exclusive), ISO
  8601, at most 30 days apart, ``serviceType=calling`` and ``max`` (1 to 100); the recordings
  sit under ``items`` and an RFC 5988 ``Link: <...>; rel="next"`` header names the next page.
  A compliance officer's token (scope ``spark-compliance:recordings_read``) lists the whole
  org's recordings and is the one that sees their download links.
- OAuth 2 with an integration's refresh token, exchanged at ``/v1/access_token`` with the
  client in the form (``auth = "oauth_refresh_token"``; the current token is kept, sealed, in
  the state database, whether Webex rotates it or not).
- The recording: the listing carries none. ``GET /v1/convergedRecordings/{id}`` answers
  ``temporaryDirectDownloadLinks.audioDownloadLink``, an MP3 link that expires three hours
  after that request, so it is fetched right before each download (``recording.refetch_path``)
  and never stored. The link carries its own ticket: Webex's token goes only to the API host,
  never to the download host (``*.webex.com`` by default in ``download_hosts``).
- A 429 names its wait in ``Retry-After``.

What configuration cannot say, and this module's hook does (:class:`WebexProvider`): a
recording's owner is a person only when ``ownerType`` is ``user``. A workspace, virtual line or
call queue recording names an email that is not a rep's, so such a recording keeps only its
``ownerId`` (map it in ``siro.rep_map``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urljoin

from pydantic import Field, SecretStr

from poller.adapters.providers.profiles.base import ProfileProvider, ProfileSettings
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.config_types import MINIMAL, HostPattern, NonBlank
from poller.domain.call_record import CallRecord
from poller.domain.raw_record import field_text
from poller.ports.provider import RecordPosition

API_HOST = "webexapis.com"
# Where the temporary download links point (nsq1wss.dmz.webex.com in Webex's example).
DOWNLOAD_HOSTS = ["*.webex.com"]
MAX_PAGE_SIZE = 100
# "The interval between from and to must be within 30 days."
MAX_WINDOW_HOURS = 30 * 24


class WebexSettings(ProfileSettings):
    """``[provider]`` with ``kind = "webex"``: the call recordings of Webex Calling (Webex as
    the call-recording provider), read as a compliance officer. Set the integration's
    credentials and the refresh token of its authorisation; the profile fixes the rest.
    """

    kind: Literal["webex"] = "webex"
    """Which adapter talks to the phone system: "webex" is Webex Calling's recordings."""
    client_id: NonBlank | None = Field(
        default=None, examples=["replace-with-your-client-id"], json_schema_extra=MINIMAL
    )
    """The Webex integration's Client ID."""
    client_secret: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The Webex integration's Client Secret."""
    refresh_token: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The seed: the refresh token Webex gave when a compliance officer authorised the
    integration (scope spark-compliance:recordings_read). Used once; the current one lives,
    encrypted, in the state database. Set a new one here to start over.
    """
    token_encryption_key: SecretStr | None = None
    """Key (32 characters or more) that encrypts the stored tokens; unset: a key derived from
    client_secret and the provider's name."""
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = MAX_PAGE_SIZE
    """Recordings per page (max), 1 to 100."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[365.0])
    """How many days back a first poll or backfill may reach; unset: as far as asked (Webex
    keeps recordings a year)."""
    requests_per_minute: Annotated[int, Field(gt=0)] | None = 120
    """Requests per minute to stay under; Webex publishes no figure, and its 429s name their
    wait."""
    download_hosts: list[HostPattern] = Field(default=list(DOWNLOAD_HOSTS))
    """Hosts the recordings are downloaded from, without Webex's token: Webex's own download
    hosts by default."""

    profile_title: ClassVar[str] = "Webex"
    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    required_keys: ClassVar[Mapping[str, str]] = {
        "client_id": "the integration's Client ID",
        "client_secret": "the integration's Client Secret",
        "refresh_token": "the refresh token of the integration's authorisation",
    }

    def needs_token_store(self) -> bool:
        # The refresh token may rotate: it must outlive the process, in the state database.
        return True

    def generic_values(self) -> Mapping[str, Any]:
        base = self.api_base_url or f"https://{API_HOST}"
        return {
            "auth": "oauth_refresh_token",
            "token_url": urljoin(base + "/", "v1/access_token"),
            "client_auth": "body",
            "listing": {
                "path": "/v1/admin/convergedRecordings",
                "start_param": "from",
                "end_param": "to",
                "time_format": "iso8601",
                "items_path": "items",
                "params": {"serviceType": "calling"},
                "max_window_hours": MAX_WINDOW_HOURS,
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "link_header",
                "page_size_param": "max",
                "page_size": self.page_size,
            },
            "fields": {
                "call_id": "id",
                "started_at": "timeRecorded",
                "duration": "durationSeconds",
                "direction": None,
                "rep_email": "ownerEmail",  # a user's only, in the hook
                "rep_phone": None,
                "rep_provider_id": "ownerId",
                "contact_name": None,
                "contact_phone": None,
                "recording_url": "temporaryDirectDownloadLinks.audioDownloadLink",
                "recording_status": "status",
                "recording_ready_values": ["available"],
                "recording_absent_values": ["deleted", "purged"],
            },
            "recording": {
                "refetch_path": "/v1/convergedRecordings/{call_id}",
                "refetch_item_path": "",
                "format": "mp3",
            },
        }


class WebexProvider(ProfileProvider):
    """Webex Calling's recordings: the generic adapter plus the hook above."""

    kind: ClassVar[str] = "webex"
    settings_model: ClassVar[type[ProviderSettingsBase]] = WebexSettings

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        record = super().map_record(raw, position)
        if (field_text(raw.get("ownerType")) or "").lower() != "user":
            # A workspace's or a queue's email would name whoever administers it, not a rep.
            return replace(record, rep_email=None)
        return record
