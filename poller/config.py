"""Configuration: one TOML file, environment overrides, secrets from systemd credentials.

How they combine is told once, in :class:`Settings`' docstring (the example configs and the
reference page print it); each key's meaning is its field's docstring.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import operator
import os
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from poller.adapters.providers.registry import (
    KINDS,
    adapter_class,
    missing_settings,
    settings_models,
)
from poller.adapters.providers.settings import DEFAULT_PROVIDER_KIND, ProviderSettingsBase
from poller.adapters.siro.settings import SiroSettings
from poller.config_types import ConfigError as ConfigError  # re-exported: callers' home
from poller.config_types import (
    PositiveSeconds,
    Section,
)
from poller.domain.audio import MP3_BITRATES_KBPS, ConvertMode
from poller.domain.redaction import redact_url
from poller.domain.title import check_title_template

ENV_PREFIX = "SIRO_POLLER_"
CONFIG_PATH_ENV = "SIRO_POLLER_CONFIG"
CREDENTIALS_DIR_ENV = "CREDENTIALS_DIRECTORY"
MASK = "********"


def _mp3_bitrate(value: int) -> int:
    if value not in MP3_BITRATES_KBPS:
        raise ValueError(f"must be an mp3 bitrate: one of {', '.join(map(str, MP3_BITRATES_KBPS))}")
    return value


Mp3Bitrate = Annotated[int, AfterValidator(_mp3_bitrate)]


class DatabaseSettings(Section):
    """Where the poller keeps its state: each call, its cursor and its audit trail."""

    url: str | None = Field(
        default=None, examples=["postgresql+psycopg://siro_poller@db.internal:5432/siro_poller"]
    )
    """SQLAlchemy URL of the state database; default: SQLite file siro-poller.sqlite3 in state_dir.
    """
    password: SecretStr | None = None
    """Password merged into url, so the URL in this file holds no secret."""

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


def _provider_kind(value: Any) -> str:
    # A table without `kind` is the generic adapter, as before kinds existed; so is an
    # environment override that names no kind (it merges into the file's table).
    if isinstance(value, Mapping):
        return str(value.get("kind", DEFAULT_PROVIDER_KIND))
    return str(getattr(value, "kind", DEFAULT_PROVIDER_KIND))


def _provider_settings_type() -> Any:
    """The union of every provider kind's settings model, told apart by ``kind``."""
    models = settings_models()
    if len(models) == 1:
        return models[0]
    tagged = [Annotated[model, Tag(model.model_fields["kind"].default)] for model in models]
    return Annotated[reduce(operator.or_, tagged), Discriminator(_provider_kind)]


if TYPE_CHECKING:
    AnyProviderSettings = ProviderSettingsBase
else:
    AnyProviderSettings = _provider_settings_type()


class PollSettings(Section):
    """How often and how far back the call log is listed, and which calls go to Siro."""

    interval_seconds: Annotated[int, Field(gt=0)] = 300
    """Seconds between two polls of the call log."""
    lookback_minutes: Annotated[int, Field(ge=0)] = 60
    """Minutes each poll re-reads before the cursor, to catch late or changed records."""
    settle_delay_seconds: Annotated[int, Field(ge=0)] = 120
    """Seconds to stay behind "now", so calls still being written are not skipped over."""
    initial_lookback_hours: Annotated[float, Field(gt=0)] = 24.0
    """On the first run, how many hours back to start (unless start_at is set)."""
    start_at: AwareDatetime | None = Field(default=None, examples=["2026-11-01T00:00:00Z"])
    """On the first run, start listing at this instant instead (ISO 8601 with a zone). Only the
    first run: once a cursor exists, changing it does nothing; `siro-poller backfill --since
    --until` lists an older range.
    """
    recording_wait_hours: Annotated[float, Field(gt=0)] = 48.0
    """Hours to wait for a listed call's recording before the call is skipped as no_recording."""
    recheck_waiting_minutes: Annotated[int, Field(gt=0)] = 30
    """Minutes between re-listings of the older calls still waiting for a recording (beyond the
    lookback).
    """
    min_duration_seconds: Annotated[int, Field(ge=0)] = 0
    """Calls shorter than this many seconds are skipped."""
    directions: list[Literal["inbound", "outbound"]] = Field(default=["inbound", "outbound"])
    """Directions to upload: "inbound", "outbound" or both."""
    rep_allow: list[str] = Field(default=[])
    """When not empty, only calls of these reps (email, phone, provider user id or extension) go
    in.
    """
    rep_deny: list[str] = Field(default=[])
    """Calls of these reps (email, phone, provider user id or extension) are skipped."""
    max_unmapped_ratio: Annotated[float, Field(ge=0, le=1)] = 1.0
    """Records that fail the field mapping are kept (siro-poller calls unmapped) and mapped again
    with back-off (see [retention]). When this share of a page's records fails (0.0: any; 1.0:
    all of them), the poll fails and the cursor stays, so a wrong mapping cannot move past the
    calls it could not read.
    """


