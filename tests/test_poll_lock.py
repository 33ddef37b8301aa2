"""The PostgreSQL poll lock: one holder per provider, freed when the holder's session ends."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from poller.adapters.sql.postgres import PostgresPollLock, lock_key


@pytest.fixture
def postgres(request: pytest.FixtureRequest) -> Engine:
    engine: Engine = request.getfixturevalue("_postgres_engine")
    return engine


def test_one_holder_per_provider_and_the_next_takes_over(postgres: Engine) -> None:
    first, second = PostgresPollLock(postgres, "aircall"), PostgresPollLock(postgres, "aircall")
    other_provider = PostgresPollLock(postgres, "dialpad")
    try:
        assert first.try_acquire()
        assert first.try_acquire()  # still held: checked, not taken twice
        assert not second.try_acquire()
        assert other_provider.try_acquire()  # each provider has its own poller

        first.release()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        for lock in (first, second, other_provider):
            lock.release()


def test_the_lock_is_freed_when_the_holders_session_ends(postgres: Engine) -> None:
    holder, standby = PostgresPollLock(postgres, "aircall"), PostgresPollLock(postgres, "aircall")
    try:
        assert holder.try_acquire()
        assert not standby.try_acquire()
        # What the server does when the holding process is SIGKILLed: its session ends.
        with postgres.connect() as admin:
            admin.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND objid = "
                    "(hashtextextended(:key, 0) & 4294967295)::oid"
                ),
                {"key": lock_key("aircall")},
            )
            admin.commit()
        assert standby.try_acquire()
        assert not holder.try_acquire()  # it notices it lost the lock with its connection
    finally:
        holder.release()
        standby.release()
