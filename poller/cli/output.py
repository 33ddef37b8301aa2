"""How the CLI writes for people: tables that fit the terminal, colour only where it is seen.

On a terminal, a table is as wide as the terminal (long cells such as errors wrap) and call
states are coloured, unless ``NO_COLOR`` is set. Piped into a file or another program (scripts
and the tests read it), it is plain text without escape codes, one row per line.

Provider data is shown clean, on a terminal or not (:mod:`poller.domain.printable`): a table
cell, or a value quoted in a line with :func:`shown`, has its control characters escaped (a
newline as ``\n``, ESC as ``\x1b``), and text in square brackets is never read as rich markup.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import IO, TYPE_CHECKING, Any

import click

from poller.domain.printable import printable

if TYPE_CHECKING:
    from rich.box import Box
    from rich.text import Text

# What a state looks like on a colour terminal; pending and downloaded stay plain.
STATE_STYLES = {"uploaded": "green", "failed": "red", "skipped": "yellow dim"}
# Columns whose cells are call states.
STATE_COLUMNS = frozenset({"state", "from", "to"})
# When a table is wider than the terminal, its widest columns (errors, messages) wrap first; no
# column gets narrower than its longest word (an id, a state, a date), up to this many characters.
LONGEST_UNBROKEN = 10
# Each column's right padding plus the divider's space (the last column has no divider).
COLUMN_GAP = 2
# Piped, rows are never wrapped: one row, one line.
UNLIMITED_WIDTH = 100_000
DEFAULT_TERMINAL_WIDTH = 80


@cache
def plain_box() -> Box:
    """The header underlined with dashes, columns apart by spaces: plain ASCII, as tables were.

    Rich is imported when a table is drawn, not with the CLI (see :mod:`poller.cli.root`)."""
    from rich.box import Box

    return Box(
        "    \n"  # top
        "    \n"  # head
        " - -\n"  # head_row: dashes under each column and its padding, a space between columns
        "    \n"  # mid
        "    \n"  # row
        "    \n"  # foot_row
        "    \n"  # foot
        "    \n",  # bottom
        ascii=True,
    )


_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)


def is_terminal(stream: IO[str]) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def colour_wanted(stream: IO[str]) -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    return is_terminal(stream) and not os.environ.get("NO_COLOR")


def table_width(stream: IO[str]) -> int:
    """On a terminal, ``COLUMNS`` when set, else the terminal's width. Piped, no limit: a
    script reads one row per line whatever ``COLUMNS`` its environment happens to carry."""
    if not is_terminal(stream):
        return UNLIMITED_WIDTH
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        size = os.get_terminal_size(stream.fileno()).columns
    except OSError:  # a terminal that does not say its size
        size = 0
    return size or DEFAULT_TERMINAL_WIDTH


def render_table(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], *, width: int, colour: bool
) -> str:
    """The table as text: ANSI-coloured when ``colour``, otherwise plain and stable."""
    from rich.console import Console
    from rich.table import Table

    cells = [[cell_text(value) for value in row] for row in rows]
    columns = [[header, *(row[index] for row in cells)] for index, header in enumerate(headers)]
    widths = fitted_widths(
        natural=[
            max(_width(line) for text in column for line in text.split("\n")) for column in columns
        ],
        least=[
            min(
                max((_width(word) for text in column for word in text.split()), default=1),
                LONGEST_UNBROKEN,
            )
            for column in columns
        ],
        available=width - COLUMN_GAP * len(headers) + 1,
    )
    # Padding on the right only: with the space of the divider, columns are two spaces apart.
    table = Table(box=plain_box(), show_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for header, column_width in zip(headers, widths, strict=True):
        table.add_column(header, width=column_width, overflow="fold")
    for row in cells:
        table.add_row(
            *(_styled(text, header, colour) for text, header in zip(row, headers, strict=True))
        )
    console = Console(
        # Wider than asked only when even the narrowest columns do not fit: text is never cut.
        width=max(width, sum(widths) + COLUMN_GAP * len(headers)),
        color_system="standard" if colour else None,
        force_terminal=colour,
        highlight=False,
        markup=False,
        emoji=False,
    )
    with console.capture() as captured:
        console.print(table)
    # Cells are padded to the column's width; the padding at the end of a line is noise.
    return _TRAILING_SPACE.sub("", captured.get()).rstrip("\n")


def fitted_widths(natural: Sequence[int], least: Sequence[int], available: int) -> list[int]:
    """Each column's width: its natural width when all fit, otherwise the widest columns are
    narrowed first, to one common width, but none below its ``least``."""
    if sum(natural) <= available:
        return list(natural)

    def at(level: int) -> list[int]:
        return [min(n, max(level, low)) for n, low in zip(natural, least, strict=True)]

    # The widest common level at which the table fits (at level 0 every column is at its least).
    low, high = 0, max(natural)
    while low < high:
        middle = (low + high + 1) // 2
        if sum(at(middle)) <= available:
            low = middle
        else:
            high = middle - 1
    return at(low)


def emit_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    stream = sys.stdout
    click.echo(
        render_table(rows, headers, width=table_width(stream), colour=colour_wanted(stream)),
        color=True,
    )


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%SZ")
    return printable(str(value))


def shown(value: Any) -> str:
    """A value from the provider, Siro or the database, as a line of CLI text quotes it: on
    one line, unable to drive the terminal."""
    return cell_text(value)


def _width(text: str) -> int:
    from rich.cells import cell_len

    return cell_len(text)  # the columns a text takes on a terminal (wide characters take two)


def _styled(text: str, header: str, colour: bool) -> Text:
    from rich.text import Text

    # Text, not a str: a cell is shown as it is, "[...]" included, never read as markup.
    if colour and header in STATE_COLUMNS:
        return Text(text, style=STATE_STYLES.get(text, ""))
    return Text(text)
