"""Engines for the state database, tuned per backend."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url


def make_engine(url: str, *, echo: bool = False, pool_size: int = 5) -> Engine:
    """An engine whose errors never show the statement's parameters: they hold provider data
    (a page's worth of it, megabytes on one log line) and the calls' URLs.

    ``pool_size`` connections stay open between uses: as many as the threads that use the
    database at once (the worker's, the drain loop, the poll), or each use beyond the pool
    opens a connection and closes it again (on PostgreSQL, a server process each time).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, parsed.database, echo=echo, pool_size=pool_size)
    return create_engine(
        url,
        echo=echo,
        pool_pre_ping=True,
        pool_size=pool_size,
        future=True,
        hide_parameters=True,
    )


def _sqlite_engine(url: str, database: str | None, *, echo: bool, pool_size: int) -> Engine:
    pool: dict[str, Any] = {}
    if database and database != ":memory:":
        # The database holds the audit trail: keep it private to the service user.
        Path(database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pool["pool_size"] = pool_size  # a file's engine pools its connections (QueuePool)
        # The connection given back last is taken next: as this process writes one
        # transaction at a time (write_transaction), its writes keep to one connection, whose
        # page cache stays valid (another connection's write would make it read pages again).
        pool["pool_use_lifo"] = True
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"timeout": 30},
        hide_parameters=True,
        **pool,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads and then writes can fail with SQLITE_BUSY whatever
        # the busy timeout; writers therefore take the lock up front with BEGIN IMMEDIATE.
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")

    if database and database != ":memory:" and os.name == "posix":
        Path(database).touch(mode=0o600, exist_ok=True)
    return engine


# SQLite takes one writer at a time, and a writer that finds the lock taken polls for it,
# sleeping 1, 2, 5, 10, 15, 20, 25... ms between tries: with the worker's threads writing
# together, those sleeps, not the writes, set the pace. The threads of one process therefore
# queue for the file on a lock of their own, which hands it on the moment it is free; other
# processes still meet SQLite's lock and its busy timeout. Reentrant: a thread that nests two
# write transactions meets SQLite's busy timeout, as before, not a deadlock of its own.
_sqlite_writers: dict[str, threading.RLock] = {}
_sqlite_writers_guard = threading.Lock()


def _writer_turn(engine: Engine) -> AbstractContextManager[object]:
    if engine.dialect.name != "sqlite":
        return nullcontext()
    database = engine.url.database or ":memory:"
    turn = _sqlite_writers.get(database)
    if turn is None:
        with _sqlite_writers_guard:
            turn = _sqlite_writers.setdefault(database, threading.RLock())
    return turn


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the single writer lock from the start.

    On SQLite the connection is taken from the pool once the writer's turn has come, so this
    process's writes go through the one connection the pool hands out first (see
    ``pool_use_lifo``): a connection that was the last to write reads no page again. Taking one
    before the turn spread the writes over every connection of the pool, each reading back the
    pages the others had changed.
    """
    with _writer_turn(engine):
        connection = engine.connect().execution_options(sqlite_begin="IMMEDIATE")
        with connection, connection.begin():
            yield connection


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection, connection.begin():
        yield connection


@contextmanager
def single_statement(engine: Engine) -> Iterator[Connection]:
    """A connection whose every statement commits on its own (PostgreSQL's autocommit): one
    round trip for a write that is one statement, instead of BEGIN, the statement and COMMIT.

    Only for statements that are a whole transaction by themselves.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection
