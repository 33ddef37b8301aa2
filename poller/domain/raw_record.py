"""A provider's raw record made safe: bounded to store, parsed without surprises.

A call log is input we do not control. One record nested 900 levels deep, a time in the year
9999, a duration of ``Infinity`` or a NUL character must cost that record at most, never the
page or the poll. Every adapter therefore stores raw records through :func:`sanitise_raw` (or
:func:`raw_text`) and reads times and numbers through the parsers here, which raise only
:class:`ValueError`, with a reason fit for an operator.

What :func:`sanitise_raw` does to a record:

- nesting deeper than :data:`MAX_DEPTH` levels is replaced by a marker;
- a record that serialises to more than :data:`MAX_BYTES` loses its largest top-level values
  (each replaced by a marker naming its size), and says so under :data:`TRUNCATED_KEY`;
- NUL characters (which PostgreSQL refuses in text and JSONB) are dropped from keys and values,
  and unpaired surrogates (which are not UTF-8) replaced; :func:`raw_text` keeps NUL, as the
  ``\u0000`` escape of its JSON text, so a record kept unmapped is never another one once
  mapped again (``a\0b`` is not ``ab``);
- values under secret-named keys (token, password, signature, ...) are masked, and every URL,
  whole or inside a text, keeps no query value at all (see
  :func:`~poller.domain.redaction.mask_url_query`): the record is kept for audit; downloads
  go by the call's recording locator, and a record mapped again from this copy finds its URL
  masked, so its adapter asks the provider for a fresh one;
- ``NaN`` and infinities (which JSON columns refuse) become strings.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Final

from poller.domain.clock import as_utc, is_pattern, parse_pattern
from poller.domain.redaction import MASK, mask_urls_in_text

MAX_DEPTH: Final = 32
MAX_BYTES: Final = 64 * 1024
TRUNCATED_KEY: Final = "_siro_poller_truncated"
TOO_DEEP: Final = f"[nested deeper than {MAX_DEPTH} levels: dropped]"

# Call times outside these bounds are a provider bug or a wrong mapping, not a call.
EARLIEST_CALL_TIME: Final = datetime(1970, 1, 1, tzinfo=UTC)
MAX_FUTURE: Final = timedelta(days=1)
# No phone call lasts a week; a bigger number is a wrong unit or garbage.
MAX_DURATION_SECONDS: Final = 7 * 24 * 3600

SECRET_KEY_PARTS: Final = (
    "token",
    "secret",
    "password",
    "signature",
    "api_key",
    "apikey",
    "authoriz",
)
_PREVIEW_CHARS = 4096


def clean_text(text: str, *, keep_nul: bool = False) -> str:
    """``text`` without NUL characters (unless ``keep_nul``: for JSON text, which escapes them)
    and with unpaired surrogates replaced, so any database column takes it."""
    if not keep_nul:
        text = text.replace("\x00", "")
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def shown(value: Any, limit: int = 60) -> str:
    """A short, safe rendering of a provider value for a reason message."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return clean_text(repr(value))[:limit]


def sanitise_raw(value: Any) -> Any:
    """``value`` (a provider record) fit to store: bounded, clean, without secrets."""
    return _fit(_sanitise(value, secret=False, depth=0))


def dumps(value: Any) -> str:
    """The one serialisation of a sanitised record: stable, compact, UTF-8."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def raw_text(value: Any) -> str:
    """A provider record as the JSON text stored for it (sanitised and capped, NUL kept as its
    escape). Never raises."""
    try:
        return dumps(_fit(_sanitise(value, secret=False, depth=0, keep_nul=True)))
    except Exception as exc:  # a record must never stop its page, not even here
        return dumps({TRUNCATED_KEY: f"unreadable record: {type(exc).__name__}"})


def load_raw(text: str) -> Any:
    """A stored raw text as the record it was (bounded by :func:`sanitise_raw` on the way in)."""
    return json.loads(text)


def fingerprint(text: str) -> str:
    """The key of a stored raw record: the same record seen again is the same row."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# A JSON member whose key names a secret, in text that did not decode: "api_key": "abc".
_SECRET_MEMBER = re.compile(
    r'("[^"\\]*(?:' + "|".join(SECRET_KEY_PARTS) + r')[^"\\]*"\s*:\s*)"(?:[^"\\]|\\.)*"',
    re.IGNORECASE,
)


def mask_record_text(text: str) -> str:
    """The text of a record that could not be decoded, fit to keep as a preview: NUL and bad
    surrogates cleaned, secret-named members masked, every URL's query values masked."""
    text = clean_text(text)
    text = _SECRET_MEMBER.sub(lambda m: f'{m.group(1)}"{MASK}"', text)
    return mask_urls_in_text(text)


def _is_secret(key: str) -> bool:
    lowered = key.lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def _sanitise(value: Any, *, secret: bool, depth: int, keep_nul: bool = False) -> Any:
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        result: dict[str, Any] = {}
        for key, item in value.items():
            name = clean_text(str(key), keep_nul=keep_nul)
            result[name] = _sanitise(
                item, secret=secret or _is_secret(name), depth=depth + 1, keep_nul=keep_nul
            )
        return result
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        below = depth + 1
        return [_sanitise(item, secret=secret, depth=below, keep_nul=keep_nul) for item in value]
    if isinstance(value, str):
        text = clean_text(value, keep_nul=keep_nul)
        if text and secret:
            return MASK
        # A relative URL ("/media/x.mp3?X-Goog-Signature=...") signs with its query too.
        return mask_urls_in_text(text) if "://" in text or "?" in text or "#" in text else text
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    return clean_text(str(value))


