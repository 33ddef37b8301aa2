"""The signed PUT goes through the guarded layer: https to public addresses, or Siro's own host."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.adapters.siro_http import SiroHttpClient
from poller.domain.siro import AudioFormat, SignedUpload
from poller.ports.siro import SiroPermanentError
from tests.fakes.siro_server import FakeSiro
from tests.http_fixtures import CountingListener


@pytest.fixture
def siro() -> Iterator[FakeSiro]:
    with FakeSiro() as fake:
        yield fake


@pytest.mark.parametrize(
    ("upload_url", "words"),
    [
        ("http://storage.example.com/b/o?X-Goog-Signature=abc", "plain http"),
        ("https://169.254.169.254/b/o?X-Goog-Signature=abc", "cloud metadata"),
        ("https://metadata.google.internal/b/o?X-Goog-Signature=abc", "cloud metadata"),
        ("file:///etc/passwd", "only http and https"),
    ],
)
def test_a_put_to_a_refused_destination_is_permanent_and_sends_nothing(
    siro: FakeSiro, tmp_path: Path, upload_url: str, words: str
) -> None:
    audio = tmp_path / "a.mp3"
    audio.write_bytes(b"x" * 100)
    upload = SignedUpload(
        upload_url, "https://storage.example.com/b/o", datetime.now(UTC) + timedelta(hours=1), {}
    )
    with pytest.raises(SiroPermanentError, match=words) as caught:
        SiroHttpClient(siro.settings()).put_audio(upload, audio, AudioFormat.MP3, 100)
    assert "X-Goog-Signature" not in str(caught.value) and "abc" not in str(caught.value)


def test_a_put_to_another_local_port_reaches_nothing(siro: FakeSiro, tmp_path: Path) -> None:
    audio = tmp_path / "a.mp3"
    audio.write_bytes(b"x" * 100)
    with CountingListener("127.0.0.1") as other:
        upload = SignedUpload(
            f"https://127.0.0.1:{other.port}/b/o?sig=abc",
            "https://storage.example.com/b/o",
            datetime.now(UTC) + timedelta(hours=1),
            {},
        )
        with pytest.raises(SiroPermanentError, match="loopback address"):
            SiroHttpClient(siro.settings()).put_audio(upload, audio, AudioFormat.MP3, 100)
        assert other.connections == 0