class WorkerSettings(Section):
    """How listed calls are downloaded, converted when Siro needs it, and uploaded."""

    role: Literal["all", "poller", "worker"] = "all"
    """What `run` does: "all" (poll and upload), "poller" (poll only) or "worker" (upload only).
    With several processes on one PostgreSQL database, one per provider polls at a time and the
    others stand by to take over; each uploads its share of the queue.
    """
    interval_seconds: Annotated[int, Field(gt=0)] = 15
    """Seconds between two checks for due rows when the queue is idle."""
    concurrency: Annotated[int, Field(ge=1, le=64)] = 4
    """How many requests run at once to each host: downloads from the provider, and beside them,
    of other calls, requests to Siro's API and uploads to its storage. At most three times this
    many calls (and their recordings in the spool) are in flight."""
    max_attempts: Annotated[int, Field(ge=1)] = 8
    """Attempts per call before it is parked as failed (requeue with: siro-poller calls retry)."""
    retry_base_seconds: PositiveSeconds = 30.0
    """First retry delay in seconds; doubles per attempt, with jitter."""
    retry_max_seconds: PositiveSeconds = 3600.0
    """Longest retry delay in seconds."""
    lease_seconds: Annotated[int, Field(ge=5)] = 120
    """Seconds a worker owns a claimed row; renewed every third of it while a step runs, so this is
    how soon the rows of a worker that died are taken up by another.
    """
    max_file_bytes: Annotated[int, Field(gt=0)] = 100 * 1024 * 1024
    """Largest file sent to Siro, in bytes (Siro's limit is 100 MB); bigger recordings are
    converted to fit.
    """
    max_download_bytes: Annotated[int, Field(gt=0)] = 2 * 1024 * 1024 * 1024
    """Largest recording downloaded, in bytes (a one-hour stereo WAV is about 635 MB)."""
    convert: ConvertMode = ConvertMode.AUTO
    """What to do with audio Siro does not take (m4a, ogg/opus, webm, flac...): "auto" converts
    it to aac or mp3; "never" fails such calls.
    """
    mp3_bitrate_kbps: Mp3Bitrate = 64
    """The mp3 bitrate in kbit/s for converted recordings (channels are kept; 64 suits speech)."""
    mp3_min_bitrate_kbps: Mp3Bitrate = 16
    """Lowest mp3 bitrate in kbit/s tried to fit max_file_bytes; a recording that needs less fails.
    """
    # The bounds of one conversion (a header's length is the file's own claim): decoding may
    # run this many times past the length the header or the provider gives (plus a minute),
    # never past max_audio_seconds, and take at most max_convert_seconds.
    max_audio_overrun: Annotated[float, Field(ge=1.0)] = 1.5
    """A conversion stops a file that decodes to more than this many times the length its header or
    the provider gives (plus a minute): an audio bomb, failed as "audio_bomb".
    """
    max_audio_seconds: PositiveSeconds = 8 * 3600.0
    """Longest audio any conversion decodes, in seconds, whatever the file declares."""
    max_convert_seconds: PositiveSeconds = 900.0
    """Longest one conversion may take, in seconds (wall time; each uses one CPU thread)."""
    spool_dir: Path | None = Field(default=None, examples=["/var/lib/siro-poller/spool"])
    """Where recordings wait between download and upload (default: state_dir/spool)."""
    shutdown_grace_seconds: PositiveSeconds = 30.0
    """Seconds in-flight work may take to finish after SIGTERM before leases are released."""
    credential_probe_seconds: Annotated[float, Field(ge=5, le=3600)] = 60.0
    """When Siro refuses the credentials (a rejected token mint, a 401 with a fresh token, a 403),
    the work pauses instead of failing calls; this often a fresh mint asks whether it can
    resume.
    """
    title_template: str = "{direction} call with {contact} [{provider_call_id}]"
    """Recording title in Siro; must contain {provider_call_id}, which finds uploads after a crash.
    """

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
    """The Prometheus /metrics and /healthz endpoint of `run`."""

    listen: str = ""
    """The host:port of the Prometheus /metrics endpoint of `run`, e.g. "127.0.0.1:9464"; empty:
    off.
    """
    request_timeout_seconds: PositiveSeconds = 10.0
    """Seconds a request to /metrics or /healthz has to arrive whole; a slower one is closed."""
    max_connections: Annotated[int, Field(ge=1, le=1024)] = 32
    """Connections open at once, each served by a thread; when all are taken, the one that has
    waited longest for its request is closed to make room.
    """

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        return _listen_address(value, "127.0.0.1:9464")


