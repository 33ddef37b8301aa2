"""G1: the generic adapter writes and reads times in strftime patterns, in a configured zone,
and writes ISO 8601 bounds with a Z suffix only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.config import ConfigError, load_settings
from poller.domain.clock import pattern_bounds
from poller.domain.windows import Window
from poller.ports.provider import MalformedRecordError, RecordPosition
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve

T0 = datetime(2026, 2, 23, 14, 0, tzinfo=UTC)
WINDOW = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
NO_WAIT = RetryPolicy(max_tries=2, base_delay=0.0, max_delay=0.0)
JUSTCALL = "%Y-%m-%d %H:%M:%S"
NEW_YORK = ZoneInfo("America/New_York")


def adapter(url: str, **settings: Any) -> GenericProvider:
    return GenericProvider(GenericSettings(base_url=url, **settings), retry=NO_WAIT)


def listed_ids(provider: GenericProvider, window: Window = WINDOW) -> list[str]:
    return [r.provider_call_id for page in provider.list_window(window) for r in page.records]


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        yield running


def justcall_like(**changes: Any) -> FakeCallLog:
    return FakeCallLog(
        start_param="from_datetime",
        end_param="to_datetime",
        time_format=JUSTCALL,
        **changes,
    )


def add_calls_around(api: FakeCallLog, window: Window) -> None:
    """A call just inside each end of the window and one well outside each."""
    for name, at in [
        ("before", window.start - timedelta(hours=3)),
        ("first", window.start),
        ("last", window.end - timedelta(seconds=1)),
        ("after", window.end + timedelta(hours=3)),
    ]:
        api.add_call(quickstart_call(name, at), at)


# -- the window on the wire ------------------------------------------------------------------


@pytest.mark.parametrize("api", [justcall_like()])
def test_a_strftime_window_is_sent_as_the_api_writes_times(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    add_calls_around(api, WINDOW)
    provider = adapter(
        server.url,
        listing={
            "start_param": "from_datetime",
            "end_param": "to_datetime",
            "time_format": JUSTCALL,
        },
    )
    assert listed_ids(provider) == ["first", "last"]
    [request] = api.list_requests()
    # Widened by one second each side (the boundary rule), in UTC by default.
    assert request["query"]["from_datetime"] == "2026-02-23 12:59:59"
    assert request["query"]["to_datetime"] == "2026-02-23 15:00:01"
    # What went on the wire: the space and colons percent-encoded, nothing else changed.
    assert "from_datetime=2026-02-23+12%3A59%3A59" in request["raw_query"]


@pytest.mark.parametrize("api", [justcall_like(time_zone="America/New_York")])
def test_a_window_without_an_offset_is_written_in_the_configured_zone(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    add_calls_around(api, WINDOW)
    provider = adapter(
        server.url,
        listing={
            "start_param": "from_datetime",
            "end_param": "to_datetime",
            "time_format": JUSTCALL,
            "time_zone": "America/New_York",
        },
    )
    assert listed_ids(provider) == ["first", "last"]
    [request] = api.list_requests()
    assert request["query"]["from_datetime"] == "2026-02-23 07:59:59"  # 12:59:59 UTC, EST


@pytest.mark.parametrize("api", [justcall_like(time_zone="America/New_York")])
def test_an_api_reading_the_window_in_another_zone_than_configured_misses_calls(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    # Why the key matters: the API's account zone is New York, the config left it at UTC.
    add_calls_around(api, WINDOW)
    provider = adapter(
        server.url,
        listing={
            "start_param": "from_datetime",
            "end_param": "to_datetime",
            "time_format": JUSTCALL,
        },
    )
    # New York reads "12:59:59" as 17:59:59 UTC: the window's calls are missed, a later one read.
    assert listed_ids(provider) == ["after"]


def test_across_a_turned_back_clock_the_start_is_early_enough_for_either_reading() -> None:
    # 2026-11-01 01:30 EDT (05:30 UTC): "01:29:59" would also mean 06:29:59 UTC, an hour
    # after the window's start, so the start moves back an hour.
    start = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    window = Window(start, start + timedelta(hours=2))
    provider = adapter(
        "https://api.example.com",
        listing={"time_format": JUSTCALL, "time_zone": "America/New_York"},
    )
    params = provider.first_request(window).params or {}
    sent_start = datetime.strptime(params["from"], JUSTCALL)
    readings = [sent_start.replace(tzinfo=NEW_YORK, fold=fold) for fold in (0, 1)]
    assert params["from"] == "2026-11-01 00:29:59"
    assert all(reading <= start for reading in readings)
    sent_end = datetime.strptime(params["to"], JUSTCALL)
    assert all(sent_end.replace(tzinfo=NEW_YORK, fold=f) >= window.end for f in (0, 1))


def test_a_date_only_format_covers_whole_days_around_the_window() -> None:
    provider = adapter(
        "https://api.example.com",
        listing={"time_format": "%Y-%m-%d", "time_zone": "Asia/Kolkata"},
    )
    params = provider.first_request(WINDOW).params or {}
    # 13:00-15:00 UTC is 18:30-20:30 in Kolkata: that day, widened by a day each side.
    assert (params["from"], params["to"]) == ("2026-02-22", "2026-02-25")


def test_a_pattern_with_an_offset_writes_it() -> None:
    provider = adapter(
        "https://api.example.com",
        listing={"time_format": "%Y-%m-%dT%H:%M:%S%z", "time_zone": "Europe/Berlin"},
    )
    params = provider.first_request(WINDOW).params or {}
    assert params["from"] == "2026-02-23T13:59:59+0100"


ZONES = ["America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
PATTERNS = [JUSTCALL, "%Y-%m-%d %H:%M", "%Y-%m-%d %H", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z"]


# Clock changes in 2026 (UTC): New York and London back and forward, Lord Howe back by half
# an hour; windows starting near them are drawn as often as any others.
CHANGES = [
    datetime(2026, 11, 1, 6, 0, tzinfo=UTC),
    datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
    datetime(2026, 10, 25, 1, 0, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
    datetime(2026, 4, 4, 15, 0, tzinfo=UTC),
]
NEAR_A_CHANGE = st.sampled_from(CHANGES).flatmap(
    lambda change: st.timedeltas(min_value=timedelta(hours=-3), max_value=timedelta(hours=3)).map(
        lambda offset: change + offset
    )
)


@given(
    start=st.one_of(
        NEAR_A_CHANGE,
        st.datetimes(
            min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
        ),
    ),
    span=st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=3)),
    zone=st.sampled_from(ZONES),
    pattern=st.sampled_from(PATTERNS),
)
def test_every_reading_of_the_written_bounds_covers_the_window(
    start: datetime, span: timedelta, zone: str, pattern: str
) -> None:
    # Lord Howe turns its clock back by half an hour; the others by an hour or not at all.
    tz = ZoneInfo(zone)
    low, high = pattern_bounds(start, start + span, pattern, tz)
    for text, inside in [(low, start), (high, start + span)]:
        wall = datetime.strptime(text, pattern)
        if wall.tzinfo is not None:
            readings = [wall]
        else:
            readings = [wall.replace(tzinfo=tz, fold=fold) for fold in (0, 1)]
        if text == low:
            assert all(reading <= inside for reading in readings), (text, readings)
        else:
            assert all(reading >= inside for reading in readings), (text, readings)


@pytest.mark.parametrize("api", [FakeCallLog(iso_z_only=True)])
def test_iso8601_bounds_end_in_z_which_an_api_refusing_offsets_accepts(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    add_calls_around(api, WINDOW)
    provider = adapter(server.url, listing={"time_zone": "America/New_York"})
    assert listed_ids(provider) == ["first", "last"]
    [request] = api.list_requests()
    assert request["query"]["from"] == "2026-02-23T12:59:59Z"
    assert request["query"]["to"] == "2026-02-23T15:00:01Z"


def test_the_simulator_refuses_an_offset_where_only_z_is_taken() -> None:
    api = FakeCallLog(iso_z_only=True)
    status, body, _ = api.listing({"from": "2026-02-23T12:59:59+00:00", "to": "x"}, "")
    assert status == 400
    assert "Z suffix" in body["error"]


# -- record times ----------------------------------------------------------------------------


def record(call_id: str, **fields: Any) -> dict[str, Any]:
    return {"call_id": call_id, **fields}


def mapper(**listing: Any) -> GenericProvider:
    return GenericProvider(
        GenericSettings(
            base_url="https://api.example.com",
            listing=listing,
            fields={
                "started_at_format": JUSTCALL,
                "ended_at": "ended_at",
                "ended_at_format": "iso8601",
            },
        ),
        clock=lambda: T0,
    )


def test_record_times_without_an_offset_are_read_in_the_configured_zone_and_kept_in_utc() -> None:
    provider = mapper(time_zone="America/New_York")
    call = provider.normalise(
        record("c1", started_at="2026-02-23 08:00:00", ended_at="2026-02-23T08:05:30"),
        RecordPosition(WINDOW, 1, 0),
    )
    assert call.started_at == datetime(2026, 2, 23, 13, 0, tzinfo=UTC)
    assert call.ended_at == datetime(2026, 2, 23, 13, 5, 30, tzinfo=UTC)
    assert call.duration_seconds == 330


def test_a_record_time_with_an_offset_keeps_its_offset_whatever_the_zone() -> None:
    provider = mapper(time_zone="America/New_York")
    call = provider.normalise(
        record("c1", started_at="2026-02-23 08:00:00", ended_at="2026-02-23T13:05:00Z"),
        RecordPosition(WINDOW, 1, 0),
    )
    assert call.ended_at == datetime(2026, 2, 23, 13, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("started_at", "reason"),
    [
        ("2026-02-30 10:00:00", "started_at '2026-02-30 10:00:00' does not parse as "),
        ("2026-02-23T10:00:00Z", "does not parse as '%Y-%m-%d %H:%M:%S' (at path started_at)"),
        (1771855200, "started_at 1771855200 is not a string"),
    ],
)
def test_a_record_time_that_does_not_parse_names_the_field_its_path_and_the_format(
    started_at: object, reason: str
) -> None:
    with pytest.raises(MalformedRecordError) as raised:
        mapper().normalise(record("bad", started_at=started_at), RecordPosition(WINDOW, 1, 4))
    assert reason in raised.value.reason
    assert "(at path started_at)" in raised.value.reason
    assert raised.value.call_id == "bad"


@pytest.mark.parametrize("api", [justcall_like()])
def test_one_record_with_a_bad_time_does_not_stop_its_page(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    api.add_call({"call_id": "good", "started_at": "2026-02-23 14:00:00"}, T0)
    api.add_call({"call_id": "bad", "started_at": "23/02/2026 14:00"}, T0)
    provider = GenericProvider(
        GenericSettings(
            base_url=server.url,
            listing={
                "start_param": "from_datetime",
                "end_param": "to_datetime",
                "time_format": JUSTCALL,
            },
            fields={"started_at_format": JUSTCALL},
        ),
        retry=NO_WAIT,
        clock=lambda: T0,
    )
    [page] = list(provider.list_window(WINDOW))
    assert [r.provider_call_id for r in page.records] == ["good"]
    assert [m.call_id for m in page.malformed] == ["bad"]
    assert "started_at '23/02/2026 14:00' does not parse" in page.malformed[0].reason


# -- config ----------------------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            '[provider.listing]\ntime_zone = "Europe/Londn"\n',
            "provider.listing.time_zone: not a time zone: use an IANA name such as "
            '"America/New_York", "Europe/London" or "UTC" (got \'Europe/Londn\')',
        ),
        (
            '[provider.listing]\ntime_format = "%H:%M"\n',
            "provider.listing.time_format: the pattern does not name an instant: it writes "
            "2026-11-27 13:45:37 as '13:45', which reads back as 1900-01-01 13:45:00",
        ),
        (
            '[provider.listing]\ntime_format = "iso"\n',
            'provider.listing.time_format: not a time format: use "iso8601", "unix_s", '
            '"unix_ms" or a strftime pattern',
        ),
        (
            '[provider.fields]\nstarted_at_format = "%d/%m %H:%M"\n',
            "provider.fields.started_at_format: the pattern does not name an instant",
        ),
    ],
)
def test_a_bad_zone_or_format_is_a_config_error_naming_the_key(
    tmp_path: Path, section: str, expected: str
) -> None:
    text = '[provider]\nbase_url = "https://voip.example.com"\n' + section
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path / "c.toml", text))
    assert any(expected in problem for problem in raised.value.problems), raised.value.problems


def test_a_justcall_style_config_loads(tmp_path: Path) -> None:
    text = """
[provider]
base_url = "https://api.justcall.io"
[provider.listing]
path = "/v2.1/calls"
start_param = "from_datetime"
end_param = "to_datetime"
time_format = "%Y-%m-%d %H:%M:%S"
time_zone = "UTC"
[provider.fields]
started_at_format = "%Y-%m-%d %H:%M:%S"
"""
    settings = load_settings(write(tmp_path / "c.toml", text))
    assert isinstance(settings.provider, GenericSettings)
    assert settings.provider.listing.time_format == JUSTCALL
