"""Configuration: one TOML file, environment overrides, secrets from systemd credentials.

Precedence, lowest first: defaults < TOML file < ``SIRO_POLLER_<SECTION>__<KEY>`` environment
variables < files in ``$CREDENTIALS_DIRECTORY``. A credential file is named either like the
environment variable (``SIRO_POLLER_SIRO__API_TOKEN``) or like the dotted key (``siro.api_token``),
so ``LoadCredential=siro.api_token:/etc/siro-poller/api-token`` works in a unit file.
"""

from __future__ import annotations

import importlib.util
import os
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, cast, get_args
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from poller.domain.attribution import normalise_email_keys, normalise_phone_keys
from poller.domain.audio import MP3_BITRATES_KBPS, ConvertMode
from poller.domain.phones import DEFAULT_PHONE_REGION, is_known_region
from poller.domain.siro import CrmObjectType
from poller.domain.title import check_title_template

ENV_PREFIX = "SIRO_POLLER_"
CONFIG_PATH_ENV = "SIRO_POLLER_CONFIG"
CREDENTIALS_DIR_ENV = "CREDENTIALS_DIRECTORY"
MASK = "********"


class ConfigError(Exception):
    """A configuration problem a person can fix; each line names the key and the problem."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _base_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query string or fragment")
    return value.rstrip("/")


BaseUrl = Annotated[str, AfterValidator(_base_url)]
PositiveSeconds = Annotated[float, Field(gt=0)]


def _mp3_bitrate(value: int) -> int:
    if value not in MP3_BITRATES_KBPS:
        raise ValueError(f"must be an mp3 bitrate: one of {', '.join(map(str, MP3_BITRATES_KBPS))}")
    return value


Mp3Bitrate = Annotated[int, AfterValidator(_mp3_bitrate)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DatabaseSettings(Section):
    url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: SQLite file siro-poller.sqlite3 in state_dir",
    )
    password: SecretStr | None = Field(
        default=None, description="password merged into url, so the URL itself holds no secret"
    )

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError("is not a database URL (e.g. postgresql+psycopg://host/db)") from None
        if url.get_backend_name() not in ("sqlite", "postgresql"):
            raise ValueError("only sqlite:// and postgresql+psycopg:// URLs are supported")
        if url.get_backend_name() == "postgresql":
            if url.get_driver_name() != "psycopg":
                raise ValueError("use the psycopg 3 driver: postgresql+psycopg://...")
            if importlib.util.find_spec("psycopg") is None:
                raise ValueError(
                    "PostgreSQL needs the postgres extra: pip install 'siro-poller[postgres]'"
                )
        return value


def _dotted_path(value: str) -> str:
    if not value or any(not part.strip() or part != part.strip() for part in value.split(".")):
        raise ValueError(
            "must be a dotted path of non-empty keys or list indexes, like 'data.calls' or "
            "'user.email'"
        )
    return value


def _phone_region(value: str) -> str:
    region = value.strip().upper()
    if not is_known_region(region):
        raise ValueError("must be a region code phonenumbers knows, like US, GB or DE")
    return region


def _non_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


DottedPath = Annotated[str, AfterValidator(_dotted_path)]
PhoneRegion = Annotated[str, AfterValidator(_phone_region)]
NonBlank = Annotated[str, AfterValidator(_non_blank)]
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
    token_refresh_margin_seconds: PositiveSeconds = Field(
        default=300.0, description="mint a new access token this long before the current expires"
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


def _url_path(value: str) -> str:
    if not value.startswith("/") or "?" in value or "#" in value:
        raise ValueError("must be a path starting with '/', without query string")
    return value


def _param_name(value: str) -> str:
    if not value or len(value) > 128 or any(c.isspace() or c in "&=#?" for c in value):
        raise ValueError("must be a query parameter name (no spaces, '&', '=', '#' or '?')")
    return value


def _host_name(value: str) -> str:
    if not value or "/" in value or "@" in value or value != value.strip():
        raise ValueError("must be a host name like 'media.example.com' (optionally with :port)")
    return value.lower()


def _unset_if_empty(value: object) -> object:
    # TOML has no null: an empty string switches an optional mapping off.
    return None if value == "" else value


OptionalPath = Annotated[DottedPath | None, BeforeValidator(_unset_if_empty)]
UrlPath = Annotated[str, AfterValidator(_url_path)]
HostName = Annotated[str, AfterValidator(_host_name)]
ParamName = Annotated[str, AfterValidator(_param_name)]
WindowTimeFormat = Literal["iso8601", "unix_s", "unix_ms"]
FieldTimeFormat = Literal["iso8601", "unix_s", "unix_ms", "rfc2822"]
DirectionName = Literal["inbound", "outbound"]

DEFAULT_DIRECTION_VALUES: dict[str, DirectionName] = {
    "inbound": "inbound",
    "incoming": "inbound",
    "in": "inbound",
    "outbound": "outbound",
    "outgoing": "outbound",
    "out": "outbound",
    "outbound-api": "outbound",
    "outbound-dial": "outbound",
}


class ListingSettings(Section):
    """``[provider.listing]``: the call-log request of the generic adapter."""

    path: UrlPath = "/calls"
    start_param: ParamName = "from"
    end_param: Annotated[ParamName | None, BeforeValidator(_unset_if_empty)] = "to"
    time_format: WindowTimeFormat = "iso8601"
    items_path: OptionalPath = Field(
        default="calls", description='where the list of calls sits; "": the body is the list'
    )
    params: dict[str, str] = Field(default={}, description="fixed query parameters, e.g. order")
    max_window_hours: Annotated[float, Field(gt=0)] | None = None
    max_rows_per_query: Annotated[int, Field(gt=0)] | None = None
    history_days: Annotated[float, Field(gt=0)] | None = None
    settle_delay_seconds: Annotated[int, Field(ge=0)] = 0


class PagingSettings(Section):
    """``[provider.paging]``: how the generic adapter walks the pages of one window."""

    mode: Literal["none", "token", "next_url", "page_number"] = "token"
    token_path: DottedPath = "next_page_token"  # noqa: S105  (a JSON path, not a secret)
    token_param: ParamName = "page_token"  # noqa: S105  (a parameter name, not a secret)
    next_url_path: DottedPath = "next"
    page_param: ParamName = "page"
    first_page: Annotated[int, Field(ge=0)] = 1
    page_size_param: Annotated[ParamName | None, BeforeValidator(_unset_if_empty)] = None
    page_size: Annotated[int, Field(gt=0)] | None = None
    max_pages: Annotated[int, Field(gt=0, le=1_000_000)] = 10_000

    @model_validator(mode="after")
    def _page_size_pair(self) -> PagingSettings:
        if self.page_size_param is not None and self.page_size is None:
            raise ValueError("page_size_param is set, so page_size is needed too")
        return self


class FieldSettings(Section):
    """``[provider.fields]``: the dotted path of each call field in a listed record.

    The defaults are the payload of Siro's phone-integration quickstart.
    """

    call_id: DottedPath = "call_id"
    recording_id: OptionalPath = None
    started_at: DottedPath = "started_at"
    started_at_format: FieldTimeFormat = "iso8601"
    ended_at: OptionalPath = None
    ended_at_format: FieldTimeFormat = "iso8601"
    duration: OptionalPath = None
    duration_unit: Literal["seconds", "milliseconds"] = "seconds"
    direction: OptionalPath = None
    direction_values: dict[str, DirectionName] = Field(
        default_factory=lambda: dict(DEFAULT_DIRECTION_VALUES),
        description="provider value (case-insensitive) -> inbound/outbound",
    )
    rep_email: OptionalPath = "email"
    rep_phone: OptionalPath = "number"
    rep_provider_id: OptionalPath = None
    rep_name: OptionalPath = None
    rep_extension: OptionalPath = None
    contact_name: OptionalPath = "contact_name"
    contact_phone: OptionalPath = "contact_phone"
    recording_url: OptionalPath = "recording_url"
    recording_status: OptionalPath = None
    recording_ready_values: list[str] = ["ready", "completed", "available", "done"]
    recording_absent_values: list[str] = ["none", "absent", "not_recorded", "deleted"]

    @field_validator("direction_values", mode="before")
    @classmethod
    def _lower_keys(cls, value: object) -> object:
        if isinstance(value, dict):
            return {str(key).lower(): direction for key, direction in value.items()}
        return value


class RecordingSettings(Section):
    """``[provider.recording]``: how the generic adapter turns a call into a download."""

    refetch_path: str | None = Field(
        default=None,
        description="single-call path, e.g. /calls/{call_id}: fetched for a fresh recording URL",
    )
    refetch_item_path: OptionalPath = Field(
        default=None, description="where the call sits in the single-call response; unset: the body"
    )
    credential_hosts: list[HostName] = Field(
        default=[], description="hosts besides base_url's that may receive provider credentials"
    )
    format: Literal["mp3", "wav", "m4a", "aac"] | None = None

    @field_validator("refetch_path")
    @classmethod
    def _names_the_call(cls, value: str | None) -> str | None:
        if value is None:
            return value
        _url_path(value)
        if "{call_id}" not in value and "{recording_id}" not in value:
            raise ValueError("must contain {call_id} or {recording_id}")
        return value


class ProviderSettings(Section):
    kind: Literal["generic"] = "generic"
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")] = (
        "generic"
    )
    base_url: BaseUrl | None = None
    auth: Literal["none", "bearer", "basic", "api_key"] = "none"
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    api_key_header: str = "X-API-Key"
    api_key: SecretStr | None = None
    connect_timeout_seconds: PositiveSeconds = 10.0
    read_timeout_seconds: PositiveSeconds = 60.0
    deadline_seconds: PositiveSeconds = Field(
        default=600.0,
        description="total time one provider request may take, reading the body included",
    )
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    max_page_bytes: Annotated[int, Field(gt=0)] = Field(
        default=20 * 1024 * 1024, description="largest listing page read, in bytes"
    )
    download_hosts: list[HostName] = Field(
        default=[],
        description="hosts recordings may be downloaded from besides the provider's own: "
        "exact host[:port] entries (which may even be private addresses) or *.domain patterns",
    )
    listing: ListingSettings = ListingSettings()
    paging: PagingSettings = PagingSettings()
    fields: FieldSettings = FieldSettings()
    recording: RecordingSettings = RecordingSettings()


class PollSettings(Section):
    interval_seconds: Annotated[int, Field(gt=0)] = 300
    lookback_minutes: Annotated[int, Field(ge=0)] = 60
    settle_delay_seconds: Annotated[int, Field(ge=0)] = 120
    initial_lookback_hours: Annotated[float, Field(gt=0)] = 24.0
    start_at: AwareDatetime | None = None
    recording_wait_hours: Annotated[float, Field(gt=0)] = 48.0
    recheck_waiting_minutes: Annotated[int, Field(gt=0)] = 30
    min_duration_seconds: Annotated[int, Field(ge=0)] = 0
    directions: list[Literal["inbound", "outbound"]] = ["inbound", "outbound"]
    rep_allow: list[str] = []
    rep_deny: list[str] = []
    max_unmapped_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0


class WorkerSettings(Section):
    interval_seconds: Annotated[int, Field(gt=0)] = 15
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    max_attempts: Annotated[int, Field(ge=1)] = 8
    retry_base_seconds: PositiveSeconds = 30.0
    retry_max_seconds: PositiveSeconds = 3600.0
    lease_seconds: Annotated[int, Field(ge=5)] = 1800
    max_file_bytes: Annotated[int, Field(gt=0)] = 100 * 1024 * 1024
    max_download_bytes: Annotated[int, Field(gt=0)] = 2 * 1024 * 1024 * 1024
    convert: ConvertMode = ConvertMode.AUTO
    mp3_bitrate_kbps: Mp3Bitrate = 64
    mp3_min_bitrate_kbps: Mp3Bitrate = 16
    spool_dir: Path | None = None
    shutdown_grace_seconds: PositiveSeconds = 30.0
    title_template: str = "{direction} call with {contact} [{provider_call_id}]"

    @field_validator("title_template")
    @classmethod
    def _title_names_the_call(cls, value: str) -> str:
        check_title_template(value)
        return value

    @model_validator(mode="after")
    def _retry_bounds(self) -> WorkerSettings:
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("retry_max_seconds must not be below retry_base_seconds")
        return self

    @model_validator(mode="after")
    def _size_and_bitrate_bounds(self) -> WorkerSettings:
        if self.max_download_bytes < self.max_file_bytes:
            raise ValueError("max_download_bytes must not be below max_file_bytes")
        if self.mp3_min_bitrate_kbps > self.mp3_bitrate_kbps:
            raise ValueError("mp3_min_bitrate_kbps must not be above mp3_bitrate_kbps")
        return self


class MetricsSettings(Section):
    listen: str = Field(
        default="", description="host:port for the Prometheus /metrics endpoint; empty: off"
    )

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        if not value:
            return value
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be host:port, e.g. 127.0.0.1:9464")
        return value


class LoggingSettings(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "human", "json"] = "auto"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


def default_state_dir() -> Path:
    # systemd's StateDirectory= exports STATE_DIRECTORY; elsewhere follow the XDG layout.
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "siro-poller"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
    )

    state_dir: Path = Field(default_factory=default_state_dir)
    database: DatabaseSettings = DatabaseSettings()
    siro: SiroSettings = SiroSettings()
    provider: ProviderSettings = ProviderSettings()
    poll: PollSettings = PollSettings()
    worker: WorkerSettings = WorkerSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file's contents arrive as init kwargs, so they rank lowest.
        return (CredentialsDirectorySource(settings_cls), env_settings, init_settings)

    @property
    def database_url(self) -> str:
        from sqlalchemy.engine import make_url

        if self.database.url is None:
            return f"sqlite:///{self.state_dir / 'siro-poller.sqlite3'}"
        if self.database.password is None:
            return self.database.url
        url = make_url(self.database.url).set(password=self.database.password.get_secret_value())
        return url.render_as_string(hide_password=False)

    @property
    def spool_dir(self) -> Path:
        return self.worker.spool_dir or self.state_dir / "spool"

    @property
    def provider_key(self) -> str:
        """The value stored in ``calls.provider`` and ``poll_cursors.provider``."""
        return self.provider.name


def secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path whose value is a secret, e.g. ``("siro", "api_token")``."""
    for name, info in model.model_fields.items():
        annotation = info.annotation
        candidates = (annotation, *get_args(annotation))
        if SecretStr in candidates:
            yield (*prefix, name)
            continue
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                yield from secret_paths(candidate, (*prefix, name))


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(path).upper()


