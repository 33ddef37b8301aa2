"""The audio goes only to an allowed storage host, over https, checked before a byte is sent.

Measured before: an ``uploadUrl`` on an unexpected host, or over plain ``http://``, received
the audio. Now the PUT goes only to ``siro.storage_hosts`` (Google Cloud Storage by default),
over https, or over http to a loopback address listed exactly there (a local Siro, as here).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from poller.adapters.siro import SiroHttpClient
from poller.adapters.siro.settings import SIRO_STORAGE_HOSTS, SiroSettings
from poller.adapters.siro.storage import StorageHosts
from poller.domain.siro import AudioFormat, SignedUpload
from poller.ports.siro import SiroPermanentError
from poller.simulators.siro_server import FakeSiro
from tests.http_fixtures import CountingListener
from tests.siro_settings import siro_settings


@pytest.fixture
def siro() -> Iterator[FakeSiro]:
    with FakeSiro() as fake:
        yield fake


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    path = tmp_path / "call.mp3"
    path.write_bytes(os.urandom(4096))
    return path


def put_through_siro(client: SiroHttpClient, audio: Path) -> None:
    size = audio.stat().st_size
    signed = client.request_upload(AudioFormat.MP3, size)
    client.put_audio(signed, audio, AudioFormat.MP3, size)


def a_signed_url(upload_url: str) -> SignedUpload:
    return SignedUpload(
        upload_url,
        "https://storage.googleapis.com/b/o",
        datetime.now(UTC) + timedelta(hours=1),
        {},
    )


def test_a_plain_http_upload_url_is_refused_naming_its_host_and_nothing_is_sent(
    audio: Path,
) -> None:
    with CountingListener("127.0.0.1") as storage, FakeSiro(upload_url_base=storage.url) as siro:
        # The default storage hosts: Google Cloud Storage only.
        client = SiroHttpClient(siro_settings(siro, storage_hosts=list(SIRO_STORAGE_HOSTS)))

        with pytest.raises(SiroPermanentError) as caught:
            put_through_siro(client, audio)

        message = str(caught.value)
        assert f"127.0.0.1:{storage.port} over plain http" in message
        assert "siro.storage_hosts" in message
        assert caught.value.step == "put"
        assert storage.connections == 0
        assert "X-Goog-Signature" not in message
        assert not any(secret in message for secret in siro.state.secrets())


def test_an_https_upload_url_on_an_unexpected_host_is_refused_and_nothing_is_sent(
    audio: Path,
) -> None:
    with CountingListener("127.0.0.1") as storage:
        elsewhere = storage.url.replace("http://", "https://")
        with FakeSiro(upload_url_base=elsewhere) as siro:
            client = SiroHttpClient(siro_settings(siro, storage_hosts=list(SIRO_STORAGE_HOSTS)))

            with pytest.raises(SiroPermanentError) as caught:
                put_through_siro(client, audio)

        assert (
            f"refused to send the audio to 127.0.0.1:{storage.port}: not one of "
            "siro.storage_hosts (storage.googleapis.com, *.storage.googleapis.com)"
        ) in str(caught.value)
        assert storage.connections == 0


def test_plain_http_to_a_listed_host_that_is_not_loopback_is_refused(
    siro: FakeSiro, audio: Path
) -> None:
    client = SiroHttpClient(siro_settings(siro, storage_hosts=["storage.example.com"]))

    with pytest.raises(SiroPermanentError, match=r"storage\.example\.com over plain http"):
        client.put_audio(
            a_signed_url("http://storage.example.com/b/o?X-Goog-Signature=abc"),
            audio,
            AudioFormat.MP3,
            4096,
        )


def test_a_loopback_storage_listed_exactly_takes_the_audio(siro: FakeSiro, audio: Path) -> None:
    client = SiroHttpClient(siro_settings(siro, storage_hosts=[siro.storage_host]))

    put_through_siro(client, audio)

    (put,) = siro.state.requests_for("put")
    assert put.body_size == 4096


@pytest.mark.parametrize(
    ("upload_url", "words"),
    [
        ("http://storage.googleapis.com/b/o?X-Goog-Signature=abc", "over plain http"),
        ("https://169.254.169.254/b/o?X-Goog-Signature=abc", "169.254.169.254: not one of"),
        ("https://metadata.google.internal/b/o?X-Goog-Signature=abc", "metadata.google.internal"),
        ("https://storage.googleapis.com.example.net/o?X-Goog-Signature=abc", "not one of"),
        ("https://storage.googleapis.com:8443/o?X-Goog-Signature=abc", "googleapis.com:8443"),
        ("file:///etc/passwd", "https only"),
        ("ftp://storage.googleapis.com/o", "https only"),
    ],
)
def test_a_put_to_a_refused_destination_is_permanent_and_keeps_the_url_secret(
    siro: FakeSiro, audio: Path, upload_url: str, words: str
) -> None:
    client = SiroHttpClient(siro_settings(siro, storage_hosts=list(SIRO_STORAGE_HOSTS)))

    with pytest.raises(SiroPermanentError, match=words) as caught:
        client.put_audio(a_signed_url(upload_url), audio, AudioFormat.MP3, 4096)

    assert "X-Goog-Signature" not in str(caught.value) and "abc" not in str(caught.value)


@pytest.mark.parametrize(
    "upload_url",
    [
        "https://storage.googleapis.com/bucket/o?X-Goog-Signature=abc",
        "https://bucket.storage.googleapis.com/o?X-Goog-Signature=abc",
        "https://STORAGE.googleapis.com./bucket/o",
    ],
)
def test_google_cloud_storage_is_allowed_by_default(upload_url: str) -> None:
    StorageHosts(SiroSettings().storage_hosts).check(upload_url, "put")


@pytest.mark.parametrize(
    ("listed", "upload_url", "allowed"),
    [
        (["127.0.0.1:9000"], "http://127.0.0.1:9000/u", True),
        (["127.0.0.1:9000"], "http://127.0.0.1:9001/u", False),
        (["::1"], "http://[::1]/u", True),
        (["localhost:9000"], "http://localhost:9000/u", False),  # a name, not an address
        (["10.0.0.5:9000"], "http://10.0.0.5:9000/u", False),  # not loopback
        (["10.0.0.5:9000"], "https://10.0.0.5:9000/u", True),  # an operator's own storage
        (["*.example.com"], "https://s3.example.com/u", True),
        (["*.example.com"], "http://s3.example.com/u", False),
        (["*.example.com"], "https://example.com/u", False),
    ],
)
def test_which_listed_storage_urls_pass(listed: list[str], upload_url: str, allowed: bool) -> None:
    hosts = StorageHosts(SiroSettings(storage_hosts=listed).storage_hosts)
    if allowed:
        hosts.check(upload_url, "put")
    else:
        with pytest.raises(SiroPermanentError, match=r"siro\.storage_hosts|https only"):
            hosts.check(upload_url, "put")


@pytest.mark.parametrize("value", [[], ["https://storage.example.com"], ["a@b.com"], ["x.*.com"]])
def test_storage_hosts_that_are_no_host_list_are_a_config_error(value: list[str]) -> None:
    with pytest.raises(ValidationError, match="storage_hosts"):
        SiroSettings(storage_hosts=value)
