"""The replay guard: a verified delivery is acted on once, however often it is sent again.

A vendor's signature proves who made a request, not that it is new: a captured event resent
verifies again. Each verified delivery names itself (:attr:`Verified.replay_key`: its signature
or event id); a key seen within the TTL is refused. The TTL outlasts the vendors' timestamp
window (twice the largest ``max_event_age_seconds``), so a resend is refused either as stale or
as a replay. The set is bounded: at its cap the oldest key goes first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MAX_KEYS = 100_000


class ReplayGuard:
    """A bounded set of (provider, replay key), each kept for ``ttl_seconds``."""

    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_keys = max_keys
        self._monotonic = monotonic
        # Insertion order is expiry order, as every key lives for the same TTL.
        self._expiries: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, provider: str, key: str) -> bool:
        """Whether ``key`` is new for ``provider``; it is remembered either way."""
        now = self._monotonic()
        with self._lock:
            self._forget_expired(now)
            entry = (provider, key)
            if entry in self._expiries:
                return False
            self._expiries[entry] = now + self.ttl_seconds
            while len(self._expiries) > self.max_keys:
                self._expiries.popitem(last=False)
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiries)

    def _forget_expired(self, now: float) -> None:
        while self._expiries:
            entry, expires = next(iter(self._expiries.items()))
            if expires > now:
                return
            del self._expiries[entry]