def _listen_address(value: str, example: str) -> str:
    """``host:port`` to listen on, or empty (off)."""
    if not value:
        return value
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"must be host:port, e.g. {example}")
    return value


class WebhooksSettings(Section):
    """The webhook receiver of `run`: the phone systems' events, each only a nudge to poll their
    provider early (see the webhooks page of the docs). Each provider whose events it takes sets
    webhook.enabled in its own table; polling stays the one way calls come in.
    """

    listen: str = Field(default="", examples=["127.0.0.1:8788"])
    """The host:port the receiver listens on, behind a TLS proxy, e.g. "127.0.0.1:8788"; empty:
    off. Each provider with webhook.enabled takes events at POST /webhooks/<provider name>.
    """
    max_body_bytes: Annotated[int, Field(ge=1024, le=1024 * 1024)] = 65536
    """Largest event body, in bytes; a longer one is answered 413 without being read."""
    request_timeout_seconds: PositiveSeconds = 10.0
    """Seconds a request has to arrive whole (headers and body); a slower one is closed."""
    max_connections: Annotated[int, Field(ge=1, le=1024)] = 64
    """Connections open at once, each served by a thread; when all are taken, the one that has
    waited longest for its request is closed to make room.
    """
    per_source_rate: Annotated[float, Field(gt=0, le=10000)] = 20.0
    """Requests a second one peer address may send, on average; more are answered 429."""
    per_source_burst: Annotated[int, Field(ge=1, le=100000)] = 40
    """Requests one peer address may send at once before per_source_rate applies."""
    debounce_seconds: Annotated[float, Field(ge=0, le=600)] = 2.0
    """Seconds the early poll waits after an event for more of them: many events, one poll."""
    follow_up_seconds: list[Annotated[float, Field(gt=0, le=3600)]] = Field(
        default=[10.0, 30.0], max_length=10
    )
    """Further polls of the provider, this many seconds after its event, so a call the call log
    lists only a little after the event is still caught early.
    """

    @field_validator("listen")
    @classmethod
    def _host_and_port(cls, value: str) -> str:
        return _listen_address(value, "127.0.0.1:8788")


class SourceDeletionSettings(Section):
    """Deletion of recordings at the phone system after a verified upload, for the providers
    whose delete_at_source is true (see the deletion-at-source page of the docs).
    """

    enabled: bool = True
    """The global switch: false stops every deletion at the source at once, whatever the
    providers' delete_at_source (`siro-poller source pause` does the same without a restart).
    """
    interval_seconds: Annotated[int, Field(gt=0)] = 300
    """Seconds between two deletion turns of `run`."""
    batch_size: Annotated[int, Field(ge=1, le=500)] = 20
    """Most recordings one turn deletes: deletion stays a trickle beside polling and uploads."""
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8
    """Attempts at one recording (a failed delete, Siro unreadable or still processing it) before
    it is given up, never deleted (an event says so).
    """
    retry_base_seconds: PositiveSeconds = 300.0
    """First wait after a failed delete (or while Siro still processes the recording); it
    doubles on each failure.
    """
    retry_max_seconds: PositiveSeconds = 6 * 3600.0
    """Longest wait between two attempts to delete one recording."""


