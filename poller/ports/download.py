"""The recording-fetcher port: stream one recording from the provider to the spool."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from poller.domain.call_record import DownloadRequest


@dataclass(frozen=True, slots=True)
class Downloaded:
    path: Path
    size_bytes: int
    sha256: str
    http_status: int
    duration_ms: int
    content_type: str | None = None


class RecordingFetcher(Protocol):
    def fetch(self, request: DownloadRequest, destination: Path) -> Downloaded:
        """Write the audio to ``destination`` or raise
        :class:`~poller.domain.failures.StepFailure`; a partial file never survives.

        Raises :class:`~poller.ports.provider.ProviderAuthError` instead when the provider
        refused the credentials sent with the request: that is about every call of the
        provider, and pauses its work rather than failing this call."""
        ...
