"""G4: the generic adapter's indirect downloads, a JSON answer first and then the audio:
CallRail's {"url": ...}, GoTo Connect's token and 302, Quo's list of segments. The API is the
generic simulator and the media host an S3-like store of signed URLs, each on 127.0.0.1."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpClient, Limits, RetryPolicy
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.adapters.siro_fake import InMemorySiro
from poller.adapters.sql.store import SqlStore
from poller.app import build_worker
from poller.config import Settings
from poller.core.poll import poll_once
from poller.core.users_sync import sync_users
from poller.domain.failures import Disposition, StepFailure
from poller.domain.records import Call
from poller.domain.siro import SiroUser
from poller.domain.states import CallState
from poller.ports.provider import (
    PermanentProviderError,
    ProviderRefused,
    TransientProviderError,
)
from poller.simulators.aircall_server import MediaHandler, MediaStore
from poller.simulators.audio import mp3_bytes
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.wiring import poll_params_from_settings

NO_WAIT = RetryPolicy(max_tries=2, base_delay=0.0, max_delay=0.1)
API_KEY = 'Token token="callrail-key-0001"'
MP3 = b"ID3" + b"\x00" * 64
ACCOUNT = "/v3/a/111"


@dataclass
class World:
    api: FakeCallLog
    api_url: str
    media: MediaStore
    media_host: str
    # A second media host that no setting allows.
    rogue: MediaStore

    def provider(self, *, base_path: str = ACCOUNT, **settings: Any) -> GenericProvider:
        settings.setdefault("download_hosts", [self.media_host])
        return GenericProvider(
            GenericSettings(
                base_url=self.api_url + base_path,
                auth="api_key",
                api_key_header="Authorization",
                api_key=API_KEY,
                **settings,
            ),
            retry=NO_WAIT,
        )

    def callrail(self, **recording: Any) -> GenericProvider:
        return self.provider(
            recording={
                "download_path": "/calls/{call_id}/recording.json",
                "answer": "json",
                "url_path": "url",
                **recording,
            }
        )

    def goto(self, **recording: Any) -> GenericProvider:
        return self.provider(
            base_path="",
            recording={
                "download_path": "/recording/v1/recordings/{recording_id}/content",
                "answer": "json",
                "token_path": "token",
                "token_download_path": "/recording/v1/recordings/{recording_id}/content/{token}",
                "format": "mp3",
                **recording,
            },
        )

    def signed_url_answers(self, call_id: str) -> Any:
        """CallRail's recording.json: a fresh signed URL of the mp3 at every request."""
        self.media.put(call_id, MP3)
        return self.api.add_pointer(
            f"{ACCOUNT}/calls/{call_id}/recording.json",
            lambda: {"url": self.media.sign(call_id)},
        )

    def token_answers(self, recording_id: str, media: MediaStore | None = None) -> Any:
        """GoTo: /content answers a one-time token, /content/{token} a 302 to the media."""
        store = media or self.media
        store.put(recording_id, MP3)

        def issue() -> dict[str, str]:
            token = secrets.token_urlsafe(16)
            self.api.add_redirect(
                f"/recording/v1/recordings/{recording_id}/content/{token}",
                store.sign(recording_id),
            )
            return {"token": token, "expires": "2026-12-07T02:00:00Z"}

        return self.api.add_pointer(f"/recording/v1/recordings/{recording_id}/content", issue)


@pytest.fixture
def world() -> Iterator[World]:
    api = FakeCallLog(auth=("api_key", "Authorization", API_KEY))
    media, rogue = MediaStore(), MediaStore()
    with (
        serve(api) as api_server,
        LocalHTTPServer(MediaHandler, media) as media_server,
        LocalHTTPServer(MediaHandler, rogue) as rogue_server,
    ):
        media.base_url, rogue.base_url = media_server.url, rogue_server.url
        yield World(api, api_server.url, media, media_server.url.removeprefix("http://"), rogue)


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


def signatures(store: MediaStore) -> list[str]:
    return list(store.grants)


# -- the URL in a JSON answer (CallRail, Quo) ---------------------------------------------------


