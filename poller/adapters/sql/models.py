"""The state database schema. Auditors write SQL against these names: change them only by adding.

Every change here needs a migration in ``migrations/versions``; a test compares the two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from poller.adapters.sql.types import BigIntId, JsonDocument, UTCDateTime

# Deterministic constraint names, so migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

STATES_SQL = "'pending', 'downloaded', 'uploaded', 'failed', 'skipped'"
WORKABLE_SQL = "state IN ('pending', 'downloaded')"
# The claim's two index-following lookups (see SqlStore.claim_due). The store's queries repeat
# these predicates word for word: SQLite only uses a partial index whose WHERE it finds in the
# query's own terms.
UNLEASED_SQL = "lease_owner IS NULL"
LEASED_SQL = "lease_owner IS NOT NULL"
WAITING_SQL = "state = 'pending' AND next_attempt_at IS NULL"
# Retention (poller.domain.retention): finished rows whose personal data is still there (said
# as NOT IN, so that SQLite does not prefer ix_calls_state_updated_at and walk the pruned), events
# that do not prove an upload, and unmapped records still mapped again.
PRUNABLE_CALLS_SQL = "pruned_at IS NULL AND state NOT IN ('pending', 'downloaded')"
PRUNABLE_EVENTS_SQL = (
    "step NOT IN ('replay', 'forget', 'source_delete') AND NOT (step = 'upload' AND "
    "outcome IN ('adopted', 'create_refused', 'create_sent', 'ok'))"
)
LIVE_UNMAPPED_SQL = "resolved_at IS NULL AND expired_at IS NULL"
DONE_UNMAPPED_SQL = "(resolved_at IS NOT NULL OR expired_at IS NOT NULL)"
EXPIRED_UNMAPPED_SQL = "expired_at IS NOT NULL"
# poller.ports.webhooks.SubscriptionState's values.
SUBSCRIPTION_STATES_SQL = "'active', 'expiring', 'blacklisted', 'deactivated', 'missing', 'manual'"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CallRow(Base):
    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(64))
    provider_call_id: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16), server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(64))
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    recording_id: Mapped[str | None] = mapped_column(String(255))
    recording_state: Mapped[str | None] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[int | None] = mapped_column(Integer)
    direction: Mapped[str | None] = mapped_column(String(16))
    rep_email: Mapped[str | None] = mapped_column(String(320))
    rep_phone: Mapped[str | None] = mapped_column(String(64))
    rep_provider_id: Mapped[str | None] = mapped_column(String(255))
    rep_name: Mapped[str | None] = mapped_column(String(255))
    rep_extension: Mapped[str | None] = mapped_column(String(64))
    siro_user_id: Mapped[str | None] = mapped_column(String(128))
    # How siro_user_id was found (poller.domain.attribution.AttributionMethod), for audits.
    attribution: Mapped[str | None] = mapped_column(String(32))
    contact_name: Mapped[str | None] = mapped_column(String(255))
    contact_phone: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(String(500))

    recording_url: Mapped[str | None] = mapped_column(Text)
    audio_format: Mapped[str | None] = mapped_column(String(8))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    spool_path: Mapped[str | None] = mapped_column(Text)
    # What the downloaded audio is, by its content (before any conversion for Siro).
    source_format: Mapped[str | None] = mapped_column(String(32))
    source_codec: Mapped[str | None] = mapped_column(String(32))
    audio_duration_seconds: Mapped[float | None] = mapped_column(Float)
    audio_channels: Mapped[int | None] = mapped_column(Integer)
    audio_sample_rate: Mapped[int | None] = mapped_column(Integer)

    siro_file_url: Mapped[str | None] = mapped_column(Text)
    siro_recording_id: Mapped[str | None] = mapped_column(String(128))
    uploaded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set just before the create call goes out and cleared when Siro refuses it: while set and
    # no recording id is known, Siro may hold a recording the worker never heard about.
    siro_create_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    raw: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The tombstone of `calls forget` (poller.domain.erasure): the personal data is gone, the
    # row stays so the call is never ingested or uploaded again.
    forgotten_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When retention removed the row's personal data (poller.domain.retention.PERSONAL_COLUMNS).
    pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("provider", "provider_call_id"),
        CheckConstraint(f"state IN ({STATES_SQL})", name="state"),
        CheckConstraint(
            "recording_state IS NULL OR recording_state IN ('ready', 'pending', 'none')",
            name="recording_state",
        ),
        CheckConstraint(
            "direction IS NULL OR direction IN ('inbound', 'outbound')", name="direction"
        ),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint("(lease_owner IS NULL) = (lease_expires_at IS NULL)", name="lease_pair"),
        # A row only counts as uploaded when Siro's recording id is known.
        CheckConstraint(
            "state <> 'uploaded' OR (siro_recording_id IS NOT NULL AND uploaded_at IS NOT NULL)",
            name="uploaded_has_recording",
        ),
        # "The next due rows", in claim order: a partial index that holds only the unleased
        # workable rows, so a claim reads its first entries whatever the size of the history.
        Index(
            "ix_calls_due",
            "next_attempt_at",
            "id",
            postgresql_where=text(f"{WORKABLE_SQL} AND {UNLEASED_SQL}"),
            sqlite_where=text(f"{WORKABLE_SQL} AND {UNLEASED_SQL}"),
        ),
        # "Leases that ran out": only rows held by a worker, oldest expiry first.
        Index(
            "ix_calls_leased",
            "lease_expires_at",
            postgresql_where=text(LEASED_SQL),
            sqlite_where=text(LEASED_SQL),
        ),
        # "Rows in a state", newest first, and `calls list --state`.
        Index("ix_calls_state_updated_at", "state", "updated_at"),
        Index("ix_calls_started_at", "started_at"),
        # Calls waiting for their recording, for the re-check and the no_recording expiry.
        Index(
            "ix_calls_waiting",
            "provider",
            "started_at",
            postgresql_where=text(WAITING_SQL),
            sqlite_where=text(WAITING_SQL),
        ),
        # Finished rows retention has still to prune, oldest finish first.
        Index(
            "ix_calls_prunable",
            "updated_at",
            postgresql_where=text(PRUNABLE_CALLS_SQL),
            sqlite_where=text(PRUNABLE_CALLS_SQL),
        ),
    )


class CallEventRow(Base):
    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    call_id: Mapped[int] = mapped_column(BigIntId, ForeignKey("calls.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    step: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    http_status: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_call_events_call_id_id", "call_id", "id"),
        Index("ix_call_events_at", "at"),
        # The events retention may delete, oldest first, without walking the kept ones.
        Index(
            "ix_call_events_prunable",
            "at",
            postgresql_where=text(PRUNABLE_EVENTS_SQL),
            sqlite_where=text(PRUNABLE_EVENTS_SQL),
        ),
    )


class PollCursorRow(Base):
    __tablename__ = "poll_cursors"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor_value: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When calls still waiting for their recording were last listed again (see poll.py).
    waiting_rechecked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SiroUserRow(Base):
    """Siro's users as last listed; calls.siro_user_id joins to id. Users are never deleted."""

    __tablename__ = "siro_users"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320))
    # The lookup keys: lower-case email, phone number in E.164 (extension dropped).
    email_lower: Mapped[str | None] = mapped_column(String(320), index=True)
    phone_number: Mapped[str | None] = mapped_column(String(64))
    phone_e164: Mapped[str | None] = mapped_column(String(32), index=True)
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    external_id: Mapped[str | None] = mapped_column(String(255))
    organization_id: Mapped[str | None] = mapped_column(String(128))
    disabled: Mapped[bool] = mapped_column(Boolean)
    synced_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when Siro last listed the user
    missing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first sync without


