"""Which files in the spool belong to which call, and which no call owns any more.

Every file the worker writes into the spool is named after its row: ``call-<id>.download``
while the recording streams in (``.download.part`` until it is complete), and
``call-<id>.<format>`` once downloaded or converted (the row's ``spool_path``). A worker
killed mid-step (SIGKILL, a power cut) leaves such files behind with nothing to remove them.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from pathlib import PurePath

from poller.domain.records import Call

_SPOOL_FILE = re.compile(r"call-(\d+)\.")


def download_name(call_id: int) -> str:
    return f"call-{call_id}.download"


def audio_name(call_id: int, audio_format: str) -> str:
    return f"call-{call_id}.{audio_format}"


def call_id_of(name: str) -> int | None:
    """The row a spool file belongs to; ``None`` for a file the worker never names."""
    match = _SPOOL_FILE.match(name)
    return int(match.group(1)) if match else None


def is_orphan(name: str, call: Call | None, now: datetime, *, in_flight: Collection[int]) -> bool:
    """Whether the spool file ``name`` of ``call`` (``None``: no such row) is owned by nobody.

    A row under a live lease owns every file named after it: a worker, maybe in another
    process sharing the spool, is writing them. Any other row owns only its ``spool_path``,
    the recording waiting for upload.
    """
    if call is None:
        return True
    if call.id in in_flight:
        return False
    if call.lease_expires_at is not None and call.lease_expires_at > now:
        return False
    return call.spool_path is None or PurePath(call.spool_path).name != name
