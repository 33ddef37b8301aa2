"""The generic adapter's window: how its bounds are written and where they go in the request.

Time formats
------------
A window bound or a record's time is written one of four named ways (``iso8601``, ``unix_s``,
``unix_ms``, and for record fields ``rfc2822``) or in a strftime pattern such as
``%Y-%m-%d %H:%M:%S``. A pattern is checked when the config loads: it must read back the
instant it writes, down to its finest unit (:func:`poller.domain.clock.check_pattern`), so
``%H:%M`` (no day) is refused before any request. ``listing.time_zone`` says which zone a time
without an offset is in, on the way out (patterns without ``%z``) and on the way in (record
values without an offset, ISO 8601 ones included). ISO 8601 bounds are always written in UTC
with a ``Z`` suffix, never ``+00:00``, which some APIs (Freshcaller) refuse.

Templated parameters
--------------------
A value or name in ``listing.params`` may hold ``{start}`` and ``{end}``, replaced by the
window's bounds in ``listing.time_format`` (``{{`` and ``}}`` are literal braces). That places
a bound inside a filter expression: Outreach's ``filter[updatedAt] = "{start}..inf"``, 8x8's
``filter = "type==callrecording;createdTime=ge={start}"``. Any other placeholder is a config
error. The filled value goes to the HTTP layer as it is and is percent-encoded there like any
query value (``=`` as ``%3D``, ``;`` as ``%3B``), which the server decodes back: a template
must not encode anything itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator

from poller.adapters.providers.base import RecordReader
from poller.domain.clock import (
    NAMED_TIME_FORMATS,
    check_pattern,
    format_time,
    is_pattern,
    pattern_bounds,
)
from poller.domain.paths import MISSING, dig, present
from poller.domain.raw_record import check_call_time, parse_time
from poller.domain.windows import Window, request_bounds

_SECOND = timedelta(seconds=1)
_MILLISECOND = timedelta(milliseconds=1)
PLACEHOLDERS = ("start", "end")
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_FIELD_FORMATS = (*NAMED_TIME_FORMATS, "rfc2822")


def _time_format(value: str, named: tuple[str, ...]) -> str:
    if is_pattern(value):
        return check_pattern(value)
    if value not in named:
        choices = ", ".join(f'"{name}"' for name in named)
        raise ValueError(
            f'not a time format: use {choices} or a strftime pattern such as "%Y-%m-%d %H:%M:%S"'
        )
    return value


def _window_format(value: str) -> str:
    return _time_format(value, NAMED_TIME_FORMATS)


def _field_format(value: str) -> str:
    return _time_format(value, _FIELD_FORMATS)


def _zone_name(value: str) -> str:
    zone_for(value)
    return value


WindowTimeFormat = Annotated[str, AfterValidator(_window_format)]
FieldTimeFormat = Annotated[str, AfterValidator(_field_format)]
TimeZoneName = Annotated[str, AfterValidator(_zone_name)]


def zone_for(name: str) -> tzinfo:
    """The IANA zone ``name`` (``UTC`` needs no zone database)."""
    if name == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            'not a time zone: use an IANA name such as "America/New_York", "Europe/London" or "UTC"'
        ) from None


# -- templated parameters ------------------------------------------------------------------


def placeholders(template: str) -> set[str]:
    """The placeholders of ``template``; :class:`ValueError` for an unknown one or a lone
    brace."""
    found: set[str] = set()
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise ValueError(
                f"{template!r} has a lone {token!r}: write {token * 2!r} for a literal brace"
            )
        if name not in PLACEHOLDERS:
            raise ValueError(
                f"{template!r} has the placeholder {{{name}}}; the placeholders are {{start}} "
                "and {end} (the window's bounds), and {{ and }} stand for literal braces"
            )
        found.add(name)
    return found


def fill(template: str, values: Mapping[str, str]) -> str:
    """``template`` with its placeholders replaced (checked by :func:`placeholders` first)."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return values[match.group(1)]

    return _TOKEN.sub(replace, template)


def templated(params: Mapping[str, str]) -> set[str]:
    """Every placeholder the names and values of ``params`` hold."""
    found: set[str] = set()
    for name, value in params.items():
        found |= placeholders(name) | placeholders(value)
    return found


# -- the window's bounds -------------------------------------------------------------------


def bound_texts(window: Window, time_format: str, zone: tzinfo) -> tuple[str, str]:
    """The window's start and end as the API takes them, widened by the boundary rule of
    :mod:`poller.domain.windows` (patterns: in ``zone``, safe across clock changes)."""
    if is_pattern(time_format):
        return pattern_bounds(window.start, window.end, time_format, zone)
    resolution = _MILLISECOND if time_format == "unix_ms" else _SECOND
    start, end = request_bounds(window, resolution)
    return format_time(start, time_format), format_time(end, time_format)


def window_params(
    params: Mapping[str, str],
    *,
    start_param: str | None,
    end_param: str | None,
    bounds: tuple[str, str],
) -> dict[str, str]:
    """The fixed parameters with their templates filled, plus the window's own parameters."""
    values = dict(zip(PLACEHOLDERS, bounds, strict=True))
    filled = {fill(name, values): fill(value, values) for name, value in params.items()}
    if start_param is not None:
        filled[start_param] = bounds[0]
    if end_param is not None:
        filled[end_param] = bounds[1]
    return filled


def record_time(
    read: RecordReader, name: str, path: str | None, time_format: str, zone: tzinfo
) -> datetime | None:
    """The record's time ``name`` at ``path`` in UTC, ``None`` if absent; a value without an
    offset is a time in ``zone``. A value that does not parse is the record's error, naming
    the field, its path and the format."""
    value = MISSING if path is None else dig(read.raw, path)
    if not present(value):
        return None
    try:
        return check_call_time(parse_time(value, time_format, zone), read.now)
    except ValueError as exc:
        raise read.malformed(f"{name} {exc} (at path {path})") from None
