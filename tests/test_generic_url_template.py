"""G3: the generic adapter downloads a recording from a path built from the record's fields
(CloudTalk's /api/calls/recording/{id}.json, Vonage's .../audio/recording/{id}), against the
generic simulator on 127.0.0.1."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.domain.failures import StepFailure
from poller.domain.records import Call
from poller.domain.states import CallState, RecordingState
from poller.domain.windows import Window
from poller.ports.provider import PermanentProviderError
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, serve

T0 = datetime(2026, 2, 23, 14, 0, tzinfo=UTC)
WINDOW = Window(T0 - timedelta(hours=1), T0 + timedelta(hours=1))
NO_WAIT = RetryPolicy(max_tries=2, base_delay=0.0, max_delay=0.1)
KEY_ID, KEY_SECRET = "ct-key-id", "ct-key-secret-0001"
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 64
CLOUDTALK_RECORDING = "/api/calls/recording/{call_id}.json"


def cloudtalk_cdr(cdr_id: str, at: datetime) -> dict[str, Any]:
    """A row of CloudTalk's /api/calls/index.json (its recording_link is a play page)."""
    return {
        "Cdr": {
            "id": cdr_id,
            "type": "outgoing",
            "started_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "recording_link": f"https://my.cloudtalk.io/r/play/{cdr_id}",
        },
        "Agent": {"email": "rep@yourcompany.com"},
    }


def cloudtalk(url: str, **recording: Any) -> GenericProvider:
    settings = GenericSettings(
        base_url=url,
        auth="basic",
        username=KEY_ID,
        password=KEY_SECRET,
        listing={"path": "/api/calls/index.json", "items_path": "calls"},
        fields={
            "call_id": "Cdr.id",
            "started_at": "Cdr.started_at",
            "rep_email": "Agent.email",
            "recording_url": "",  # a play page, not the audio
        },
        recording={"download_path": CLOUDTALK_RECORDING, "format": "wav", **recording},
    )
    return GenericProvider(settings, retry=NO_WAIT)


def stored(call_id: str, recording_id: str | None = None) -> Call:
    return Call(
        id=1,
        provider="generic",
        provider_call_id=call_id,
        recording_id=recording_id,
        state=CallState.PENDING,
    )


def downloader() -> Downloader:
    client = HttpClient(
        limits=Limits(connect_timeout=2, read_timeout=2, deadline=10, max_body_bytes=1 << 20),
        hosts=HostRules(),
        retry=RetryPolicy.once(),
        user_agent="siro-poller-test",
    )
    return Downloader(client, max_bytes=1 << 20)


@pytest.fixture
def api() -> FakeCallLog:
    return FakeCallLog(list_path="/api/calls/index.json", auth=("basic", KEY_ID, KEY_SECRET))


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        yield running


def test_a_call_downloads_from_the_path_built_from_its_id_with_the_provider_auth(
    api: FakeCallLog, server: LocalHTTPServer, tmp_path: Path
) -> None:
    api.add_call(cloudtalk_cdr("4711", T0), T0, key="4711")
    api.add_recording("/api/calls/recording/4711.json", WAV, content_type="audio/wav")
    provider = cloudtalk(server.url)

    [page] = provider.list_window(WINDOW)
    [record] = page.records
    # No URL in the record, none needed: the path is built from the id.
    assert record.recording_state is RecordingState.READY
    assert record.recording_url is None
    assert KEY_SECRET not in repr(record)

    request = provider.resolve_download(record)
    assert request.url == f"{server.url}/api/calls/recording/4711.json"
    assert request.format_hint == "wav"
    fetched = downloader().fetch(request, tmp_path / "call-1")
    assert (tmp_path / "call-1").read_bytes() == WAV and fetched.size_bytes == len(WAV)
    [download] = [r for r in api.requests if r["path"].startswith("/api/calls/recording/")]
    pair = base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()
    assert download["headers"]["Authorization"] == f"Basic {pair}"


