"""Turning a recording into a file Siro takes, as a stream: one packet or frame at a time.

Nothing here holds more than a few frames, so memory stays flat however long the recording.
FFmpeg's own errors become :mod:`poller.ports.audio` errors that say what went wrong; an
operating-system error (a full disk) is left to propagate, as it says nothing about the file.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import av.container

from poller.adapters.audio.probe import declared_duration, open_audio
from poller.ports.audio import ConversionStopped, CorruptAudio, UnsupportedAudio

# A file whose decodable audio ends before this share of its declared length was cut off.
COMPLETE_SHARE = 0.9
# Damaged packets skipped before a file counts as corrupt: a glitch is not a lost call.
MAX_BAD_PACKETS = 10
MAX_BAD_SHARE = 0.01

# LAME's -q 7: a third faster than its default, and no difference a transcription would hear.
LAME_OPTIONS = {"compression_level": "7"}
MP3_SAMPLE_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
MPEG1_MIN_KBPS = 32  # layer III at 32 kHz and above starts here
MPEG2_MAX_KBPS = 160  # and below 32 kHz it ends here


def remux_to_adts(source: Path, destination: Path, *, should_stop: Callable[[], bool]) -> None:
    with open_audio(source) as container:
        stream = container.streams.audio[0]
        expected = declared_duration(container, stream)
        end = Fraction(0)
        with av.open(str(destination), "w", format="adts") as out:
            target = out.add_stream_from_template(stream)
            try:
                for packet in container.demux(stream):
                    if should_stop():
                        raise ConversionStopped
                    if packet.dts is None or packet.size == 0:
                        continue  # the demuxer's end-of-stream marker
                    if packet.pts is not None and packet.time_base is not None:
                        end = max(end, (packet.pts + (packet.duration or 0)) * packet.time_base)
                    packet.stream = target
                    out.mux(packet)
            except (av.error.InvalidDataError, av.error.EOFError) as exc:
                raise _damaged("its AAC frames", exc) from None
    _check_complete(float(end), expected)


def encode_mp3(
    source: Path,
    destination: Path,
    *,
    bitrate_kbps: int,
    should_stop: Callable[[], bool],
) -> None:
    with open_audio(source) as container:
        stream = container.streams.audio[0]
        expected = declared_duration(container, stream)
        try:
            decoder = stream.codec_context
            channels = decoder.channels
        except av.error.FFmpegError:
            raise UnsupportedAudio("no decoder for this audio codec is available") from None
        layout = "mono" if channels == 1 else "stereo"  # more channels are mixed to two
        rate = mp3_sample_rate(decoder.sample_rate, bitrate_kbps)
        with av.open(str(destination), "w", format="mp3") as out:
            target = out.add_stream("libmp3lame", rate=rate, layout=layout, options=LAME_OPTIONS)
            target.bit_rate = mp3_bitrate(rate, bitrate_kbps) * 1000
            decoded = _transcode(container, stream, out, target, should_stop)
    if decoded == 0:
        raise CorruptAudio("not one frame of its audio could be decoded: the file is damaged")
    _check_complete(decoded, expected)


def _transcode(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    out: av.container.OutputContainer,
    target: av.AudioStream,
    should_stop: Callable[[], bool],
) -> float:
    """Decode every packet and encode what it yields; the seconds of audio decoded."""
    decoded = 0.0
    packets = bad = 0
    try:
        for packet in container.demux(stream):
            if should_stop():
                raise ConversionStopped
            packets += 1
            try:
                frames = stream.decode(packet)
            except av.error.InvalidDataError as exc:
                bad += 1
                if bad > MAX_BAD_PACKETS and bad > packets * MAX_BAD_SHARE:
                    raise _damaged(f"{bad} of its first {packets} packets", exc) from None
                continue
            for frame in frames:
                decoded += frame.samples / frame.sample_rate
                frame.pts = None  # the encoder counts samples itself
                for encoded in target.encode(frame):
                    out.mux(encoded)
        for encoded in target.encode(None):
            out.mux(encoded)
    except (av.error.InvalidDataError, av.error.EOFError) as exc:
        raise _damaged("its audio", exc) from None
    return decoded


def mp3_sample_rate(source_rate: int, bitrate_kbps: int) -> int:
    """The source's rate where mp3 has it (else the next lower one), within what the bitrate
    allows: below 32 kbit/s only the half rates (24 kHz and under) exist."""
    rate = max([r for r in MP3_SAMPLE_RATES if r <= source_rate] or [MP3_SAMPLE_RATES[0]])
    if bitrate_kbps < MPEG1_MIN_KBPS and rate > 24000:
        rate = 22050 if rate % 11025 == 0 else 24000
    return rate


def mp3_bitrate(rate: int, bitrate_kbps: int) -> int:
    return min(bitrate_kbps, MPEG2_MAX_KBPS) if rate < 32000 else bitrate_kbps


def _check_complete(decoded_seconds: float, expected_seconds: float) -> None:
    if expected_seconds > 0 and decoded_seconds < expected_seconds * COMPLETE_SHARE:
        raise CorruptAudio(
            f"the file declares {expected_seconds:.1f} s of audio but ends after "
            f"{decoded_seconds:.1f} s: it is truncated"
        )


def _damaged(what: str, exc: av.error.FFmpegError) -> CorruptAudio:
    detail = exc.strerror or type(exc).__name__
    return CorruptAudio(f"{what} cannot be read: the file is truncated or damaged ({detail})")