def test_the_json_answer_leads_to_the_audio_which_gets_no_provider_credentials(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    world.signed_url_answers("CAL1")
    provider = world.callrail()

    request = provider.resolve_download(stored("CAL1"))

    [signature] = signatures(world.media)
    assert request.url.startswith(f"http://{world.media_host}/calls/CAL1/recording.mp3?")
    assert request.format_hint == "mp3"
    assert request.secret_path and request.refreshable
    assert request.headers_for(request.url) == {}
    fetched = downloader().fetch(request, tmp_path / "call-1")
    assert (tmp_path / "call-1").read_bytes() == MP3 and fetched.size_bytes == len(MP3)
    [lookup] = world.api.requests
    assert lookup["path"] == "/v3/a/111/calls/CAL1/recording.json"
    assert lookup["headers"]["Authorization"] == API_KEY
    [media_request] = world.media.requests
    assert "Authorization" not in media_request["headers"]
    assert signature not in caplog.text


def test_the_media_host_gets_credentials_only_when_it_is_a_credential_host(world: World) -> None:
    world.signed_url_answers("CAL1")
    provider = world.provider(
        recording={
            "download_path": "/calls/{call_id}/recording.json",
            "answer": "json",
            "url_path": "url",
            "credential_hosts": [world.media_host],
        }
    )
    request = provider.resolve_download(stored("CAL1"))
    assert request.headers_for(request.url) == {"Authorization": API_KEY}


def test_a_media_host_that_is_not_allowed_is_refused_before_any_request(world: World) -> None:
    world.signed_url_answers("CAL1")
    provider = world.provider(
        download_hosts=[],
        recording={
            "download_path": "/calls/{call_id}/recording.json",
            "answer": "json",
            "url_path": "url",
        },
    )
    with pytest.raises(ProviderRefused, match=r"provider\.download_hosts") as caught:
        provider.resolve_download(stored("CAL1"))
    [signature] = signatures(world.media)
    assert signature not in str(caught.value) and "/calls/CAL1/recording.mp3" not in str(
        caught.value
    )
    assert world.media.requests == []


def test_an_expired_url_is_retried_and_the_next_attempt_asks_for_a_fresh_one(
    world: World, tmp_path: Path
) -> None:
    pointer = world.signed_url_answers("CAL1")
    provider = world.callrail()
    first = provider.resolve_download(stored("CAL1"))
    world.media.expire_all()  # the download waited (a rate limit, a restart) past its expiry

    with pytest.raises(StepFailure) as caught:
        downloader().fetch(first, tmp_path / "call-1")
    failure = caught.value
    assert (failure.kind, failure.disposition) == ("download_url_expired", Disposition.RETRY)
    assert "X-Amz-Signature" not in failure.message and "/recording.mp3" not in failure.message

    again = provider.resolve_download(stored("CAL1"))
    assert again.url != first.url and pointer.served == 2
    downloader().fetch(again, tmp_path / "call-1")
    assert (tmp_path / "call-1").read_bytes() == MP3


def test_a_url_refetched_from_the_call_is_retried_when_expired_too(
    world: World, tmp_path: Path
) -> None:
    # refetch_path (Aircall style): the call is read again for a URL signed a moment ago.
    world.media.put("c7", MP3)
    world.api.add_call({"call": "c7"}, datetime(2026, 2, 23, tzinfo=UTC), key="c7")
    world.api.single_item_key = ""
    provider = world.provider(
        base_path="",
        fields={"call_id": "id", "recording_url": "recording"},
        recording={"refetch_path": "/calls/{call_id}"},
    )
    world.api.update_call("c7", recording=world.media.sign("c7"))
    request = provider.resolve_download(stored("c7"))
    assert request.refreshable and request.headers_for(request.url) == {}
    world.media.expire_all()
    with pytest.raises(StepFailure) as caught:
        downloader().fetch(request, tmp_path / "call-1")
    assert (caught.value.kind, caught.value.disposition) == (
        "download_url_expired",
        Disposition.RETRY,
    )


def test_the_first_of_a_list_of_segments_is_taken_where_the_path_says(world: World) -> None:
    # Quo: /v1/call-recordings/{callId} answers {"data": [...]}, one entry per segment, oldest
    # first; "data.0.url" takes the first.
    world.media.put("AC1-a", MP3)
    world.media.put("AC1-b", MP3)
    world.api.add_pointer(
        "/v1/call-recordings/AC1",
        lambda: {
            "data": [
                {"id": "RC1", "status": "completed", "url": world.media.sign("AC1-a")},
                {"id": "RC2", "status": "completed", "url": world.media.sign("AC1-b")},
            ]
        },
    )
    world.api.add_pointer("/v1/call-recordings/AC2", {"data": []})
    provider = world.provider(
        base_path="",
        recording={
            "download_path": "/v1/call-recordings/{call_id}",
            "answer": "json",
            "url_path": "data.0.url",
        },
    )

    request = provider.resolve_download(stored("AC1"))
    assert "/calls/AC1-a/recording.mp3?" in request.url

    with pytest.raises(TransientProviderError, match="list has no entry"):
        provider.resolve_download(stored("AC2"))


# -- the JSON step's failures ---------------------------------------------------------------


def test_an_answer_over_the_cap_is_refused_naming_the_setting(world: World) -> None:
    world.api.add_pointer(f"{ACCOUNT}/calls/CAL1/recording.json", {"url": "x" * 5000})
    provider = world.callrail(json_max_bytes=1024)
    with pytest.raises(PermanentProviderError, match=r"over provider\.recording\.json_max_bytes"):
        provider.resolve_download(stored("CAL1"))


def test_an_answer_that_is_not_json_is_refused_naming_the_setting(world: World) -> None:
    world.api.add_pointer(f"{ACCOUNT}/calls/CAL1/recording.json", None, raw=b"<html>Sign in</html>")
    with pytest.raises(PermanentProviderError, match=r'provider\.recording\.answer = "json"'):
        world.callrail().resolve_download(stored("CAL1"))


def test_an_answer_without_the_key_names_the_key_and_what_is_there(world: World) -> None:
    world.api.add_pointer(f"{ACCOUNT}/calls/CAL1/recording.json", {"recording": {"u": "x"}})
    with pytest.raises(
        PermanentProviderError,
        match=r"nothing at provider\.recording\.url_path = 'url'; its top-level keys: recording",
    ):
        world.callrail().resolve_download(stored("CAL1"))


def test_an_empty_url_means_not_ready_yet_and_a_non_string_is_refused(world: World) -> None:
    pointer = world.api.add_pointer(f"{ACCOUNT}/calls/CAL1/recording.json", {"url": None})
    provider = world.callrail()
    with pytest.raises(TransientProviderError, match="not ready yet"):
        provider.resolve_download(stored("CAL1"))
    pointer.body = {"url": {"href": "x"}}
    with pytest.raises(PermanentProviderError, match="holds an object, not a string"):
        provider.resolve_download(stored("CAL1"))


def test_a_status_the_provider_documents_as_still_processing_is_retried_later(
    world: World,
) -> None:
    pointer = world.signed_url_answers("CAL1")
    pointer.failures.extend([404, 404])

    with pytest.raises(PermanentProviderError) as refused:
        world.callrail().resolve_download(stored("CAL1"))
    assert refused.value.status == 404

    with pytest.raises(TransientProviderError, match="still processing") as later:
        world.callrail(pending_statuses=[404]).resolve_download(stored("CAL1"))
    assert later.value.status == 404
    assert world.callrail(pending_statuses=[404]).resolve_download(stored("CAL1")).url


def test_the_json_step_has_its_own_deadline(world: World) -> None:
    world.api.add_pointer(
        f"{ACCOUNT}/calls/CAL1/recording.json", {"url": "/x.mp3"}, delay_seconds=2.0
    )
    provider = world.callrail(json_timeout_seconds=0.3)
    with pytest.raises(TransientProviderError, match=r"provider\.recording\.json_timeout_seconds"):
        provider.resolve_download(stored("CAL1"))
    # Never longer than the provider's total deadline, which the message then names.
    within = world.provider(
        deadline_seconds=0.3,
        connect_timeout_seconds=0.3,
        read_timeout_seconds=5,
        recording={
            "download_path": "/calls/{call_id}/recording.json",
            "answer": "json",
            "url_path": "url",
        },
    )
    with pytest.raises(TransientProviderError, match=r"0\.3 s \(provider\.deadline_seconds\)"):
        within.resolve_download(stored("CAL1"))


# -- a token, then a redirect (GoTo Connect) ------------------------------------------------


def test_a_token_leads_to_a_redirect_to_the_media_which_gets_no_credentials(
    world: World, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.token_answers("rec-1")
    request = world.goto().resolve_download(stored("conv-1", recording_id="rec-1"))
    token = request.url.rsplit("/", 1)[1]

    assert request.url.startswith(world.api_url + "/recording/v1/recordings/rec-1/content/")
    assert request.secret_path and request.refreshable and request.format_hint == "mp3"
    downloader().fetch(request, tmp_path / "call-1")
    assert (tmp_path / "call-1").read_bytes() == MP3
    token_step = world.api.requests[-1]
    assert token_step["path"] == request.url.removeprefix(world.api_url)
    assert token_step["headers"]["Authorization"] == API_KEY
    [media_request] = world.media.requests
    assert "Authorization" not in media_request["headers"]
    # Not even a debug line of ours shows the token: the path it sits in is masked. (urllib3's
    # own request lines never show: the daemon keeps that library at WARNING.)
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("poller"))
    assert "answered HTTP 302" in ours
    assert token not in ours and "X-Amz-Signature" not in ours


def test_a_redirect_to_a_host_not_allowed_is_refused_and_hides_the_token(
    world: World, tmp_path: Path
) -> None:
    world.token_answers("rec-1", media=world.rogue)
    request = world.goto().resolve_download(stored("conv-1", recording_id="rec-1"))
    token = request.url.rsplit("/", 1)[1]

    with pytest.raises(StepFailure) as caught:
        downloader().fetch(request, tmp_path / "call-1")

    assert caught.value.kind == "download_refused"
    assert token not in caught.value.message
    assert world.rogue.requests == []


def test_a_token_that_would_leave_its_path_segment_stays_in_it(world: World) -> None:
    world.api.add_pointer("/recording/v1/recordings/rec-1/content", {"token": "../../admin"})
    request = world.goto().resolve_download(stored("conv-1", recording_id="rec-1"))
    assert request.url == world.api_url + "/recording/v1/recordings/rec-1/content/..%2F..%2Fadmin"

    world.api.add_pointer("/recording/v1/recordings/rec-2/content", {"token": ".."})
    with pytest.raises(PermanentProviderError, match="cannot be a path segment") as caught:
        world.goto().resolve_download(stored("conv-2", recording_id="rec-2"))
    assert "'..'" not in str(caught.value)


@pytest.mark.parametrize(
    ("recording", "message"),
    [
        ({"answer": "json", "url_path": "url"}, 'answer = "json" needs download_path'),
        ({"download_path": "/r/{call_id}", "answer": "json"}, "needs one of url_path"),
        (
            {"download_path": "/r/{call_id}", "answer": "json", "token_path": "token"},
            "token_path and token_download_path go together",
        ),
        (
            {
                "download_path": "/r/{call_id}",
                "answer": "json",
                "token_path": "t",
                "token_download_path": "/r/{call_id}/content",
            },
            r"must contain \{token\}",
        ),
        (
            {
                "download_path": "/r/{call_id}",
                "answer": "json",
                "url_path": "url",
                "pending_statuses": [401],
            },
            "HTTP 401 already has its meaning",
        ),
    ],
)
def test_an_indirect_download_that_cannot_work_is_a_configuration_error(
    recording: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        GenericSettings(base_url="https://api.example.com", recording=recording)


# -- through the poll and the worker, into the state database --------------------------------


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class ExpiresOnFirstUse(MediaStore):
    """The media host, on which the first URL handed out has expired by the time it is used."""

    expire_next: bool = True

    def answer(
        self, path: str, query: dict[str, str], headers: dict[str, str]
    ) -> tuple[int, bytes]:
        with self.lock:
            if self.expire_next:
                self.expire_next = False
                self.grants = {sig: (key, 0.0) for sig, (key, _at) in self.grants.items()}
        return super().answer(path, query, headers)


def test_an_indirect_recording_is_uploaded_after_an_expired_url_and_no_url_is_stored(
    sql_store: SqlStore, tmp_path: Path
) -> None:
    started = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    clock = Clock(started + timedelta(hours=1))
    siro = InMemorySiro(clock=clock, users=[SiroUser(id="user-9", email="rep@yourcompany.com")])
    api = FakeCallLog(auth=("api_key", "Authorization", API_KEY))
    media = ExpiresOnFirstUse()
    audio = mp3_bytes(1)
    with serve(api) as api_server, LocalHTTPServer(MediaHandler, media) as media_server:
        media.base_url = media_server.url
        media.put("c1", audio)
        api.add_call(quickstart_call("c1", started + timedelta(minutes=1)), started)
        pointer = api.add_pointer("/calls/c1/recording.json", lambda: {"url": media.sign("c1")})
        settings = Settings(
            state_dir=tmp_path / "state",
            provider={
                "base_url": api_server.url,
                "auth": "api_key",
                "api_key_header": "Authorization",
                "api_key": API_KEY,
                "download_hosts": [media_server.url.removeprefix("http://")],
                "fields": {"recording_url": ""},  # the quickstart's is null
                "recording": {
                    "download_path": "/calls/{call_id}/recording.json",
                    "answer": "json",
                    "url_path": "url",
                },
            },
            poll={"start_at": started - timedelta(hours=1), "settle_delay_seconds": 0},
            worker={"retry_base_seconds": 30, "retry_max_seconds": 600},
            siro={"conversation_type": "sales", "organization_id": "org-1"},
        )
        provider = GenericProvider(settings.provider, retry=NO_WAIT)
        assert poll_once(poll_params_from_settings(settings), provider, sql_store, clock()).ok
        worker = build_worker(
            settings, sql_store, threading.Event(), providers={"generic": provider}, siro=siro
        )
        worker.clock = clock
        sync_users(siro, sql_store, clock(), default_region="US")

        worker.drain()
        [call] = sql_store.find_calls("c1")
        assert (call.state, call.error_kind, call.attempts) == (
            CallState.PENDING,
            "download_url_expired",
            1,
        )

        clock.advance(minutes=15)
        worker.drain()

    [call] = sql_store.find_calls("c1")
    assert call.state is CallState.UPLOADED and pointer.served == 2
    assert call.recording_url is None
    stored_text = repr(call) + repr(sql_store.events_for(call.id))
    assert len(media.grants) == 2
    for signature in media.grants:
        assert signature not in stored_text
    assert "X-Amz" not in stored_text and API_KEY not in stored_text
