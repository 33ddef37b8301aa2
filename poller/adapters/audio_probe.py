"""What a downloaded file really is, judged by its content, never by URL or Content-Type.

An expired provider token typically yields a small HTML or JSON error page with status 200; a
file that merely claims to be audio must not reach Siro. mutagen parses the container and frame
headers of each format Siro takes, so a file passes only if it is genuinely mp3, wav or aac.
"""

from __future__ import annotations

from pathlib import Path

import mutagen
from mutagen.aac import AAC
from mutagen.mp3 import MP3
from mutagen.wave import WAVE

from poller.domain.siro import AudioFormat
from poller.ports.audio import AudioFacts, NotAudio, UnsupportedAudio

# WAVE and AAC first: their headers are strict; the MP3 parser scans for frame sync.
_SIRO_FORMATS: tuple[tuple[AudioFormat, type[mutagen.FileType]], ...] = (
    (AudioFormat.WAV, WAVE),
    (AudioFormat.AAC, AAC),
    (AudioFormat.MP3, MP3),
)


def probe_audio(path: Path) -> AudioFacts:
    for audio_format, parser in _SIRO_FORMATS:
        try:
            parsed = parser(path)
        except (mutagen.MutagenError, ValueError, EOFError, OSError):
            continue
        length = float(getattr(parsed.info, "length", 0.0) or 0.0)
        if length > 0:
            return AudioFacts(format=audio_format, duration_seconds=length)
    try:
        other = mutagen.File(path)
    except (mutagen.MutagenError, ValueError, EOFError):
        other = None
    if other is not None:
        kind = type(other).__name__
        raise UnsupportedAudio(f"the recording is {kind} audio; Siro takes only mp3, wav or aac")
    raise NotAudio(f"the downloaded body is not audio ({_describe_start(path)})")


def _describe_start(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(64)
    if not head:
        return "it is empty"
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        return "it looks like HTML or XML, often a login or error page"
    if stripped[:1] in (b"{", b"["):
        return "it looks like JSON, often an API error"
    return f"it starts with bytes {head[:8].hex(' ')}"