def _fit(value: Any) -> Any:
    """``value`` cut down to :data:`MAX_BYTES` serialised, keeping as much as possible."""
    text = dumps(value)
    size = len(text.encode("utf-8"))
    if size <= MAX_BYTES:
        return value
    note = f"the raw record had {size} bytes; values were dropped to fit {MAX_BYTES}"
    if isinstance(value, dict):
        # Keep the small top-level values (the ids and times a mapping reads), drop the bulk.
        sizes = {key: len(dumps(item).encode("utf-8")) for key, item in value.items()}
        kept = dict(value)
        kept[TRUNCATED_KEY] = note
        total = len(dumps(kept).encode("utf-8"))
        for key in sorted(sizes, key=lambda name: sizes[name], reverse=True):
            if total <= MAX_BYTES:
                break
            marker = f"[dropped: {sizes[key]} bytes]"
            kept[key] = marker
            total -= sizes[key] - len(dumps(marker).encode("utf-8"))
        if len(dumps(kept).encode("utf-8")) <= MAX_BYTES:
            return kept
    return {TRUNCATED_KEY: note, "preview": text[:_PREVIEW_CHARS]}


# -- times and numbers ---------------------------------------------------------------------


def parse_time(value: Any, time_format: str, zone: tzinfo = UTC) -> datetime:
    """A provider timestamp as aware UTC; a time without an offset is one in ``zone``.

    ``time_format`` is ``iso8601``, ``rfc2822``, ``unix_s``, ``unix_ms`` or a strftime
    pattern (``%Y-%m-%d %H:%M:%S``). Raises only :class:`ValueError`, with the value in its
    message: an instant Python cannot hold (year 9999 west of UTC, ``1e300`` seconds) is out
    of range, not an :class:`OverflowError`.
    """
    try:
        return _parse_time(value, time_format, zone)
    except (OverflowError, OSError):
        raise ValueError(f"{shown(value)} is out of range") from None


def _parse_time(value: Any, time_format: str, zone: tzinfo) -> datetime:
    if time_format in ("iso8601", "rfc2822") or is_pattern(time_format):
        if not isinstance(value, str):
            raise ValueError(f"{shown(value)} is not a string")
        try:
            if is_pattern(time_format):
                return parse_pattern(value.strip(), time_format, zone)
            if time_format == "rfc2822":
                parsed = email.utils.parsedate_to_datetime(value)
            else:
                parsed = datetime.fromisoformat(value.strip())
        except (TypeError, ValueError):
            shown_format = repr(time_format) if is_pattern(time_format) else time_format
            raise ValueError(f"{shown(value)} does not parse as {shown_format}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=zone)
        return as_utc(parsed)
    number = parse_number(value)
    if number is None:
        raise ValueError(f"{shown(value)} is not a finite number")
    seconds = number / 1000 if time_format == "unix_ms" else number
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except ValueError:
        raise ValueError(f"{shown(value)} is out of range") from None


def check_call_time(at: datetime, now: datetime) -> datetime:
    """``at`` if a call can have happened then: not before 1970, at most a day after ``now``."""
    if at < EARLIEST_CALL_TIME:
        raise ValueError(f"{at.isoformat()} is before 1970")
    if at > now + MAX_FUTURE:
        raise ValueError(f"{at.isoformat()} is more than a day in the future")
    return at


def parse_number(value: Any) -> float | None:
    """A finite number from a JSON number or numeric string; ``None`` for anything else
    (booleans, ``NaN``, infinities, integers too big for a float)."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            number = float(value)
        elif isinstance(value, str):
            number = float(value.strip())
        else:
            return None
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def parse_duration_seconds(value: Any, unit: str = "seconds") -> int:
    """A call duration in whole seconds; ``unit`` is ``seconds`` or ``milliseconds``.

    Raises :class:`ValueError` for anything but a finite number from 0 to a week.
    """
    number = parse_number(value)
    if number is None:
        raise ValueError(f"{shown(value)} is not a finite number")
    seconds = number / 1000 if unit == "milliseconds" else number
    if not 0 <= seconds <= MAX_DURATION_SECONDS:
        raise ValueError(f"{shown(value)} is out of range (0 to {MAX_DURATION_SECONDS} seconds)")
    return round(seconds)


def field_text(value: Any, limit: int | None = None) -> str | None:
    """A scalar field as clean text (NUL and broken surrogates dropped, trimmed, cut to
    ``limit``), or ``None`` for a missing, empty or non-scalar value.

    An integral float is read as the integer it is: JSON numbers like ``1234.0`` carry int64
    ids in some APIs.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = clean_text(str(value)).strip()
    if not text:
        return None
    return text[:limit] if limit is not None else text


def id_text(value: Any) -> str | None:
    """An id as :func:`field_text` reads it, except that one holding NUL comes back as it is:
    dropping the NUL would make it another record's id (``a\\0b`` is not ``ab``), so it is
    left for the id check to refuse."""
    if isinstance(value, str) and "\x00" in value:
        return value
    return field_text(value)
