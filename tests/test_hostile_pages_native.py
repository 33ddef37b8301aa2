"""Hostile listing pages in the five native adapters, each against its simulator.

The generic adapter's answers to issue P14's page breaks (``tests/test_hostile_pages.py``) hold
for Twilio, Zoom, RingCentral, Dialpad and Aircall too, and so does P13's rule that a stored
``recording_url`` keeps no query value:

- one record stops its page: a 5,000-digit integer or nesting 2,000 deep in one record leaves
  the other records of the page listed (Twilio read its page whole: one such record failed it);
- a page of many records is mapped a chunk at a time (Twilio, Zoom, RingCentral and Dialpad
  reshaped their pages and so read them whole);
- answers read as empty: a ``null`` list, or an empty one beside an error (``error`` or the
  vendor's own error fields: Twilio's and Zoom's ``code``, RingCentral's ``errorCode``), fails
  the page and the cursor stays (Dialpad read ``items: null`` as an empty page, Twilio and
  Dialpad an ``error`` beside no records, Twilio, Zoom and RingCentral their own error fields);
- NUL is stripped from ids: an id holding NUL is kept as a malformed record, never merged with
  the id without it (Aircall and RingCentral cleaned it before the check);
- the recording URL column keeps no query value, whatever its parameter's name, and the audio
  still downloads (Twilio, RingCentral, Aircall and Dialpad masked only known names).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.base import RECORDS_PER_CHUNK
from poller.adapters.sql.store import SqlStore
from poller.core.poll import poll_once
from poller.core.poll_report import PollParams, PollReport
from poller.ports.provider import ListedPage, ProviderPort
from tests.provider_contract import T0, WINDOW, HttpWorld, call_ids, listed, seed
from tests.test_provider_aircall import AircallWorld
from tests.test_provider_dialpad import DialpadWorld
from tests.test_provider_ringcentral import RingCentralWorld
from tests.test_provider_twilio import TwilioWorld
from tests.test_provider_zoom import ZoomWorld

HUGE_INTEGER = "9" * 5000
DEEP_LIST = "[" * 2000 + "]" * 2000
# The signature the contract's signed URLs carry, under a parameter name no list knows.
SIGNATURE_VALUE = b"deadbeefcafe"
UNKNOWN_PARAMETER = b"qz_grant"
NOW = T0 + timedelta(hours=3)


class Native:
    """One native kind's simulator, and where its listing page keeps the records."""

    def __init__(
        self,
        world: HttpWorld,
        state: Any,
        list_key: str,
        id_key: str,
        vendor_error: dict[str, Any],
        set_id: Callable[[dict[str, Any], str], None] | None = None,
    ) -> None:
        self.world = world
        self.state = state
        self.list_key = list_key
        self.id_key = id_key
        # The body of the vendor's own error answer, as its API reference documents it.
        self.vendor_error = vendor_error
        self._set_id = set_id

    def provider(self) -> ProviderPort:
        return self.world.provider()

    def rewrite(self, change: Callable[[bytes], bytes]) -> None:
        """Every listing page the simulator sends goes through ``change`` first."""
        self.state.rewrite_listing = change

    def splice(self, *records: str) -> None:
        """These records' JSON texts, as written, first in the list of every listing page."""
        opening = f'"{self.list_key}": ['.encode()
        spliced = ", ".join(records).encode()

        def change(page: bytes) -> bytes:
            assert opening in page, page[:200]
            start = page.index(opening) + len(opening)
            rest = page[start:]
            return page[:start] + spliced + (b"" if rest.startswith(b"]") else b", ") + rest

        self.rewrite(change)

    def rewrite_body(self, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
        self.rewrite(lambda page: json.dumps(change(json.loads(page))).encode())

    def set_id(self, record: dict[str, Any], call_id: str) -> None:
        if self._set_id is not None:
            self._set_id(record, call_id)
        else:
            record[self.id_key] = call_id


def _ringcentral_recording_id(record: dict[str, Any], recording_id: str) -> None:
    # A RingCentral call is keyed on its recording's id, on the record and on its legs.
    for holder in [record, *record.get("legs", [])]:
        if isinstance(holder.get("recording"), dict):
            holder["recording"]["id"] = recording_id


KINDS = ["twilio", "zoom", "ringcentral", "dialpad", "aircall"]


@pytest.fixture(params=KINDS)
def native(request: pytest.FixtureRequest) -> Iterator[Native]:
    kind = request.param
    if kind == "twilio":
        with TwilioWorld() as twilio:
            twilio_error = {
                "code": 20500,
                "message": "An internal server error has occurred",
                "more_info": "https://www.twilio.com/docs/errors/20500",
                "status": 500,
            }
            yield Native(twilio, twilio.api, "recordings", "sid", twilio_error)
    elif kind == "zoom":
        with ZoomWorld() as zoom:
            zoom_error = {"code": 300, "message": "Request failed; please try again."}
            yield Native(zoom, zoom.phone, "recordings", "id", zoom_error)
    elif kind == "ringcentral":
        with RingCentralWorld() as ringcentral:
            ringcentral_error = {
                "errorCode": "CMN-201",
                "message": "Service Temporary Unavailable",
            }
            yield Native(
                ringcentral,
                ringcentral.api,
                "records",
                "id",
                ringcentral_error,
                _ringcentral_recording_id,
            )
    elif kind == "dialpad":
        with DialpadWorld() as dialpad:
            dialpad_error = {"error": {"code": 503, "message": "Service unavailable"}}
            yield Native(dialpad, dialpad.state, "items", "call_id", dialpad_error)
    else:
        with AircallWorld() as aircall:
            aircall_error = {"error": "Service unavailable", "troubleshoot": "Retry later"}
            yield Native(aircall, aircall.sim.api, "calls", "id", aircall_error)


def poll(native: Native, provider: ProviderPort, store: SqlStore) -> PollReport:
    params = PollParams(
        provider_key=_name(provider), start_at=WINDOW.start, settle_delay=timedelta(0)
    )
    return poll_once(params, provider, store, NOW)


def _name(provider: ProviderPort) -> str:
    return str(provider.name)  # type: ignore[attr-defined]


def malformed_reasons(pages: list[ListedPage]) -> list[str]:
    return [error.reason for page in pages for error in page.malformed]


# -- 1. one record stops its page ---------------------------------------------------------


def test_one_record_stops_its_page_no_more(native: Native) -> None:
    ids = seed(native.world, 3)
    native.splice(
        f'{{"{native.id_key}": "huge", "duration": {HUGE_INTEGER}}}',
        f'{{"{native.id_key}": "deep", "legs": {DEEP_LIST}}}',
    )

    pages = listed(native.provider())

    assert sorted(call_ids(pages)) == ids
    reasons = sorted(malformed_reasons(pages))
    assert len(reasons) == 2
    assert all(reason.startswith("does not decode as JSON") for reason in reasons), reasons
    assert "4300 digits" in reasons[0] and "nested too deep" in reasons[1]


def test_a_page_of_many_records_is_mapped_a_chunk_at_a_time(native: Native) -> None:
    ids = seed(native.world, 3)
    junk = 2 * RECORDS_PER_CHUNK + 7
    native.splice(*(f'{{"junk": {index}}}' for index in range(junk)))

    chunks = listed(native.provider())

    assert [(chunk.number, chunk.first_index) for chunk in chunks] == [
        (1, 0),
        (1, RECORDS_PER_CHUNK),
        (1, 2 * RECORDS_PER_CHUNK),
    ]
    assert sorted(call_ids(chunks)) == ids
    assert len(malformed_reasons(chunks)) == junk


# -- 10. answers read as empty ------------------------------------------------------------


def _null_list(native: Native) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda body: {**body, native.list_key: None}


def _empty_list_and_error(native: Native) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda body: {**body, native.list_key: [], "error": "maintenance window"}


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (_null_list, "is null"),
        (_empty_list_and_error, "an error: 'maintenance window'"),
    ],
    ids=["null", "empty-and-error"],
)
def test_answers_read_as_empty_fail_the_page_and_the_cursor_stays(
    native: Native,
    sql_store: SqlStore,
    answer: Callable[[Native], Callable[[dict[str, Any]], dict[str, Any]]],
    words: str,
) -> None:
    seed(native.world, 3)
    native.rewrite_body(answer(native))
    provider = native.provider()

    report = poll(native, provider, sql_store)

    assert not report.ok
    assert words in str(report.error)
    cursor = sql_store.get_cursor(_name(provider))
    assert cursor is not None and cursor.cursor_value is None
    assert cursor.last_error is not None and words in cursor.last_error
    assert sql_store.list_calls() == []


