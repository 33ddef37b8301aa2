"""The three-step upload over real sockets: exact PUT headers, streaming, expired signed URLs."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from poller.adapters.siro import SiroHttpClient
from poller.domain.siro import AudioFormat, RecordingCreate, SignedUpload
from poller.ports.siro import SiroPermanentError
from poller.simulators.siro_server import FakeSiro, ManualClock
from tests.siro_settings import siro_settings

MB = 1024 * 1024


@pytest.fixture
def siro() -> Iterator[FakeSiro]:
    with FakeSiro() as fake:
        yield fake


def write_audio(path: Path, size: int) -> str:
    """Random bytes written in blocks; returns their sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(MB, remaining))
            digest.update(block)
            out.write(block)
            remaining -= len(block)
    return digest.hexdigest()


@pytest.mark.parametrize("return_upload_headers", [True, False])
@pytest.mark.parametrize(
    ("audio_format", "mime_type"),
    [
        (AudioFormat.MP3, "audio/mpeg"),
        (AudioFormat.WAV, "audio/wav"),
        (AudioFormat.AAC, "audio/aac"),
    ],
)
def test_the_put_carries_exactly_the_signed_headers_and_no_siro_credential(
    return_upload_headers: bool, audio_format: AudioFormat, mime_type: str, tmp_path: Path
) -> None:
    path = tmp_path / f"call.{audio_format.value}"
    write_audio(path, 5000)
    with FakeSiro(return_upload_headers=return_upload_headers) as siro:
        client = SiroHttpClient(siro_settings(siro))

        signed = client.request_upload(audio_format, 5000)
        client.put_audio(signed, path, audio_format, 5000)

        assert bool(signed.upload_headers) is return_upload_headers
        (put,) = siro.state.requests_for("put")
        assert put.header("Content-Type") == mime_type
        assert put.header("x-goog-content-length-range") == "0,5000"
        assert put.header("Content-Length") == "5000"
        assert not put.header_names() & {"authorization", "x-siro-auth-token"}
        assert {name for name in put.header_names() if name.startswith("x-goog-")} == {
            "x-goog-content-length-range"
        }


def test_headers_that_differ_from_the_signed_ones_are_refused_like_gcs_does(
    siro: FakeSiro, tmp_path: Path
) -> None:
    path = tmp_path / "call.mp3"
    write_audio(path, 100)
    client = SiroHttpClient(siro_settings(siro))
    signed = client.request_upload(AudioFormat.MP3, 100)
    tampered = SignedUpload(
        upload_url=signed.upload_url,
        download_url=signed.download_url,
        expires_at=signed.expires_at,
        upload_headers={**signed.upload_headers, "Content-Type": "audio/mp3"},
    )

    with pytest.raises(SiroPermanentError, match="SignatureDoesNotMatch") as caught:
        client.put_audio(tampered, path, AudioFormat.MP3, 100)

    assert caught.value.http_status == 403
    assert all(u.received_sha256 is None for u in siro.state.uploads.values())


def test_a_20_mb_file_is_streamed_from_disk_byte_for_byte(siro: FakeSiro, tmp_path: Path) -> None:
    path = tmp_path / "long-call.wav"
    size = 20 * MB
    expected_sha256 = write_audio(path, size)
    client = SiroHttpClient(siro_settings(siro))
    signed = client.request_upload(AudioFormat.WAV, size)

    tracemalloc.start()
    try:
        used = client.put_audio(signed, path, AudioFormat.WAV, size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    recording_id = client.create_recording(
        RecordingCreate(file_url=used.download_url, file_type=AudioFormat.WAV, user_id="user-1")
    )

    (put,) = siro.state.requests_for("put")
    assert (put.body_size, put.body_sha256) == (size, expected_sha256)
    # Client and fake each hold a few blocks (the client sends 1 MB at a time), never the file.
    assert peak < 4 * MB
    assert recording_id in siro.state.recordings


def test_a_signed_url_that_expired_before_the_put_is_replaced(tmp_path: Path) -> None:
    clock = ManualClock()
    path = tmp_path / "call.mp3"
    write_audio(path, 300)
    with FakeSiro(clock=clock) as siro:
        client = SiroHttpClient(siro_settings(siro), clock=clock)
        siro.state.expire_next_signed_url_at(clock() + timedelta(minutes=2))
        stale = client.request_upload(AudioFormat.MP3, 300)
        clock.advance(timedelta(minutes=3))  # e.g. the worker was slow to get to it

        used = client.put_audio(stale, path, AudioFormat.MP3, 300)
        recording_id = client.create_recording(
            RecordingCreate(file_url=used.download_url, file_type=AudioFormat.MP3, user_id="u")
        )

        assert used.download_url != stale.download_url
        assert len(siro.state.requests_for("signed-url")) == 2
        (put,) = siro.state.requests_for("put")
        assert used.upload_url.startswith(siro.url + put.path)
        assert siro.state.recordings[recording_id]["body"]["fileUrl"] == used.download_url


def test_a_file_whose_size_changed_on_disk_is_not_sent(siro: FakeSiro, tmp_path: Path) -> None:
    path = tmp_path / "call.mp3"
    write_audio(path, 1000)
    client = SiroHttpClient(siro_settings(siro))
    signed = client.request_upload(AudioFormat.MP3, 999)

    with pytest.raises(ValueError, match="1000 bytes on disk"):
        client.put_audio(signed, path, AudioFormat.MP3, 999)

    assert siro.state.requests_for("put") == []


def test_a_recording_cannot_be_created_from_a_file_that_was_never_put(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro))
    signed = client.request_upload(AudioFormat.MP3, 10)

    with pytest.raises(SiroPermanentError, match="fileUrl") as caught:
        client.create_recording(
            RecordingCreate(file_url=signed.download_url, file_type=AudioFormat.MP3, user_id="u")
        )

    assert caught.value.http_status == 422
    assert caught.value.issues[0].path == ("fileUrl",)