class UnmappedRecordRow(Base):
    """A listed record the mapping could not read, kept so nothing is lost (see poll.py).

    One row per provider and raw record (``raw_sha256``): a record listed again each cycle
    bumps ``times_seen``. The poll cycle maps the unresolved rows again with the current
    mapping, each with back-off (``remap_attempts``, ``next_remap_at``); one that maps becomes
    a call, and ``resolved_at``/``resolved_call_id`` say when and which. Retention expires the
    rows that never map (``expired_at``, ``expired_reason``; ``raw`` emptied), see
    poller.domain.retention.
    """

    __tablename__ = "unmapped_records"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(64))
    raw_sha256: Mapped[str] = mapped_column(String(64))
    provider_call_id: Mapped[str | None] = mapped_column(String(255))
    # Where it was last listed: the window asked for, the page (from 1), the item (from 0).
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[datetime] = mapped_column(UTCDateTime)
    page: Mapped[int] = mapped_column(Integer)
    item_index: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    # The record as JSON text: secrets masked, NUL dropped, depth and size capped.
    raw: Mapped[str] = mapped_column(Text)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    times_seen: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_call_id: Mapped[int | None] = mapped_column(
        BigIntId, ForeignKey("calls.id", ondelete="SET NULL")
    )
    # Set by `calls forget` when the record carried the subject: ``raw`` emptied, the row kept
    # (resolved) so the same record listed again is not kept again (poller.domain.erasure).
    forgotten_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    remap_attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_remap_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("provider", "raw_sha256"),
        CheckConstraint("times_seen >= 1", name="times_seen"),
        # `status` counts, and each cycle maps again, the unresolved rows of a provider.
        Index(
            "ix_unmapped_records_unresolved",
            "provider",
            "id",
            postgresql_where=text("resolved_at IS NULL"),
            sqlite_where=text("resolved_at IS NULL"),
        ),
        # The rows still mapped again, with what the re-mapping and the expiry decide on, so
        # neither reads the rows themselves (each holds up to 64 KB of raw text).
        Index(
            "ix_unmapped_records_live",
            "provider",
            "id",
            "next_remap_at",
            "remap_attempts",
            "first_seen_at",
            postgresql_where=text(LIVE_UNMAPPED_SQL),
            sqlite_where=text(LIVE_UNMAPPED_SQL),
        ),
        # Resolved and expired rows, by when they were last listed, for their deletion.
        Index(
            "ix_unmapped_records_done",
            "last_seen_at",
            "expired_at",
            postgresql_where=text(DONE_UNMAPPED_SQL),
            sqlite_where=text(DONE_UNMAPPED_SQL),
        ),
        # The foreign key's child side: without it, SQLite checks every UPDATE of a calls row
        # that names its id (as a page's update does) by reading this whole table, raw text
        # and all, and a poll slowed with each unmapped record kept (P17's growth attack).
        Index("ix_unmapped_records_resolved_call_id", "resolved_call_id"),
        # `status` counts the expired rows of each provider from here.
        Index(
            "ix_unmapped_records_expired",
            "provider",
            postgresql_where=text(EXPIRED_UNMAPPED_SQL),
            sqlite_where=text(EXPIRED_UNMAPPED_SQL),
        ),
    )


