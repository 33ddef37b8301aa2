"""``[siro]``: how the poller reaches Siro, names reps and links CRM records.

The Siro adapter's own settings, beside the client that reads them, as each provider kind's
settings live with its adapter; :mod:`poller.config` places this model under ``[siro]``.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, field_validator

from poller.config_types import (
    MINIMAL,
    BaseUrl,
    DottedPath,
    HostPattern,
    NonBlank,
    PositiveSeconds,
    Section,
)
from poller.domain.attribution import normalise_email_keys, normalise_phone_keys
from poller.domain.phones import DEFAULT_PHONE_REGION, is_known_region
from poller.domain.retry_after import DEFAULT_MAX_RETRY_AFTER_SECONDS
from poller.domain.siro import CrmObjectType


def _phone_region(value: str) -> str:
    region = value.strip().upper()
    if not is_known_region(region):
        raise ValueError("must be a region code phonenumbers knows, like US, GB or DE")
    return region


PhoneRegion = Annotated[str, AfterValidator(_phone_region)]
CRM_OBJECT_TYPES: tuple[str, ...] = get_args(CrmObjectType)


class RepMapSettings(Section):
    """``[siro.rep_map]``: reps named explicitly, each key to a Siro user id.

    Checked before any directory lookup, in this order: provider id, extension, email, phone.
    """

    provider_id: dict[str, NonBlank] = Field(default={})
    """The rep's user id at the provider -> Siro user id."""
    extension: dict[str, NonBlank] = Field(default={})
    """The rep's extension -> Siro user id, e.g. { "204" = "RKnw...Eu73" }."""
    email: dict[str, NonBlank] = Field(default={})
    """The rep's email (any case) -> Siro user id."""
    phone: dict[str, NonBlank] = Field(default={})
    """The rep's phone (any format; read with phone_default_region) -> Siro user id."""

    @field_validator("provider_id", "extension")
    @classmethod
    def _keys_not_blank(cls, value: dict[str, str]) -> dict[str, str]:
        keys = [key.strip() for key in value]
        if any(not key for key in keys):
            raise ValueError("keys must not be blank")
        return dict(zip(keys, value.values(), strict=True))

    @field_validator("email")
    @classmethod
    def _emails(cls, value: dict[str, str]) -> dict[str, str]:
        return normalise_email_keys(value)