class RetentionSettings(Section):
    """How long the state database keeps what it no longer needs (see the retention page).

    Finished calls keep their ids, states, times, Siro recording id and the events that prove
    an upload for ever, so the audit trail and the guard against uploading a call twice stay.
    A setting of 0 keeps that kind of data for ever.
    """

    interval_seconds: Annotated[int, Field(gt=0)] = 900
    """Seconds between two retention passes of `run` (`siro-poller db prune` runs one at will).
    """
    personal_data_days: Annotated[float, Field(ge=0)] = 90.0
    """Days after a call finished (uploaded, skipped or failed) until its personal data goes: the
    raw provider record, contact name and phone, title and recording URL. 90 days leaves a
    quarter for audits and `calls retry`, then keeps no customer data Siro already holds.
    """
    events_days: Annotated[float, Field(ge=0)] = 365.0
    """Days the call events are kept; the events that prove an upload (create sent, uploaded,
    replayed) are kept for ever.
    """
    unmapped_days: Annotated[float, Field(ge=0)] = 30.0
    """Days a record that fails the field mapping is kept and mapped again before it expires (its
    raw text dropped, a marker kept); markers and mapped ones not listed for as long are deleted.
    """
    unmapped_max_attempts: Annotated[int, Field(ge=0)] = 100
    """Failed re-mappings after which an unmapped record expires (about 24 days at the default
    back-off).
    """
    unmapped_max_kept: Annotated[int, Field(ge=0)] = 5000
    """Unmapped records kept with their raw text per provider at most (each up to 64 KB, so
    about 320 MB): at the cap a new one is kept as a marker without it, so a broken or hostile
    call log cannot fill the disk.
    """
    unmapped_remap_base_seconds: PositiveSeconds = 300.0
    """Seconds before an unmapped record is mapped again after its first failed try; doubled
    after each further failure.
    """
    unmapped_remap_max_seconds: PositiveSeconds = 21600.0
    """Longest wait in seconds between two re-mappings of an unmapped record."""
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 500
    """Rows a retention batch changes in one short transaction."""
    max_batches: Annotated[int, Field(ge=1)] = 100
    """Batches of each kind a pass runs at most; the next pass goes on where it stopped."""

    @model_validator(mode="after")
    def _remap_bounds(self) -> RetentionSettings:
        if self.unmapped_remap_max_seconds < self.unmapped_remap_base_seconds:
            raise ValueError(
                "unmapped_remap_max_seconds must not be below unmapped_remap_base_seconds"
            )
        return self


