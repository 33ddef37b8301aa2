"""Conversions into what Siro takes, on real recordings made with PyAV at setup."""

from __future__ import annotations

import hashlib
from pathlib import Path

import av
import pytest

from poller.adapters.audio import encode_mp3, probe_audio, remux_to_adts
from poller.domain.siro import AudioFormat
from poller.ports.audio import ConversionStopped, CorruptAudio
from poller.simulators.audio import encoded, streamable_m4a


def never() -> bool:
    return False


def written(tmp_path: Path, data: bytes, name: str = "source.download") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def decoded_samples(path: Path, **options: str) -> tuple[int, str]:
    """How many samples the audio decodes to, and a digest of them."""
    digest = hashlib.sha256()
    count = 0
    with av.open(str(path), options=options) as container:
        for frame in container.decode(audio=0):
            for plane in frame.planes:
                digest.update(bytes(plane)[: frame.samples * frame.format.bytes])
            count += frame.samples
    return count, digest.hexdigest()


def aac_payloads(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(packet) for packet in container.demux(audio=0) if packet.size]


@pytest.mark.parametrize("channels", [1, 2])
def test_an_m4a_is_repackaged_as_adts_with_the_same_frames_and_samples(
    tmp_path: Path, channels: int
) -> None:
    source = written(tmp_path, encoded("m4a", 3.0, channels))
    target = tmp_path / "call.aac"

    remux_to_adts(source, target, should_stop=never)

    facts = probe_audio(target)
    assert (facts.container, facts.codec, facts.siro_format) == ("aac", "aac", AudioFormat.AAC)
    assert facts.channels == channels
    # Each ADTS frame is the MP4's AAC frame behind a 7-byte header, bit for bit.
    assert [frame[7:] for frame in aac_payloads(target)] == aac_payloads(source)
    # Decoded, they are the same samples (the MP4's edit list, which only trims the encoder's
    # priming samples on playback, is set aside: ADTS cannot carry it).
    assert decoded_samples(target) == decoded_samples(source, ignore_editlist="1")


@pytest.mark.parametrize("kind", ["ogg", "webm", "flac", "mp4_mp3", "wav"])
@pytest.mark.parametrize("channels", [1, 2])
def test_other_formats_become_mp3_of_the_same_length_and_channels(
    tmp_path: Path, kind: str, channels: int
) -> None:
    source = written(tmp_path, encoded(kind, 4.0, channels))
    before = probe_audio(source)
    target = tmp_path / "call.mp3"

    encode_mp3(source, target, bitrate_kbps=64, should_stop=never)

    after = probe_audio(target)
    assert (after.container, after.codec, after.siro_format) == ("mp3", "mp3", AudioFormat.MP3)
    assert after.channels == channels
    assert after.duration_seconds == pytest.approx(before.duration_seconds, rel=0.01)
    # 64 kbit/s: 8000 bytes a second, give or take the frame padding.
    assert target.stat().st_size == pytest.approx(4.0 * 8000, rel=0.05)


@pytest.mark.parametrize(("bitrate", "rate"), [(8, 22050), (16, 22050), (32, 44100)])
def test_a_low_bitrate_uses_a_sample_rate_mp3_has_for_it(
    tmp_path: Path, bitrate: int, rate: int
) -> None:
    source = written(tmp_path, encoded("flac", 4.0))
    target = tmp_path / "call.mp3"

    encode_mp3(source, target, bitrate_kbps=bitrate, should_stop=never)

    after = probe_audio(target)
    assert after.sample_rate == rate
    assert target.stat().st_size == pytest.approx(4.0 * bitrate * 125, rel=0.1)


def test_a_cut_off_recording_fails_as_corrupt_when_converted(tmp_path: Path) -> None:
    data = streamable_m4a(6.0)
    cut = written(tmp_path, data[: len(data) // 3], "cut.m4a")

    with pytest.raises(CorruptAudio, match="truncated"):
        remux_to_adts(cut, tmp_path / "call.aac", should_stop=never)
    with pytest.raises(CorruptAudio, match="truncated"):
        encode_mp3(cut, tmp_path / "call.mp3", bitrate_kbps=64, should_stop=never)


def test_damaged_audio_data_fails_as_corrupt(tmp_path: Path) -> None:
    data = bytearray(encoded("flac", 4.0))
    data[200:] = bytes(len(data) - 200)  # everything after the header zeroed
    source = written(tmp_path, bytes(data))

    with pytest.raises(CorruptAudio):
        encode_mp3(source, tmp_path / "call.mp3", bitrate_kbps=64, should_stop=never)


def test_a_conversion_stops_between_frames_when_asked(tmp_path: Path) -> None:
    source = written(tmp_path, encoded("ogg", 2.0))

    with pytest.raises(ConversionStopped):
        encode_mp3(source, tmp_path / "call.mp3", bitrate_kbps=64, should_stop=lambda: True)