class CredentialPauseRow(Base):
    """A credential problem that holds work back until it is fixed (poller.domain.pauses).

    ``scope`` is ``siro`` or ``provider:<name>``; ``reason`` names the config keys to check and
    never holds a secret. The row is deleted when the pause ends.
    """

    __tablename__ = "credential_pauses"

    scope: Mapped[str] = mapped_column(String(80), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    last_probe_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WorkerHeartbeatRow(Base):
    """A worker process and when it last showed it was alive, for `status` and its exit code."""

    __tablename__ = "worker_heartbeats"

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BackfillRunRow(Base):
    """A past range listed by `siro-poller backfill`, apart from the poll cursor (see
    poller/core/backfill.py). ``listed_until`` is how far it got: a run resumes there."""

    __tablename__ = "backfill_runs"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(64))
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    until: Mapped[datetime] = mapped_column(UTCDateTime)
    listed_until: Mapped[datetime] = mapped_column(UTCDateTime)
    windows: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    listed: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    new_calls: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    known: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    unmapped: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("since < until", name="range"),
        CheckConstraint("listed_until >= since AND listed_until <= until", name="listed_until"),
        # "The unfinished run of this range", looked up by every backfill that starts.
        Index("ix_backfill_runs_provider_since_until", "provider", "since", "until"),
    )


