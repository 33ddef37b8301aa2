"""The page reader: records decoded one by one, the rest of the page as json.loads reads it."""

from __future__ import annotations

import json

import pytest

from poller.adapters.providers.page_reader import (
    PageRecords,
    TooManyRecords,
    UnreadableRecord,
    read_page,
)
from poller.domain.paths import dig

HUGE = "1" * 5000
DEEP = "[" * 2000 + "]" * 2000


def read(text: str, path: str | None = "calls", **options: object) -> object:
    settings: dict[str, object] = {"max_records": 100, "limit_key": "provider.max", **options}
    return read_page(text.encode(), path, **settings)  # type: ignore[arg-type]


def test_outside_the_records_the_page_reads_as_json_loads_reads_it() -> None:
    text = json.dumps({"meta": {"next": "t", "n": [1, 2.5, None]}, "calls": [{"a": 1}], "x": "é"})
    body = read(text)
    assert isinstance(body, dict)
    records = body.pop("calls")
    assert isinstance(records, PageRecords) and list(records) == [{"a": 1}]
    expected = json.loads(text)
    del expected["calls"]
    assert body == expected


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('{"data": {"calls": [{"a": 1}, 2]}}', "data.calls"),
        ('{"pages": [{"calls": []}, {"calls": [{"a": 1}, 2]}]}', "pages.1.calls"),
        ('[{"a": 1}, 2]', None),
    ],
)
def test_the_records_are_found_where_the_path_says(text: str, path: str | None) -> None:
    records = dig(read(text, path), path)
    assert isinstance(records, PageRecords) and list(records) == [{"a": 1}, 2]


def test_a_record_that_will_not_decode_is_that_records_alone() -> None:
    body = read(f'{{"calls": [{{"a": 1}}, {{"n": {HUGE}}}, {DEEP}, {{"b": 2}}]}}')
    assert isinstance(body, dict)
    records = body["calls"]
    assert records[0] == {"a": 1} and records[3] == {"b": 2}
    huge, deep = records[1], records[2]
    assert isinstance(huge, UnreadableRecord) and "4300 digits" in huge.reason
    assert isinstance(deep, UnreadableRecord) and "nested too deep" in deep.reason
    assert len(huge.stored) < 5000 and json.loads(huge.stored)["preview"].startswith('{"n": 111')
    # Two different unreadable records are two different stored texts.
    other = read(f'{{"calls": [{{"n": {HUGE}2}}]}}')
    assert other["calls"][0].stored != huge.stored  # type: ignore[index]


def test_without_lazy_the_records_are_a_list_of_the_same_values() -> None:
    body = read(f'{{"calls": [{{"a": 1}}, {{"n": {HUGE}}}]}}', lazy=False)
    assert isinstance(body, dict)
    records = body["calls"]
    assert isinstance(records, list) and records[0] == {"a": 1}
    assert isinstance(records[1], UnreadableRecord)


@pytest.mark.parametrize(
    "text",
    [
        '{"calls": [{"a": 1}, {"b": ]}',  # a record that cannot be delimited
        '{"calls": [1 2]}',
        '{"calls": [1]} trailing',
        f'{{"n": {HUGE}, "calls": []}}',  # outside the records: the page's own fault
        "",
    ],
)
def test_a_page_whose_structure_is_broken_is_not_json(text: str) -> None:
    with pytest.raises(ValueError):
        read(text)


def test_more_records_than_the_limit_refuse_the_page_naming_the_setting() -> None:
    with pytest.raises(TooManyRecords, match=r"more than provider\.max = 2 records"):
        read('{"calls": [1, 2, 3]}', max_records=2)
    assert len(read('{"calls": [1, 2]}', max_records=2)["calls"]) == 2  # type: ignore[index]
