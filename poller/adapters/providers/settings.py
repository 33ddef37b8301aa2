"""What every provider kind's settings share: identity, transport limits, download hosts.

Each adapter module declares its own model on top of :class:`ProviderSettingsBase`, with a
``kind`` literal; :mod:`poller.adapters.providers.registry` gathers them into the union that
``[provider]`` and ``[[providers]]`` are validated against.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, ClassVar, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from poller.adapters.http.auth import (
    HEADER_NAME,
    ApiKeyHeader,
    Authenticator,
    BasicAuth,
    BearerToken,
    HeaderTemplate,
    NoAuth,
    OAuthClientCredentials,
    OAuthJwtBearer,
    OAuthPassword,
    template_fields,
)
from poller.adapters.webhooks.settings import WebhookSettings
from poller.config_types import (
    MINIMAL,
    BaseUrl,
    HostName,
    HostPattern,
    NonBlank,
    PositiveSeconds,
    Section,
)
from poller.domain.call_record import host_key
from poller.domain.retry_after import DEFAULT_MAX_RETRY_AFTER_SECONDS
from poller.ports.provider import PermanentProviderError
from poller.ports.token_store import OAuthTokenStore

DEFAULT_PROVIDER_KIND = "generic"
ProviderName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class ProviderSettingsBase(Section):
    """Keys every ``[provider]`` / ``[[providers]]`` table accepts, whatever its kind."""

    kind: str = DEFAULT_PROVIDER_KIND
    name: ProviderName = Field(
        default_factory=lambda fields: fields.get("kind", DEFAULT_PROVIDER_KIND),
    )
    """Name stored in calls.provider and poll_cursors.provider (unset: the kind); keep it stable
    once rows exist.
    """
    base_url: BaseUrl | None = None
    """Base URL of the provider's API; unset: the vendor's own (a native kind's default_base_url).
    Set it only for a vendor's sandbox or a simulator."""
    connect_timeout_seconds: PositiveSeconds = 10.0
    """Seconds to wait for a connection to the provider."""
    read_timeout_seconds: PositiveSeconds = 60.0
    """Seconds to wait for each read from the provider."""
    deadline_seconds: PositiveSeconds = 600.0
    """Total seconds one provider request may take, a recording download included (keep it well
    under worker.lease_seconds).
    """
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    """How often a failed provider request (5xx, 429, timeout) is retried within one poll."""
    max_page_bytes: Annotated[int, Field(gt=0)] = 20 * 1024 * 1024
    """Largest listing page read, in bytes (20 MB); a bigger page fails the poll with this key
    named.
    """
    max_records_per_page: Annotated[int, Field(gt=0)] = 500_000
    """Most records one listing page may hold. A page with more fails the poll whole, with this key
    named, before any of it is written, and the cursor stays before it (raise the key, or ask
    the provider for smaller pages). Below it, a page is mapped and written 1,000 records at a
    time, so memory does not grow with the records on a page.
    """
    download_hosts: list[HostPattern] = Field(default=[])
    """Hosts recordings may be downloaded from besides the provider's own and its credential_hosts:
    exact "host" or "host:port" entries, or patterns like "*.example.com" (subdomains only).
    Only exact entries (and base_url's host) may resolve to private, loopback or link-local
    addresses.
    """
    requests_per_minute: Annotated[int, Field(gt=0)] | None = Field(default=None, examples=[60])
    """Requests per minute to stay under, for providers that publish a steady rate; rate-limit
    headers and 429 answers are always obeyed, with or without it.
    """
    max_retry_after_seconds: PositiveSeconds = DEFAULT_MAX_RETRY_AFTER_SECONDS
    """Longest pause in seconds a Retry-After or rate-limit reset header may impose; a longer one
    (Retry-After: 999999999) is cut to this, with a warning.
    """

    delete_at_source: bool = False
    """Delete each recording at the phone system once Siro holds it, verified, and
    delete_grace_days have passed (never for a replayed call or one matched by title alone).
    Irreversible; off by default. See the deletion-at-source page for each vendor's permission.
    """
    delete_grace_days: Annotated[float, Field(ge=0, le=3650)] = 7.0
    """Days to wait after the upload before a recording is deleted at the source (with
    delete_at_source on), so a problem seen in Siro can still be fixed from the original.
    """
    webhook: WebhookSettings = WebhookSettings()
    """This provider's webhook events, which nudge an early poll (see [webhooks])."""

    # Why this kind cannot delete at the source; None: its adapter can (a SourceDeleter).
    source_deletion_unsupported: ClassVar[str | None] = (
        "this kind has no documented delete endpoint"
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

    @field_validator("delete_at_source")
    @classmethod
    def _deletion_supported(cls, value: bool) -> bool:
        if value and cls.source_deletion_unsupported is not None:
            raise ValueError(
                f"cannot be true for kind {cls.model_fields['kind'].default!r}: "
                f"{cls.source_deletion_unsupported}"
            )
        return value

    @model_validator(mode="after")
    def _deadline_covers_timeouts(self) -> ProviderSettingsBase:
        if self.deadline_seconds < self.connect_timeout_seconds:
            raise ValueError("deadline_seconds must not be below connect_timeout_seconds")
        return self


AuthScheme = Literal[
    "none",
    "bearer",
    "basic",
    "api_key",
    "header_template",
    "oauth_client_credentials",
    "oauth_jwt_bearer",
    "oauth_password",
    "oauth_refresh_token",
]

# The secrets a header template may name: only configured secrets, nothing else.
TEMPLATE_SECRETS = ("api_key", "api_secret", "token", "password")
MIN_ENCRYPTION_KEY_LENGTH = 32


class AuthSettings(Section):
    """Credential keys of a provider whose auth scheme is chosen in config (``auth``).

    Native kinds fix the scheme their vendor uses and need only some of these keys.
    """

    auth: AuthScheme = Field(default="none", examples=["bearer"], json_schema_extra=MINIMAL)
    """How to authenticate: "none", "bearer", "basic", "api_key", "header_template" (one header
    built from the secrets), "oauth_client_credentials" (OAuth 2 client credentials grant),
    "oauth_jwt_bearer" (OAuth 2 JWT bearer grant, RingCentral style), "oauth_password" (OAuth 2
    password grant, Vonage VBC style) or "oauth_refresh_token" (OAuth 2 refresh-token grant;
    a rotated refresh token is kept, encrypted, in the state database).
    """
    token: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The bearer token for auth = "bearer"."""
    username: str | None = None
    """User name for auth = "basic" or "oauth_password" (the integration user)."""
    password: SecretStr | None = None
    """Password for auth = "basic" or "oauth_password"."""
    api_key_header: NonBlank = "X-API-Key"
    """Header that carries the key for auth = "api_key"."""
    api_key: SecretStr | None = None
    """The key for auth = "api_key" (and {api_key} in header_template)."""
    api_secret: SecretStr | None = None
    """A second secret for header_template, as {api_secret} (JustCall's "key:secret")."""
    header_name: NonBlank = "Authorization"
    """Header that auth = "header_template" sends."""
    header_template: str | None = Field(default=None, examples=['Token token="{api_key}"'])
    """Value of that header for auth = "header_template": text with placeholders naming
    configured secrets only, {api_key}, {api_secret}, {token} or {password} ("{{" and "}}" for
    literal braces). The rendered value is a secret, redacted everywhere.
    """
    token_url: BaseUrl | None = Field(
        default=None, examples=["https://voip.example.com/oauth/token"]
    )
    """OAuth 2 token endpoint, for the oauth_* schemes; its host receives the client credentials."""
    client_id: str | None = None
    """OAuth 2 client id, for the oauth_* schemes (sent with HTTP Basic to token_url)."""
    client_secret: SecretStr | None = None
    """The OAuth 2 client secret, for the oauth_* schemes."""
    client_auth: Literal["basic", "body"] = "basic"
    """How the oauth_client_credentials, oauth_password and oauth_refresh_token schemes send
    client_id and client_secret: "basic" (HTTP Basic, RFC 6749 2.3.1) or "body" (in the token
    request's form)."""
    scope: str | None = Field(default=None, examples=["calls:read recordings:read"])
    """OAuth 2 scope to ask for, if the provider wants one."""
    token_params: dict[str, str] = Field(default={})
    """Fixed form fields sent with every token request of those three schemes (e.g.
    redirect_uri, which some servers want on a refresh too)."""
    jwt: SecretStr | None = None
    """The JWT assertion of auth = "oauth_jwt_bearer", as the provider issued it."""
    refresh_token: SecretStr | None = None
    """The seed of auth = "oauth_refresh_token": the refresh token the provider issued when the
    app was authorised. Once used, the current (rotated) token lives encrypted in the state
    database; set a new seed here to start over (a seed other than the stored token's wins).
    """
    token_encryption_key: SecretStr | None = None
    """Key (32 characters or more) that encrypts the stored OAuth tokens of auth =
    "oauth_refresh_token"; unset: a key derived from client_secret and the provider's name.
    Changing it, client_secret or the name makes the stored token unreadable: seed a new one.
    """
    token_hosts: list[HostName] = Field(default=[])
    """Hosts besides base_url's and token_url's that may receive the access token."""

    @model_validator(mode="after")
    def _header_template_names_secrets(self) -> AuthSettings:
        if self.header_template is None:
            return self
        try:
            names = template_fields(self.header_template)
        except ValueError as exc:
            raise ValueError(f"header_template: {exc}") from None
        unknown = sorted({name for name in names if name not in TEMPLATE_SECRETS})
        if unknown:
            braced = ", ".join("{" + name + "}" for name in unknown)
            allowed = ", ".join("{" + name + "}" for name in TEMPLATE_SECRETS)
            raise ValueError(
                f"header_template names {braced}, which is not a secret it may use; use {allowed}"
            )
        if not names:
            raise ValueError("header_template names no secret, so it would send none")
        if not HEADER_NAME.fullmatch(self.header_name):
            raise ValueError(f"header_name {self.header_name!r} is not an HTTP header name")
        for name in names:
            value = getattr(self, name)
            if isinstance(value, SecretStr) and any(
                ord(char) < 0x20 or ord(char) == 0x7F for char in value.get_secret_value()
            ):
                raise ValueError(f"{name} holds a control character (a line break?)")
        return self

    @model_validator(mode="after")
    def _encryption_key_long_enough(self) -> AuthSettings:
        key = self.token_encryption_key
        if key is not None and len(key.get_secret_value()) < MIN_ENCRYPTION_KEY_LENGTH:
            raise ValueError(
                f"token_encryption_key must be {MIN_ENCRYPTION_KEY_LENGTH} characters or more "
                "(e.g. the output of `openssl rand -base64 32`)"
            )
        return self

    def auth_keys(self) -> tuple[str, ...]:
        """The keys the chosen scheme cannot work without (a template's secrets included)."""
        keys = required_auth_keys(self.auth)
        if self.auth == "header_template" and self.header_template is not None:
            with contextlib.suppress(ValueError):
                keys += tuple(dict.fromkeys(template_fields(self.header_template)))
        return keys

    def credential_keys(self) -> list[str]:
        """The keys of the chosen scheme's credentials, as messages name them."""
        prefix = getattr(self, "config_key", lambda key: f"provider.{key}")
        return [prefix(key) for key in self.auth_keys() if key not in ("token_url",)]

    def missing_auth_keys(self) -> list[str]:
        """The chosen scheme's keys that are unset, as "key: why" lines naming where to set them."""
        prefix = getattr(self, "config_key", lambda key: f"provider.{key}")
        return [
            f"{prefix(key)}: required for {prefix('auth')} = {self.auth!r}"
            for key in self.auth_keys()
            if getattr(self, key) in (None, "")
        ]

    def needs_token_store(self) -> bool:
        """Whether this scheme keeps tokens in the state database."""
        return self.auth == "oauth_refresh_token"


def authenticator_for(
    settings: AuthSettings, *, token_store: OAuthTokenStore | None = None, store_key: str = ""
) -> Authenticator:
    """The authenticator of a provider whose scheme is chosen by ``auth``.

    ``token_store`` keeps the rotating refresh token of "oauth_refresh_token", under
    ``store_key`` (the provider's name); that scheme cannot work without one.
    """

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
    if settings.auth == "header_template":
        assert settings.header_template is not None
        values = {
            name: value
            for name in TEMPLATE_SECRETS
            if isinstance(value := getattr(settings, name), SecretStr)
        }
        return HeaderTemplate(settings.header_name, settings.header_template, values)
    if settings.auth == "oauth_client_credentials":
        assert settings.token_url is not None and settings.client_id is not None
        return OAuthClientCredentials(
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=secret(settings.client_secret),
            scope=settings.scope,
            extra_params=settings.token_params,
            client_auth=settings.client_auth,
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
    if settings.auth == "oauth_password":
        assert settings.token_url is not None and settings.client_id is not None
        return OAuthPassword(
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=secret(settings.client_secret),
            username=settings.username or "",
            password=secret(settings.password),
            scope=settings.scope,
            extra_params=settings.token_params,
            client_auth=settings.client_auth,
            config_hint=hint("username", "password", "client_id", "client_secret"),
        )
    if settings.auth == "oauth_refresh_token":
        assert settings.token_url is not None and settings.client_id is not None
        if token_store is None:
            raise PermanentProviderError(
                f"{hint('auth')} = 'oauth_refresh_token' keeps the rotated refresh token in "
                "the state database, and none was given"
            )
        # Here, not at the top: only this scheme needs the cryptography package loaded.
        from poller.adapters.http.oauth_refresh import OAuthRefreshToken
        from poller.adapters.http.sealing import TokenSealer

        dedicated = settings.token_encryption_key
        key_material = (dedicated or secret(settings.client_secret)).get_secret_value()
        return OAuthRefreshToken(
            token_url=settings.token_url,
            client_id=settings.client_id,
            client_secret=secret(settings.client_secret),
            refresh_token=secret(settings.refresh_token),
            store=token_store,
            store_key=store_key,
            sealer=TokenSealer(key_material, context=store_key),
            scope=settings.scope,
            extra_params=settings.token_params,
            client_auth=settings.client_auth,
            config_hint=hint("client_id", "client_secret", "refresh_token"),
            seed_key=hint("refresh_token"),
            key_hint=hint("token_encryption_key" if dedicated else "client_secret"),
        )
    return NoAuth()


def required_auth_keys(auth: AuthScheme) -> tuple[str, ...]:
    """The keys each auth scheme cannot work without."""
    return {
        "none": (),
        "bearer": ("token",),
        "basic": ("username", "password"),
        "api_key": ("api_key",),
        "header_template": ("header_template",),
        "oauth_client_credentials": ("token_url", "client_id", "client_secret"),
        "oauth_jwt_bearer": ("token_url", "client_id", "client_secret", "jwt"),
        "oauth_password": ("token_url", "client_id", "client_secret", "username", "password"),
        "oauth_refresh_token": ("token_url", "client_id", "client_secret", "refresh_token"),
    }[auth]
