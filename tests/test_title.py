"""Titles read well and always carry the provider call id the duplicate guard matches on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from poller.domain.records import Call
from poller.domain.states import CallState
from poller.domain.title import check_title_template, render_title

CALL = Call(
    id=7,
    provider="acme",
    provider_call_id="call-789",
    state=CallState.DOWNLOADED,
    direction="inbound",
    contact_name="Jane Smith",
    rep_email="rep@yourcompany.com",
    started_at=datetime(2026, 2, 23, 14, 0, tzinfo=UTC),
)


def test_the_default_template_reads_well() -> None:
    template = "{direction} call with {contact} [{provider_call_id}]"
    assert render_title(template, CALL) == "Inbound call with Jane Smith [call-789]"


def test_fields_fall_back_when_the_provider_gave_nothing() -> None:
    bare = Call(id=1, provider="acme", provider_call_id="x", state=CallState.PENDING)
    assert render_title("{direction} with {contact} by {rep} [{provider_call_id}]", bare) == (
        "Phone with unknown contact by unknown rep [x]"
    )
    assert render_title("{started_at:%Y-%m-%d %H:%M} {provider_call_id}", CALL) == (
        "2026-02-23 14:00 call-789"
    )


def test_a_long_title_keeps_the_call_id() -> None:
    long_name = Call(**{**CALL.to_dict(), "contact_name": "x" * 900})
    title = render_title("{contact} [{provider_call_id}]", long_name)
    assert len(title) <= 500
    assert title.endswith("[call-789]")


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("Call {contact}", "must contain {provider_call_id}"),
        ("{callid} {provider_call_id}", "unknown field {callid}"),
        ("{contact:%Y} {provider_call_id}", "cannot be rendered"),
        ("{provider_call_id", "not a valid template"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(template: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("{", r"\{").replace("}", r"\}")):
        check_title_template(template)
