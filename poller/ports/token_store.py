"""Where a rotating OAuth refresh token lives between refreshes, restarts and processes.

A provider whose OAuth server rotates refresh tokens (each refresh answers a new one and
invalidates the old) cannot keep its token in config: the seed the operator wrote there is
spent by the first refresh. The authenticator keeps the current token here instead, sealed
(encrypted by the authenticator before it reaches the store: the store only ever sees
ciphertext), with the access token it was refreshed with, so other processes reuse that one
instead of refreshing again.

One refresh at a time: :meth:`OAuthTokenStore.exclusive` holds a lock across processes sharing
the database (and across threads) while the authenticator reads the row, asks the token
endpoint and writes the answer. A process that waited re-reads the row and uses what the other
one stored.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol


class TokenStoreError(Exception):
    """The store could not be read or written (database down, schema not upgraded). The
    message never holds a token."""


@dataclass(frozen=True, slots=True)
class SealedTokens:
    """One provider's OAuth tokens as stored: both tokens sealed, never in clear.

    ``seed_fingerprint`` identifies the configured seed the refresh token descends from; a
    different seed in config means the operator started over, and the seed wins.
    """

    seed_fingerprint: str
    refresh_token: str = field(repr=False)
    refreshed_at: datetime
    access_token: str | None = field(default=None, repr=False)
    access_expires_at: datetime | None = None


class TokenSlot(Protocol):
    """One provider's row, read and written while :meth:`OAuthTokenStore.exclusive` holds it."""

    def read(self) -> SealedTokens | None: ...

    def write(self, tokens: SealedTokens) -> None: ...


class OAuthTokenStore(Protocol):
    def peek(self, key: str) -> SealedTokens | None:
        """The row as it is now, without waiting for a refresh under way."""
        ...

    def exclusive(self, key: str) -> AbstractContextManager[TokenSlot]:
        """The row of ``key`` (the provider's name), held against every other process and
        thread until the block ends; what the block wrote is kept only if it ends normally.
        Raises :class:`TokenStoreError` when the lock cannot be had in a bounded time."""
        ...
