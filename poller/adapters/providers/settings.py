"""What every provider kind's settings share: identity, transport limits, download hosts.

Each adapter module declares its own model on top of :class:`ProviderSettingsBase`, with a
``kind`` literal; :mod:`poller.adapters.providers.registry` gathers them into the union that
``[provider]`` and ``[[providers]]`` are validated against.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, ClassVar, Literal

from pydantic import Field, PrivateAttr, SecretStr, model_validator

from poller.adapters.http.auth import (
    ApiKeyHeader,
    Authenticator,
    BasicAuth,
    BearerToken,
    NoAuth,
    OAuthClientCredentials,
    OAuthJwtBearer,
)
from poller.config_types import (
    BaseUrl,
    HostName,
    HostPattern,
    NonBlank,
    PositiveSeconds,
    Section,
)
from poller.domain.call_record import host_key
from poller.domain.retry_after import DEFAULT_MAX_RETRY_AFTER_SECONDS

DEFAULT_PROVIDER_KIND = "generic"
ProviderName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class ProviderSettingsBase(Section):
    """Keys every ``[provider]`` / ``[[providers]]`` table accepts, whatever its kind."""

    kind: str = DEFAULT_PROVIDER_KIND
    name: ProviderName = Field(
        default_factory=lambda fields: fields.get("kind", DEFAULT_PROVIDER_KIND),
        description="stored in calls.provider and poll_cursors.provider; keep it stable; "
        "unset: the kind",
    )
    base_url: BaseUrl | None = None
    connect_timeout_seconds: PositiveSeconds = 10.0
    read_timeout_seconds: PositiveSeconds = 60.0
    deadline_seconds: PositiveSeconds = Field(
        default=600.0,
        description="total time one request may take, reading its body (a recording) included",
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    max_page_bytes: Annotated[int, Field(gt=0)] = Field(
        default=20 * 1024 * 1024, description="largest listing page read; a larger one fails"
    )
    max_records_per_page: Annotated[int, Field(gt=0)] = Field(
        default=500_000,
        description="most records one listing page may hold; a page with more fails, unread",
    )
    download_hosts: list[HostPattern] = Field(
        default=[],
        description="hosts recordings may come from besides the provider's; '*.x.com' allowed",
    )
    requests_per_minute: Annotated[int, Field(gt=0)] | None = Field(
        default=None, description="steady request rate to keep under; unset: only the headers"
    )
    max_retry_after_seconds: PositiveSeconds = Field(
        default=DEFAULT_MAX_RETRY_AFTER_SECONDS,
        description="longest wait a Retry-After or rate-limit reset may impose; cut and logged",
    )

    # The adapter's own hosts besides base_url's: API, media and token hosts that the vendor
    # documents. Credentials go to them; recordings may be downloaded from them.
    vendor_hosts: ClassVar[tuple[str, ...]] = ()
    # Where the base_url is fixed by the vendor, a native kind sets it here.
    default_base_url: ClassVar[str | None] = None

    # Where this table sits in the config, for messages: "provider" or "providers.<name>".
    _config_prefix: str = PrivateAttr(default="provider")

    def config_key(self, key: str) -> str:
        """The dotted config key of one of this provider's settings, as messages name it."""
        return f"{self._config_prefix}.{key}"

    def placed_at(self, prefix: str) -> None:
        self._config_prefix = prefix

    @property
    def api_base_url(self) -> str | None:
        return self.base_url or self.default_base_url

    def url_keys(self) -> dict[str, str]:
        """The host of each URL setting (the vendor's default base URL included), to that
        setting's key: what a message names when the host cannot be reached."""
        keys: dict[str, str] = {}
        urls = [("base_url", self.api_base_url)]
        urls += [(name, getattr(self, name)) for name in type(self).model_fields]
        for name, value in urls:
            if name.endswith("url") and isinstance(value, str):
                with contextlib.suppress(ValueError):
                    keys.setdefault(host_key(value), self.config_key(name))
        return keys

    def credential_keys(self) -> list[str]:
        """The keys of the credentials this table sends (those set), as messages name them."""
        return [
            self.config_key(name)
            for name in type(self).model_fields
            if isinstance(getattr(self, name), SecretStr)
        ]

    def requirements(self) -> list[str]:
        """Settings this kind cannot work without that are unset, each as "key: why"."""
        if self.api_base_url is None:
            return [f"{self.config_key('base_url')}: required to poll the call log"]
        return []

    @model_validator(mode="after")
    def _deadline_covers_timeouts(self) -> ProviderSettingsBase:
        if self.deadline_seconds < self.connect_timeout_seconds:
            raise ValueError("deadline_seconds must not be below connect_timeout_seconds")
        return self


