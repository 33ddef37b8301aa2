"""The one in-call retry policy of every outbound call, and the one ``Retry-After`` parser.

Bounded: ``max_tries`` counts every attempt. Waits grow from ``base_delay`` with full jitter up
to ``max_delay``. A ``retry_after`` on the error is honoured exactly; one longer than
``max_delay`` ends the attempts at once, so the caller reschedules instead of blocking a thread.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar, overload

import backoff

from poller.domain.retry_after import parse_retry_after

__all__ = ["RetryPolicy", "capped_wait", "parse_retry_after"]

T = TypeVar("T")
log = logging.getLogger(__name__)


@overload
def capped_wait(seconds: float, *, cap: float, who: str, setting: str) -> float: ...
@overload
def capped_wait(seconds: None, *, cap: float, who: str, setting: str) -> None: ...
@overload
def capped_wait(seconds: float | None, *, cap: float, who: str, setting: str) -> float | None: ...
def capped_wait(seconds: float | None, *, cap: float, who: str, setting: str) -> float | None:
    """A wait a server asked for (Retry-After, a rate-limit reset), never longer than ``cap``.

    Cutting it is logged, naming ``setting``: a hostile or broken server must not pause the
    daemon for years, and the operator should see that its wish was not followed.
    """
    if seconds is None or seconds <= cap:
        return seconds
    log.warning(
        "%s asked for a wait of %.0f s; waiting %.0f s instead, the cap %s sets",
        who,
        seconds,
        cap,
        setting,
    )
    return cap


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False, compare=False)
    jitter: Callable[[float], float] = field(default=backoff.full_jitter, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_tries < 1:
            raise ValueError("max_tries counts the first attempt, so it is at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("retry delays cannot be negative")

    @classmethod
    def once(cls) -> RetryPolicy:
        """No retries: for callers that retry at a level of their own."""
        return cls(max_tries=1)

    def wait_before(self, retry: int, error: BaseException) -> float | None:
        """Seconds to wait before retry number ``retry`` (0-based), or None to give up now."""
        hint = getattr(error, "retry_after", None)
        if hint is not None:
            hint = float(hint)
            return None if hint > self.max_delay else hint
        return float(self.jitter(min(self.max_delay, self.base_delay * 2**retry)))

    def call(
        self,
        fn: Callable[[], T],
        *,
        retry_on: tuple[type[BaseException], ...],
        on_retry: Callable[[BaseException, int, float], None] | None = None,
        should_retry: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """``fn()``, tried again after errors of ``retry_on`` while the policy allows.

        ``on_retry(error, tries_so_far, wait)`` is told before each wait; by default a debug
        line is logged: the caller reports the outcome once, so a failure that retrying does
        not cure is one line where operators look, not one per try. The error's own message
        says what was being done (the HTTP client's errors start with it), so nothing is put
        in front of it here.
        """
        tries = 0
        while True:
            tries += 1
            try:
                return fn()
            except retry_on as error:
                if tries >= self.max_tries:
                    raise
                if should_retry is not None and not should_retry(error):
                    raise
                wait = self.wait_before(tries - 1, error)
                if wait is None:
                    raise
                if on_retry is not None:
                    on_retry(error, tries, wait)
                else:
                    log.debug(
                        "%s; retry %d of %d in %.2f s",
                        error,
                        tries,
                        self.max_tries - 1,
                        wait,
                    )
                self.sleep(wait)
