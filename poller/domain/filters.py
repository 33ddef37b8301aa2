"""Which listed calls the configuration says to leave alone, and why. Pure.

A rule skips a call only on evidence: a call whose duration or direction the provider did not
report passes the duration and direction rules. The rep allow list is the exception, since it
names the only reps to upload: a call with no rep identifier at all cannot be on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase

from poller.domain.call_record import CallRecord
from poller.domain.states import Direction


class SkipReason(StrEnum):
    """Values of ``calls.error_kind`` on skipped rows."""

    NO_RECORDING = "no_recording"
    # The provider kept no recording because it was too short (RingCentral's shortRecording).
    SHORT_RECORDING = "short_recording"
    TOO_SHORT = "too_short"
    DIRECTION_EXCLUDED = "direction_excluded"
    REP_NOT_ALLOWED = "rep_not_allowed"
    REP_DENIED = "rep_denied"
    # The provider's record does not say which party is the rep (the adapter's reason).
    REP_UNDECIDED = "rep_undecided"


@dataclass(frozen=True, slots=True)
class SkipVerdict:
    reason: SkipReason
    message: str


@dataclass(frozen=True, slots=True)
class CallFilter:
    """The skip rules of ``[poll]``.

    Rep patterns match, case-insensitively, any of the rep's email, phone, provider id,
    extension or name, with shell wildcards: ``*@contractors.example.com``, ``+4420*``.
    A deny match wins over an allow match.
    """

    min_duration_seconds: int = 0
    directions: frozenset[Direction] = frozenset(Direction)
    rep_allow: tuple[str, ...] = ()
    rep_deny: tuple[str, ...] = ()

    def verdict(self, record: CallRecord) -> SkipVerdict | None:
        """Why ``record`` should be skipped, or ``None`` to upload it."""
        duration = record.duration_seconds
        if duration is not None and duration < self.min_duration_seconds:
            return SkipVerdict(
                SkipReason.TOO_SHORT,
                f"call lasted {duration} s, poll.min_duration_seconds is "
                f"{self.min_duration_seconds}",
            )
        if record.direction is not None and record.direction not in self.directions:
            allowed = ", ".join(sorted(self.directions)) or "none"
            return SkipVerdict(
                SkipReason.DIRECTION_EXCLUDED,
                f"{record.direction} call; poll.directions allows {allowed}",
            )
        identifiers = record.rep_identifiers
        denied_by = _first_match(identifiers, self.rep_deny)
        if denied_by is not None:
            return SkipVerdict(SkipReason.REP_DENIED, f"rep matches poll.rep_deny {denied_by!r}")
        if self.rep_allow and _first_match(identifiers, self.rep_allow) is None:
            named = ", ".join(identifiers) or "no rep identifier"
            return SkipVerdict(
                SkipReason.REP_NOT_ALLOWED, f"rep ({named}) matches no poll.rep_allow entry"
            )
        return None


def _first_match(identifiers: Iterable[str], patterns: Iterable[str]) -> str | None:
    lowered = [identifier.lower() for identifier in identifiers]
    for pattern in patterns:
        wanted = pattern.lower()
        if any(fnmatchcase(identifier, wanted) for identifier in lowered):
            return pattern
    return None
