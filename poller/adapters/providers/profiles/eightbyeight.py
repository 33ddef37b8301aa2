"""8x8: the call recordings of 8x8 Work, from 8x8's Cloud Storage Service.

What the profile fixes (the Cloud Storage Service as 8x8's developer docs describe it: "Cloud
Storage Service Bulk Download", "Cloud Storage Service Objects", the ``searchobject`` and
``downloadobject`` references, "OAuth Authentication for 8x8 XCaaS APIs"):

- ``GET /storage/{region}/v3/objects`` with ``filter`` in FIQL:
  ``type==callrecording;createdTime=ge=<ms>;createdTime=lt=<ms>`` plus
  ``(objectState==AVAILABLE,objectState==PENDING)``: without a state in the filter only
  AVAILABLE objects come back, and a recording still being stored would be missed rather than
  waited for. Oldest first (``sortField=createdTime``, ``sortDirection=ASC``), ``limit`` 1 to
  100. The objects sit under ``content``; ``pageKey`` is the offset of the next page and
  ``lastPage`` ends the listing: 8x8 increments ``pageKey`` on the last page too, so it is
  never the stop signal.
- The region: each region (``us-east``, ``uk``, ...) keeps its own objects and one listing
  searches one region, so the region is the user's choice; a company in two regions
  configures two providers.
- OAuth 2 client credentials at ``https://api.8x8.com/oauth/v2/token``, the API key and
  secret (a "Call Recording & Storage" key) sent by HTTP Basic; tokens live 1799 s.
- The audio: ``GET /storage/{region}/v3/objects/{id}/content`` with the same bearer token
  (only AVAILABLE objects can be downloaded).

What configuration cannot say, and this module's hook does (:class:`EightByEightProvider`):
an object describes its call in ``tags``, a list of ``{"key", "value"}`` pairs in no fixed
order (``userEmail``, ``userName``, ``direction``, ``address``, ``duration``...). The hook reads
them into a mapping at ``tag`` before the fields are read, so ``tag.userEmail`` is a path.
The other party is ``address`` (the far end on the published outbound example); when a
recording carries none, an inbound call's ``callerId`` is taken instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr

from poller.adapters.providers.profiles.base import ProfileProvider, ProfileSettings
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.config_types import MINIMAL, NonBlank
from poller.domain.call_record import TEXT_LIMITS, CallRecord
from poller.domain.raw_record import field_text
from poller.domain.states import Direction
from poller.ports.provider import RecordPosition

API_HOST = "api.8x8.com"
MAX_LIMIT = 100
# The mapping the hook reads the tags into (a key no object of 8x8's has).
TAGS_KEY = "tag"
Region = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]


class EightByEightSettings(ProfileSettings):
    """``[provider]`` with ``kind = "8x8"``: the call recordings of 8x8 Work, read from 8x8's
    Cloud Storage Service in one region. Set the API key and secret of a "Call Recording &
    Storage" key; the profile fixes the requests, fields and paging.
    """

    kind: Literal["8x8"] = "8x8"
    """Which adapter talks to the phone system: "8x8" is 8x8 Work's call recordings."""
    region: Region = Field(default="us-east", examples=["uk"])
    """The Cloud Storage Service region to read ("us-east", "uk", ...: GET
    /storage/us-east/v3/regions lists the account's). One provider reads one region.
    """
    client_id: NonBlank | None = Field(
        default=None, examples=["replace-with-your-api-key"], json_schema_extra=MINIMAL
    )
    """The key of the 8x8 API key ("Call Recording & Storage"), sent as the OAuth client id."""
    client_secret: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The secret of that API key."""
    page_size: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = MAX_LIMIT
    """Objects per page, 1 to 100 (8x8's own bound)."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[90.0])
    """How many days back a first poll or backfill may reach; unset: as far as asked."""

    profile_title: ClassVar[str] = "8x8"
    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    required_keys: ClassVar[Mapping[str, str]] = {
        "client_id": "the 8x8 API key",
        "client_secret": "the 8x8 API key's secret",
    }

    def credential_keys(self) -> list[str]:
        return [self.config_key("client_id"), self.config_key("client_secret")]

    def generic_values(self) -> Mapping[str, Any]:
        storage = f"/storage/{self.region}/v3"
        return {
            "auth": "oauth_client_credentials",
            "token_url": f"{(self.api_base_url or '').rstrip('/')}/oauth/v2/token",
            "client_auth": "basic",
            "listing": {
                "path": f"{storage}/objects",
                "start_param": "",
                "end_param": "",
                "time_format": "unix_ms",
                "items_path": "content",
                "params": {
                    "filter": "type==callrecording;createdTime=ge={start};createdTime=lt={end};"
                    "(objectState==AVAILABLE,objectState==PENDING)",
                    "sortField": "createdTime",
                    "sortDirection": "ASC",
                },
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "token",
                "token_path": "pageKey",
                "token_param": "pageKey",
                "last_page_path": "lastPage",
                "page_size_param": "limit",
                "page_size": self.page_size,
            },
            "fields": {
                "call_id": "id",
                "started_at": "createdTime",  # 8x8 writes it without a zone: UTC
                "ended_at": None,
                "duration": f"{TAGS_KEY}.duration",
                "duration_unit": "milliseconds",
                "direction": f"{TAGS_KEY}.direction",
                "rep_email": f"{TAGS_KEY}.userEmail",
                "rep_name": f"{TAGS_KEY}.userName",
                "rep_phone": None,
                "rep_provider_id": "userId",
                "rep_extension": f"{TAGS_KEY}.extensionNumber",
                "contact_name": None,
                "contact_phone": None,  # in the hook
                "recording_url": None,
                "recording_status": "objectState",
                "recording_ready_values": ["AVAILABLE"],
                "recording_absent_values": ["REVOKED", "DELETED", "FAILED"],
            },
            "recording": {
                "download_path": f"{storage}/objects/{{call_id}}/content",
                "format": "mp3",  # every callrecording object 8x8 shows is audio/mpeg
            },
        }


class EightByEightProvider(ProfileProvider):
    """8x8's call recordings: the generic adapter plus the tag hook above."""

    kind: ClassVar[str] = "8x8"
    settings_model: ClassVar[type[ProviderSettingsBase]] = EightByEightSettings

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        tags = tag_values(raw.get("tags"))
        record = super().map_record({**raw, TAGS_KEY: tags}, position)
        contact = field_text(tags.get("address"))
        if contact is None and record.direction is Direction.INBOUND:
            contact = field_text(tags.get("callerId"))
        return replace(record, contact_phone=field_text(contact, TEXT_LIMITS["contact_phone"]))


def tag_values(tags: object) -> dict[str, Any]:
    """8x8's ``[{"key": k, "value": v}, ...]`` as ``{k: v}``; an entry of another shape is left
    out (a tag the profile does not read cannot spoil the record)."""
    if not isinstance(tags, list):
        return {}
    found: dict[str, Any] = {}
    for tag in tags:
        if isinstance(tag, Mapping) and isinstance(tag.get("key"), str):
            found.setdefault(tag["key"], tag.get("value"))
    return found