class OAuthTokenRow(Base):
    """A provider's rotating OAuth refresh token and the access token it last gave
    (poller/adapters/http/oauth_refresh.py). Both are sealed (AES-GCM, ``v1.`` + base64) with
    a key from the provider's credentials, which the database does not hold; never in clear.
    ``seed_fingerprint`` is a SHA-256 of the configured seed the token descends from."""

    __tablename__ = "oauth_refresh_tokens"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    seed_fingerprint: Mapped[str] = mapped_column(String(64))
    refresh_token: Mapped[str] = mapped_column(Text)
    access_token: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SourceDeletionRow(Base):
    """Deletion of a call's recording at the phone system (poller.domain.source_deletion).

    A row exists once a deletion run has handled the call: ``pending`` while it is being
    deleted or retried (leased like a claimed call), then ``deleted`` (the vendor deleted it or
    answered 404), ``refused`` (a safety rule said never) or ``failed`` (the attempts ran out).
    The call's events hold each attempt and the vendor's answer.
    """

    __tablename__ = "source_deletions"

    call_id: Mapped[int] = mapped_column(
        BigIntId, ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    provider: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("state IN ('pending', 'deleted', 'refused', 'failed')", name="state"),
        CheckConstraint("(lease_owner IS NULL) = (lease_expires_at IS NULL)", name="lease_pair"),
        CheckConstraint("attempts >= 0", name="attempts"),
        # Rows a run may take again (retries), soonest first.
        Index(
            "ix_source_deletions_due",
            "next_attempt_at",
            "call_id",
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
    )


class SourceDeletionPauseRow(Base):
    """`siro-poller source pause`: while a row exists, no process deletes at the source."""

    __tablename__ = "source_deletion_pauses"

    scope: Mapped[str] = mapped_column(String(16), primary_key=True)  # "all"
    since: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)


class WebhookSubscriptionRow(Base):
    """Each provider's webhook subscription as last checked (`webhooks subscribe`, `webhooks
    status`, the daemon's hourly check) and when its last verified event arrived.

    ``state`` is NULL while only events have been seen. ``url`` is the public webhook address
    with its query values masked; no secret and no signed URL is ever kept here.
    """

    __tablename__ = "webhook_subscriptions"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(16))
    vendor_id: Mapped[str | None] = mapped_column(String(255))
    url: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(Text, server_default=text("''"))
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint(f"state IS NULL OR state IN ({SUBSCRIPTION_STATES_SQL})", name="state"),
    )


# Core views of the tables, for the store's SQL.
calls_table = cast(Table, CallRow.__table__)
call_events_table = cast(Table, CallEventRow.__table__)
poll_cursors_table = cast(Table, PollCursorRow.__table__)
siro_users_table = cast(Table, SiroUserRow.__table__)
unmapped_records_table = cast(Table, UnmappedRecordRow.__table__)
credential_pauses_table = cast(Table, CredentialPauseRow.__table__)
worker_heartbeats_table = cast(Table, WorkerHeartbeatRow.__table__)
backfill_runs_table = cast(Table, BackfillRunRow.__table__)
oauth_refresh_tokens_table = cast(Table, OAuthTokenRow.__table__)
source_deletions_table = cast(Table, SourceDeletionRow.__table__)
source_deletion_pauses_table = cast(Table, SourceDeletionPauseRow.__table__)
webhook_subscriptions_table = cast(Table, WebhookSubscriptionRow.__table__)