class LoggingSettings(Section):
    """What the daemon logs, and in which form."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """DEBUG, INFO, WARNING or ERROR."""
    format: Literal["auto", "human", "json"] = "auto"
    """"auto" (human on a terminal, journald-style under systemd), "human" or "json" (one JSON
    object per line).
    """

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
    """Every key can be overridden by an environment variable SIRO_POLLER_<SECTION>__<KEY>
    (nested keys joined by "__"), for example SIRO_POLLER_POLL__INTERVAL_SECONDS=60; lists and
    tables as JSON. Secrets should not live in the file: give them through the environment, or
    as systemd credentials, which siro-poller reads from $CREDENTIALS_DIRECTORY and which win
    over everything else. A credential file is named like the variable
    (SIRO_POLLER_SIRO__API_TOKEN) or like the dotted key (siro.api_token), so
    LoadCredential=siro.api_token:/etc/siro-poller/credentials/siro.api_token works in a unit
    file. Precedence, lowest first: defaults, the file, the environment, credential files.
    Check the result with `siro-poller --config FILE config check`.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="forbid",
        validate_default=True,
    )

    state_dir: Path = Field(default_factory=default_state_dir, examples=["/var/lib/siro-poller"])
    """Where the SQLite database and the download spool live (default: $STATE_DIRECTORY under
    systemd, else ~/.local/state/siro-poller).
    """
    database: DatabaseSettings = DatabaseSettings()
    siro: SiroSettings = SiroSettings()
    provider: AnyProviderSettings = Field(default_factory=lambda: settings_models()[0]())
    """The one phone system; its kind picks the adapter and the keys the table takes."""
    providers: list[AnyProviderSettings] = Field(
        default=[],
        examples=[
            [
                {"kind": "ringcentral", "name": "rc-east"},
                {"kind": "generic", "name": "legacy", "base_url": "https://voip.example.com/api"},
            ]
        ],
    )
    """Several phone systems (some companies run two): one [[providers]] table each, in place of
    [provider], each with its own kind, name, cursor and credentials, and the keys [provider]
    takes (nested ones as [providers.fields] and so on). Their secrets come from
    SIRO_POLLER_PROVIDERS__<NAME>__<KEY> (the name upper-cased, other characters as "_") or the
    credential file providers.<name>.<key>, e.g. SIRO_POLLER_PROVIDERS__RC_EAST__TOKEN or
    providers.rc-east.token. `siro-poller provider check` lists one page of each.
    """
    poll: PollSettings = PollSettings()
    worker: WorkerSettings = WorkerSettings()
    metrics: MetricsSettings = MetricsSettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    retention: RetentionSettings = RetentionSettings()
    logging: LoggingSettings = LoggingSettings()
    source_deletion: SourceDeletionSettings = SourceDeletionSettings()

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
        return (
            CredentialsDirectorySource(settings_cls),
            WithoutProviderTables(settings_cls, env_settings),
            init_settings,
        )

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

    @model_validator(mode="after")
    def _one_way_to_name_providers(self) -> Settings:
        if self.providers and "provider" in self.model_fields_set:
            raise ValueError("use either one [provider] table or [[providers]] tables, not both")
        names = [entry.name for entry in self.providers]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(
                f"providers: the name {', '.join(map(repr, twice))} is used more than once; "
                "each [[providers]] table needs its own name (it keys its calls and cursor)"
            )
        for entry in self.providers:
            entry.placed_at(f"providers.{entry.name}")
        return self

    @model_validator(mode="after")
    def _webhooks_have_a_listener(self) -> Settings:
        if self.webhooks.listen:
            return self
        for entry in self.configured_providers:
            if entry.webhook.enabled:
                key = entry.config_key("webhook.enabled")
                raise ValueError(
                    f"{key}: true, but webhooks.listen is unset, so no receiver takes its "
                    f'events; set webhooks.listen (e.g. "127.0.0.1:8788") or {key} = false'
                )
        return self

    @property
    def configured_providers(self) -> list[ProviderSettingsBase]:
        """Every phone system this process polls: the [[providers]] tables, or [provider]."""
        return list(self.providers) or [self.provider]

    def provider_named(self, name: str) -> ProviderSettingsBase:
        """The provider whose calls carry ``name``; raises ``KeyError`` if none is configured."""
        for entry in self.configured_providers:
            if entry.name == name:
                return entry
        raise KeyError(name)

    @property
    def provider_key(self) -> str:
        """The value stored in ``calls.provider`` and ``poll_cursors.provider``."""
        return self.provider.name


def _inner_types(annotation: Any) -> Iterator[Any]:
    """The types an annotation is made of, through Optional, unions and Annotated."""
    yield annotation
    for argument in get_args(annotation):
        yield from _inner_types(argument)


def secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every key path whose value is a secret, e.g. ``("siro", "api_token")``.

    Under ``provider`` this covers the secrets of every provider kind. List-valued tables
    (``[[providers]]``) have no fixed path: :func:`provider_entry_overrides` serves them.
    """
    seen: set[tuple[str, ...]] = set()
    for name, info in model.model_fields.items():
        if getattr(info.annotation, "__origin__", None) is list:
            continue
        candidates = list(_inner_types(info.annotation))
        path = (*prefix, name)
        if SecretStr in candidates:
            yield path
            continue
        for candidate in candidates:
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                for found in secret_paths(candidate, path):
                    if found not in seen:
                        seen.add(found)
                        yield found


def provider_entry_env_prefix(name: str) -> str:
    """``SIRO_POLLER_PROVIDERS__<NAME>__``: where a [[providers]] table's overrides live."""
    return f"{ENV_PREFIX}PROVIDERS__{_env_word(name)}__"


def _env_word(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).upper()


def provider_entry_overrides(entry: Mapping[str, Any]) -> dict[str, Any]:
    """Environment and credential-file values for one ``[[providers]]`` table, by its name.

    ``SIRO_POLLER_PROVIDERS__RC_EAST__CLIENT_SECRET`` (nested keys joined by ``__``) and the
    credential file ``providers.rc-east.client_secret`` (or the variable's name) both set
    ``client_secret`` of the table named ``rc-east``; the credential file wins, as above.
    """
    name = entry.get("name")
    if not isinstance(name, str):
        return {}
    overrides: dict[str, Any] = {}

    def put(keys: list[str], value: Any) -> None:
        node = overrides
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value

    prefix = provider_entry_env_prefix(name)
    for variable, value in os.environ.items():
        if variable.upper().startswith(prefix) and len(variable) > len(prefix):
            keys = [part.lower() for part in variable[len(prefix) :].split("__")]
            put(keys, _env_value(value))
    directory = os.environ.get(CREDENTIALS_DIR_ENV)
    if directory:
        for secret in sorted(provider_secret_paths()):
            found = _credential_file(Path(directory), _entry_credential_names(name, secret))
            if found is not None:
                put(list(secret), _read_credential(found))
    return overrides


