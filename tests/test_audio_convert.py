"""Conversions into what Siro takes, on real recordings made with PyAV at setup."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import av
import pytest

from poller.adapters.audio import encode_mp3, probe_audio, remux_to_adts
from poller.domain.audio import (
    ConversionKind,
    ConversionLimits,
    ConversionRules,
    ConvertMode,
    conversion_limits,
)
from poller.domain.siro import AudioFormat
from poller.ports.audio import AudioBomb, AudioError, ConversionStopped, CorruptAudio
from poller.simulators.audio import ENCODINGS, encoded, flac_bomb, streamable_m4a

# Limits no recording of these tests comes near.
ROOMY = ConversionLimits(
    expected_seconds=0.0, max_audio_seconds=3600.0, max_output_bytes=1 << 30, max_wall_seconds=600
)
RULES = ConversionRules(
    mode=ConvertMode.AUTO, max_upload_bytes=100 << 20, mp3_bitrate_kbps=64, mp3_min_bitrate_kbps=16
)
MB = 1024 * 1024


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

    remux_to_adts(source, target, limits=ROOMY, should_stop=never)

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

    encode_mp3(source, target, bitrate_kbps=64, limits=ROOMY, should_stop=never)

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

    encode_mp3(source, target, bitrate_kbps=bitrate, limits=ROOMY, should_stop=never)

    after = probe_audio(target)
    assert after.sample_rate == rate
    assert target.stat().st_size == pytest.approx(4.0 * bitrate * 125, rel=0.1)


def test_a_cut_off_recording_fails_as_corrupt_when_converted(tmp_path: Path) -> None:
    data = streamable_m4a(6.0)
    cut = written(tmp_path, data[: len(data) // 3], "cut.m4a")

    with pytest.raises(CorruptAudio, match="truncated"):
        remux_to_adts(cut, tmp_path / "call.aac", limits=ROOMY, should_stop=never)
    with pytest.raises(CorruptAudio, match="truncated"):
        encode_mp3(cut, tmp_path / "call.mp3", bitrate_kbps=64, limits=ROOMY, should_stop=never)


def test_damaged_audio_data_fails_as_corrupt(tmp_path: Path) -> None:
    data = bytearray(encoded("flac", 4.0))
    data[200:] = bytes(len(data) - 200)  # everything after the header zeroed
    source = written(tmp_path, bytes(data))

    with pytest.raises(CorruptAudio):
        encode_mp3(source, tmp_path / "call.mp3", bitrate_kbps=64, limits=ROOMY, should_stop=never)


def test_a_conversion_stops_between_frames_when_asked(tmp_path: Path) -> None:
    source = written(tmp_path, encoded("ogg", 2.0))

    with pytest.raises(ConversionStopped):
        encode_mp3(
            source, tmp_path / "call.mp3", bitrate_kbps=64, limits=ROOMY, should_stop=lambda: True
        )


def limits_for(source: Path, rules: ConversionRules = RULES, **provider: float) -> ConversionLimits:
    return conversion_limits(
        probe_audio(source),
        rules,
        kind=ConversionKind.ENCODE_MP3,
        bitrate_kbps=64,
        source_bytes=source.stat().st_size,
        provider_seconds=provider.get("seconds"),
    )


def test_break_2_audio_bomb_a_flac_declaring_a_minute_but_holding_20_hours_stops_early(
    tmp_path: Path,
) -> None:
    bomb = written(tmp_path, flac_bomb(declared_seconds=60, real_seconds=20 * 3600))
    assert bomb.stat().st_size < 200_000  # the attack: 20 hours in about 130 KB
    assert probe_audio(bomb).duration_seconds == 60.0  # and its header says a minute
    target = tmp_path / "call.mp3"

    with pytest.raises(AudioBomb) as raised:
        encode_mp3(bomb, target, bitrate_kbps=64, limits=limits_for(bomb), should_stop=never)

    # Stopped at 1.5 x 60 s + 60 s of audio: at 64 kbit/s that is about 1.2 MB, not 576 MB.
    assert target.stat().st_size < 2 * MB
    message = str(raised.value)
    assert "it is said to last 60.0 s" in message
    assert "more than 150.0 s" in message
    assert "bytes written" in message


def test_an_honest_recording_beyond_max_audio_seconds_is_stopped_there(tmp_path: Path) -> None:
    long = written(tmp_path, flac_bomb(declared_seconds=20 * 3600, real_seconds=20 * 3600))
    rules = ConversionRules(
        mode=ConvertMode.AUTO,
        max_upload_bytes=100 * MB,
        mp3_bitrate_kbps=64,
        mp3_min_bitrate_kbps=16,
        max_audio_seconds=120.0,
    )

    with pytest.raises(AudioBomb, match=r"more than 120\.0 s"):
        encode_mp3(
            long,
            tmp_path / "call.mp3",
            bitrate_kbps=64,
            limits=limits_for(long, rules),
            should_stop=never,
        )


def test_the_provider_duration_lets_a_file_run_past_a_short_header(tmp_path: Path) -> None:
    # The header says 10 s, the provider 300 s: the call's own length is what is expected.
    source = written(tmp_path, flac_bomb(declared_seconds=10, real_seconds=300))
    target = tmp_path / "call.mp3"

    encode_mp3(
        source, target, bitrate_kbps=64, limits=limits_for(source, seconds=300), should_stop=never
    )

    assert probe_audio(target).duration_seconds == pytest.approx(300, abs=9)  # whole frames


def test_a_repackaging_that_runs_past_its_audio_limit_is_stopped(tmp_path: Path) -> None:
    source = written(tmp_path, encoded("m4a", 6.0))
    short = ConversionLimits(
        expected_seconds=1.0, max_audio_seconds=2.0, max_output_bytes=1 << 30, max_wall_seconds=60
    )

    with pytest.raises(AudioBomb, match=r"more than 2\.0 s"):
        remux_to_adts(source, tmp_path / "call.aac", limits=short, should_stop=never)


def test_a_conversion_writing_more_than_its_limit_is_stopped(tmp_path: Path) -> None:
    source = written(tmp_path, encoded("flac", 4.0))
    small = ConversionLimits(
        expected_seconds=4.0,
        max_audio_seconds=3600.0,
        max_output_bytes=10_000,
        max_wall_seconds=600,
    )
    target = tmp_path / "call.mp3"

    with pytest.raises(AudioBomb, match="wrote more than 10000 bytes"):
        encode_mp3(source, target, bitrate_kbps=64, limits=small, should_stop=never)


def test_a_conversion_past_its_time_is_stopped(tmp_path: Path) -> None:
    source = written(tmp_path, encoded("m4a", 2.0))
    no_time = ConversionLimits(
        expected_seconds=2.0, max_audio_seconds=3600.0, max_output_bytes=1 << 30, max_wall_seconds=0
    )

    with pytest.raises(AudioBomb, match=r"longer than worker\.max_convert_seconds"):
        remux_to_adts(source, tmp_path / "call.aac", limits=no_time, should_stop=never)


def mutations(data: bytes, rng: random.Random) -> list[bytes]:
    """Cut-off and bit-flipped copies of ``data``, as a hostile server might send."""
    variants = [data[: rng.randrange(1, len(data))] for _ in range(6)]
    for flips in (1, 3, 20):
        for _ in range(8):
            damaged = bytearray(data)
            for _ in range(flips):
                # Headers hold most of what a parser trusts: flip there more often.
                position = rng.randrange(min(len(data), 600 if rng.random() < 0.7 else len(data)))
                damaged[position] ^= 1 << rng.randrange(8)
            variants.append(bytes(damaged))
    # A byte that is no UTF-8 in the encoder's tag ("Lavf..."): the library's own decoding.
    variants.append(data.replace(b"Lavf", b"La\xb7f", 1))
    return variants


@pytest.mark.parametrize("kind", sorted(ENCODINGS))
def test_break_9_hostile_files_are_audio_errors_never_library_exceptions(
    tmp_path: Path, kind: str
) -> None:
    rng = random.Random(f"fuzz-{kind}")
    for number, data in enumerate(mutations(encoded(kind, 1.0), rng)):
        source = written(tmp_path, data, f"fuzzed-{number}.download")
        try:
            facts = probe_audio(source)
            if facts.codec == "aac" and facts.siro_format is None:
                remux_to_adts(source, tmp_path / "out.aac", limits=ROOMY, should_stop=never)
            else:
                encode_mp3(
                    source, tmp_path / "out.mp3", bitrate_kbps=64, limits=ROOMY, should_stop=never
                )
        except AudioError:
            pass  # not_audio, corrupt_audio...: said so, failed for good
