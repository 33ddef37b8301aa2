"""CallRail: the calls of one account and their recordings, through the generic adapter.

What the profile fixes (CallRail's API v3 reference, ``apidocs.callrail.com``):

- ``GET /v3/a/{account_id}/calls.json`` with ``start_date`` / ``end_date`` written
  ``YYYY-MM-DDTHH:MM`` (the reference's own form; minutes are its finest unit) in the zone
  ``time_zone=Etc/UTC`` names (without it, the API user's own zone applies),
  ``sort=start_time&order=asc``, ``fields=agent_email`` (not in the default fields),
  ``per_page`` (1 to 250) and ``page`` from 1. The calls sit under ``calls``; ``total_pages``
  says where the listing ends.
- ``Authorization: Token token="<API key>"``.
- The rate limit: 1,000 requests an hour and 10,000 a day for the account; a 429 carries no
  header saying how long to wait.
- Calls are kept 25 months; a request for older ones is an error, so no window reaches back
  further (``history_days``).
- The recording: ``GET /v3/a/{account_id}/calls/{id}/recording.json`` answers
  ``{"url": ...}``, a link on ``app.callrail.com`` that redirects to the MP3 (for a HIPAA
  account a presigned S3 URL that expires in about a day). The URL is never stored: it is asked
  for again before each download, and neither it nor its redirects get the API key.

What configuration cannot say, and this module's hook does (:class:`CallRailProvider`):

- ``recording`` is ``null`` both for a call that was not recorded and, by the reference's
  silence, possibly for one whose recording is still being processed. A call that was not
  answered and left no voicemail has none to wait for; an answered one waits for it (up to
  ``poll.recording_wait_hours``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, StringConstraints

from poller.adapters.providers.profiles.base import ProfileProvider, ProfileSettings
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.config_types import MINIMAL, HostPattern
from poller.domain.call_record import CallRecord
from poller.domain.paths import dig, present
from poller.domain.states import RecordingState
from poller.ports.provider import RecordPosition

API_HOST = "api.callrail.com"
# Where recording links point (app.callrail.com, which redirects to the audio) and the storage
# host of a HIPAA account's presigned links, as CallRail's reference shows them.
RECORDING_HOSTS = ["app.callrail.com", "calltrk-production.s3.amazonaws.com"]
# CallRail keeps calls 25 months and refuses a request for older ones.
RETENTION_DAYS = 760
MAX_PER_PAGE = 250

AccountId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,64}$")]


class CallRailSettings(ProfileSettings):
    """``[provider]`` with ``kind = "callrail"``: the calls of one CallRail account and their
    recordings. Set the account id and an API key; the profile fixes the requests, fields and
    paging.
    """

    kind: Literal["callrail"] = "callrail"
    """Which adapter talks to the phone system: "callrail" is CallRail's calls."""
    account_id: AccountId | None = Field(
        default=None, examples=["227799611"], json_schema_extra=MINIMAL
    )
    """The CallRail account: the number after /a/ in the dashboard's address (or its ACC id)."""
    api_key: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """A CallRail API key (Settings, API Keys), sent as Authorization: Token token="...". It
    sees what its user sees: use a key of a user with access to every company."""
    page_size: Annotated[int, Field(ge=1, le=MAX_PER_PAGE)] = MAX_PER_PAGE
    """Calls per page, 1 to 250 (CallRail's own bound)."""
    history_days: Annotated[float, Field(gt=0, le=RETENTION_DAYS)] = RETENTION_DAYS
    """How many days back a first poll or backfill may reach, at most 760: CallRail keeps
    calls 25 months and refuses a request for older ones."""
    requests_per_minute: Annotated[int, Field(gt=0, le=16)] | None = 10
    """Requests per minute to stay under. CallRail allows 1,000 an hour and 10,000 a day for
    the account, shared with its other integrations; the default is 600 an hour.
    """
    download_hosts: list[HostPattern] = Field(default=list(RECORDING_HOSTS))
    """Hosts recordings may be downloaded from: where CallRail's recording links point and
    redirect to. The default is the hosts CallRail's reference shows; a download refused for
    another host names it (add it here). They never receive the API key.
    """

    profile_title: ClassVar[str] = "CallRail"
    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    required_keys: ClassVar[Mapping[str, str]] = {
        "account_id": "the CallRail account's id",
        "api_key": "a CallRail API key",
    }

    def generic_values(self) -> Mapping[str, Any]:
        # Unset (a config check before the id is set), the paths name a placeholder account.
        account = f"/v3/a/{self.account_id or 'ACCOUNT_ID'}"
        return {
            "auth": "header_template",
            "header_name": "Authorization",
            "header_template": 'Token token="{api_key}"',
            "listing": {
                "path": f"{account}/calls.json",
                "start_param": "start_date",
                "end_param": "end_date",
                "time_format": "%Y-%m-%dT%H:%M",
                "time_zone": "UTC",
                "items_path": "calls",
                "params": {
                    "time_zone": "Etc/UTC",
                    "sort": "start_time",
                    "order": "asc",
                    "fields": "agent_email",
                },
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "page_number",
                "page_param": "page",
                "first_page": 1,
                "page_size_param": "per_page",
                "page_size": self.page_size,
                "total_pages_path": "total_pages",
            },
            "fields": {
                "call_id": "id",
                "started_at": "start_time",
                "duration": "duration",
                "direction": "direction",
                "rep_email": "agent_email",
                "rep_phone": None,  # business_phone_number is the line that rang, often shared
                "contact_name": "customer_name",
                "contact_phone": "customer_phone_number",
                # Read only for null: the link it holds is the recording endpoint itself.
                "recording_url": "recording",
            },
            "recording": {
                "download_path": f"{account}/calls/{{call_id}}/recording.json",
                "answer": "json",
                "url_path": "url",
                "format": "mp3",
            },
        }


class CallRailProvider(ProfileProvider):
    """CallRail's calls: the generic adapter plus the hook above."""

    kind: ClassVar[str] = "callrail"
    settings_model: ClassVar[type[ProviderSettingsBase]] = CallRailSettings

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        record = super().map_record(raw, position)
        # The listed link is the recording endpoint, which download_path builds anyway.
        record = replace(record, recording_url=None)
        if present(dig(raw, "recording")):
            return replace(record, recording_state=RecordingState.READY)
        if dig(raw, "answered") is False and dig(raw, "voicemail") is not True:
            return replace(
                record,
                recording_state=RecordingState.NONE,
                no_recording_reason="CallRail has no recording: the call was not answered",
            )
        return replace(record, recording_state=RecordingState.PENDING)