def _env_value(value: str) -> Any:
    # As pydantic-settings does for complex fields: lists and tables come as JSON.
    if value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def provider_secret_names() -> set[str]:
    """The secret keys a provider table may hold, of any kind (``token``, ``client_secret``...)."""
    return {path[-1] for path in secret_paths(Settings) if path[0] == "provider"}


def provider_secret_paths() -> set[tuple[str, ...]]:
    """Where a provider table may hold a secret, nested tables included: ``("token",)``,
    ``("webhook", "secret")``."""
    return {path[1:] for path in secret_paths(Settings) if path[0] == "provider"}


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "__".join(path).upper()


def env_variable_for(key: Sequence[str]) -> str:
    """The environment variable that sets a key as messages name it; a [[providers]] table's
    by the table's name: ``("providers", "rc-east", "token")`` gives
    ``SIRO_POLLER_PROVIDERS__RC_EAST__TOKEN``."""
    if len(key) > 2 and key[0] == "providers":
        return provider_entry_env_prefix(key[1]) + "__".join(key[2:]).upper()
    return env_name(tuple(key))


def known_keys(loc: Sequence[str | int]) -> list[str] | None:
    """The keys the config table at ``loc`` accepts, or None when ``loc`` names no table.

    ``loc`` is a location as pydantic reports it: list indexes are skipped and a provider
    table's kind may follow it (``("provider", "dialpad", "listing")``), naming that kind's
    keys; without a kind, a provider table accepts the keys of every kind.
    """
    models: list[type[BaseModel]] = [Settings]
    for part in loc:
        if isinstance(part, int):
            continue
        fields = [model.model_fields[part] for model in models if part in model.model_fields]
        if fields:
            models = [model for field in fields for model in _models_in(field.annotation)]
        else:
            models = [model for model in models if _kind_of(model) == part]
        if not models:
            return None
    return sorted({name for model in models for name in model.model_fields})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    return [
        candidate
        for candidate in _inner_types(annotation)
        if isinstance(candidate, type) and issubclass(candidate, BaseModel)
    ]


def _kind_of(model: type[BaseModel]) -> object:
    field = model.model_fields.get("kind")
    return None if field is None else field.default


def close_key(name: str, keys: Iterable[str]) -> str | None:
    """The key ``name`` was most likely meant to be, for a "did you mean" hint."""
    matches = difflib.get_close_matches(name, list(keys), n=1, cutoff=0.7)
    return matches[0] if matches else None


