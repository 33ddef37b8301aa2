"""Audio for tests: tiny files built byte by byte, and real encoded audio made with PyAV.

The byte-built ones (``mp3_bytes`` and friends) are frame headers around silence: cheap, and
each probes as its format. :func:`encoded` makes genuine recordings of a tone in every format a
phone system may deliver, for the conversions; :func:`write_wav` writes a large WAV quickly.
"""

from __future__ import annotations

import functools
import io
import math
import struct
import tempfile
import wave
from array import array
from pathlib import Path

import av

MP3_FRAME_BYTES = 417  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz, no padding


def mp3_bytes(seconds: float = 1.0) -> bytes:
    header = bytes([0xFF, 0xFB, 0x90, 0xC4])  # sync, MPEG-1 L3, 128k, 44.1k, mono
    frame = header + b"\x00" * (MP3_FRAME_BYTES - len(header))
    return frame * max(1, int(seconds * 44100 / 1152))


def aac_bytes(seconds: float = 1.0) -> bytes:
    """AAC-LC in ADTS frames, the stream form Siro's "aac" means."""
    payload = b"\x00" * 200
    length = 7 + len(payload)
    profile, sampling_index, channels = 1, 4, 1  # LC, 44.1 kHz, mono
    header = bytes(
        [
            0xFF,
            0xF1,
            (profile << 6) | (sampling_index << 2) | (channels >> 2),
            ((channels & 3) << 6) | ((length >> 11) & 3),
            (length >> 3) & 0xFF,
            ((length & 7) << 5) | 0x1F,
            0xFC,
        ]
    )
    return (header + payload) * max(1, int(seconds * 44100 / 1024))


def wav_bytes(seconds: float = 1.0, rate: int = 8000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(rate * seconds))
    return buffer.getvalue()


def wav_of_size(size_bytes: int) -> bytes:
    """A valid WAV file of exactly ``size_bytes`` bytes (at least 46)."""
    frames = (size_bytes - 44) // 2
    data = wav_bytes(frames / 8000)
    return data + b"\x00" * (size_bytes - len(data))


