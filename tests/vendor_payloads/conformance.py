"""What every vendor's conformance module shares.

Each ``test_<vendor>.py`` serves its vendor's published bodies (``<vendor>/``, with their
provenance in ``<vendor>/SOURCES.md``) through that vendor's simulator, lists them with the
adapter's real listing loop and plans each record as the poll cycle does. The helpers here read
a published body, plan a listed record, stand in for Siro's user directory and compare a
simulator's body with a published one, field by field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from poller.domain.attribution import InMemoryUserDirectory, directory_user
from poller.domain.call_record import CallRecord
from poller.domain.filters import CallFilter
from poller.domain.ingest import IngestPlan, ListedCall, listing_columns, plan_ingest
from poller.domain.records import Call
from poller.domain.siro import SiroUser
from poller.domain.states import CallState
from poller.ports.provider import ListedPage

PAYLOADS = Path(__file__).parent


def published(vendor: str, name: str) -> Any:
    """The published body ``name`` of ``vendor``, as JSON."""
    return json.loads((PAYLOADS / vendor / name).read_text(encoding="utf-8"))


def records_of(pages: Iterable[ListedPage]) -> dict[str, CallRecord]:
    """The listed records by provider call id; a published body maps, so none is malformed."""
    pages = list(pages)
    assert [bad for page in pages for bad in page.malformed] == []
    return {record.provider_call_id: record for page in pages for record in page.records}


def planned(provider: str, record: CallRecord, now: datetime) -> IngestPlan:
    """What the poll cycle does with a new record: the default filter, then the ingest plan."""
    return plan_ingest(provider, None, ListedCall(record, CallFilter().verdict(record)), now)


def stored(provider: str, record: CallRecord) -> Call:
    """The row the poll cycle writes for the record, as the worker's attribution reads it."""
    return Call(
        id=1,
        provider=provider,
        provider_call_id=record.provider_call_id,
        state=CallState.PENDING,
        **listing_columns(record),
    )


def siro_users(*users: SiroUser, now: datetime) -> InMemoryUserDirectory:
    """Siro's users as synced an hour before ``now``."""
    synced = now - timedelta(hours=1)
    return InMemoryUserDirectory(
        [directory_user(user, synced, "US") for user in users], synced_at=synced
    )


def assert_never_the_rep(record: CallRecord, not_reps: Iterable[object]) -> None:
    """None of the record's rep identifiers is one of ``not_reps`` (a customer's number or
    name, a queue's or a call center's id, name or line), compared without case."""
    shown = {str(value).casefold() for value in not_reps if value not in (None, "")}
    assert not shown & {value.casefold() for value in record.rep_identifiers}, record


def json_kind(value: Any, formats: Mapping[str, re.Pattern[str]] | None = None) -> str:
    """A JSON value's kind; a string matching one of ``formats`` is of that format's name."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        for name, pattern in (formats or {}).items():
            if pattern.match(value):
                return name
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def shape_differences(
    simulated: Any,
    published_value: Any,
    formats: Mapping[str, re.Pattern[str]] | None = None,
    where: str = "",
) -> list[str]:
    """Where the simulator's value lacks a published field or gives it another kind (nested
    objects compared field by field, arrays by their first item)."""
    if isinstance(published_value, dict) and isinstance(simulated, dict):
        problems = []
        for key, value in published_value.items():
            if key not in simulated:
                problems.append(f"{where}{key}: missing")
            else:
                problems += shape_differences(simulated[key], value, formats, f"{where}{key}.")
        return problems
    if isinstance(published_value, list) and isinstance(simulated, list):
        if published_value and simulated:
            return shape_differences(simulated[0], published_value[0], formats, f"{where}[0].")
        return []
    kinds = json_kind(simulated, formats), json_kind(published_value, formats)
    return [] if kinds[0] == kinds[1] else [f"{where.rstrip('.')}: {kinds[0]} for {kinds[1]}"]
