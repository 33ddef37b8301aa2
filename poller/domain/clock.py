"""Time in one place: every instant in the code and the database is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Normalise to UTC; a naive value is taken to be UTC already (that is how SQLite stores it)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_MILLISECOND = timedelta(milliseconds=1)


def format_time(value: datetime, time_format: str) -> str:
    """An instant as an API parameter: ``unix_s``, ``unix_ms`` or ISO 8601 UTC (``...Z``)."""
    if time_format == "unix_s":
        return str((value - _EPOCH) // _SECOND)
    if time_format == "unix_ms":
        return str((value - _EPOCH) // _MILLISECOND)
    return value.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def human_age(age: timedelta) -> str:
    """A duration as people read it in a status line: 45s, 12m, 3.5h, 2.0d."""
    seconds = age.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
