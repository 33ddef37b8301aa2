"""A listing page read so that its records cost memory a chunk at a time, and fail one by one.

``json.loads`` of a whole page has two faults on input we do not control. Memory: a 20 MB page
of 330,000 tiny records is over a gigabyte of Python objects once decoded, mapped and written
at once. Isolation: one record holding a 5,000-digit integer (over Python's limit on integer
digits) or nested 2,000 deep (over the decoder's recursion limit) makes the whole page "not
JSON", so the good calls beside it are never listed.

:func:`read_page` therefore decodes the page's text with the standard library's C decoder, but
only the part outside the records in one go. The array of records is scanned: each record is
decoded on its own and dropped, and only where it starts and ends is kept (16 bytes a record).
The records come back as :class:`PageRecords`, a sequence that decodes them again when asked,
a slice (a chunk) at a time. A record that does not decode is an :class:`UnreadableRecord` at
its place, carrying why and a bounded preview of its text, so it is kept as that record's
failure; only a page whose structure is broken (a record cannot even be delimited) is not JSON.

A streaming parser (``ijson``) was considered: it bounds memory as well, but a number it cannot
convert or a depth it refuses aborts the stream, and with it every record after the bad one.
"""

from __future__ import annotations

import hashlib
import json
import re
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, overload

from poller.domain.raw_record import TRUNCATED_KEY, clean_text, dumps, mask_record_text

