"""Time in one place: every instant in the code and the database is timezone-aware UTC.

Providers write times three ways: as Unix seconds or milliseconds, as ISO 8601, or in a
strftime pattern of their own (``%Y-%m-%d %H:%M:%S``), often without a zone, meaning the
account's zone. Such a local time is a wall-clock reading: in the hour a clock is turned back
it names two instants, and the provider may read it as either. The bounds of a window written
that way are therefore chosen so that every reading of the start is at or before the window's
start and every reading of the end at or after its end (:func:`pattern_bounds`): a call is read
twice rather than missed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo


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


NAMED_TIME_FORMATS = ("iso8601", "unix_s", "unix_ms")


def format_time(value: datetime, time_format: str, zone: tzinfo = UTC) -> str:
    """An instant as an API parameter: ``unix_s``, ``unix_ms``, ISO 8601 UTC (``...Z``, never
    ``+00:00``, which some APIs refuse) or a strftime pattern, written in ``zone``."""
    if is_pattern(time_format):
        return value.astimezone(zone).strftime(time_format)
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


# -- strftime patterns ---------------------------------------------------------------------

_DIRECTIVE = re.compile(r"%(.)")
_DAY = timedelta(days=1)
# The finest directive a pattern holds decides its resolution; any other leaves it a day.
_RESOLUTIONS = (
    ("f", timedelta(microseconds=1)),
    ("STXcs", timedelta(seconds=1)),
    ("MR", timedelta(minutes=1)),
    ("HIk", timedelta(hours=1)),
)
_ZONE_DIRECTIVES = frozenset("zZ")
# How far a wall clock may jump at once (a turned-back clock, a zone's change of offset).
_STEP = timedelta(hours=1)
_MAX_STEPS = 48
_SAMPLE = datetime(2026, 11, 27, 13, 45, 37, 123456, tzinfo=UTC)


def is_pattern(time_format: str) -> bool:
    """Whether ``time_format`` is a strftime pattern rather than a named format."""
    return "%" in time_format


def _directives(pattern: str) -> set[str]:
    return {match.group(1) for match in _DIRECTIVE.finditer(pattern)} - {"%"}


def pattern_resolution(pattern: str) -> timedelta:
    """The finest unit ``pattern`` writes: a second for ``%S``, a day for ``%Y-%m-%d``."""
    held = _directives(pattern)
    for letters, unit in _RESOLUTIONS:
        if held & set(letters):
            return unit
    return _DAY


def check_pattern(pattern: str) -> str:
    """``pattern`` if it writes an instant that reads back the same, to its resolution.

    Raises :class:`ValueError` saying what is missing: ``%H:%M`` names no day, ``%d/%m``
    no year.
    """
    unit = pattern_resolution(pattern)
    local = _SAMPLE.replace(tzinfo=None)
    expected = _floor_wall(local, unit)
    try:
        written = _SAMPLE.strftime(pattern)
        read = datetime.strptime(written, pattern)  # noqa: DTZ007  (compared as a wall time)
    except ValueError as exc:
        raise ValueError(f"the pattern does not read back what it writes: {exc}") from None
    if read.replace(tzinfo=None) != expected:
        raise ValueError(
            f"the pattern does not name an instant: it writes {local:%Y-%m-%d %H:%M:%S} as "
            f"{written!r}, which reads back as {read:%Y-%m-%d %H:%M:%S}; it needs the year, "
            "month and day (%Y-%m-%d) and the time to the unit the API takes"
        )
    return pattern


def parse_pattern(text: str, pattern: str, zone: tzinfo) -> datetime:
    """``text`` read with ``pattern``, as aware UTC; without an offset it is a time in ``zone``
    (in a turned-back hour, the first of the two instants it names)."""
    parsed = datetime.strptime(text, pattern)  # noqa: DTZ007  (the zone is attached below)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)


def pattern_bounds(start: datetime, end: datetime, pattern: str, zone: tzinfo) -> tuple[str, str]:
    """``[start, end)`` written in ``pattern`` as wall-clock times in ``zone``, widened as
    :func:`poller.domain.windows.request_bounds` widens: rounded out to the pattern's unit and
    one unit more. Each bound is then moved out, an hour at a time, until every instant it may
    be read as lies outside the window (see the module's docstring)."""
    unit = pattern_resolution(pattern)
    with_offset = bool(_directives(pattern) & _ZONE_DIRECTIVES)
    low = _floor_wall(start.astimezone(zone).replace(tzinfo=None), unit) - unit
    for _ in range(_MAX_STEPS):
        readings = _readings(low, zone)
        if (min(readings) if with_offset else max(readings)) <= start:
            break
        low = _floor_wall(low - _STEP, unit)
    high = _ceil_wall(end.astimezone(zone).replace(tzinfo=None), unit) + unit
    for _ in range(_MAX_STEPS):
        readings = _readings(high, zone)
        if (max(readings) if with_offset else min(readings)) >= end:
            break
        high = _ceil_wall(high + _STEP, unit)
    return (
        _write(low, zone, pattern, earliest=True),
        _write(high, zone, pattern, earliest=False),
    )


def _readings(wall: datetime, zone: tzinfo) -> list[datetime]:
    """The instants a wall-clock time in ``zone`` may mean (two in a turned-back hour)."""
    return [wall.replace(tzinfo=zone, fold=fold).astimezone(UTC) for fold in (0, 1)]


def _write(wall: datetime, zone: tzinfo, pattern: str, *, earliest: bool) -> str:
    readings = [wall.replace(tzinfo=zone, fold=fold) for fold in (0, 1)]
    chosen = (
        min(readings, key=lambda at: at.astimezone(UTC))
        if earliest
        else max(readings, key=lambda at: at.astimezone(UTC))
    )
    return chosen.strftime(pattern)


def _floor_wall(wall: datetime, unit: timedelta) -> datetime:
    midnight = wall.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight + ((wall - midnight) // unit) * unit


def _ceil_wall(wall: datetime, unit: timedelta) -> datetime:
    floored = _floor_wall(wall, unit)
    return floored if floored == wall else floored + unit
