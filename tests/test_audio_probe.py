"""A download counts only when its bytes really are mp3, wav or aac."""

from __future__ import annotations

from pathlib import Path

import pytest

from poller.adapters.audio_probe import probe_audio
from poller.domain.siro import AudioFormat
from poller.ports.audio import NotAudio, UnsupportedAudio
from tests.fakes.audio import LOGIN_PAGE, aac_bytes, flac_bytes, mp3_bytes, wav_bytes


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
    assert facts.format == expected
    assert 1.5 < facts.duration_seconds < 2.5


def test_the_file_name_does_not_matter(tmp_path: Path) -> None:
    # A provider URL ending in .mp3 that serves WAV is still WAV.
    assert probe_audio(spool(tmp_path, wav_bytes(), "call-1.mp3")).format == AudioFormat.WAV


@pytest.mark.parametrize(
    ("data", "hint"),
    [
        (LOGIN_PAGE, "looks like HTML"),
        (b'{"error": "token expired"}', "looks like JSON"),
        (b"", "it is empty"),
        (bytes(range(256)) * 64, "starts with bytes 00 01 02"),
        (mp3_bytes()[:3], "starts with bytes ff fb 90"),
    ],
)
def test_anything_else_is_not_audio_and_says_what_it_looks_like(
    tmp_path: Path, data: bytes, hint: str
) -> None:
    with pytest.raises(NotAudio, match=hint):
        probe_audio(spool(tmp_path, data))


def test_real_audio_of_another_format_is_named(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedAudio, match="FLAC audio; Siro takes only mp3, wav or aac"):
        probe_audio(spool(tmp_path, flac_bytes()))
