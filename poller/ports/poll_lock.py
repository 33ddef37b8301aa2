"""Which process polls a provider, when several share one database."""

from __future__ import annotations

from typing import Protocol


class PollLock(Protocol):
    """Held by at most one process per provider at a time, and freed when that process dies."""

    def try_acquire(self) -> bool:
        """Whether this process holds the lock now: takes it if free, and checks it is still
        held if this process took it before. Never waits for another holder."""
        ...

    def release(self) -> None: ...


class NoPollLock:
    """Every process polls (one host, one SQLite database: the daemons there share the work
    through SQLite's single writer, and a second poller only lists the same calls again)."""

    def try_acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass
