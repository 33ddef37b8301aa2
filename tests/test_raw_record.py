"""Raw provider records made safe: bounded to store, parsed into values or a clear reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poller.domain.raw_record import (
    MAX_BYTES,
    MAX_DEPTH,
    TOO_DEEP,
    TRUNCATED_KEY,
    check_call_time,
    clean_text,
    parse_duration_seconds,
    parse_number,
    parse_time,
    raw_text,
    sanitise_raw,
)

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"leaf": True}
    for _ in range(depth):
        node = {"child": node}
    return node


def depth_of(value: Any) -> int:
    level = 0
    while isinstance(value, dict) and "child" in value:
        value, level = value["child"], level + 1
    return level


def test_a_900_deep_record_is_cut_at_the_depth_cap_without_recursion_error() -> None:
    stored = sanitise_raw({"call_id": "deep", "extra": nested(900)})
    assert stored["call_id"] == "deep"
    # MAX_DEPTH levels of objects are kept: the record itself, then "extra" and its children.
    assert 1 + depth_of(stored["extra"]) == MAX_DEPTH
    innermost = stored["extra"]
    while isinstance(innermost, dict):
        innermost = innermost["child"]
    assert innermost == TOO_DEEP
    json.loads(raw_text({"extra": nested(900)}))  # the stored text is plain, bounded JSON


def test_a_huge_record_keeps_its_small_fields_and_says_what_was_dropped() -> None:
    raw = {"call_id": "big", "started_at": "2026-11-24T09:00:00Z", "transcript": "x" * 500_000}
    stored = sanitise_raw(raw)
    assert len(json.dumps(stored).encode()) <= MAX_BYTES
    assert (stored["call_id"], stored["started_at"]) == ("big", "2026-11-24T09:00:00Z")
    assert stored["transcript"].startswith("[dropped: ")
    assert "500" in stored[TRUNCATED_KEY] and str(MAX_BYTES) in stored[TRUNCATED_KEY]


def test_a_record_too_big_even_without_its_largest_values_becomes_a_preview() -> None:
    raw = {f"k{n}": "v" * 20 for n in range(10_000)}
    stored = sanitise_raw(raw)
    assert set(stored) == {TRUNCATED_KEY, "preview"}
    assert len(raw_text(raw).encode()) <= MAX_BYTES
    big_list = ["y" * 1000] * 200
    assert set(sanitise_raw(big_list)) == {TRUNCATED_KEY, "preview"}


def test_nul_characters_go_from_keys_and_values_and_lone_surrogates_are_replaced() -> None:
    stored = sanitise_raw({"na\x00me": "a\x00b", "list": ["c\x00"], "bad": "x\ud800y"})
    assert stored == {"name": "ab", "list": ["c"], "bad": "x?y"}
    raw_text({"bad\udfff": 1}).encode("utf-8")  # storable as UTF-8
    assert clean_text("plain") == "plain"


def test_secrets_are_masked_and_urls_redacted_at_any_depth() -> None:
    stored = sanitise_raw(
        {
            "auth": {"access_token": "tok-123", "nested": {"password": "hunter2"}},
            "api_keys": ["k1", "k2"],
            "signature": {"value": "sig-abc"},
            "media": "https://cdn.example.com/a.mp3?X-Amz-Signature=abc&X-Amz-Credential=AKIA",
            "note": "see ftp://user:pw@files.example.com/x",
        }
    )
    text = json.dumps(stored)
    for secret in ("tok-123", "hunter2", "k1", "sig-abc", "X-Amz-Signature=abc", "pw@"):
        assert secret not in text
    assert stored["media"].startswith("https://cdn.example.com/a.mp3?")


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        # Zoom signs a recording's file_url/download_url with a 30-minute token named jwt.
        ("https://zoom.us/v2/phone/recording/download/Gk9?jwt=eyJhbGciOi.eyJleHAi.c2ln", "eyJ"),
        # A signed-parameter name no list of secret names holds.
        ("https://media.vendor.example/r/7.mp3?qz_grant=7fQ2-opaque&n=1", "7fQ2-opaque"),
        (
            "https://bucket.s3.amazonaws.com/r.wav?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            "&X-Amz-Credential=AKIAEXAMPLE%2F20261124&X-Amz-Signature=9f86d081",
            "AKIAEXAMPLE",
        ),
        ("/media/x.mp3?Ticket=opaque-ticket-123", "opaque-ticket-123"),
        ("media/x.mp3?Ticket=relative-ticket-9", "relative-ticket-9"),
        ("/oauth/callback#id_token=fragment-token", "fragment-token"),
        ("https://files.example.com/r.mp3?opaque-bare-token", "opaque-bare-token"),
        ("https://ghp_user-token@files.example.com/r.mp3", "ghp_user-token"),
        ("https://app.example.com/cb#access_token=frag-token&state=1", "frag-token"),
    ],
)
def test_a_raw_record_keeps_no_url_query_value_whatever_its_name(url: str, secret: str) -> None:
    stored = sanitise_raw({"recording": {"file_url": url}})

    kept = stored["recording"]["file_url"]
    assert secret not in kept
    assert "[REDACTED]" in kept


def test_urls_are_masked_nested_in_lists_and_inside_text() -> None:
    stored = sanitise_raw(
        {
            "recordings": [
                {"urls": ["https://a.example/1.mp3?jwt=t1", {"u": "https://a.example/2?k=t2"}]}
            ],
            "note": "listen at https://a.example/3.mp3?grant=t3 before noon",
            "uri": "/restapi/v1.0/account/1/call-log/Y3?view=Detailed",
            "question": "Why? Is it ready?yes",
            "ticket": "Issue #42",
        }
    )

    text = json.dumps(stored)
    for secret in ("t1", "t2", "t3"):
        assert f"={secret}" not in text
    assert stored["note"] == "listen at https://a.example/3.mp3?grant=[REDACTED] before noon"
    # Keys stay to show what was there; a harmless view selector stays readable.
    assert stored["recordings"][0]["urls"][0] == "https://a.example/1.mp3?jwt=[REDACTED]"
    assert stored["uri"] == "/restapi/v1.0/account/1/call-log/Y3?view=Detailed"
    assert (stored["question"], stored["ticket"]) == ("Why? Is it ready?yes", "Issue #42")


def test_non_finite_numbers_become_strings_json_columns_accept() -> None:
    stored = sanitise_raw({"a": float("nan"), "b": float("inf"), "c": 1e30, "d": 10**40})
    assert stored == {"a": "nan", "b": "inf", "c": 1e30, "d": 10**40}
    json.loads(raw_text(stored))


def test_raw_text_is_stable_so_a_record_seen_again_has_the_same_key() -> None:
    assert raw_text({"b": 1, "a": [1, 2]}) == raw_text({"a": [1, 2], "b": 1})
    assert raw_text(["not", "an", "object"]) == '["not","an","object"]'


@pytest.mark.parametrize(
    ("value", "time_format", "message"),
    [
        ("9999-12-31T23:59:59-01:00", "iso8601", "out of range"),
        ("yesterday-ish", "iso8601", "does not parse as iso8601"),
        (12, "iso8601", "is not a string"),
        ("Infinity", "unix_s", "not a finite number"),
        (float("nan"), "unix_ms", "not a finite number"),
        (1e30, "unix_s", "out of range"),
        (10**400, "unix_s", "not a finite number"),
        (-1e15, "unix_s", "out of range"),
        ("not a date", "rfc2822", "does not parse as rfc2822"),
        (True, "unix_s", "not a finite number"),
    ],
)
def test_times_python_cannot_hold_are_a_value_error_with_the_value(
    value: object, time_format: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_time(value, time_format)


def test_call_times_before_1970_or_over_a_day_ahead_are_refused() -> None:
    assert check_call_time(NOW + timedelta(hours=23), NOW) == NOW + timedelta(hours=23)
    with pytest.raises(ValueError, match="before 1970"):
        check_call_time(parse_time(-1, "unix_s"), NOW)
    with pytest.raises(ValueError, match="before 1970"):
        check_call_time(parse_time("1969-12-31T23:59:59Z", "iso8601"), NOW)
    with pytest.raises(ValueError, match="more than a day in the future"):
        check_call_time(NOW + timedelta(days=1, seconds=1), NOW)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (12, 12.0),
        ("12.5", 12.5),
        (" 3 ", 3.0),
        ("nan", None),
        ("Infinity", None),
        (float("inf"), None),
        (10**400, None),
        (True, None),
        ("12s", None),
        ([], None),
    ],
)
def test_numbers_are_finite_or_none(value: object, expected: float | None) -> None:
    assert parse_number(value) == expected


@pytest.mark.parametrize("value", ["Infinity", "nan", 1e30, -5, "soon", 8 * 24 * 3600])
def test_durations_outside_zero_to_a_week_are_refused(value: object) -> None:
    with pytest.raises(ValueError, match=r"not a finite number|out of range"):
        parse_duration_seconds(value)


def test_durations_in_seconds_or_milliseconds() -> None:
    assert parse_duration_seconds("95") == 95
    assert parse_duration_seconds(95_400, "milliseconds") == 95
