"""A download counts only when its content is audio; what it is comes from the bytes alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from poller.adapters.audio import probe_audio
from poller.domain.siro import AudioFormat
from poller.ports.audio import CorruptAudio, NotAudio
from poller.simulators.audio import LOGIN_PAGE, aac_bytes, encoded, flac_bytes, mp3_bytes, wav_bytes


def spool(tmp_path: Path, data: bytes, name: str = "call-1.download") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (mp3_bytes(2), AudioFormat.MP3),
        (wav_bytes(2), AudioFormat.WAV),
        (aac_bytes(2), AudioFormat.AAC),
    ],
)
def test_each_siro_format_is_recognised_by_content(
    tmp_path: Path, data: bytes, expected: AudioFormat
) -> None:
    facts = probe_audio(spool(tmp_path, data))
    assert facts.siro_format == expected
    assert 1.5 < facts.duration_seconds < 2.5


@pytest.mark.parametrize(
    ("kind", "container", "codec", "siro_format"),
    [
        ("m4a", "m4a", "aac", None),
        ("mp4_mp3", "mp4", "mp3", None),
        ("ogg", "ogg", "opus", None),
        ("webm", "webm", "opus", None),
        ("flac", "flac", "flac", None),
        ("wav", "wav", "pcm_s16le", AudioFormat.WAV),
        ("mp3", "mp3", "mp3", AudioFormat.MP3),
        ("aac", "aac", "aac", AudioFormat.AAC),
    ],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_real_recordings_in_every_format_are_detected_with_their_shape(
    tmp_path: Path,
    kind: str,
    container: str,
    codec: str,
    siro_format: AudioFormat | None,
    channels: int,
) -> None:
    # The name says mp3 in every case: only the content counts.
    facts = probe_audio(spool(tmp_path, encoded(kind, 2.0, channels), "call-1.mp3"))

    assert (facts.container, facts.codec, facts.siro_format) == (container, codec, siro_format)
    assert facts.channels == channels
    assert facts.sample_rate == (48000 if codec == "opus" else 44100)
    assert facts.duration_seconds == pytest.approx(2.0, abs=0.1)


def test_the_file_name_does_not_matter(tmp_path: Path) -> None:
    # A provider URL ending in .mp3 that serves WAV is still WAV.
    assert probe_audio(spool(tmp_path, wav_bytes(), "call-1.mp3")).siro_format == AudioFormat.WAV


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (LOGIN_PAGE, "looks like HTML"),
        (b'{"error": "token expired"}', "looks like JSON"),
        (b"", "it is empty"),
        (bytes(range(256)) * 64, "starts with bytes 00 01 02"),
        (mp3_bytes()[:3], "starts with bytes ff fb 90"),
        (b"#EXTM3U\n#EXT-X-VERSION:3\n#EXTINF:10,\nhttp://127.0.0.1:9/a.ts\n", "23 45 58 54"),
    ],
)
def test_anything_else_is_not_audio_and_says_what_it_looks_like(
    tmp_path: Path, data: bytes, hint: str
) -> None:
    with pytest.raises(NotAudio, match=hint):
        probe_audio(spool(tmp_path, data))


def test_a_cut_off_m4a_is_corrupt_audio_not_an_error_page(tmp_path: Path) -> None:
    whole = encoded("m4a", 2.0)  # the index (moov) comes after the audio: cut, it is gone
    with pytest.raises(CorruptAudio, match="starts like MP4/M4A audio but cannot be read"):
        probe_audio(spool(tmp_path, whole[: len(whole) // 2]))


def test_a_flac_header_without_audio_is_still_recognised_as_flac(tmp_path: Path) -> None:
    facts = probe_audio(spool(tmp_path, flac_bytes()))
    assert (facts.container, facts.siro_format) == ("flac", None)