def test_the_path_keeps_the_base_urls_own_path_and_can_use_the_recording_id(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    # Vonage: base_url https://api.vonage.com/t/vbc.prod, recordings by their own id.
    settings = GenericSettings(
        base_url=server.url + "/t/vbc.prod",
        fields={"call_id": "id", "recording_id": "recording.id", "recording_url": ""},
        recording={"download_path": "/call_recording/v1/api/audio/recording/{recording_id}"},
    )
    provider = GenericProvider(settings, retry=NO_WAIT)
    request = provider.resolve_download(stored("call-9", recording_id="rec-77"))
    assert request.url == f"{server.url}/t/vbc.prod/call_recording/v1/api/audio/recording/rec-77"

    with pytest.raises(PermanentProviderError, match=r"no recording id for provider\.recording"):
        provider.resolve_download(stored("call-10"))


def test_a_call_without_the_id_the_path_needs_waits_for_its_recording(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    settings = GenericSettings(
        base_url=server.url,
        listing={"path": "/api/calls/index.json"},
        fields={"call_id": "id", "recording_id": "recording_id", "recording_url": ""},
        recording={"download_path": "/recordings/{recording_id}"},
    )
    api.add_call({"id": "c1", "started_at": T0.isoformat(), "recording_id": "r1"}, T0)
    api.add_call({"id": "c2", "started_at": T0.isoformat(), "recording_id": None}, T0)
    api.auth = None
    [page] = GenericProvider(settings, retry=NO_WAIT).list_window(WINDOW)
    states = {record.provider_call_id: record.recording_state for record in page.records}
    assert states == {"c1": RecordingState.READY, "c2": RecordingState.PENDING}


def test_a_url_field_that_is_null_says_the_call_has_no_recording_yet(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    # CallRail lists "recording": the recording.json URL, or null for a call not recorded.
    settings = GenericSettings(
        base_url=server.url,
        listing={"path": "/api/calls/index.json"},
        fields={"call_id": "id", "recording_url": "recording"},
        recording={"download_path": "/calls/{call_id}/recording.json"},
    )
    at = T0.isoformat()
    api.add_call({"id": "c1", "started_at": at, "recording": "/calls/c1/recording.json"}, T0)
    api.add_call({"id": "c2", "started_at": at, "recording": None}, T0)
    api.add_call({"id": "c3", "started_at": at}, T0)
    api.auth = None
    [page] = GenericProvider(settings, retry=NO_WAIT).list_window(WINDOW)
    states = {record.provider_call_id: record.recording_state for record in page.records}
    assert states == {
        "c1": RecordingState.READY,
        "c2": RecordingState.PENDING,
        "c3": RecordingState.READY,  # no such field in the record: it says nothing
    }


@pytest.mark.parametrize(
    ("call_id", "requested"),
    [
        ("../../admin", "/api/calls/recording/..%2F..%2Fadmin.json"),
        ("a/b?x=1#frag", "/api/calls/recording/a%2Fb%3Fx%3D1%23frag.json"),
        ("%2e%2e%2fadmin", "/api/calls/recording/%252e%252e%252fadmin.json"),
        ("call 7", "/api/calls/recording/call%207.json"),
    ],
)
def test_an_id_cannot_leave_its_path_segment(
    api: FakeCallLog, server: LocalHTTPServer, tmp_path: Path, call_id: str, requested: str
) -> None:
    api.add_recording("/admin", b"secret admin page", require_auth=False)
    api.add_recording("/admin.json", b"secret admin page", require_auth=False)
    provider = cloudtalk(server.url)

    request = provider.resolve_download(stored(call_id))

    assert request.url == server.url + requested
    with pytest.raises(StepFailure) as caught:
        downloader().fetch(request, tmp_path / "call-1")
    assert caught.value.kind == "recording_not_found"
    assert [r["path"] for r in api.requests] == [requested]


@pytest.mark.parametrize("call_id", ["..", "."])
@pytest.mark.parametrize("setting", ["download_path", "refetch_path"])
def test_an_id_that_is_a_dot_segment_is_refused_before_any_request(
    api: FakeCallLog, server: LocalHTTPServer, call_id: str, setting: str
) -> None:
    provider = GenericProvider(
        GenericSettings(base_url=server.url, recording={setting: "/calls/{call_id}/recording"}),
        retry=NO_WAIT,
    )
    with pytest.raises(
        PermanentProviderError, match=rf"cannot be a path segment of provider\.recording\.{setting}"
    ):
        provider.resolve_download(stored(call_id))
    assert api.requests == []


def test_credentials_go_only_to_the_providers_hosts_however_the_path_is_built(
    server: LocalHTTPServer,
) -> None:
    provider = cloudtalk(server.url)
    request = provider.resolve_download(stored("4711"))
    assert request.headers_for(request.url) != {}
    # A redirect off the API host gets nothing (the downloader asks per hop).
    assert request.headers_for("https://recordings.example-cdn.net/4711.wav") == {}
    assert request.credential_hosts == frozenset({server.url.removeprefix("http://")})


@pytest.mark.parametrize(
    ("recording", "message"),
    [
        ({"download_path": "/r/{id}.json"}, "unknown placeholder {id}"),
        ({"download_path": "/recordings/latest.json"}, "must contain {call_id} or {recording_id}"),
        ({"download_path": "recordings/{call_id}"}, "must be a path starting with '/'"),
        ({"download_path": "/r/{call_id}?x=1"}, "without query string"),
        (
            {"download_path": "/r/{call_id}", "refetch_path": "/calls/{call_id}"},
            "set refetch_path or download_path, not both",
        ),
        ({"download_path": "/r/{call_id}", "url_path": "url"}, 'only used with answer = "json"'),
    ],
)
def test_a_download_path_that_cannot_work_is_a_configuration_error(
    recording: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace("{", r"\{").replace("?", r"\?")):
        GenericSettings(base_url="https://api.example.com", recording=recording)
