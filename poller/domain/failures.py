"""Why a worker step did not succeed, in the terms the state table records.

``kind`` goes to ``calls.error_kind`` and is meant for SQL (``GROUP BY error_kind``);
``message`` goes to ``calls.last_error`` and tells a person what to do. Neither may carry a
secret or a signed URL.
"""

from __future__ import annotations

from enum import StrEnum

from poller.domain.pauses import PausedService

# The error kinds of a recording that is not usable audio: each fails the call for good (the
# same bytes would come again), and none is downloaded again unless a person requeues it.
NOT_AUDIO = "not_audio"  # an error page, JSON, an empty file, a video
UNSUPPORTED_FORMAT = "unsupported_format"  # audio no decoder here reads, or convert = "never"
CORRUPT_AUDIO = "corrupt_audio"  # truncated, damaged, or made to break the audio library
AUDIO_BOMB = "audio_bomb"  # decodes to far more than it declares, or costs too much to convert


class Disposition(StrEnum):
    RETRY = "retry"  # transient: try again after a backoff, while attempts remain
    FAIL = "fail"  # permanent: park as failed; a person fixes the cause and requeues
    SKIP = "skip"  # policy: nothing to upload, by configuration or by the call's nature
    # The credentials, not the call: the row goes back as it was, no attempt spent, and the
    # work of that service pauses until the credentials work again (poller.domain.pauses).
    PAUSE = "pause"


class StepFailure(Exception):
    def __init__(
        self,
        kind: str,
        message: str,
        disposition: Disposition,
        *,
        http_status: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.disposition = disposition
        self.http_status = http_status
        self.retry_after_seconds = retry_after_seconds
        # Whose credentials were refused, for a PAUSE.
        self.paused_service: PausedService | None = None
        # The step the event names, when not the one the row's state implies (a conversion
        # fails while the row is still pending download).
        self.step: str | None = None

    @classmethod
    def retry(
        cls,
        kind: str,
        message: str,
        *,
        http_status: int | None = None,
        retry_after_seconds: float | None = None,
    ) -> StepFailure:
        return cls(
            kind,
            message,
            Disposition.RETRY,
            http_status=http_status,
            retry_after_seconds=retry_after_seconds,
        )

    @classmethod
    def fail(cls, kind: str, message: str, *, http_status: int | None = None) -> StepFailure:
        return cls(kind, message, Disposition.FAIL, http_status=http_status)

    @classmethod
    def skip(cls, kind: str, message: str) -> StepFailure:
        return cls(kind, message, Disposition.SKIP)

    @classmethod
    def pause(
        cls, kind: str, message: str, service: PausedService, *, http_status: int | None = None
    ) -> StepFailure:
        failure = cls(kind, message, Disposition.PAUSE, http_status=http_status)
        failure.paused_service = service
        return failure