def flac_bytes() -> bytes:
    """Real audio Siro does not take: a FLAC stream header (STREAMINFO only)."""
    sample_rate, channels, bits, total_samples = 44100, 1, 16, 44100
    packed = (sample_rate << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | total_samples
    streaminfo = struct.pack(">HH", 4096, 4096) + b"\x00" * 6 + packed.to_bytes(8, "big")
    streaminfo += b"\x00" * 16  # MD5 of the decoded audio: unknown
    block_header = bytes([0x80]) + len(streaminfo).to_bytes(3, "big")  # last block, STREAMINFO
    return b"fLaC" + block_header + streaminfo


def flac_bomb(declared_seconds: float, real_seconds: float, rate: int = 8000) -> bytes:
    """A well-formed FLAC of silence whose STREAMINFO declares ``declared_seconds`` but whose
    frames decode to ``real_seconds``: the "audio bomb" (20 hours fit in about 130 KB).

    Each frame is the largest FLAC allows (65535 samples) holding one constant subframe, so
    a frame costs 16 bytes whatever it decodes to.
    """
    block = FLAC_MAX_BLOCK
    declared_samples = int(declared_seconds * rate)
    packed = (rate << 44) | (0 << 41) | (15 << 36) | declared_samples  # mono, 16 bits
    streaminfo = struct.pack(">HH", block, block) + b"\x00" * 6 + packed.to_bytes(8, "big")
    streaminfo += b"\x00" * 16  # MD5 of the decoded audio: unknown
    frames = [b"fLaC", bytes([0x80]) + len(streaminfo).to_bytes(3, "big"), streaminfo]
    for number in range(math.ceil(real_seconds * rate / block)):
        # Fixed blocksize; block size in 16 bits after the number; rate from STREAMINFO;
        # mono, 16 bits a sample.
        header = b"\xff\xf8\x70\x08" + _utf8_number(number) + (block - 1).to_bytes(2, "big")
        header += bytes([_crc8(header)])
        body = header + b"\x00\x00\x00"  # a CONSTANT subframe of the value 0
        frames.append(body + _crc16(body).to_bytes(2, "big"))
    return b"".join(frames)


FLAC_MAX_BLOCK = 65535


def _utf8_number(number: int) -> bytes:
    """A FLAC frame number, coded as UTF-8 codes a character (extended to 36 bits)."""
    if number < 0x80:
        return bytes([number])
    return chr(number).encode("utf-8", "surrogatepass")


def _crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


LOGIN_PAGE = b"<!doctype html><html><body><form>Please sign in</form></body></html>\n" * 20


# name: (PyAV container format, encoder, sample rate)
ENCODINGS: dict[str, tuple[str, str, int]] = {
    "m4a": ("ipod", "aac", 44100),  # the quickstart's own example recording
    "mp4_mp3": ("mp4", "libmp3lame", 44100),  # MP4 without AAC
    "ogg": ("ogg", "libopus", 48000),
    "webm": ("webm", "libopus", 48000),
    "flac": ("flac", "flac", 44100),
    "wav": ("wav", "pcm_s16le", 44100),
    "mp3": ("mp3", "libmp3lame", 44100),
    "aac": ("adts", "aac", 44100),
}
_EXTENSIONS = {"mp4_mp3": "mp4"}
TONE_HZ = 441  # a whole number of periods in every 0.1 s block at 44.1 and 48 kHz


@functools.cache
def encoded(kind: str, seconds: float = 2.0, channels: int = 1) -> bytes:
    """A real ``kind`` recording: a tone (a second, different one on the right channel)."""
    container_format, codec, rate = ENCODINGS[kind]
    layout = "mono" if channels == 1 else "stereo"
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / f"audio.{_EXTENSIONS.get(kind, kind)}"
        with av.open(str(path), "w", format=container_format) as out:
            stream = out.add_stream(codec, rate=rate, layout=layout)
            assert isinstance(stream, av.AudioStream)  # an audio codec gives an audio stream
            block = rate // 10
            samples = _tone_block(rate, channels, block)
            total = int(seconds * rate)
            for start in range(0, total, block):
                count = min(block, total - start)
                frame = av.AudioFrame(format="s16", layout=layout, samples=count)
                frame.planes[0].update(samples[: count * channels * 2])
                frame.sample_rate = rate
                for packet in stream.encode(frame):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)
        return path.read_bytes()


def _tone_block(rate: int, channels: int, count: int, width: int = 2) -> bytes:
    values = array("h" if width == 2 else "i")
    scale = 1 if width == 2 else 1 << 16
    for index in range(count):
        for channel in range(channels):
            hz = TONE_HZ * (channel + 1)
            level = 8000 / (channel + 1) * math.sin(2 * math.pi * hz * index / rate)
            values.append(int(level) * scale)
    return values.tobytes()


def write_wav(
    path: Path, size_bytes: int, *, rate: int = 44100, channels: int = 2, width: int = 2
) -> float:
    """A WAV of about ``size_bytes`` holding a tone (``width`` bytes a sample), written in big
    blocks; returns its length in seconds."""
    block = _tone_block(rate, channels, rate // 10, width) * 100  # ten seconds at a time
    frame_bytes = width * channels
    frames = (size_bytes - 44) // frame_bytes
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        remaining = frames * frame_bytes
        while remaining > 0:
            chunk = block[: min(len(block), remaining)]
            out.writeframesraw(chunk)
            remaining -= len(chunk)
    return frames / rate


def streamable_m4a(seconds: float = 6.0) -> bytes:
    """An M4A with its index before the audio (as streaming servers write it): cut short, it
    still opens, and only reading it to the end shows it is incomplete."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "source.m4a"
        source.write_bytes(encoded("m4a", seconds))
        target = Path(scratch) / "streamable.m4a"
        with (
            av.open(str(source)) as inp,
            av.open(str(target), "w", format="ipod", options={"movflags": "+faststart"}) as out,
        ):
            stream = out.add_stream_from_template(inp.streams.audio[0])
            for packet in inp.demux(audio=0):
                if packet.dts is not None:
                    packet.stream = stream
                    out.mux(packet)
        return target.read_bytes()
