"""Scrubbing a call's own texts in the database: `calls forget` and retention's prune both
run it, inside their own transaction, before they empty the columns it needs the values of.
The text rule is :func:`poller.domain.scrubbing.scrub`."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Connection, bindparam, select, update

from poller.adapters.sql.models import call_events_table as call_events
from poller.domain.scrubbing import scrub


def scrub_event_messages(
    conn: Connection, values_by_call: Mapping[int, set[str]], default_region: str
) -> int:
    """Rewrite the event messages of each call in ``values_by_call`` with its values erased;
    returns how many messages changed. Reads id and message only, of these calls' events."""
    wanted = {call_id: values for call_id, values in values_by_call.items() if values}
    if not wanted:
        return 0
    rows = conn.execute(
        select(call_events.c.id, call_events.c.call_id, call_events.c.message)
        .where(call_events.c.call_id.in_(sorted(wanted)), call_events.c.message.is_not(None))
        .order_by(call_events.c.id)
    ).all()
    changes = []
    for event_id, call_id, message in rows:
        clean = scrub(message, wanted[call_id], default_region)
        if clean != message:
            changes.append({"event_id": event_id, "clean": clean})
    if changes:
        conn.execute(
            update(call_events)
            .where(call_events.c.id == bindparam("event_id"))
            .values(message=bindparam("clean")),
            changes,
        )
    return len(changes)