class CredentialsDirectorySource(PydanticBaseSettingsSource):
    """Secrets from systemd's ``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ below does the whole job

    def __call__(self) -> dict[str, Any]:
        directory = os.environ.get(CREDENTIALS_DIR_ENV)
        if not directory:
            return {}
        values: dict[str, Any] = {}
        for path in secret_paths(self.settings_cls):
            for file_name in (env_name(path), ".".join(path)):
                candidate = Path(directory) / file_name
                if candidate.is_file():
                    # Editors and `echo` leave a trailing newline that is never part of a secret.
                    secret = candidate.read_text(encoding="utf-8").rstrip("\r\n")
                    node = values
                    for key in path[:-1]:
                        node = node.setdefault(key, {})
                    node[path[-1]] = secret
                    break
        return values


def config_path_from(explicit: str | os.PathLike[str] | None) -> Path | None:
    if explicit is not None:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_PATH_ENV)
    return Path(from_env) if from_env else None


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file not found"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: config file is not readable by this user"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from None


def _describe(error: Mapping[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key (check the spelling against config.example.toml)"
    if error["type"] == "missing":
        return f"{key}: required"
    given = error.get("input")
    # Never echo a secret, nor a URL that may carry a password in its userinfo.
    credential_url = isinstance(given, str) and "://" in given and "@" in given
    if (
        isinstance(given, str | int | float | bool)
        and not credential_url
        and not _is_secret_key(error["loc"])
    ):
        return f"{key}: {message} (got {given!r})"
    return f"{key}: {message}"


def _is_secret_key(loc: tuple[Any, ...]) -> bool:
    return tuple(str(part) for part in loc) in set(secret_paths(Settings))


def load_settings(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """Load the effective settings, or raise :class:`ConfigError` listing every problem."""
    path = config_path_from(config_path)
    data = read_toml(path) if path is not None else {}
    try:
        return Settings(**data)
    except ValidationError as exc:
        raise ConfigError([_describe(error) for error in exc.errors(include_url=False)]) from None


def requirements_for_daemon(settings: Settings) -> list[str]:
    """What `run` needs beyond a valid file: the keys that have no sensible default."""
    problems: list[str] = []

    def need(path: tuple[str, ...], value: object, why: str) -> None:
        if value is None or value == "":
            source = f"set {env_name(path)}"
            if path in set(secret_paths(Settings)):
                source += f" or the credential file {'.'.join(path)}"
            problems.append(f"{'.'.join(path)}: required {why}; {source}")

    siro = settings.siro
    need(("siro", "api_token"), siro.api_token, "to talk to Siro")
    need(("siro", "client_id"), siro.client_id, "to mint upload tokens")
    need(("siro", "client_secret"), siro.client_secret, "to mint upload tokens")
    need(("siro", "token_user_id"), siro.token_user_id, "to mint upload tokens")
    provider = settings.provider
    need(("provider", "base_url"), provider.base_url, "to poll the call log")
    if provider.auth == "bearer":
        need(("provider", "token"), provider.token, "for provider.auth = 'bearer'")
    elif provider.auth == "basic":
        need(("provider", "username"), provider.username, "for provider.auth = 'basic'")
        need(("provider", "password"), provider.password, "for provider.auth = 'basic'")
    elif provider.auth == "api_key":
        need(("provider", "api_key"), provider.api_key, "for provider.auth = 'api_key'")
    return problems


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret replaced by a mask."""
    from sqlalchemy.engine import make_url

    data = settings.model_dump(mode="json")
    for path in secret_paths(Settings):
        node = data
        for key in path[:-1]:
            node = node[key]
        if node.get(path[-1]) is not None:
            node[path[-1]] = MASK
    data["database"]["url"] = make_url(settings.database_url).render_as_string(hide_password=True)
    data["worker"]["spool_dir"] = str(settings.spool_dir)
    return cast(dict[str, Any], _drop_none(data))


def _drop_none(value: Any) -> Any:
    # TOML has no null: an unset optional key is shown by its absence.
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value
