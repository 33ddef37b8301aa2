"""The access-token cache shared by every OAuth authenticator and the Siro client.

One token per credential, handed to every thread; minted once at a time, ahead of expiry.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True, eq=False)
class AccessToken:
    """An OAuth access token. Compared by identity: each mint is a new object.

    ``value`` is left out of ``repr`` so a token never reaches a log through a stray ``%r``.
    """

    value: str = field(repr=False)
    expires_at: datetime
    token_id: str | None = None


class AccessTokenCache:
    """Hands out a valid token, minting a new one ahead of expiry or after a 401.

    The lock is held while minting, so threads that arrive meanwhile wait for that token
    instead of minting their own. If that mint fails, the threads that waited for it get the
    same error rather than each trying again in turn.
    """

    def __init__(
        self,
        mint: Callable[[], AccessToken],
        *,
        clock: Callable[[], datetime],
        refresh_margin: timedelta,
    ) -> None:
        self._mint = mint
        self._clock = clock
        self._refresh_margin = refresh_margin
        self._lock = threading.Lock()
        self._token: AccessToken | None = None
        self._mints_finished = 0
        self._last_failure: Exception | None = None

    def get(self) -> AccessToken:
        mints_finished_before = self._mints_finished
        with self._lock:
            token = self._token
            if token is not None and self._clock() < token.expires_at - self._refresh_margin:
                return token
            if self._last_failure is not None and self._mints_finished != mints_finished_before:
                # A mint finished while this thread waited for the lock, and it failed.
                # A copy, because one exception object must not be raised in two threads.
                raise copy.copy(self._last_failure)
            try:
                self._token = self._mint()
                self._last_failure = None
            except Exception as exc:
                self._token = None
                self._last_failure = exc
                raise
            finally:
                self._mints_finished += 1
            return self._token

    def invalidate(self, rejected: AccessToken) -> None:
        """Forget ``rejected`` (the server answered 401 to it), unless already replaced."""
        with self._lock:
            if self._token is rejected:
                self._token = None

    def invalidate_value(self, rejected_value: str) -> bool:
        """Forget the current token if its value is ``rejected_value``; True if it was."""
        with self._lock:
            if self._token is not None and self._token.value == rejected_value:
                self._token = None
                return True
            return False

    def current_value(self) -> str | None:
        token = self._token
        return token.value if token is not None else None
