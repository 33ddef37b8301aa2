"""What a downloaded file really is, judged by its content, never by URL or Content-Type.

An expired provider token typically yields a small HTML or JSON error page with status 200; a
file that merely claims to be audio must not reach Siro. FFmpeg's demuxers (through PyAV) name
the container and the codec of the first audio stream; only the containers a phone system
might produce may be opened, and only from a local file, so a playlist or a concat script in
a download can never make FFmpeg fetch anything.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import av.container

from poller.domain.audio import AudioFacts
from poller.domain.siro import AudioFormat
from poller.ports.audio import AudioError, ConversionStopped, CorruptAudio, NotAudio

# Demuxer names (FFmpeg's): audio containers phone systems and their storage deliver.
AUDIO_DEMUXERS = "wav,w64,mp3,aac,mov,ogg,flac,matroska,aiff,caf,amr,asf,au"
OPEN_OPTIONS = {"format_whitelist": AUDIO_DEMUXERS, "protocol_whitelist": "file"}

# The errors of the spool itself, when FFmpeg reads or writes it: they say nothing about the
# file. EIO is not one: FFmpeg's demuxers return it for damaged files too.
SPOOL_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.ENOENT, errno.EMFILE}
)
# What PyAV raises, beside its own errors, on files made to break it: a tag that is no UTF-8,
# a stream whose codec a damaged header leaves unknown (None), a frame its resampler was
# not set up for.
HOSTILE_INPUT_ERRORS = (ValueError, AttributeError, TypeError, IndexError, OverflowError)

# Decoder names that differ from the codec's own name.
_CODEC_NAMES = {"mp3float": "mp3", "aac_fixed": "aac"}

# Start-of-file signatures of audio containers: such a file that does not open is damaged, not
# an error page. Bare MPEG frame syncs are left out: two random bytes can look like one.
_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "MP4/M4A"),
    (0, b"OggS", "Ogg"),
    (0, b"fLaC", "FLAC"),
    (0, b"RIFF", "WAV"),
    (0, b"ID3", "MP3"),
    (0, b"\x1a\x45\xdf\xa3", "WebM/Matroska"),
    (0, b"FORM", "AIFF"),
    (0, b"caff", "CAF"),
    (0, b"#!AMR", "AMR"),
)


def open_audio(path: Path) -> av.container.InputContainer:
    """Open ``path`` for reading with the restricted set of demuxers; raises :class:`AudioError`
    subclasses, never FFmpeg's own errors."""
    try:
        # A tag that is no valid UTF-8 says nothing about the audio: it is read with U+FFFD.
        return av.open(str(path), options=OPEN_OPTIONS, metadata_errors="replace")
    except av.error.FFmpegError as exc:
        if isinstance(exc, OSError) and exc.errno in SPOOL_ERRNOS:  # the spool itself failed
            raise
        raise _unreadable(path, exc) from None


@contextmanager
def hostile_input_as_audio_errors(what: str) -> Iterator[None]:
    """Whatever the audio library raises reading or converting a file is an
    :class:`AudioError` of that file (so it fails as such, never as an internal error, and is
    not downloaded again), except the spool's own operating-system errors, which propagate."""
    try:
        yield
    except (AudioError, ConversionStopped):
        raise
    except av.error.FFmpegError as exc:
        if isinstance(exc, OSError) and exc.errno in SPOOL_ERRNOS:
            raise
        raise damaged(what, exc) from None
    except OSError:
        raise
    except HOSTILE_INPUT_ERRORS as exc:
        raise CorruptAudio(
            f"{what} cannot be read: the file is damaged ({type(exc).__name__} in the audio "
            "library)"
        ) from None


def damaged(what: str, exc: av.error.FFmpegError) -> CorruptAudio:
    detail = exc.strerror or type(exc).__name__
    return CorruptAudio(f"{what} cannot be read: the file is truncated or damaged ({detail})")


def probe_audio(path: Path) -> AudioFacts:
    if path.stat().st_size == 0:
        raise NotAudio("the downloaded body is not audio (it is empty)")
    with hostile_input_as_audio_errors("the file"):
        return _probe(path)


def _probe(path: Path) -> AudioFacts:
    with open_audio(path) as container:
        if not container.streams.audio:
            kinds = ", ".join(sorted({str(stream.type) for stream in container.streams}))
            raise NotAudio(
                f"the downloaded {container.format.name.split(',')[0]} file holds no audio "
                f"(only: {kinds or 'nothing'})"
            )
        stream = container.streams.audio[0]
        context = stream.codec_context
        codec = _CODEC_NAMES.get(context.name, context.name)
        duration = _duration_seconds(container, stream)
        name = _container_name(container, codec)
        if duration <= 0:
            raise CorruptAudio(f"the {name} file holds no audio (its duration is 0 s)")
        return AudioFacts(
            container=name,
            codec=codec,
            duration_seconds=duration,
            channels=context.channels,
            sample_rate=context.sample_rate,
            siro_format=_siro_format(container.format.name, codec),
        )


def _siro_format(demuxer: str, codec: str) -> AudioFormat | None:
    if demuxer == "wav" and codec.startswith("pcm_"):
        return AudioFormat.WAV
    if demuxer == "mp3" and codec == "mp3":
        return AudioFormat.MP3
    if demuxer == "aac" and codec == "aac":  # ADTS: the stream form Siro's "aac" means
        return AudioFormat.AAC
    return None


def _container_name(container: av.container.InputContainer, codec: str) -> str:
    demuxer = container.format.name
    if demuxer.startswith("mov,"):
        brand = container.metadata.get("major_brand", "").strip().lower()
        return "m4a" if brand.startswith("m4a") else "mp4"
    if demuxer == "matroska,webm":
        return "webm" if codec in ("opus", "vorbis") else "matroska"
    return demuxer.split(",")[0]


def declared_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float:
    """The length the headers give (0.0 when they give none)."""
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return float(stream.duration * stream.time_base)
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    return 0.0


def _duration_seconds(container: av.container.InputContainer, stream: av.AudioStream) -> float:
    declared = declared_duration(container, stream)
    if declared > 0:
        return declared
    # No header says how long it is (a live Ogg stream, say): count the packets.
    end = 0.0
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base is not None:
                end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    except av.error.InvalidDataError:
        pass
    return end


def _unreadable(path: Path, exc: av.error.FFmpegError) -> NotAudio | CorruptAudio:
    with path.open("rb") as handle:
        head = handle.read(64)
    for offset, signature, kind in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return CorruptAudio(
                f"the file starts like {kind} audio but cannot be read: it is truncated or "
                f"damaged ({exc.strerror or type(exc).__name__})"
            )
    return NotAudio(f"the downloaded body is not audio ({_describe_start(head)})")


def _describe_start(head: bytes) -> str:
    if not head:
        return "it is empty"
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        return "it looks like HTML or XML, often a login or error page"
    if stripped[:1] in (b"{", b"["):
        return "it looks like JSON, often an API error"
    return f"it starts with bytes {head[:8].hex(' ')}"
