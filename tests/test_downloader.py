"""Downloads over real sockets: credentials stay home, sizes are enforced, nothing half-written."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.app import build_downloader, build_provider
from poller.config import Settings
from poller.domain.call_record import DownloadRequest, host_key
from poller.domain.failures import Disposition, StepFailure
from poller.domain.records import Call
from poller.domain.states import CallState
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, TransientProviderError
from poller.simulators.audio import mp3_bytes
from poller.simulators.http_server import LocalHTTPServer, QuietHandler
from poller.simulators.provider_server import FakeCallLog, serve

AUDIO = mp3_bytes(2)


def http_client(deadline: float = 30.0) -> HttpClient:
    return HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=deadline, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )


SECRET_HEADERS = {"Authorization": "Bearer provider-secret", "X-API-Key": "key-123"}


@dataclass
class Script:
    """What the scripted server answers per path, and what it saw."""

    routes: dict[str, tuple[int, dict[str, str], bytes]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ScriptedHandler(QuietHandler):
    def do_GET(self) -> None:
        script: Script = self.server.state  # type: ignore[attr-defined]
        with script.lock:
            script.seen.append((self.path, dict(self.headers.items())))
        status, headers, body = script.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        self.send_header("Connection", "close")
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers and "Transfer-Encoding" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if headers.get("Transfer-Encoding") == "chunked":
            for start in range(0, len(body), 4096):
                chunk = body[start : start + 4096]
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.wfile.write(body)
        self.close_connection = True


@pytest.fixture
def provider() -> Iterator[tuple[LocalHTTPServer, Script]]:
    script = Script()
    with LocalHTTPServer(ScriptedHandler, script) as server:
        yield server, script


@pytest.fixture
def storage() -> Iterator[tuple[LocalHTTPServer, Script]]:
    script = Script()
    with LocalHTTPServer(ScriptedHandler, script) as server:
        yield server, script


def downloader(max_bytes: int = 10_000_000) -> Downloader:
    return Downloader(http_client(), max_bytes=max_bytes)


def request_for(
    server: LocalHTTPServer, path: str, *also_explicit: LocalHTTPServer
) -> DownloadRequest:
    url = server.url + path
    return DownloadRequest(
        url=url,
        headers=SECRET_HEADERS,
        credential_hosts=frozenset({host_key(url)}),
        explicit_hosts=frozenset(
            {host_key(url), *(host_key(other.url) for other in also_explicit)}
        ),
    )


def test_a_download_is_written_whole_with_its_hash(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path
) -> None:
    server, script = provider
    script.routes["/r.mp3"] = (200, {"Content-Type": "audio/mpeg"}, AUDIO)

    got = downloader().fetch(request_for(server, "/r.mp3"), tmp_path / "call-1")

    assert got.path.read_bytes() == AUDIO
    assert got.sha256 == hashlib.sha256(AUDIO).hexdigest()
    assert got.size_bytes == len(AUDIO)
    assert got.path.stat().st_mode & 0o777 == 0o600
    assert script.seen[0][1]["Authorization"] == "Bearer provider-secret"


def test_credentials_never_follow_a_redirect_to_another_host(
    provider: tuple[LocalHTTPServer, Script],
    storage: tuple[LocalHTTPServer, Script],
    tmp_path: Path,
) -> None:
    server, script = provider
    bucket, bucket_script = storage
    script.routes["/r.mp3"] = (302, {"Location": f"{bucket.url}/signed.mp3?sig=abc"}, b"")
    bucket_script.routes["/signed.mp3?sig=abc"] = (200, {}, AUDIO)

    got = downloader().fetch(request_for(server, "/r.mp3", bucket), tmp_path / "call-1")

    assert got.path.read_bytes() == AUDIO
    ((_, headers),) = bucket_script.seen
    assert "Authorization" not in headers and "X-API-Key" not in headers


def test_a_body_shorter_than_its_content_length_is_retried_and_leaves_no_file(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path
) -> None:
    server, script = provider
    script.routes["/r.mp3"] = (200, {"Content-Length": str(len(AUDIO) + 500)}, AUDIO)

    with pytest.raises(StepFailure) as caught:
        downloader().fetch(request_for(server, "/r.mp3"), tmp_path / "call-1")

    assert caught.value.disposition == Disposition.RETRY
    assert caught.value.kind in ("download_truncated", "download_network")
    assert list(tmp_path.iterdir()) == []


def test_an_oversize_file_is_refused_by_its_content_length_before_reading(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path
) -> None:
    server, script = provider
    script.routes["/r.mp3"] = (200, {}, AUDIO)

    with pytest.raises(StepFailure) as caught:
        downloader(max_bytes=1000).fetch(request_for(server, "/r.mp3"), tmp_path / "call-1")

    assert (caught.value.kind, caught.value.disposition) == ("oversize", Disposition.FAIL)
    assert list(tmp_path.iterdir()) == []


def test_an_oversize_stream_without_a_length_is_cut_off(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path
) -> None:
    server, script = provider
    script.routes["/r.mp3"] = (200, {"Transfer-Encoding": "chunked"}, AUDIO)

    with pytest.raises(StepFailure, match="more than") as caught:
        downloader(max_bytes=5000).fetch(request_for(server, "/r.mp3"), tmp_path / "call-1")

    assert caught.value.kind == "oversize"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("status", "kind", "disposition"),
    [
        (404, "recording_not_found", Disposition.FAIL),
        (429, "download_http_429", Disposition.RETRY),
        (502, "download_http_502", Disposition.RETRY),
    ],
)
def test_refusals_are_sorted_into_retry_or_fail(
    provider: tuple[LocalHTTPServer, Script],
    tmp_path: Path,
    status: int,
    kind: str,
    disposition: Disposition,
) -> None:
    server, script = provider
    script.routes["/r.mp3?token=s3cret"] = (status, {"Retry-After": "7"}, b'{"error": "no"}')

    with pytest.raises(StepFailure) as caught:
        downloader().fetch(request_for(server, "/r.mp3?token=s3cret"), tmp_path / "call-1")

    assert (caught.value.kind, caught.value.disposition) == (kind, disposition)
    assert "s3cret" not in caught.value.message
    if disposition == Disposition.RETRY:
        assert caught.value.retry_after_seconds == 7


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_of_the_credentials_sent_is_a_provider_credential_problem(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path, status: int
) -> None:
    server, script = provider
    script.routes["/r.mp3?token=s3cret"] = (status, {}, b'{"error": "no"}')

    with pytest.raises(ProviderAuthError) as caught:
        downloader().fetch(request_for(server, "/r.mp3?token=s3cret"), tmp_path / "call-1")

    assert caught.value.status == status
    assert "refused the credentials" in str(caught.value)
    assert "s3cret" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_where_no_credentials_went_is_the_calls_own_failure(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path, status: int
) -> None:
    # A signed URL on a storage host gets no credentials: its 403 is about that URL.
    server, script = provider
    script.routes["/r.mp3?X-Amz-Signature=s3cret"] = (status, {}, b"expired")
    request = replace(
        request_for(server, "/r.mp3?X-Amz-Signature=s3cret"), credential_hosts=frozenset()
    )

    with pytest.raises(StepFailure) as caught:
        downloader().fetch(request, tmp_path / "call-1")

    assert (caught.value.kind, caught.value.disposition) == ("provider_auth", Disposition.FAIL)
    assert "s3cret" not in caught.value.message


def test_a_redirect_loop_ends(provider: tuple[LocalHTTPServer, Script], tmp_path: Path) -> None:
    server, script = provider
    script.routes["/a"] = (302, {"Location": "/b"}, b"")
    script.routes["/b"] = (302, {"Location": "/a"}, b"")

    with pytest.raises(StepFailure, match="more than 5 redirects"):
        downloader().fetch(request_for(server, "/a"), tmp_path / "call-1")


def test_an_unreachable_provider_is_a_retry(tmp_path: Path) -> None:
    request = DownloadRequest(
        url="http://127.0.0.1:9/r.mp3", explicit_hosts=frozenset({"127.0.0.1:9"})
    )
    with pytest.raises(StepFailure) as caught:
        downloader().fetch(request, tmp_path / "call-1")
    assert (caught.value.kind, caught.value.disposition) == ("download_network", Disposition.RETRY)


def test_a_download_from_the_providers_host_waits_out_its_rate_limit(tmp_path: Path) -> None:
    api = FakeCallLog(auth=("bearer", "tok-123456"))
    with serve(api) as server:
        api.base_url = server.url
        settings = Settings(
            state_dir=tmp_path / "state",
            provider={"base_url": server.url, "auth": "bearer", "token": "tok-123456"},
        )
        provider = build_provider(settings)
        path = api.add_recording("/recordings/call-1.mp3", b"ID3" + b"\0" * 64)
        # The listing is told to come back in an hour: the provider's whole API is paused.
        api.fail_page(1, 429, times=1, retry_after="3600")
        window = Window(datetime.now(UTC) - timedelta(hours=1), datetime.now(UTC))
        with pytest.raises(TransientProviderError):
            list(provider.list_window(window))

        downloader = build_downloader(settings, threading.Event(), {"generic": provider})
        request = provider.resolve_download(
            Call(
                id=1,
                provider="generic",
                provider_call_id="call-1",
                state=CallState.PENDING,
                recording_url=server.url + path,
            )
        )
        with pytest.raises(StepFailure) as failure:
            downloader.fetch(request, tmp_path / "call-1.download")
    assert failure.value.retry_after_seconds is not None
    assert failure.value.retry_after_seconds > 3000
    assert api.recordings[path].served == 0


def test_a_spool_that_cannot_be_written_is_retried_as_a_spool_error(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path
) -> None:
    server, script = provider
    script.routes["/r.mp3"] = (200, {}, AUDIO)

    with pytest.raises(StepFailure) as caught:
        downloader().fetch(request_for(server, "/r.mp3"), tmp_path / "gone" / "call-1")

    failure = caught.value
    assert (failure.disposition, failure.kind) == (Disposition.RETRY, "spool_error")
    assert "writing the download into the spool failed: No such file or directory" in (
        failure.message
    )


def test_a_share_link_whose_path_grants_access_never_appears_in_a_reason(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path
) -> None:
    server, script = provider
    script.routes["/r/sh4re-l1nk-s3cret"] = (410, {}, b"gone")
    request = replace(request_for(server, "/r/sh4re-l1nk-s3cret"), secret_path=True)

    with pytest.raises(StepFailure) as caught:
        downloader().fetch(request, tmp_path / "call-1")

    assert caught.value.kind == "recording_not_found"
    assert "sh4re-l1nk-s3cret" not in str(caught.value)
    assert server.url.removeprefix("http://") in str(caught.value)