class WithoutProviderTables(PydanticBaseSettingsSource):
    """The environment, less ``SIRO_POLLER_PROVIDERS__*``: those address [[providers]] tables
    by name, which :func:`provider_entry_overrides` resolves; pydantic-settings would read them
    as a replacement for the whole list."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource):
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        raise NotImplementedError  # __call__ below does the whole job

    def __call__(self) -> dict[str, Any]:
        values = dict(self.inner())
        values.pop("providers", None)
        return values


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
            found = _credential_file(Path(directory), (env_name(path), ".".join(path)))
            if found is not None:
                node = values
                for key in path[:-1]:
                    node = node.setdefault(key, {})
                node[path[-1]] = _read_credential(found)
        return values


def _entry_credential_names(name: str, secret: tuple[str, ...]) -> tuple[str, str]:
    variable = provider_entry_env_prefix(name) + "__".join(secret).upper()
    return variable, f"providers.{name}.{'.'.join(secret)}"


def _credential_file(directory: Path, names: Iterable[str]) -> Path | None:
    """The first of ``names`` that is a file in ``directory``: the one a secret is read from."""
    for name in names:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _read_credential(path: Path) -> str:
    # Editors and `echo` leave a trailing newline that is never part of a secret.
    return path.read_text(encoding="utf-8").rstrip("\r\n")


def credential_files(settings: Settings, directory: Path) -> list[tuple[str, Path]]:
    """Each file of a credentials directory that a secret of ``settings`` is read from, with
    the dotted key it sets: ``("siro.api_token", <directory>/siro.api_token)``."""
    found = [
        (".".join(path), file)
        for path in secret_paths(Settings)
        if (file := _credential_file(directory, (env_name(path), ".".join(path)))) is not None
    ]
    for entry in settings.providers:
        for secret in sorted(provider_secret_paths()):
            file = _credential_file(directory, _entry_credential_names(entry.name, secret))
            if file is not None:
                found.append((f"providers.{entry.name}.{'.'.join(secret)}", file))
    return found


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


def _readable_loc(loc: tuple[Any, ...], data: Mapping[str, Any]) -> tuple[str, ...]:
    """An error location as the config names it: no union tags, [[providers]] by name."""
    parts = [str(part) for part in loc]
    if parts[:1] == ["provider"] and len(parts) > 1 and parts[1] in KINDS:
        del parts[1]
    if parts[:1] == ["providers"] and len(parts) > 1 and isinstance(loc[1], int):
        entries = data.get("providers")
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else {}
        name = entry.get("name") if isinstance(entry, Mapping) else None
        parts[1] = name if isinstance(name, str) else f"[{loc[1]}]"
        if len(parts) > 2 and parts[2] in KINDS:
            del parts[2]
    return tuple(parts)


_NAMES_ITS_KEY = re.compile(r"(providers?|webhooks)\.[\w.-]+: ")


def _describe(error: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    loc = _readable_loc(tuple(error["loc"]), data)
    key = ".".join(loc) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    if not loc and _NAMES_ITS_KEY.match(message):
        return message  # a check across tables, which names the key it is about
    if error["type"] == "extra_forbidden":
        return f"{key}: {_unknown_key(tuple(error['loc']), loc)}"
    if error["type"] == "missing":
        return f"{key}: required"
    if error["type"] == "union_tag_invalid":
        # A [provider] table whose kind is no adapter's: name the key and the kinds there are.
        tag = str(error.get("ctx", {}).get("tag", ""))[:40]
        return f"{key}.kind: unknown kind {tag!r}; the kinds are {', '.join(sorted(KINDS))}"
    given = error.get("input")
    if isinstance(given, str):
        # Masked as in logs: URL passwords, signed or token-bearing query strings.
        given = redact_url(given)
        # A user part the masking could not tell (no scheme, or a token as the user name).
        url_key = bool(loc) and loc[-1].endswith("url")
        if url_key and "@" in given.split("?")[0] and "[REDACTED]@" not in given:
            given = None
    if isinstance(given, str | int | float | bool) and not _is_secret_key(loc):
        return f"{key}: {message} (got {given!r})"
    return f"{key}: {message}"


def _unknown_key(raw_loc: tuple[str | int, ...], key: tuple[str, ...]) -> str:
    """Why a key was refused, naming the variable that set it and the key probably meant."""
    meant = close_key(key[-1], known_keys(raw_loc[:-1]) or [])
    variable = env_variable_for(key)
    # The variable may set the key itself or, for a table, one key inside it.
    setting = sorted(
        name
        for name in (name.upper() for name in os.environ)
        if name == variable or name.startswith(variable + "__")
    )
    profile = _profile_fixing(raw_loc)
    if profile is not None:
        where = f", set by the environment variable {setting[0]}" if setting else ""
        return f"fixed by the {profile} profile{where}"
    owners = _kinds_taking(raw_loc)
    if owners:
        kinds = " or ".join(f'kind = "{kind}"' for kind in owners)
        where = f", set by the environment variable {setting[0]}" if setting else ""
        return f"applies only to {kinds}{where}"
    if setting:
        text = f"unknown key, set by the environment variable {setting[0]}"
        if meant:
            text += f"; did you mean {env_variable_for((*key[:-1], meant))}"
            text += f"{setting[0].removeprefix(variable)}?"
        return text
    text = "unknown key (check the spelling against config.example.toml)"
    return text + (f"; did you mean {'.'.join((*key[:-1], meant))!r}?" if meant else "")


def _profile_fixing(raw_loc: tuple[str | int, ...]) -> str | None:
    """The profile (its kind) whose table is at ``raw_loc`` and which fixes the key there:
    ``("provider", "salesloft", "listing")`` gives ``"salesloft"``."""
    parts = [part for part in raw_loc if not isinstance(part, int)]
    if len(parts) != 3 or parts[0] not in ("provider", "providers") or parts[1] not in KINDS:
        return None
    fixed_keys = getattr(adapter_class(parts[1]).settings_model, "fixed_keys", None)
    return parts[1] if fixed_keys is not None and parts[2] in fixed_keys() else None


def _kinds_taking(raw_loc: tuple[str | int, ...]) -> list[str]:
    """The provider kinds whose table takes the key at ``raw_loc`` when the table's own kind
    does not: ``("provider", "zoom", "listing")`` gives ``["generic"]``."""
    parts = [part for part in raw_loc if not isinstance(part, int)]
    if len(parts) < 3 or parts[0] not in ("provider", "providers") or parts[1] not in KINDS:
        return []
    own, rest = parts[1], parts[2:]
    return [
        kind
        for kind in KINDS
        if kind != own and rest[-1] in (known_keys(("provider", kind, *rest[:-1])) or [])
    ]


def _is_secret_key(loc: tuple[str, ...]) -> bool:
    if loc[:1] == ("providers",) and len(loc) > 2:
        return loc[-1] in provider_secret_names()
    return loc in set(secret_paths(Settings))


def load_settings(config_path: str | os.PathLike[str] | None = None) -> Settings:
    """Load the effective settings, or raise :class:`ConfigError` listing every problem."""
    path = config_path_from(config_path)
    data = read_toml(path) if path is not None else {}
    entries = data.get("providers")
    if isinstance(entries, list):
        data["providers"] = [
            _deep_merge(entry, provider_entry_overrides(entry))
            if isinstance(entry, dict)
            else entry
            for entry in entries
        ]
    try:
        return Settings(**data)
    except ValidationError as exc:
        problems = [_describe(error, data) for error in exc.errors(include_url=False)]
        raise ConfigError(problems) from None


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
    for provider in settings.configured_providers:
        problems.extend(provider_problems(provider))
    return problems


def provider_problems(provider: ProviderSettingsBase) -> list[str]:
    """What one provider's kind needs and lacks, each line saying where to set it."""
    problems = []
    for line in missing_settings(provider):
        key = line.split(":", 1)[0]
        leaf = key.rsplit(".", 1)[-1]
        entry_prefix = f"providers.{provider.name}."
        if key.startswith(entry_prefix):
            # A nested key (webhook.secret) too: SIRO_POLLER_PROVIDERS__<NAME>__WEBHOOK__SECRET.
            nested = key.removeprefix(entry_prefix).split(".")
            variable = provider_entry_env_prefix(provider.name) + "__".join(nested).upper()
        else:
            variable = env_name(tuple(key.split(".")))
        source = f"set {variable}"
        if leaf in provider_secret_names():
            source += f" or the credential file {key}"
        problems.append(f"{line}; {source}")
    return problems


