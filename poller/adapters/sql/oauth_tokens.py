"""The SQL :class:`~poller.ports.token_store.OAuthTokenStore`: ``oauth_refresh_tokens``.

One refresh at a time across every process sharing the database:

- PostgreSQL: a transaction-scoped advisory lock on the provider's name
  (``pg_advisory_xact_lock``), taken before the row is read and held until the refreshed
  tokens are committed. An advisory lock rather than ``SELECT ... FOR UPDATE`` because the
  first refresh has no row to lock yet. ``lock_timeout`` bounds the wait.
- SQLite: ``BEGIN IMMEDIATE``, the database's one writer lock, held the same way (the other
  writers wait up to SQLite's busy timeout, 30 s; a token request normally takes well under
  a second). The threads of one process queue on the writer lock of
  :func:`~poller.adapters.sql.database.write_transaction` first.

The rows hold only what the authenticator sealed; this module never sees a token in clear.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from poller.adapters.sql.database import read_transaction, write_transaction
from poller.adapters.sql.models import oauth_refresh_tokens_table as tokens
from poller.ports.token_store import SealedTokens, TokenSlot, TokenStoreError

DEFAULT_LOCK_TIMEOUT_SECONDS = 120.0


def _store_error(exc: SQLAlchemyError) -> TokenStoreError:
    # The driver's text may quote parameters (sealed tokens): name only the kind of failure.
    detail = str(getattr(exc, "orig", None) or "").lower()
    if "oauth_refresh_tokens" in detail and ("no such table" in detail or "does not" in detail):
        return TokenStoreError(
            "the state database has no oauth_refresh_tokens table; run "
            "`siro-poller db upgrade` first"
        )
    if "lock timeout" in detail or "database is locked" in detail:
        return TokenStoreError(
            "another process held the OAuth token refresh too long; trying again later"
        )
    return TokenStoreError(
        f"the state database could not read or keep the OAuth tokens ({type(exc).__name__})"
    )


def _row(found: Any) -> SealedTokens | None:
    if found is None:
        return None
    return SealedTokens(
        seed_fingerprint=found.seed_fingerprint,
        refresh_token=found.refresh_token,
        refreshed_at=found.refreshed_at,
        access_token=found.access_token,
        access_expires_at=found.access_expires_at,
    )


def _read(connection: Connection, key: str) -> SealedTokens | None:
    return _row(connection.execute(select(tokens).where(tokens.c.provider == key)).first())


class _SqlTokenSlot:
    def __init__(self, connection: Connection, key: str) -> None:
        self._connection = connection
        self._key = key

    def read(self) -> SealedTokens | None:
        return _read(self._connection, self._key)

    def write(self, sealed: SealedTokens) -> None:
        values = {
            "seed_fingerprint": sealed.seed_fingerprint,
            "refresh_token": sealed.refresh_token,
            "access_token": sealed.access_token,
            "access_expires_at": sealed.access_expires_at,
            "refreshed_at": sealed.refreshed_at,
        }
        # The lock is held: nobody inserts the row between this update and the insert.
        changed = self._connection.execute(
            update(tokens).where(tokens.c.provider == self._key).values(**values)
        )
        if changed.rowcount == 0:
            self._connection.execute(insert(tokens).values(provider=self._key, **values))


class SqlOAuthTokenStore:
    def __init__(
        self, engine: Engine, *, lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS
    ) -> None:
        self.engine = engine
        self.lock_timeout_seconds = lock_timeout_seconds

    def peek(self, key: str) -> SealedTokens | None:
        try:
            with read_transaction(self.engine) as connection:
                return _read(connection, key)
        except SQLAlchemyError as exc:
            raise _store_error(exc) from None

    @contextmanager
    def exclusive(self, key: str) -> Iterator[TokenSlot]:
        try:
            with write_transaction(self.engine) as connection:
                if connection.dialect.name == "postgresql":
                    timeout_ms = max(1, round(self.lock_timeout_seconds * 1000))
                    # SET takes no parameters; the number is ours, not input.
                    connection.execute(text(f"SET LOCAL lock_timeout = {timeout_ms}"))
                    connection.execute(
                        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                        {"key": f"siro-poller oauth {key}"},
                    )
                yield _SqlTokenSlot(connection, key)
        except SQLAlchemyError as exc:
            raise _store_error(exc) from None
