"""`siro-poller db backup`: a consistent copy of a SQLite state database while it is in use.

SQLite's online backup API copies the database as one read transaction sees it: the daemon
goes on writing (in WAL mode a reader never blocks the writer), and the copy holds every
transaction committed before the backup began and none after. Copying the file with ``cp``
instead can catch a write half done, or miss what still sits in the ``-wal`` file.
PostgreSQL has ``pg_dump`` for this (docs/operations/data-lifecycle.md).
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SqliteBackup:
    path: Path
    size_bytes: int
    calls: int
    integrity: str


def backup_sqlite(database: Path, target: Path) -> SqliteBackup:
    """Copy ``database`` to ``target`` (which must not exist), private to its owner, and check
    the copy. Raises FileExistsError for an existing target, FileNotFoundError for a missing
    database."""
    if not database.is_file():
        raise FileNotFoundError(f"no SQLite database at {database}")
    # Created here, exclusively and private: the copy holds what the database holds.
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        with (
            closing(sqlite3.connect(database, timeout=30)) as source,
            closing(sqlite3.connect(target)) as copy,
        ):
            source.backup(copy)  # all pages in one step: one consistent snapshot
            # A standalone file: no -wal beside it to lose when it is moved.
            copy.execute("PRAGMA journal_mode=DELETE")
            integrity = copy.execute("PRAGMA integrity_check").fetchone()[0]
            calls = copy.execute("SELECT count(*) FROM calls").fetchone()[0]
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return SqliteBackup(target, target.stat().st_size, calls, integrity)
