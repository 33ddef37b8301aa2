"""Vonage Business Communications: company call recordings, through the generic adapter.

What the profile fixes (the Call Recording API as Vonage's OpenAPI document for it,
``_open_api/definitions/call-recording.yml`` of the ``Vonage/vbc-developer`` repository, and its
guides describe it):

- ``GET /t/vbc.prod/call_recording/api/accounts/{account_id}/company_call_recordings`` with
  ``start:gte`` / ``start:lte`` written ``yyyy-MM-ddTHH:mm:ss+0000`` (the document's example),
  ``order=start:ASC``, ``page`` from 1 and ``page_size``; the recordings sit under
  ``_embedded.recordings`` and ``total_pages`` says where the listing ends.
- OAuth 2 password grant at ``https://api.vonage.com/token`` for an *integration user* (an
  account administrator without single sign-on), its user name with ``@vbc.prod`` appended,
  ``scope=openid``, and the application's consumer key and secret in the form (as Vonage's
  guide sends them). Access tokens live a day; the grant is simply repeated.
- The audio: ``GET /t/vbc.prod/call_recording/api/audio/recording/{id}`` with the same token
  (the recording's ``download_url``, built from its id rather than trusted from the record).

What configuration cannot say, and this module's hook does (:class:`VonageProvider`): the
other party is the caller (``caller_id``, ``cnam``) on an inbound call and the dialed number
(``dnis``) on an outbound one; an internal (``INTRA_PBX``) call has none. A recording names its
rep only by extension (``extensions``): Siro matches it through ``[siro.rep_map] extension``.
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

API_HOST = "api.vonage.com"
USERNAME_SUFFIX = "@vbc.prod"
MAX_PAGE_SIZE = 100
RECORDINGS = "/t/vbc.prod/call_recording/api"
AccountId = Annotated[str, Field(pattern=r"^(self|[0-9]{1,20})$")]


class VonageSettings(ProfileSettings):
    """``[provider]`` with ``kind = "vonage"``: the company call recordings of Vonage Business
    Communications, read by an integration user. Set the user and the application's keys; the
    profile fixes the requests, fields and paging.
    """

    kind: Literal["vonage"] = "vonage"
    """Which adapter talks to the phone system: "vonage" is Vonage Business Communications."""
    username: NonBlank | None = Field(
        default=None, examples=["api_user_999999"], json_schema_extra=MINIMAL
    )
    """The VBC integration user's name (an account administrator without single sign-on);
    "@vbc.prod" is appended when it is not there."""
    password: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The integration user's password."""
    client_id: NonBlank | None = Field(
        default=None, examples=["replace-with-your-consumer-key"], json_schema_extra=MINIMAL
    )
    """The application's Consumer Key (Vonage Business Communications developer portal)."""
    client_secret: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The application's Consumer Secret."""
    account_id: AccountId = "self"
    """The VBC account id; "self" is the integration user's own account."""
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = MAX_PAGE_SIZE
    """Recordings per page, 1 to 100."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[90.0])
    """How many days back a first poll or backfill may reach; unset: as far as asked."""

    profile_title: ClassVar[str] = "Vonage Business Communications"
    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    def requirements(self) -> list[str]:
        missing = super().requirements()
        needs = {
            "username": "the VBC integration user",
            "password": "the integration user's password",
            "client_id": "the application's Consumer Key",
            "client_secret": "the application's Consumer Secret",
        }
        for key, what in needs.items():
            value = getattr(self, key)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if not value:
                missing.append(f"{self.config_key(key)}: required: {what}")
        return missing

    def grant_username(self) -> str | None:
        """The user name as the password grant takes it, with ``@vbc.prod``."""
        if not self.username:
            return None
        name = self.username.strip()
        return name if name.endswith(USERNAME_SUFFIX) else name + USERNAME_SUFFIX

    def generic_values(self) -> Mapping[str, Any]:
        return {
            "auth": "oauth_password",
            "token_url": f"{(self.api_base_url or '').rstrip('/')}/token",
            "client_auth": "body",
            "scope": "openid",
            "username": self.grant_username(),
            "listing": {
                "path": f"{RECORDINGS}/accounts/{self.account_id}/company_call_recordings",
                "start_param": "start:gte",
                "end_param": "start:lte",
                "time_format": "%Y-%m-%dT%H:%M:%S%z",
                "time_zone": "UTC",
                "items_path": "_embedded.recordings",
                "params": {"order": "start:ASC"},
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "page_number",
                "page_param": "page",
                "first_page": 1,
                "page_size_param": "page_size",
                "page_size": self.page_size,
                "total_pages_path": "total_pages",
            },
            "fields": {
                "call_id": "id",
                "started_at": "start",
                "ended_at": "end",
                "duration": "duration",
                "duration_unit": "milliseconds",
                "direction": "call_direction",
                "rep_email": None,
                "rep_phone": None,  # caller_id of an outbound call may be a company number
                "rep_extension": "extensions.0",
                "contact_name": None,  # by direction, in the hook
                "contact_phone": None,
                "recording_url": None,
            },
            "recording": {
                "download_path": f"{RECORDINGS}/audio/recording/{{call_id}}",
                "format": "mp3",  # Vonage's file names end in .mp3
            },
        }


class VonageProvider(ProfileProvider):
    """Vonage Business Communications: the generic adapter plus the contact hook above."""

    kind: ClassVar[str] = "vonage"
    settings_model: ClassVar[type[ProviderSettingsBase]] = VonageSettings

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        record = super().map_record(raw, position)
        phone, name = None, None
        if record.direction is Direction.INBOUND:
            phone, name = raw.get("caller_id"), raw.get("cnam")
        elif record.direction is Direction.OUTBOUND:
            phone = raw.get("dnis")
        return replace(
            record,
            contact_phone=field_text(phone, TEXT_LIMITS["contact_phone"]),
            contact_name=field_text(name, TEXT_LIMITS["contact_name"]),
        )
