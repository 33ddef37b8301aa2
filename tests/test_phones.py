"""Phone numbers to E.164: the formats call logs and Siro profiles really hold."""

from __future__ import annotations

import pytest

from poller.domain.phones import is_known_region, to_e164


@pytest.mark.parametrize(
    "raw",
    [
        "+1 (425) 555-0100",
        "+14255550100",
        "4255550100",
        "(425) 555-0100",
        "425.555.0100",
        "1 425 555 0100",
        "001 425 555 0100",  # "00" international prefix, as European systems export it
        "0014255550100",
        "011 1 425 555 0100",  # the US international prefix
        "tel:+1-425-555-0100",
        "425-555-0100 x123",
        "425-555-0100 ext. 123",
        "+1 425 555 0100;ext=123",
        "(425) 555-0100 extension 7",
    ],
)
def test_every_way_of_writing_one_us_number_gives_the_same_e164(raw: str) -> None:
    assert to_e164(raw, "US") == "+14255550100"


def test_extensions_are_dropped_because_e164_has_none() -> None:
    assert to_e164("425-555-0100 x123", "US") == to_e164("4255550100", "US")


def test_the_default_region_applies_only_to_numbers_without_a_country() -> None:
    assert to_e164("020 7946 0958", "GB") == "+442079460958"
    assert to_e164("4255550100", "GB") != "+14255550100"
    assert to_e164("+1 425 555 0100", "GB") == "+14255550100"
    assert to_e164("0044 20 7946 0958", "US") == "+442079460958"


@pytest.mark.parametrize(
    "raw", [None, "", "   ", "abc", "anonymous", "12", "00", "+", "5550100", "12345678901234567"]
)
def test_what_is_not_a_full_phone_number_is_none_not_an_error(raw: str | None) -> None:
    # "5550100" is a US local number: without its area code it has no E.164 form.
    assert to_e164(raw, "US") is None


def test_possible_numbers_count_even_outside_allocated_ranges() -> None:
    # Test profiles use 555 numbers; matching compares strings, so they must survive.
    assert to_e164("+1 555 000 0001", "US") == "+15550000001"


def test_regions_are_the_ones_phonenumbers_knows() -> None:
    assert is_known_region("US") and is_known_region("DE")
    assert not is_known_region("XX") and not is_known_region("us")
