"""The life of a call row.

pending ──download──▶ downloaded ──upload──▶ uploaded
   │                      │
   └──────────┬───────────┘
              ▼
      failed (parked, `calls retry` requeues)   skipped (policy: nothing to upload)
"""

from __future__ import annotations

from enum import StrEnum


class CallState(StrEnum):
    PENDING = "pending"
    DOWNLOADED = "downloaded"
    UPLOADED = "uploaded"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({CallState.UPLOADED, CallState.FAILED, CallState.SKIPPED})
# Rows a worker may pick up when their next_attempt_at has come.
WORKABLE_STATES = frozenset({CallState.PENDING, CallState.DOWNLOADED})
# What `calls retry` may put back in the queue. An uploaded row never goes back: it is in Siro.
REQUEUEABLE_STATES = frozenset({CallState.FAILED, CallState.SKIPPED})


class Direction(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class RecordingState(StrEnum):
    READY = "ready"
    PENDING = "pending"
    NONE = "none"
