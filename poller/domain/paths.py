"""Reading a value out of a JSON document by a dotted path, as the config names fields.

One reader for every configured path: the generic provider's field mapping and the CRM
object mapping (``[siro.crm] objects``) must agree on what ``legs.0.user.email`` means.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final


class _Missing:
    """The marker for "no such key": distinct from a key whose value is ``null``."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def dig(document: Any, path: str | None) -> Any:
    """The value at a dotted path (``data.calls``, ``user.0.email``), or :data:`MISSING`.

    A key is looked up in an object; a key of digits (negative too) indexes a list. No path
    means the document itself (a response body that is the list of calls).
    """
    if path is None:
        return document
    node = document
    for key in path.split("."):
        if isinstance(node, Mapping):
            if key not in node:
                return MISSING
            node = node[key]
        elif isinstance(node, list) and key.lstrip("-").isdigit():
            index = int(key)
            if not -len(node) <= index < len(node):
                return MISSING
            node = node[index]
        else:
            return MISSING
    return node


def present(value: Any) -> bool:
    """Whether a dug-up value says something: not missing, not ``null``, not ``""``."""
    return value is not MISSING and value is not None and value != ""
