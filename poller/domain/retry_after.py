"""The one ``Retry-After`` parser: delta-seconds or a date, as seconds to wait.

Besides RFC 9110's HTTP date, an ISO 8601 instant is read too: Zoom's daily-cap 429s name
the instant the cap lifts that way (``Retry-After: 2020-05-31T00:00:00Z``).

A server's wait is believed only up to a cap (``max_retry_after_seconds``, an hour unless set):
``Retry-After: 999999999`` would otherwise pause a provider until the daemon restarts.
"""

from __future__ import annotations

import email.utils
import math
from datetime import UTC, datetime

DEFAULT_MAX_RETRY_AFTER_SECONDS = 3600.0


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or ``None`` when it says nothing usable.

    A date in the past means "now" (0). Negative, non-finite and unparseable values are
    ignored rather than trusted: a server cannot make a client wait forever or not at all.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            try:
                when = datetime.fromisoformat(text)
            except ValueError:
                return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return max(0.0, (when - now).total_seconds())
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds
