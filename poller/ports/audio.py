"""The audio port: what a downloaded file really is, judged by its content.

The worker keeps a file only if the probe says it is audio in a format Siro takes; the probe
raises :class:`NotAudio` or :class:`UnsupportedAudio` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from poller.domain.siro import AudioFormat


class NotAudio(Exception):
    """The bytes are no audio at all (an error page, JSON, an empty or truncated file)."""


class UnsupportedAudio(Exception):
    """Real audio, in a format Siro does not ingest (m4a, FLAC, Ogg...)."""


@dataclass(frozen=True, slots=True)
class AudioFacts:
    format: AudioFormat
    duration_seconds: float


class AudioProbe(Protocol):
    def __call__(self, path: Path, /) -> AudioFacts:
        """The file's format and length; raises :class:`NotAudio` or :class:`UnsupportedAudio`."""
        ...
