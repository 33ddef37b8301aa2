"""Turning a recording into a file Siro takes, as a stream: one packet or frame at a time.

Nothing here holds more than a few frames, so memory stays flat however long the recording.
Nor does anything trust the file's header: every conversion counts the audio it decodes, the
bytes it writes and the time it takes against its :class:`ConversionLimits`, and stops a file
that decodes to far more than it declares (an audio bomb) within seconds.
What the audio library raises on hostile input becomes :mod:`poller.ports.audio` errors that
say what went wrong; an operating-system error of the spool (a full disk) is left to
propagate, as it says nothing about the file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import av.container

from poller.adapters.audio.probe import (
    damaged,
    declared_duration,
    hostile_input_as_audio_errors,
    open_audio,
)
from poller.domain.audio import ConversionLimits
from poller.ports.audio import AudioBomb, ConversionStopped, CorruptAudio, UnsupportedAudio

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


# FFmpeg starts one decoding thread per CPU by default: a conversion is one worker slot's
# work, and worker.concurrency says how many run at once.
CODEC_THREADS = 1


class _Budget:
    """One conversion's account against its limits, checked between packets."""

    def __init__(
        self, limits: ConversionLimits, destination: Path, should_stop: Callable[[], bool]
    ) -> None:
        self.limits = limits
        self.destination = destination
        self.should_stop = should_stop
        self.started = time.monotonic()

    def between_packets(self, decoded_seconds: float) -> None:
        if self.should_stop():
            raise ConversionStopped
        self.check(decoded_seconds)

    def check(self, decoded_seconds: float) -> None:
        limits = self.limits
        written = self.written()
        if decoded_seconds > limits.max_audio_seconds:
            raise AudioBomb(
                f"an audio bomb: {limits.describe_expected()}, but it decodes to more than "
                f"{limits.max_audio_seconds:.1f} s, the most allowed (worker.max_audio_overrun, "
                f"worker.max_audio_seconds); stopped after {decoded_seconds:.1f} s of audio and "
                f"{written} bytes written"
            )
        if written > limits.max_output_bytes:
            raise AudioBomb(
                f"an audio bomb: converting it wrote more than {limits.max_output_bytes} bytes, "
                f"the most its length allows; {limits.describe_expected()}, stopped after "
                f"{decoded_seconds:.1f} s of audio and {written} bytes written"
            )
        elapsed = time.monotonic() - self.started
        if elapsed > limits.max_wall_seconds:
            raise AudioBomb(
                f"converting it took longer than worker.max_convert_seconds = "
                f"{limits.max_wall_seconds:g}; {limits.describe_expected()}, stopped after "
                f"{decoded_seconds:.1f} s of audio and {written} bytes written in {elapsed:.1f} s"
            )

    def written(self) -> int:
        try:
            return self.destination.stat().st_size
        except FileNotFoundError:  # the muxer creates it with its first packet
            return 0


def remux_to_adts(
    source: Path,
    destination: Path,
    *,
    limits: ConversionLimits,
    should_stop: Callable[[], bool],
) -> None:
    with hostile_input_as_audio_errors("its AAC frames"):
        _remux(source, destination, _Budget(limits, destination, should_stop))


def _remux(source: Path, destination: Path, budget: _Budget) -> None:
    with open_audio(source) as container:
        stream = container.streams.audio[0]
        expected = declared_duration(container, stream)
        end = Fraction(0)
        with av.open(str(destination), "w", format="adts") as out:
            target = out.add_stream_from_template(stream)
            try:
                for packet in container.demux(stream):
                    budget.between_packets(float(end))
                    if packet.dts is None or packet.size == 0:
                        continue  # the demuxer's end-of-stream marker
                    if packet.pts is not None and packet.time_base is not None:
                        end = max(end, (packet.pts + (packet.duration or 0)) * packet.time_base)
                    packet.stream = target
                    out.mux(packet)
            except (av.error.InvalidDataError, av.error.EOFError) as exc:
                raise damaged("its AAC frames", exc) from None
    budget.check(float(end))  # the muxer's last buffer is written only as it closes
    _check_complete(float(end), expected)


def encode_mp3(
    source: Path,
    destination: Path,
    *,
    bitrate_kbps: int,
    limits: ConversionLimits,
    should_stop: Callable[[], bool],
) -> None:
    with hostile_input_as_audio_errors("its audio"):
        _encode_mp3(source, destination, bitrate_kbps, _Budget(limits, destination, should_stop))


def _encode_mp3(source: Path, destination: Path, bitrate_kbps: int, budget: _Budget) -> None:
    with open_audio(source) as container:
        stream = container.streams.audio[0]
        expected = declared_duration(container, stream)
        try:
            decoder = stream.codec_context
            channels = decoder.channels
        except av.error.FFmpegError:
            raise UnsupportedAudio("no decoder for this audio codec is available") from None
        decoder.thread_count = CODEC_THREADS
        layout = "mono" if channels == 1 else "stereo"  # more channels are mixed to two
        rate = mp3_sample_rate(decoder.sample_rate, bitrate_kbps)
        with av.open(str(destination), "w", format="mp3") as out:
            target = out.add_stream("libmp3lame", rate=rate, layout=layout, options=LAME_OPTIONS)
            target.bit_rate = mp3_bitrate(rate, bitrate_kbps) * 1000
            target.codec_context.thread_count = CODEC_THREADS
            decoded = _transcode(container, stream, out, target, budget)
    budget.check(decoded)  # the muxer's last buffer is written only as it closes
    if decoded == 0:
        raise CorruptAudio("not one frame of its audio could be decoded: the file is damaged")
    _check_complete(decoded, expected)


def _transcode(
    container: av.container.InputContainer,
    stream: av.AudioStream,
    out: av.container.OutputContainer,
    target: av.AudioStream,
    budget: _Budget,
) -> float:
    """Decode every packet and encode what it yields; the seconds of audio decoded."""
    decoded = 0.0
    packets = bad = 0
    try:
        for packet in container.demux(stream):
            budget.between_packets(decoded)
            packets += 1
            try:
                frames = stream.decode(packet)
            except av.error.InvalidDataError as exc:
                bad += 1
                if bad > MAX_BAD_PACKETS and bad > packets * MAX_BAD_SHARE:
                    raise damaged(f"{bad} of its first {packets} packets", exc) from None
                continue
            for frame in frames:
                decoded += frame.samples / frame.sample_rate
                frame.pts = None  # the encoder counts samples itself
                for encoded in target.encode(frame):
                    out.mux(encoded)
        budget.check(decoded)
        for encoded in target.encode(None):
            out.mux(encoded)
    except (av.error.InvalidDataError, av.error.EOFError) as exc:
        raise damaged("its audio", exc) from None
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
