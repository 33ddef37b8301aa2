"""`siro-poller calls export`: the calls of a period with their states and events, for auditors.

One document per call: in JSON Lines a line with its events nested as a list; in CSV a row with
the events as a JSON array in the ``events`` column (one file, one row per call, which a
spreadsheet and a script both read). Streamed: the store hands over a batch of calls at a time
and each line is written as it is made.

Never exported: the raw provider record, the recording's URL at the provider and the file's
URL in Siro (either may carry a signature), the spool path and the lease. The personal fields
(:data:`PERSONAL_FIELDS`: the contact's and the rep's names, numbers and emails, and the title
built from them) only with ``include_personal``: an audit of what happened to each call needs
none of them, and an export file leaves the database's access control behind. Without them,
the same values quoted in error texts and event messages are masked too. A forgotten call is
exported as its tombstone (``forgotten_at`` set, its personal fields empty whatever the flag).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Final

from poller.domain.erasure import personal_values
from poller.domain.records import Call, CallEvent
from poller.domain.redaction import mask_urls_in_text
from poller.domain.scrubbing import scrub

CALL_FIELDS: Final = (
    "id",
    "provider",
    "provider_call_id",
    "state",
    "error_kind",
    "last_error",
    "attempts",
    "started_at",
    "ended_at",
    "duration_seconds",
    "direction",
    "recording_id",
    "recording_state",
    "audio_format",
    "size_bytes",
    "sha256",
    "attribution",
    "siro_user_id",
    "siro_recording_id",
    "siro_create_sent_at",
    "uploaded_at",
    "created_at",
    "updated_at",
    "forgotten_at",
    # When retention emptied the personal fields: why an export with them shows none.
    "pruned_at",
)
PERSONAL_FIELDS: Final = (
    "contact_name",
    "contact_phone",
    "title",
    "rep_email",
    "rep_phone",
    "rep_name",
    "rep_extension",
    "rep_provider_id",
)
EVENT_FIELDS: Final = (
    "at",
    "step",
    "outcome",
    "from_state",
    "to_state",
    "http_status",
    "duration_ms",
    "message",
)
PERSONAL_MASK: Final = "[personal]"
FORMATS: Final = ("jsonl", "csv")


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def call_document(
    call: Call, events: Iterable[CallEvent], *, include_personal: bool, default_region: str
) -> dict[str, Any]:
    """One call as exported: :data:`CALL_FIELDS` (and :data:`PERSONAL_FIELDS` when asked),
    with its events oldest first."""
    hidden: set[str] = set()
    if not include_personal:
        hidden = personal_values(call, default_region)
        hidden.update(v for v in (call.rep_email, call.rep_phone, call.rep_name) if v)

    def clean(text: str | None) -> str | None:
        if text is None:
            return None
        text = mask_urls_in_text(text)
        return scrub(text, hidden, default_region, PERSONAL_MASK) if hidden else text

    document: dict[str, Any] = {name: _plain(getattr(call, name)) for name in CALL_FIELDS}
    document["last_error"] = clean(call.last_error)
    document["forgotten"] = call.forgotten_at is not None
    if include_personal:
        document.update({name: getattr(call, name) for name in PERSONAL_FIELDS})
    document["events"] = [
        {
            **{name: _plain(getattr(event, name)) for name in EVENT_FIELDS},
            "message": clean(event.message),
        }
        for event in events
    ]
    return document


def export_lines(
    rows: Iterable[tuple[Call, list[CallEvent]]],
    output_format: str,
    *,
    include_personal: bool,
    default_region: str,
) -> Iterator[str]:
    """The export as text, line by line (a CSV header first)."""
    if output_format not in FORMATS:
        raise ValueError(f"format {output_format!r}: one of {', '.join(FORMATS)}")
    columns = [*CALL_FIELDS, "forgotten", *(PERSONAL_FIELDS if include_personal else ()), "events"]
    buffer = _LineBuffer()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    if output_format == "csv":
        writer.writeheader()
        yield buffer.take()
    for call, events in rows:
        document = call_document(
            call, events, include_personal=include_personal, default_region=default_region
        )
        if output_format == "jsonl":
            yield json.dumps(document, sort_keys=True, ensure_ascii=False) + "\n"
            continue
        document["events"] = json.dumps(document["events"], sort_keys=True, ensure_ascii=False)
        writer.writerow(document)
        yield buffer.take()


class _LineBuffer:
    """What csv.writer writes, taken a row at a time."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def take(self) -> str:
        text = "".join(self._parts)
        self._parts.clear()
        return text
