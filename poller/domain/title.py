"""The recording title in Siro: readable for people, and findable after a lost answer.

The title always embeds the provider call id, so after a crash between "create sent" and
"answer received" the worker can find the recording Siro may already have made.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Any

from poller.domain.records import Call
from poller.domain.states import CallState

MAX_TITLE_LENGTH = 500  # calls.title's width
TITLE_FIELDS = (
    "provider",
    "provider_call_id",
    "direction",
    "contact",
    "contact_name",
    "contact_phone",
    "rep",
    "rep_name",
    "rep_email",
    "started_at",
    "duration_seconds",
)


def check_title_template(template: str) -> None:
    """Raise ``ValueError`` naming the problem with a configured title template."""
    try:
        names = {field for _, field, _, _ in string.Formatter().parse(template) if field}
    except ValueError as exc:
        raise ValueError(f"is not a valid template: {exc}") from None
    unknown = sorted(name for name in names if name not in TITLE_FIELDS)
    if unknown:
        raise ValueError(
            f"has unknown field {{{unknown[0]}}}; available: "
            + ", ".join("{" + name + "}" for name in TITLE_FIELDS)
        )
    if "provider_call_id" not in names:
        raise ValueError("must contain {provider_call_id}: the duplicate guard finds uploads by it")
    sample = Call(id=1, provider="p", provider_call_id="c", state=CallState.PENDING)
    try:
        render_title(template, sample)
    except (ValueError, TypeError) as exc:  # e.g. a date format on a text field
        raise ValueError(f"cannot be rendered: {exc}") from None


def render_title(template: str, call: Call) -> str:
    values: dict[str, Any] = {
        "provider": call.provider,
        "provider_call_id": call.provider_call_id,
        "direction": (call.direction or "phone").capitalize(),
        "contact": call.contact_name or call.contact_phone or "unknown contact",
        "contact_name": call.contact_name or "",
        "contact_phone": call.contact_phone or "",
        "rep": call.rep_name or call.rep_email or call.rep_phone or "unknown rep",
        "rep_name": call.rep_name or "",
        "rep_email": call.rep_email or "",
        "started_at": call.started_at or datetime.min.replace(tzinfo=UTC),
        "duration_seconds": call.duration_seconds or 0,
    }
    title = template.format_map(values)
    if len(title) <= MAX_TITLE_LENGTH:
        return title
    # Never cut the call id off: it is what reconciliation matches on.
    marker = f"[{call.provider_call_id}]"
    return title[: MAX_TITLE_LENGTH - len(marker) - 2] + "… " + marker