def masked_dump(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data with every secret replaced by a mask."""
    from sqlalchemy.engine import make_url

    data = _masked(settings)
    if settings.providers:
        del data["provider"]  # the default table, unused beside [[providers]]
    data["database"]["url"] = make_url(settings.database_url).render_as_string(hide_password=True)
    data["worker"]["spool_dir"] = str(settings.spool_dir)
    return cast(dict[str, Any], _urls_masked(_drop_none(data)))


def _urls_masked(value: Any) -> Any:
    # Every URL-valued setting, today's and tomorrow's: no password, no signed query string.
    if isinstance(value, dict):
        return {k: _urls_masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_urls_masked(item) for item in value]
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def _masked(model: BaseModel) -> dict[str, Any]:
    """``model_dump(mode="json")`` with every secret, at any depth, replaced by :data:`MASK`."""
    data = model.model_dump(mode="json")
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            data[name] = MASK
        elif isinstance(value, BaseModel):
            data[name] = _masked(value)
        elif isinstance(value, list):
            data[name] = [
                _masked(item) if isinstance(item, BaseModel) else dumped
                for item, dumped in zip(value, data[name], strict=True)
            ]
    return data


def _drop_none(value: Any) -> Any:
    # TOML has no null: an unset optional key is shown by its absence.
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(item) for item in value]
    return value
