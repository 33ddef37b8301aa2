"""Scrubbing personal values out of free text: one rule for `calls forget`, retention's prune
and `calls export` without personal data. Pure.

A call's own texts (``last_error``, its events' messages) may quote its contact: a vendor's
error body echoing the number, a title in an upload error. Emptying the personal columns alone
would leave those quotes behind, so whoever empties them first replaces every quoted value
with :data:`ERASED`, catching a phone number in any spelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from poller.domain.phones import to_e164

ERASED: Final = "[erased]"

# A phone number spelled with separators: "+1 (555) 123-4567", "555.123.4567".
PHONE_LIKE: Final = re.compile(r"\+?\d[\d\s().\-]{5,}\d")

# Shorter texts would erase unrelated words ("Al" in "Alarm").
_MIN_VALUE_LENGTH = 3


def contact_values(
    contact_name: str | None,
    contact_phone: str | None,
    title: str | None,
    default_region: str,
) -> set[str]:
    """The texts that name or reach a call's contact, in the spellings they are quoted in: as
    stored, the number as E.164 and as its digits."""
    values: set[str] = set()
    for text in (contact_name, contact_phone, title):
        if text and len(text.strip()) >= _MIN_VALUE_LENGTH:
            values.add(text.strip())
    if contact_phone:
        e164 = to_e164(contact_phone, default_region)
        if e164:
            values.update({e164, e164[1:]})
    return values


def scrub(
    text: str | None, values: Iterable[str], default_region: str, mask: str = ERASED
) -> str | None:
    """``text`` with every one of ``values`` (and any phone spelling of one) as ``mask``."""
    if not text:
        return text
    wanted = sorted(set(values), key=len, reverse=True)
    numbers = {value for value in wanted if value.startswith("+") and value[1:].isdigit()}
    for value in wanted:
        text = re.sub(re.escape(value), mask, text, flags=re.IGNORECASE)
    if numbers:

        def erase_number(match: re.Match[str]) -> str:
            found = to_e164(match.group(0), default_region)
            return mask if found in numbers else match.group(0)

        text = PHONE_LIKE.sub(erase_number, text)
    return text
