"""Small but real audio files, built byte by byte, for download checks and uploads.

Each parses with mutagen as its format, so the worker's content check sees genuine audio.
"""

from __future__ import annotations

import io
import struct
import wave

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


LOGIN_PAGE = b"<!doctype html><html><body><form>Please sign in</form></body></html>\n" * 20
