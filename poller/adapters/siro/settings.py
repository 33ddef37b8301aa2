"""``[siro]``: how the poller reaches Siro, names reps and links CRM records.

The Siro adapter's own settings, beside the client that reads them, as each provider kind's
settings live with its adapter; :mod:`poller.config` places this model under ``[siro]``.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, field_validator

from poller.config_types import (
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

    provider_id: dict[str, NonBlank] = Field(default={}, description="provider user id -> userId")
    extension: dict[str, NonBlank] = Field(default={}, description="extension -> userId")
    email: dict[str, NonBlank] = Field(default={}, description="email (any case) -> userId")
    phone: dict[str, NonBlank] = Field(
        default={}, description="phone (normalised to E.164 with phone_default_region) -> userId"
    )

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

    objects: dict[DottedPath, CrmObjectType] = Field(
        default={}, description="dotted path in the provider record -> Siro CRM object type"
    )

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
    api_base_url: BaseUrl = "https://api.siro.ai"
    external_api_base_url: BaseUrl = "https://functions.siro.ai/api-externalApi"
    api_token: SecretStr | None = Field(default=None, description="organization API token")
    client_id: str | None = None
    client_secret: SecretStr | None = None
    token_user_id: str | None = Field(default=None, description="Siro user the access token is for")
    token_scope: Literal["read", "write"] = "write"  # noqa: S105  (a scope name, not a secret)
    organization_id: str | None = None
    conversation_type: str | None = None
    connect_timeout_seconds: PositiveSeconds = 10.0
    read_timeout_seconds: PositiveSeconds = 60.0
    deadline_seconds: PositiveSeconds = Field(
        default=900.0,
        description="total time one Siro request may take, an audio upload included",
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = 4
    retry_initial_wait_seconds: PositiveSeconds = Field(
        default=1.0,
        description="cap of the first in-call retry wait; doubles per retry, with full jitter",
    )
    retry_max_wait_seconds: PositiveSeconds = Field(
        default=30.0,
        description="longest single in-call wait; a longer Retry-After goes back to the worker",
    )
    max_retry_after_seconds: PositiveSeconds = Field(
        default=DEFAULT_MAX_RETRY_AFTER_SECONDS,
        description="longest wait a Retry-After may impose on a call; a longer one is cut, logged",
    )
    token_refresh_margin_seconds: PositiveSeconds = Field(
        default=300.0, description="mint a new access token this long before the current expires"
    )
    signed_url_size_field: Literal["auto", "fileSize", "fileSizeInBytes"] = Field(
        default="auto",
        description="the signed-url body's size key; auto: learned from Siro's 422 answers",
    )
    storage_hosts: list[HostPattern] = Field(
        default=list(SIRO_STORAGE_HOSTS),
        min_length=1,
        description="hosts audio may be PUT to over https; '*.x.com' allowed; plain http only "
        "to a loopback host listed exactly",
    )
    users_refresh_minutes: Annotated[int, Field(gt=0)] = Field(
        default=60, description="how often the daemon copies Siro's users into siro_users"
    )
    require_known_rep: bool = Field(
        default=False,
        description="skip calls whose rep is no Siro user instead of sending userEmail/userPhone",
    )
    phone_default_region: PhoneRegion = Field(
        default=DEFAULT_PHONE_REGION, description="country of phone numbers written without one"
    )
    integration_connection_id: NonBlank | None = None
    integration_connection_name: NonBlank | None = None
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
