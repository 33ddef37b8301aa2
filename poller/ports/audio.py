"""The audio port: what a downloaded file really is, and turning it into what Siro takes.

Judged by content, never by URL or Content-Type. Conversions read and write files in the spool
as streams, so memory use does not grow with the length of a recording.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from poller.domain.audio import AudioFacts, ConversionLimits


class AudioError(Exception):
    """A recording the audio tools cannot use; the message tells a person why."""


class NotAudio(AudioError):
    """The bytes are no audio at all (an error page, JSON, an empty file, a video)."""


class UnsupportedAudio(AudioError):
    """Real audio in a codec that cannot be decoded here."""


class CorruptAudio(AudioError):
    """Audio in a known format whose content is truncated or damaged."""


class AudioBomb(AudioError):
    """Audio that decodes to far more than it declares, or costs more to convert than its
    :class:`~poller.domain.audio.ConversionLimits` allow; the message gives the figures."""


class ConversionStopped(Exception):
    """A conversion gave up between two frames because the worker is stopping."""


class AudioPort(Protocol):
    def probe(self, path: Path) -> AudioFacts:
        """Container, codec, duration, channels and sample rate of the file's audio.

        Raises :class:`NotAudio` or :class:`CorruptAudio`.
        """
        ...

    def remux_to_adts(
        self,
        source: Path,
        destination: Path,
        *,
        limits: ConversionLimits,
        should_stop: Callable[[], bool],
    ) -> None:
        """Copy the AAC frames of ``source`` into an ADTS stream at ``destination``, unchanged.

        Raises :class:`CorruptAudio` (also for a file that ends early), :class:`AudioBomb`
        (past ``limits``) or :class:`ConversionStopped`.
        """
        ...

    def encode_mp3(
        self,
        source: Path,
        destination: Path,
        *,
        bitrate_kbps: int,
        limits: ConversionLimits,
        should_stop: Callable[[], bool],
    ) -> None:
        """Decode ``source`` and encode it as mp3 at ``destination``, keeping mono or stereo.

        Raises :class:`UnsupportedAudio`, :class:`CorruptAudio`, :class:`AudioBomb` (past
        ``limits``) or :class:`ConversionStopped`.
        """
        ...
