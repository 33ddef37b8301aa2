"""The words of backlog progress, shared by the log's summary line and the terminal's line."""

from __future__ import annotations

from dataclasses import dataclass

from poller.core.progress import ProgressSnapshot


def summary_line(snapshot: ProgressSnapshot) -> str:
    """``backlog: 240 of 600 done, 4.1 calls/min, ETA 12:40 UTC (220 uploaded, ...)``"""
    return f"backlog: {done(snapshot)}, {pace(snapshot)} ({outcomes(snapshot)})"


def done(snapshot: ProgressSnapshot) -> str:
    return f"{snapshot.done} of {snapshot.total} done"


def outcomes(snapshot: ProgressSnapshot) -> str:
    return (
        f"{snapshot.uploaded} uploaded, {snapshot.failed} failed, "
        f"{snapshot.retried} to retry, {snapshot.skipped} skipped"
    )


def pace(snapshot: ProgressSnapshot) -> str:
    if snapshot.per_minute is None:
        return "rate not known yet"
    eta = snapshot.eta
    if eta is None:
        return f"{snapshot.per_minute:.1f} calls/min, no ETA"
    # The date too, when the backlog outlasts the day.
    shape = "%H:%M UTC" if eta.date() == snapshot.at.date() else "%Y-%m-%d %H:%M UTC"
    return f"{snapshot.per_minute:.1f} calls/min, ETA {eta.strftime(shape)}"


# The terminal line: "backlog", the bar, then the fields, two spaces apart.
LABEL = "backlog"
FIELD_GAP = 2
# A bar narrower than this says nothing: it is left out. Wider than BAR_MOST it adds nothing.
BAR_LEAST = 10
BAR_MOST = 40


@dataclass(frozen=True, slots=True)
class FittedLine:
    """What the terminal line shows at a given width: whole fields, and the label and a bar
    when there is room for them (a bar width of 0: no bar)."""

    label: str
    bar_width: int
    fields: tuple[str, ...]

    def text(self) -> str:
        """The line as plain text, the bar drawn as dashes (what the tests measure)."""
        head = [part for part in (self.label, "-" * self.bar_width) if part]
        return " ".join([*head, (" " * FIELD_GAP).join(self.fields)])


def fit_line(snapshot: ProgressSnapshot, width: int) -> FittedLine:
    """The fields of the progress line that fit ``width`` columns, whole, most needed first:
    how many are done (always), then the rate and ETA, then the outcomes; the bar takes what
    room is left. On a terminal too narrow even for the label, the count alone."""
    fields = [done(snapshot)]
    used = len(LABEL) + 1 + len(fields[0])
    if used > width:
        return FittedLine("", 0, tuple(fields))
    for optional in (pace(snapshot), outcomes(snapshot)):
        if used + FIELD_GAP + len(optional) > width:
            break  # a later field never shows without the one before it
        fields.append(optional)
        used += FIELD_GAP + len(optional)
    bar_width = min(BAR_MOST, width - used - 1)
    return FittedLine(LABEL, bar_width if bar_width >= BAR_LEAST else 0, tuple(fields))
