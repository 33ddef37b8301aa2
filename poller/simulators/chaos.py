"""Random faults for the fake servers, reproducible from a seed."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Literal

Mishap = Literal["server_error", "rate_limited", "drop"]


@dataclass
class Chaos:
    """Each request independently fails with the given probabilities.

    ``server_error`` answers 500 or 503, ``rate_limited`` answers 429 with a short
    Retry-After, ``drop`` closes the connection without an answer. ``after_effect`` is the share
    of failures that happen after the server acted on the request (the answer is lost, the
    work is done), where the route allows it.
    """

    server_error: float = 0.0
    rate_limited: float = 0.0
    drop: float = 0.0
    after_effect: float = 0.5
    seed: int = 1
    injected: dict[str, int] = field(default_factory=dict)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def pick(self) -> tuple[Mishap, bool] | None:
        """A mishap for the next request, and whether it strikes after the server acted."""
        with self._lock:
            roll = self._rng.random()
            after = self._rng.random() < self.after_effect
            mishap: Mishap | None = None
            if roll < self.server_error:
                mishap = "server_error"
            elif roll < self.server_error + self.rate_limited:
                mishap = "rate_limited"
            elif roll < self.server_error + self.rate_limited + self.drop:
                mishap = "drop"
            if mishap is None:
                return None
            self.injected[mishap] = self.injected.get(mishap, 0) + 1
            return mishap, after