class CrmSettings(Section):
    """``[siro.crm]``: which fields of the provider's raw record are CRM ids, and of what type."""

    objects: dict[DottedPath, CrmObjectType] = Field(default={})
    """Dotted path in the raw provider record -> object type; a path may hold one id or a list of
    ids. Example: { "crm.opportunity_id" = "Opportunity", "crm.account_id" = "Account" }.
    """

    @field_validator("objects", mode="before")
    @classmethod
    def _known_object_types(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        spelled = {name.lower(): name for name in CRM_OBJECT_TYPES}
        checked: dict[object, object] = {}
        for path, object_type in value.items():
            name = spelled.get(object_type.lower()) if isinstance(object_type, str) else None
            if name is None:
                raise ValueError(
                    f"{path!r} = {object_type!r} is not a Siro CRM object type; use one of "
                    f"{', '.join(CRM_OBJECT_TYPES)}"
                )
            checked[path] = name
        return checked


# The hosts Siro's signed upload URLs (Google Cloud Storage V4 signed URLs) point at.
SIRO_STORAGE_HOSTS = ("storage.googleapis.com", "*.storage.googleapis.com")


class SiroSettings(Section):
    """How the poller reaches Siro (its two APIs, the OAuth app whose tokens upload), names
    reps and links CRM records."""

    api_base_url: BaseUrl = "https://api.siro.ai"
    """Siro's API gateway (signed URLs and recording uploads)."""
    external_api_base_url: BaseUrl = "https://functions.siro.ai/api-externalApi"
    """Siro's external API (OAuth apps and tokens, users, integration connections)."""
    api_token: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The organization API token (Siro web app > API Tokens)."""
    client_id: str | None = Field(
        default=None, examples=["replace-with-your-client-id"], json_schema_extra=MINIMAL
    )
    """The OAuth app's client id (create one with: siro-poller siro create-app --name NAME)."""
    client_secret: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The OAuth app's client secret, shown once when the app is created."""
    token_user_id: str | None = Field(
        default=None, examples=["replace-with-a-siro-user-id"], json_schema_extra=MINIMAL
    )
    """The Siro user id the upload access token is minted for (an admin or integration user)."""
    token_scope: Literal["read", "write"] = "write"  # noqa: S105  (a scope name, not a secret)
    """Scope of the minted access token; uploads are POSTs, so "write"."""
    organization_id: str | None = None
    """Siro organization id; looked up from the API token when not set."""
    conversation_type: str | None = None
    """Conversation type sent with each recording; Siro's default when not set."""
    connect_timeout_seconds: PositiveSeconds = 10.0
    """Seconds to wait for a connection to Siro."""
    read_timeout_seconds: PositiveSeconds = 60.0
    """Seconds to wait for each read from Siro."""
    deadline_seconds: PositiveSeconds = 900.0
    """Total seconds one Siro request may take, an audio upload included (keep it under the lease).
    """
    max_retries: Annotated[int, Field(ge=0, le=10)] = 4
    """How often one idempotent Siro request is retried within a step before the row is
    rescheduled.
    """
    retry_initial_wait_seconds: PositiveSeconds = 1.0
    """Cap of the first in-call retry wait in seconds; doubles per retry, with full jitter."""
    retry_max_wait_seconds: PositiveSeconds = 30.0
    """Longest single in-call wait in seconds; a longer Retry-After reschedules the row instead."""
    max_retry_after_seconds: PositiveSeconds = DEFAULT_MAX_RETRY_AFTER_SECONDS
    """Longest wait in seconds a Siro Retry-After may impose on a call; a longer one is cut to
    this, with a warning.
    """
    token_refresh_margin_seconds: PositiveSeconds = 300.0
    """Mint a new access token this many seconds before the current one expires."""
    signed_url_size_field: Literal["auto", "fileSize", "fileSizeInBytes"] = "auto"
    """The size key of the signed-url body, where Siro's documents disagree: "fileSize" (API
    reference) or "fileSizeInBytes" (phone quickstart). "auto" starts with fileSize and switches
    when Siro's 422 answer names the key (organizationId is learned the same way); setting a key
    pins it.
    """
    storage_hosts: list[HostPattern] = Field(
        default=list(SIRO_STORAGE_HOSTS),
        min_length=1,
    )
    """Hosts the audio may be PUT to (Siro's signed upload URLs), over https only: exact hosts
    (optionally host:port) or "*.example.com" for subdomains. The default is the Google Cloud
    Storage hosts Siro's signed URLs use. Plain http only to a loopback address listed exactly,
    e.g. "127.0.0.1:9000": tests and the demo run Siro's storage on http://127.0.0.1.
    """
    users_refresh_minutes: Annotated[int, Field(gt=0)] = 60
    """Minutes between copies of Siro's user list into the siro_users table (also done on start)."""
    require_known_rep: bool = False
    """Skip calls whose rep matches no Siro user (unknown_rep) instead of sending
    userEmail/userPhone.
    """
    phone_default_region: PhoneRegion = DEFAULT_PHONE_REGION
    """Country of rep and contact phone numbers written without one (a code like US, GB or DE)."""
    integration_connection_id: NonBlank | None = None
    """The CRM connection recordings link through (`siro-poller siro connections` lists them)."""
    integration_connection_name: NonBlank | None = Field(default=None, examples=["Salesforce"])
    """Or the connection's name, looked up in Siro on start; set this or the id, not both."""
    # Validated after the fields above, which their validators read.
    rep_map: RepMapSettings = RepMapSettings()
    crm: CrmSettings = CrmSettings()

    @field_validator("integration_connection_name")
    @classmethod
    def _one_connection(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("integration_connection_id") is not None:
            raise ValueError("set either this or siro.integration_connection_id, not both")
        return value

    @field_validator("rep_map")
    @classmethod
    def _rep_phones_parse(cls, value: RepMapSettings, info: ValidationInfo) -> RepMapSettings:
        region = info.data.get("phone_default_region")
        if region is None:  # already reported as invalid
            return value
        try:
            phones = normalise_phone_keys(value.phone, region)
        except ValueError as exc:
            raise ValueError(f"the phone key {exc}") from None
        return value.model_copy(update={"phone": phones})

    @field_validator("crm")
    @classmethod
    def _crm_both_or_neither(cls, value: CrmSettings, info: ValidationInfo) -> CrmSettings:
        connection = info.data.get("integration_connection_id") or info.data.get(
            "integration_connection_name"
        )
        # Siro takes integrationConnectionId and crmObjects together or not at all.
        if value.objects and not connection:
            raise ValueError(
                "objects are mapped but no connection is set: set siro.integration_connection_id "
                "or siro.integration_connection_name (`siro-poller siro connections` lists them)"
            )
        if connection and not value.objects:
            raise ValueError(
                "a connection is set but objects is empty, so no CRM link would ever be sent: "
                'map provider fields to object types, e.g. objects = { "crm.opportunity_id" = '
                '"Opportunity" }, or unset the connection'
            )
        return value
