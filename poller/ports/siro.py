"""The Siro port: the three upload steps, the reads reconciliation needs, and the error families.

The upload is three calls, not one, because the worker has to record "create is being sent"
in its database before step 3, and after a lost answer adopt the recording Siro may already
have made instead of creating it again.

Errors come in three kinds, and which one is raised is the whole retry contract:

- :class:`SiroTransientError`: try the same step again later (connection failures, timeouts,
  5xx, 429). The client already retried in-call a bounded number of times.
- :class:`SiroPermanentError`: trying again will not help until something changes (other 4xx,
  a 422 ZodError, an unexpected answer). Its subclass :class:`SiroCredentialError` is about
  the credentials, not the call: the worker pauses on it and spends no attempt.
- :class:`SiroCreateOutcomeUnknown`: the create request may have reached Siro and its answer
  was lost. It is deliberately *not* a transient error, so nothing retries it blindly; the
  worker looks for the recording before deciding.
- :class:`SiroCreateUnconfirmed` (a kind of the above): Siro answered the create with a 2xx
  that names no recording id. Siro took the request, so it is never sent again: the worker
  only looks the recording up by its title, and parks the row for review if it never appears.

No error text ever holds a token, a secret or a signed URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from poller.domain.siro import (
    AudioFormat,
    ConversationConfiguration,
    IntegrationConnection,
    RecordingCreate,
    RecordingSummary,
    SignedUpload,
    SiroUser,
)


@dataclass(frozen=True, slots=True)
class ZodIssue:
    """One validation problem from a 422: where in the body, and what Siro says about it."""

    message: str
    path: tuple[str | int, ...] = ()
    code: str | None = None
    keys: tuple[str, ...] = ()  # set for "unrecognized_keys": the keys Siro refused

    def describe(self) -> str:
        where = ".".join(str(part) for part in self.path) or "body"
        return f"{where}: {self.message}"


class SiroError(Exception):
    """Anything that went wrong talking to Siro. ``step`` names the call, e.g. ``signed-url``."""

    def __init__(self, message: str, *, step: str = "", http_status: int | None = None) -> None:
        super().__init__(message)
        self.step = step
        self.http_status = http_status


class SiroTransientError(SiroError):
    """Worth trying again later; ``retry_after`` is Siro's own hint in seconds, when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        step: str = "",
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, step=step, http_status=http_status)
        self.retry_after = retry_after


class SiroHostUnresolved(SiroTransientError):
    """A Siro host name does not resolve: tried again at the caller's next turn (DNS outages
    end), never within the step, where seconds do not fix a typo."""


class SiroPermanentError(SiroError):
    """Trying the same request again will fail the same way; ``issues`` holds a 422's details."""

    def __init__(
        self,
        message: str,
        *,
        step: str = "",
        http_status: int | None = None,
        issues: tuple[ZodIssue, ...] = (),
    ) -> None:
        super().__init__(message, step=step, http_status=http_status)
        self.issues = issues


class SiroCredentialError(SiroPermanentError):
    """Siro refused the credentials, not the request: a rejected token mint, a 401 that a
    freshly minted token gets too, or a 403; or a credential setting is missing. The message
    names the settings to check, never a secret.

    It says nothing about the call being uploaded, so the worker pauses instead of failing
    the call, and resumes once a mint succeeds again.
    """


class SiroCreateOutcomeUnknown(SiroError):
    """The create request may have been received and acted on, but no usable answer came back.

    Raised for a connection that failed after it was established (reset, closed without an
    answer), a read timeout or a 5xx. A request is counted as "not sent" only when the TCP
    connection was never made (connect timeout, connection refused, name resolution): those
    are retried, everything else may have arrived.
    """


class SiroCreateUnconfirmed(SiroCreateOutcomeUnknown):
    """Siro accepted the create (a 2xx answer) but named no recording id.

    Unlike a lost answer, this one proves Siro received the request, so the create must not
    be sent again, however long the recording takes to show up in Siro's list.
    """


class SiroPort(Protocol):
    def request_upload(self, file_type: AudioFormat, size_bytes: int) -> SignedUpload:
        """Step 1: a signed URL to PUT exactly ``size_bytes`` bytes of ``file_type`` to."""
        ...

    def put_audio(
        self, upload: SignedUpload, path: Path, file_type: AudioFormat, size_bytes: int
    ) -> SignedUpload:
        """Step 2: stream the file at ``path`` to the signed URL.

        Returns the upload that was actually used. When ``upload`` had already expired before
        the PUT began, that is a freshly requested one, and its ``download_url`` (not the old
        one) is the ``file_url`` for step 3. Raises ``ValueError`` if the file's size on disk
        is not ``size_bytes``.
        """
        ...

    def create_recording(self, body: RecordingCreate) -> str:
        """Step 3: create the recording from the uploaded file; returns the new recording id.

        Never retried once the request may have reached Siro: that raises
        :class:`SiroCreateOutcomeUnknown`, or :class:`SiroCreateUnconfirmed` when Siro
        answered 2xx without a recording id.
        """
        ...

    def find_recordings(
        self, created_after: datetime, created_before: datetime | None = None
    ) -> list[RecordingSummary]:
        """Recordings whose ``dateCreated`` lies strictly between the bounds, every page."""
        ...

    def get_recording(self, recording_id: str) -> RecordingSummary | None:
        """One recording, or ``None`` when Siro does not know the id."""
        ...

    def verify_credentials(self) -> None:
        """Mint a fresh access token now, whatever is cached.

        Raises :class:`SiroCredentialError` while Siro refuses the credentials; the worker
        calls it to find out when a credential pause can end.
        """
        ...

    def list_users(self) -> list[SiroUser]: ...

    def list_connections(self) -> list[IntegrationConnection]: ...

    def list_conversation_configurations(self) -> list[ConversationConfiguration]: ...