def test_an_empty_list_beside_the_vendors_own_error_fails_the_page_and_the_cursor_stays(
    native: Native, sql_store: SqlStore
) -> None:
    seed(native.world, 3)
    native.rewrite_body(lambda body: {**body, native.list_key: [], **native.vendor_error})
    provider = native.provider()

    report = poll(native, provider, sql_store)

    assert not report.ok
    assert "the response has no records and an error" in str(report.error)
    cursor = sql_store.get_cursor(_name(provider))
    assert cursor is not None and cursor.cursor_value is None
    assert sql_store.list_calls() == []


def test_an_empty_answer_still_moves_the_cursor(native: Native, sql_store: SqlStore) -> None:
    provider = native.provider()

    report = poll(native, provider, sql_store)

    assert report.ok, report.error
    cursor = sql_store.get_cursor(_name(provider))
    assert cursor is not None and cursor.cursor_value is not None


# -- 11. NUL is stripped from ids ---------------------------------------------------------


def test_nul_is_stripped_from_ids_no_more(native: Native, sql_store: SqlStore) -> None:
    seed(native.world, 1)

    def with_a_nul_twin(body: dict[str, Any]) -> dict[str, Any]:
        [record] = body[native.list_key]
        twin = json.loads(json.dumps(record))
        native.set_id(twin, "c00\x0000")
        return {**body, native.list_key: [record, twin]}

    native.rewrite_body(with_a_nul_twin)
    provider = native.provider()

    report = poll(native, provider, sql_store)

    assert report.ok, report.error
    assert [call.provider_call_id for call in sql_store.list_calls()] == ["c0000"]
    [kept] = sql_store.unmapped_records(_name(provider))
    assert "'c00\\x0000' holds a NUL character" in kept.reason
    assert "c00\\u000000" in kept.raw  # kept as it came, NUL escaped


