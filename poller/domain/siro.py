"""Siro's vocabulary as typed values: audio formats, the create-recording body, what reads return.

No I/O here: the adapters turn these into JSON and back. Field names are Python's; the JSON
names Siro uses come from the camelCase aliases.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel


class AudioFormat(StrEnum):
    """The file types Siro ingests (signed-urls and recordings/upload take the same three)."""

    MP3 = "mp3"
    WAV = "wav"
    AAC = "aac"

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self]


# Siro's own mapping; the signed upload URL is signed with exactly this Content-Type.
MIME_TYPES: Mapping[AudioFormat, str] = {
    AudioFormat.MP3: "audio/mpeg",
    AudioFormat.WAV: "audio/wav",
    AudioFormat.AAC: "audio/aac",
}

CrmObjectType = Literal[
    "Opportunity", "Account", "Contact", "Lead", "Engagement", "Event", "ServiceAppointment"
]
RecordingResult = Literal["closed", "not closed", "in progress"]


class _SiroBody(BaseModel):
    """A request body: camelCase on the wire, no unknown keys (Siro rejects them with a 422)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        str_strip_whitespace=True,
    )


class CrmObject(_SiroBody):
    """A CRM record Siro already knows (synced for the integration connection) to link to."""

    object_type: CrmObjectType
    object_id: str = Field(min_length=1)


class RecordingCreate(_SiroBody):
    """The body of ``POST /v1/core/recordings/upload``, valid by construction.

    Blank strings and empty lists count as absent and are left out of the JSON. Siro's two
    cross-field rules are checked here, before anything is sent: a recording needs a rep
    (``user_id``, ``user_email`` or ``user_phone``), and ``integration_connection_id`` travels
    with ``crm_objects`` or not at all.
    """

    file_url: str = Field(min_length=1, description="the downloadUrl of the signed upload")
    file_type: AudioFormat
    title: str | None = None
    user_id: str | None = None
    user_email: str | None = None
    user_phone: str | None = None
    organization_id: str | None = None
    conversation_type: str | None = None
    integration_connection_id: str | None = None
    crm_objects: tuple[CrmObject, ...] | None = None
    contact_phone: str | None = None
    contact_name: str | None = None
    date_created: AwareDatetime | None = Field(
        default=None, description="when the call happened, not when it was uploaded"
    )
    discoverable: bool | None = None
    result: RecordingResult | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_absent(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, list | tuple) and not value:
            return None
        return value

    @field_validator("date_created")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    @model_validator(mode="after")
    def _siro_rules(self) -> RecordingCreate:
        if not (self.user_id or self.user_email or self.user_phone):
            raise ValueError(
                "a recording needs a rep: set at least one of userId, userEmail or userPhone"
            )
        if (self.integration_connection_id is None) != (self.crm_objects is None):
            raise ValueError(
                "integrationConnectionId and crmObjects go together: set both or neither"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True, slots=True)
class SignedUpload:
    """Where to PUT one file and the URL Siro later reads it from.

    Both URLs carry their authorisation in the query string, so they are kept out of ``repr``
    and must never reach a log line or an error message.
    """

    upload_url: str = field(repr=False)
    download_url: str = field(repr=False)
    expires_at: datetime | None
    upload_headers: Mapping[str, str] = field(default_factory=dict, hash=False)

    def expired(self, now: datetime, margin: timedelta = timedelta(0)) -> bool:
        return self.expires_at is not None and now >= self.expires_at - margin

    def put_headers(self, file_type: AudioFormat, size_bytes: int) -> dict[str, str]:
        """The headers the PUT must carry: the signature covers them, so nothing else is added.

        Siro's answer names them in ``uploadHeaders``; when it does not, these are the ones
        its quickstart says the URL is signed with.
        """
        if self.upload_headers:
            return dict(self.upload_headers)
        return {
            "Content-Type": file_type.mime_type,
            "x-goog-content-length-range": f"0,{size_bytes}",
        }


class _SiroRecord(BaseModel):
    """Something Siro returned: tolerant of fields we do not use and of nulls."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore"
    )


def _utc_or_none(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


class SiroUser(_SiroRecord):
    id: str
    email: str | None = None
    phone_number: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    organization_id: str | None = None
    external_id: str | None = None
    disabled: bool = False

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)


class IntegrationConnection(_SiroRecord):
    id: str
    name: str | None = None
    integration_platform: str | None = None
    external_account_id: str | None = None
    organization_id: str | None = None
    is_active: bool | None = None


class ConversationConfiguration(_SiroRecord):
    id: str
    conversation_type: str | None = None
    display_name: str | None = None


class RecordingSummary(_SiroRecord):
    id: str
    title: str | None = None
    date_created: datetime | None = None
    user_id: str | None = None
    conversation_type: str | None = None
    processing_status: str | None = None
    transcription_status: str | None = None
    deleted: bool | None = None
    # Listed items carry it; the GET by id is documented with "…" after its fields.
    duration_in_milliseconds: int | None = None

    @field_validator("date_created")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # Siro's docs show ISO 8601 with "Z"; a value without an offset is taken as UTC.
        return _utc_or_none(value)


class OAuthAppCredentials(_SiroRecord):
    """What creating an OAuth app returns; Siro shows the secret this one time only."""

    app_name: str | None = None
    client_id: str
    client_secret: SecretStr
