"""Phone numbers as E.164, the one form in which a call's rep and a Siro user can be compared.

Parsing and the length rules are ``phonenumbers``' (Google's libphonenumber). Two decisions
are ours:

- A number counts when it is *possible* (the right length for its country), not when it is
  *valid* (in a range the metadata knows as allocated). Matching only compares normalised
  strings, so a strict check would add nothing but false negatives: newly allocated ranges, or
  the 555 numbers people put in test profiles.
- Extensions are dropped. E.164 has no extension, and both ends of a comparison lose it the
  same way. What is sent to Siro (``userPhone``, ``contactPhone``) is the E.164 number without
  the extension, since Siro compares against its users' ``phoneNumber``; the provider's text,
  extension included, stays in ``calls.rep_phone`` and ``calls.contact_phone``.
"""

from __future__ import annotations

import phonenumbers

DEFAULT_PHONE_REGION = "US"

# "00" is the international prefix nearly everywhere outside North America, and call logs
# export numbers in it whatever the account's country. libphonenumber only reads the prefix of
# the default region (011 for the US), so "001 425 555 0100" parsed as a US number is garbage.
_OTHER_INTERNATIONAL_PREFIX = "00"


def to_e164(raw: str | None, default_region: str) -> str | None:
    """``raw`` as ``+<country><number>``, or ``None`` when it is not a phone number.

    ``default_region`` (ISO 3166 code, e.g. ``US``) is the country of numbers written without
    one: ``4255550100`` in the US is ``+14255550100``. Never raises on bad input.
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    number = _parse(text, default_region)
    if number is None and text.startswith(_OTHER_INTERNATIONAL_PREFIX):
        number = _parse("+" + text[len(_OTHER_INTERNATIONAL_PREFIX) :], default_region)
    if number is None:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_known_region(region: str) -> bool:
    """Whether libphonenumber has numbering rules for ``region`` (``US``, ``GB``, ``DE``...)."""
    return region in phonenumbers.SUPPORTED_REGIONS


def _parse(text: str, default_region: str) -> phonenumbers.PhoneNumber | None:
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException:
        return None
    # IS_POSSIBLE_LOCAL_ONLY (a 7-digit US number) is not enough: without its area code it
    # cannot become E.164.
    possible = phonenumbers.is_possible_number_with_reason(number)
    return number if possible == phonenumbers.ValidationResult.IS_POSSIBLE else None