_DECODER: Final = json.JSONDecoder()
_WHITESPACE: Final = re.compile(r"[ \t\n\r]*")
# One token of a JSON text, for finding where a value that will not decode ends: a string,
# a bracket, a separator or a run of anything else (a number or a literal).
_TOKEN: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|[,:]|[^\s\[\]{},:"]+', re.DOTALL)
_CLOSING: Final = {"[": "]", "{": "}"}
PREVIEW_CHARS: Final = 4096
_REASON_CHARS: Final = 200


class TooManyRecords(Exception):
    """A page holds more records than its limit; nothing of it was kept."""


@dataclass(frozen=True, slots=True)
class UnreadableRecord:
    """A record whose JSON text is well delimited but does not decode, in place of its value.

    ``stored`` is what is kept of it (JSON text: the reason, the full text's SHA-256 so two
    different records stay two rows, and a preview of at most :data:`PREVIEW_CHARS`).
    """

    reason: str
    stored: str


class PageRecords(Sequence[Any]):
    """The records of one page, decoded when read; a bad one reads as :class:`UnreadableRecord`.

    Holds the page's text and two offsets per record, never the decoded records.
    """

    def __init__(self, text: str, bounds: array[int]) -> None:
        self._text = text
        self._bounds = bounds

    def __len__(self) -> int:
        return len(self._bounds) // 2

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._record(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self._record(index)

    def _record(self, index: int) -> Any:
        start, end = self._bounds[2 * index], self._bounds[2 * index + 1]
        try:
            value, _ = _DECODER.raw_decode(self._text, start)
        except (ValueError, RecursionError) as exc:
            return unreadable(self._text[start:end], exc)
        return value


def unreadable(text: str, exc: BaseException) -> UnreadableRecord:
    """The record ``text`` that raised ``exc`` when decoded."""
    detail = clean_text(str(exc))[:_REASON_CHARS]
    if isinstance(exc, RecursionError):
        detail = "nested too deep to decode"
    reason = f"does not decode as JSON ({detail})"
    stored = dumps(
        {
            TRUNCATED_KEY: f"unreadable record of {len(text)} characters: {reason}",
            "sha256": hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(),
            "preview": mask_record_text(text[:PREVIEW_CHARS]),
        }
    )
    return UnreadableRecord(reason, stored)


def read_page(
    data: bytes, items_path: str | None, *, max_records: int, limit_key: str, lazy: bool = True
) -> Any:
    """The decoded page, with its records at ``items_path`` (``None``: the body) as
    :class:`PageRecords` (or, without ``lazy``, as a list of the same values).

    Raises :class:`ValueError` when the page is not JSON, :class:`TooManyRecords` past
    ``max_records`` (``limit_key`` names the setting in the message).
    """
    text = data.decode(json.detect_encoding(data), "surrogatepass")
    steps = [] if items_path is None else items_path.split(".")
    reader = _Reader(text, max_records, limit_key, lazy)
    value, end = reader.value(_skip(text, 0), steps)
    if _skip(text, end) != len(text):
        raise ValueError(f"extra data after the JSON document at character {end}")
    return value


class _Reader:
    def __init__(self, text: str, max_records: int, limit_key: str, lazy: bool) -> None:
        self.text = text
        self.max_records = max_records
        self.limit_key = limit_key
        self.lazy = lazy

    def value(self, pos: int, steps: list[str] | None) -> tuple[Any, int]:
        """The value at ``pos`` and where it ends; ``steps`` lead to the records from here
        (``None``: they are not under this value)."""
        text = self.text
        opening = text[pos : pos + 1]
        if steps is None:
            return _DECODER.raw_decode(text, pos)
        if not steps:
            if opening == "[":
                return self.records(pos)
            return _DECODER.raw_decode(text, pos)
        if opening == "{":
            return self.object(pos, steps)
        if opening == "[":
            return self.array(pos, steps)
        return _DECODER.raw_decode(text, pos)

    def object(self, pos: int, steps: list[str]) -> tuple[dict[str, Any], int]:
        text = self.text
        result: dict[str, Any] = {}
        pos = _skip(text, pos + 1)
        if text[pos : pos + 1] == "}":
            return result, pos + 1
        while True:
            if text[pos : pos + 1] != '"':
                raise ValueError(f"expected a key at character {pos}")
            key, pos = _DECODER.raw_decode(text, pos)
            pos = _skip(text, pos)
            if text[pos : pos + 1] != ":":
                raise ValueError(f"expected ':' at character {pos}")
            below = steps[1:] if key == steps[0] else None
            result[key], pos = self.value(_skip(text, pos + 1), below)
            pos = _skip(text, pos)
            separator = text[pos : pos + 1]
            if separator == "}":
                return result, pos + 1
            if separator != ",":
                raise ValueError(f"expected ',' or '}}' at character {pos}")
            pos = _skip(text, pos + 1)

    def array(self, pos: int, steps: list[str]) -> tuple[list[Any], int]:
        text = self.text
        result: list[Any] = []
        pos = _skip(text, pos + 1)
        if text[pos : pos + 1] == "]":
            return result, pos + 1
        while True:
            # Only a non-negative index can be known before the array's end.
            below = steps[1:] if steps[0] == str(len(result)) else None
            item, pos = self.value(pos, below)
            result.append(item)
            pos = _skip(text, pos)
            separator = text[pos : pos + 1]
            if separator == "]":
                return result, pos + 1
            if separator != ",":
                raise ValueError(f"expected ',' or ']' at character {pos}")
            pos = _skip(text, pos + 1)

    def records(self, pos: int) -> tuple[Sequence[Any], int]:
        text = self.text
        bounds: array[int] = array("q")
        pos = _skip(text, pos + 1)
        closed = text[pos : pos + 1] == "]"
        if closed:
            pos += 1
        while not closed:
            if len(bounds) // 2 >= self.max_records:
                raise TooManyRecords(
                    f"the page holds more than {self.limit_key} = {self.max_records} records"
                )
            try:
                _, end = _DECODER.raw_decode(text, pos)
            except RecursionError:
                end = _value_end(text, pos)
            except ValueError as exc:
                if isinstance(exc, json.JSONDecodeError):
                    # Broken structure: where this record ends cannot be known.
                    raise
                end = _value_end(text, pos)  # a number Python will not convert
            bounds.append(pos)
            bounds.append(end)
            pos = _skip(text, end)
            separator = text[pos : pos + 1]
            if separator == "]":
                pos += 1
                closed = True
            elif separator == ",":
                pos = _skip(text, pos + 1)
            else:
                raise ValueError(f"expected ',' or ']' at character {pos}")
        records = PageRecords(text, bounds)
        return (records if self.lazy else list(records)), pos


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos


def _value_end(text: str, pos: int) -> int:
    """Where the JSON value at ``pos`` ends, found without decoding it (its depth counted, not
    recursed into). Raises :class:`ValueError` when its structure is broken."""
    open_brackets: list[str] = []
    while True:
        pos = _skip(text, pos)
        token = _TOKEN.match(text, pos)
        if token is None:
            raise ValueError(f"not JSON at character {pos}")
        symbol = token.group()
        pos = token.end()
        if symbol in _CLOSING:
            open_brackets.append(_CLOSING[symbol])
        elif symbol in ("]", "}"):
            if not open_brackets or open_brackets.pop() != symbol:
                raise ValueError(f"unbalanced {symbol!r} at character {pos - 1}")
        elif symbol in (",", ":") and not open_brackets:
            raise ValueError(f"unexpected {symbol!r} at character {pos - 1}")
        if not open_brackets:
            return pos