# -- P13: the recording URL column keeps no query value -------------------------------------


def test_the_recording_url_keeps_no_query_value_and_the_audio_still_downloads(
    native: Native, sql_store: SqlStore, tmp_path: Path
) -> None:
    native.world.add_call("signed", T0 + timedelta(minutes=5), signed=True)
    # The listed URL signs with a parameter whose name no list of secret names holds.
    native.rewrite(
        lambda page: re.sub(
            rb'\?[^"?]*' + SIGNATURE_VALUE + rb'[^"]*',
            b"?" + UNKNOWN_PARAMETER + b"=" + SIGNATURE_VALUE,
            page,
        )
    )
    provider = native.provider()

    report = poll(native, provider, sql_store)

    assert report.ok, report.error
    [call] = sql_store.find_calls("signed")
    assert call.recording_url is not None
    assert "qz_grant=[REDACTED]" in call.recording_url
    assert SIGNATURE_VALUE.decode() not in call.recording_url
    assert SIGNATURE_VALUE.decode() not in json.dumps(call.raw)

    downloaded = _downloader().fetch(provider.resolve_download(call), tmp_path / "audio")
    assert downloaded.http_status == 200 and downloaded.size_bytes > 0


def _downloader() -> Downloader:
    client = HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )
    return Downloader(client, max_bytes=1 << 20)