AuthScheme = Literal[
    "none", "bearer", "basic", "api_key", "oauth_client_credentials", "oauth_jwt_bearer"
]


class AuthSettings(Section):
    """Credential keys of a provider whose auth scheme is chosen in config (``auth``).

    Native kinds fix the scheme their vendor uses and need only some of these keys.
    """

    auth: AuthScheme = "none"
    token: SecretStr | None = Field(default=None, description="bearer token")
    username: str | None = None
    password: SecretStr | None = None
    api_key_header: NonBlank = "X-API-Key"
    api_key: SecretStr | None = None
    token_url: BaseUrl | None = Field(
        default=None, description="OAuth 2 token endpoint (the oauth_* schemes)"
    )
    client_id: str | None = None
    client_secret: SecretStr | None = None
    scope: str | None = None
    jwt: SecretStr | None = Field(
        default=None, description="the signed JWT assertion of the oauth_jwt_bearer grant"
    )
    token_hosts: list[HostName] = Field(
        default=[], description="token_url's host is allowed credentials; add others here"
    )

    def credential_keys(self) -> list[str]:
        """The keys of the chosen scheme's credentials, as messages name them."""
        prefix = getattr(self, "config_key", lambda key: f"provider.{key}")
        return [prefix(key) for key in required_auth_keys(self.auth) if key != "token_url"]

    def missing_auth_keys(self) -> list[str]:
        """The chosen scheme's keys that are unset, as "key: why" lines naming where to set them."""
        prefix = getattr(self, "config_key", lambda key: f"provider.{key}")
        return [
            f"{prefix(key)}: required for {prefix('auth')} = {self.auth!r}"
            for key in required_auth_keys(self.auth)
            if getattr(self, key) in (None, "")
        ]


def authenticator_for(settings: AuthSettings) -> Authenticator:
    """The authenticator of a provider whose scheme is chosen by ``auth``."""

    def hint(*keys: str) -> str:
        prefix = getattr(settings, "config_key", lambda key: f"provider.{key}")
        return ", ".join(prefix(key) for key in keys)

    def secret(value: SecretStr | None) -> SecretStr:
        assert value is not None  # `config check` and requirements() report a missing key first
        return value

    if settings.auth == "bearer":
        return BearerToken(secret(settings.token))
    if settings.auth == "basic":
        return BasicAuth(settings.username or "", secret(settings.password))
    if settings.auth == "api_key":
        return ApiKeyHeader(settings.api_key_header, secret(settings.api_key))
    if settings.auth == "oauth_client_credentials":
        assert settings.token_url is not None and settings.client_id is not None
        return OAuthClientCredentials(
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=secret(settings.client_secret),
            scope=settings.scope,
            config_hint=hint("client_id", "client_secret"),
        )
    if settings.auth == "oauth_jwt_bearer":
        assert settings.token_url is not None and settings.client_id is not None
        return OAuthJwtBearer(
            token_url=settings.token_url,
            assertion=secret(settings.jwt),
            client_id=settings.client_id,
            client_secret=secret(settings.client_secret),
            config_hint=hint("jwt", "client_id", "client_secret"),
        )
    return NoAuth()


def required_auth_keys(auth: AuthScheme) -> tuple[str, ...]:
    """The keys each auth scheme cannot work without."""
    return {
        "none": (),
        "bearer": ("token",),
        "basic": ("username", "password"),
        "api_key": ("api_key",),
        "oauth_client_credentials": ("token_url", "client_id", "client_secret"),
        "oauth_jwt_bearer": ("token_url", "client_id", "client_secret", "jwt"),
    }[auth]
