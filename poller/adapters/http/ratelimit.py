"""A proactive rate limiter: waits out the provider's published limits instead of earning 429s.

Fed by every response's headers (remaining, limit, reset or window length, Retry-After: see
:meth:`poller.domain.call_record.RateLimitHints.from_headers`) and by 429s. While a penalty or
an exhausted window runs, :meth:`RateLimiter.acquire` blocks every thread sharing the limiter,
so nothing is sent. A wait longer than ``max_wait`` is not sat out: ``acquire`` raises
:class:`HttpTransient` with ``retry_after`` and the caller reschedules. No pause lasts longer
than ``max_pause``, whatever the headers say.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime

from poller.adapters.http.errors import HttpTransient
from poller.adapters.http.retry import capped_wait
from poller.domain.call_record import RateLimitHints
from poller.domain.clock import utcnow
from poller.domain.retry_after import DEFAULT_MAX_RETRY_AFTER_SECONDS

log = logging.getLogger(__name__)


class RateLimiter:
    def __init__(
        self,
        *,
        max_wait: float = 30.0,
        rate: int | None = None,
        period: float = 1.0,
        penalty: float = 5.0,
        max_pause: float = DEFAULT_MAX_RETRY_AFTER_SECONDS,
        max_pause_key: str = "provider.max_retry_after_seconds",
        name: str = "the provider",
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], datetime] = utcnow,
    ) -> None:
        """``rate`` requests per ``period`` seconds, if the provider publishes a steady rate;
        ``penalty`` is the pause after a 429 that names no Retry-After; ``max_pause`` the
        longest pause any answer can impose (``max_pause_key`` names its setting)."""
        if rate is not None and rate < 1:
            raise ValueError("rate must be at least 1 request per period")
        self.max_wait = max_wait
        self.rate = rate
        self.period = period
        self.penalty = penalty
        self.max_pause = max_pause
        self.max_pause_key = max_pause_key
        self.name = name
        self._monotonic = monotonic
        self._sleep = sleep
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._blocked_until = 0.0
        self._sent: deque[float] = deque()

    def acquire(self) -> None:
        """Block until one request may be sent; raise HttpTransient if that is too far off."""
        while True:
            with self._lock:
                now = self._monotonic()
                wait = max(0.0, self._blocked_until - now)
                if self.rate is not None:
                    while self._sent and self._sent[0] <= now - self.period:
                        self._sent.popleft()
                    if len(self._sent) >= self.rate:
                        wait = max(wait, self._sent[0] + self.period - now)
                if wait <= 0:
                    if self.rate is not None:
                        self._sent.append(now)
                    return
                if wait > self.max_wait:
                    raise HttpTransient(
                        f"{self.name}'s rate limit asks for a pause of {wait:.0f} s, longer "
                        f"than the {self.max_wait:g} s a request waits; trying again later",
                        retry_after=wait,
                        may_have_been_sent=False,
                    )
            log.debug("waiting %.2f s for %s's rate limit", wait, self.name)
            self._sleep(wait)

    def observe(self, status: int, headers: Mapping[str, str]) -> None:
        """Learn from one answer: a 429 or an exhausted window pauses every sender."""
        now_wall = self._wall_clock()
        hints = RateLimitHints.from_headers(headers, now_wall)
        pause = 0.0
        window_reset = hints.exhausted and hints.reset_at is not None
        if status == 429 or status == 503:
            if hints.retry_after_seconds is not None:
                pause = hints.retry_after_seconds
            elif status == 429 and not window_reset:
                # A 429 that names its window's reset (Aircall's) waits for that, not longer.
                pause = self.penalty
        if window_reset and hints.reset_at is not None:
            pause = max(pause, (hints.reset_at - now_wall).total_seconds())
        elif hints.exhausted and hints.window_seconds is not None and status != 429:
            # No reset time, only the window's length: it may have just begun. (A 429 says
            # how long itself: Retry-After or the penalty.)
            pause = max(pause, hints.window_seconds)
        if pause > 0:
            self.pause_for(pause)

    def pause_for(self, seconds: float) -> None:
        seconds = capped_wait(
            seconds, cap=self.max_pause, who=self.name, setting=self.max_pause_key
        )
        with self._lock:
            self._blocked_until = max(self._blocked_until, self._monotonic() + seconds)
