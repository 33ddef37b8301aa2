"""Clean text out: provider data shown to people with its control characters made visible.

A call id, a contact name or an error message comes from a phone system, which may be hostile.
Written raw, a newline in it forges a whole log line (``... INFO poller.core.worker: call 99
(FORGED): uploaded``) and an ESC sequence retitles, clears or links the operator's terminal.
Human and journald log lines and every CLI table and detail view therefore show such a
character escaped, as Python writes it in a string literal: ``\\n``, ``\\x1b``, ``\\u2028``.
JSON output needs none of this: JSON escapes control characters itself.

Backslashes are left alone: they are harmless, and doubling them would garble Windows paths
and regular expressions in messages.
"""

from __future__ import annotations

import unicodedata

# C0 and C1 controls and DEL (category Cc), the line and paragraph separators (which
# str.splitlines and some viewers break lines on), and the bidirectional embeddings, overrides
# and isolates, which reorder what a terminal shows ("Trojan Source").
_BIDI_CONTROLS = frozenset(range(0x202A, 0x202F)) | frozenset(range(0x2066, 0x206A))
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(code: int) -> str:
    char = chr(code)
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_ESCAPES = {
    code: _escape(code)
    for code in range(0x3000)
    if unicodedata.category(chr(code)) in ("Cc", "Zl", "Zp") or code in _BIDI_CONTROLS
}


def printable(text: str) -> str:
    """``text`` with every control character escaped, so that it stays on one line and
    cannot drive a terminal."""
    return text.translate(_ESCAPES)


def shortened(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, saying how many were cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters cut]"
