"""Removing the spool files no call owns: what a worker killed mid-step left behind.

Run when the worker starts, after a lease was lost, and when a lease that spared files runs
out. Safe beside other workers sharing the spool: a file of a row under a live lease stays,
and so does a file written since the sweep began (a row claimed meanwhile).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from poller.domain.records import Call
from poller.domain.spool import call_id_of, is_orphan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SpoolSweep:
    removed: int
    # When the earliest lease that spared files here runs out: the sweep is due again then,
    # for a worker killed while holding it (its files have no other way out).
    again_at: datetime | None


def sweep_spool(
    spool: Path,
    get_call: Callable[[int], Call | None],
    now: datetime,
    *,
    in_flight: Collection[int] = (),
) -> SpoolSweep:
    """Delete the files of ``spool`` no row owns."""
    began = time.time()
    removed = freed = 0
    leases: list[datetime] = []
    for entry in sorted(spool.iterdir()):
        call_id = call_id_of(entry.name)
        if call_id is None or not entry.is_file():
            continue  # not a file the worker wrote: not the sweep's to judge
        call = get_call(call_id)
        if not is_orphan(entry.name, call, now, in_flight=in_flight):
            if call is not None and call.id not in in_flight and call.lease_expires_at:
                leases.append(call.lease_expires_at)
            continue
        try:
            size = entry.stat()
            if size.st_mtime >= began:
                continue  # written since the rows were read: a claim made meanwhile
            entry.unlink()
        except FileNotFoundError:
            continue  # its worker removed it meanwhile
        removed += 1
        freed += size.st_size
    if removed:
        log.warning(
            "removed %d files (%d bytes) from the spool that no call owns: left by a worker "
            "stopped mid-step",
            removed,
            freed,
        )
    return SpoolSweep(removed, min((at for at in leases if at > now), default=None))


def remove_spool_file(path: str | None) -> None:
    """Remove a call's file from the spool, if it has one and it is still there."""
    if path:
        Path(path).unlink(missing_ok=True)


def remove_call_files(spool: Path, call_id: int, spool_path: str | None) -> int:
    """Remove every file of ``call_id`` from the spool (its recording, a part download, a
    conversion) and its ``spool_path`` wherever it is; returns how many there were."""
    removed = 0
    candidates = [Path(spool_path)] if spool_path else []
    if spool.is_dir():
        candidates += [entry for entry in spool.iterdir() if call_id_of(entry.name) == call_id]
    for path in dict.fromkeys(candidates):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        removed += 1
    return removed


def sha256_of(path: Path) -> str:
    """The SHA-256 of a spool file, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
