"""The worker against a real provider server (real sockets) and the in-memory Siro.

Each test polls the fake call log into a real store, drains the worker, and checks what Siro
received and what the state table says.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from poller.adapters.audio import encode_mp3, probe_audio, remux_to_adts
from poller.adapters.http import RetryPolicy
from poller.adapters.memory_store import MemoryStore
from poller.adapters.providers.generic import GenericProvider
from poller.adapters.siro.settings import SiroSettings
from poller.adapters.siro_fake import InMemorySiro, SignedUpload
from poller.adapters.sql.models import CallRow
from poller.app import build_worker
from poller.config import Settings
from poller.core.poll import poll_once
from poller.core.users_sync import sync_users
from poller.core.worker import Worker
from poller.domain.audio import ConversionLimits, estimated_mp3_bytes
from poller.domain.siro import AudioFormat, IntegrationConnection, SiroUser
from poller.domain.states import CallState
from poller.ports.siro import SiroCreateOutcomeUnknown, SiroPermanentError, SiroTransientError
from poller.simulators.audio import (
    LOGIN_PAGE,
    aac_bytes,
    encoded,
    flac_bomb,
    flac_bytes,
    mp3_bytes,
    streamable_m4a,
    wav_bytes,
    write_wav,
)
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.wiring import poll_params_from_settings
from tests.seed import AnyStore, seed_call

STARTED = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
MB = 1024 * 1024
# Limits no recording of these tests comes near.
ROOMY = ConversionLimits(
    expected_seconds=0.0, max_audio_seconds=3600.0, max_output_bytes=1 << 30, max_wall_seconds=600
)
NO_WAIT = RetryPolicy(max_tries=1, base_delay=0.0, max_delay=0.0)


class Clock:
    """Simulated time for the worker and the store; only tests move it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def api() -> FakeCallLog:
    return FakeCallLog(auth=("bearer", "provider-token-123"))


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        api.base_url = running.url
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock(STARTED + timedelta(hours=1))


@pytest.fixture
def siro(clock: Clock) -> InMemorySiro:
    # One Siro user who is not the rep of these calls: attribution falls back to email/phone.
    manager = SiroUser(id="user-9", email="manager@yourcompany.com")
    return InMemorySiro(clock=clock, users=[manager])


def settings_for(server: LocalHTTPServer, tmp_path: Path, **worker: Any) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        provider={"base_url": server.url, "auth": "bearer", "token": "provider-token-123"},
        poll={"start_at": STARTED - timedelta(hours=1), "settle_delay_seconds": 0},
        worker={"retry_base_seconds": 30, "retry_max_seconds": 600, **worker},
        siro={"conversation_type": "sales", "organization_id": "org-1"},
    )


def offer(api: FakeCallLog, call_id: str, body: bytes, minute: int = 0, **fields: Any) -> None:
    """A call in the provider's log whose recording serves ``body``."""
    path = api.add_recording(f"/recordings/{call_id}", body)
    started = STARTED + timedelta(minutes=minute)
    record = quickstart_call(call_id, started, recording_url=f"{api.base_url}{path}")
    record.update(fields)
    api.add_call(record, started)


def poll(settings: Settings, store: AnyStore, clock: Clock) -> None:
    provider = GenericProvider(settings.provider, retry=NO_WAIT)
    report = poll_once(poll_params_from_settings(settings), provider, store, clock())
    assert report.ok, report.error


def worker_for(settings: Settings, store: AnyStore, siro: InMemorySiro, clock: Clock) -> Worker:
    worker = build_worker(
        settings,
        store,
        threading.Event(),
        providers={settings.provider.name: GenericProvider(settings.provider, retry=NO_WAIT)},
        siro=siro,
    )
    worker.clock = clock
    sync_users(siro, store, clock(), default_region="US")
    return worker


@pytest.fixture
def run(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    any_store: AnyStore,
    siro: InMemorySiro,
    clock: Clock,
) -> Any:
    def go(**worker_settings: Any) -> Worker:
        settings = settings_for(server, tmp_path, **worker_settings)
        return poll_and_drain(settings, any_store, siro, clock)

    return go


def poll_and_drain(settings: Settings, store: AnyStore, siro: InMemorySiro, clock: Clock) -> Worker:
    poll(settings, store, clock)
    worker = worker_for(settings, store, siro, clock)
    worker.drain()
    return worker


def by_call_id(store: AnyStore, call_id: str) -> Any:
    (call,) = store.find_calls(call_id)
    return call


def test_each_format_reaches_siro_once_with_the_calls_metadata(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro
) -> None:
    offer(api, "call-mp3", mp3_bytes(3), minute=1)
    offer(api, "call-wav", wav_bytes(2), minute=2, contact_name="Ann Lee")
    offer(api, "call-aac", aac_bytes(2), minute=3)

    worker = run()

    assert sorted(body.file_type for body in siro.created) == [
        AudioFormat.AAC,
        AudioFormat.MP3,
        AudioFormat.WAV,
    ]
    wav = next(body for body in siro.created if body.file_type == AudioFormat.WAV)
    assert wav.title == "Phone call with Ann Lee [call-wav]"
    assert wav.user_email == "rep@yourcompany.com"
    assert wav.user_phone == "+14251234563"
    assert (wav.contact_name, wav.contact_phone) == ("Ann Lee", "+15551234567")
    assert wav.date_created == STARTED + timedelta(minutes=2)
    assert (wav.conversation_type, wav.organization_id) == ("sales", "org-1")
    for call_id in ("call-mp3", "call-wav", "call-aac"):
        call = by_call_id(any_store, call_id)
        assert call.state == CallState.UPLOADED
        assert call.siro_recording_id in siro.recordings
        assert call.sha256 and call.size_bytes and call.spool_path is None
        assert [(e.step, e.outcome) for e in any_store.events_for(call.id)] == [
            ("poll", "listed"),
            ("download", "ok"),
            ("attribute", "fallback_email"),
            ("upload", "create_sent"),
            ("upload", "ok"),
        ]
    stored = siro.audio[wav.file_url]
    assert stored.sha256 == by_call_id(any_store, "call-wav").sha256
    assert list(worker.spool.iterdir()) == []


def test_bad_bodies_fail_at_once_with_their_reason_and_the_rest_go_through(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro
) -> None:
    offer(api, "login-page", LOGIN_PAGE, minute=1)
    offer(api, "flac", flac_bytes(), minute=2)
    offer(api, "huge", mp3_bytes(5), minute=3)
    offer(api, "fine", wav_bytes(0.2), minute=4)

    run(max_file_bytes=50_000, max_download_bytes=50_000)

    expected = {
        "login-page": ("not_audio", "looks like HTML"),
        "flac": ("corrupt_audio", "not one frame of its audio could be decoded"),
        "huge": ("oversize", "over worker.max_download_bytes = 50000"),
    }
    for call_id, (kind, words) in expected.items():
        call = by_call_id(any_store, call_id)
        assert (call.state, call.error_kind, call.attempts) == (CallState.FAILED, kind, 1)
        assert words in call.last_error
    assert by_call_id(any_store, "fine").state == CallState.UPLOADED
    assert len(siro.created) == 1


def test_a_provider_outage_is_retried_later_with_backoff(
    run: Any, api: FakeCallLog, any_store: AnyStore, clock: Clock
) -> None:
    offer(api, "c1", mp3_bytes())
    api.recordings["/recordings/c1"].failures.append(503)

    worker = run()

    call = by_call_id(any_store, "c1")
    assert (call.state, call.error_kind, call.attempts) == (
        CallState.PENDING,
        "download_http_503",
        1,
    )
    # Base 30 s, first attempt: between half and all of it, and never below Retry-After (1 s).
    assert (
        clock() + timedelta(seconds=15) <= call.next_attempt_at <= clock() + timedelta(seconds=30)
    )
    worker.drain()  # not due yet: nothing happens
    assert by_call_id(any_store, "c1").attempts == 1
    clock.advance(seconds=31)
    worker.drain()
    call = by_call_id(any_store, "c1")
    assert (call.state, call.attempts, call.error_kind) == (CallState.UPLOADED, 2, None)
    assert [(e.step, e.outcome) for e in any_store.events_for(call.id)][1:3] == [
        ("download", "retry"),
        ("download", "ok"),
    ]


def test_attempts_run_out_into_failed(
    run: Any, api: FakeCallLog, any_store: AnyStore, clock: Clock
) -> None:
    offer(api, "c1", mp3_bytes())
    api.recordings["/recordings/c1"].failures.extend([500] * 5)

    worker = run(max_attempts=3, retry_base_seconds=1, retry_max_seconds=1)
    for _ in range(3):
        clock.advance(seconds=2)
        worker.drain()

    call = by_call_id(any_store, "c1")
    assert (call.state, call.attempts, call.error_kind) == (
        CallState.FAILED,
        3,
        "download_http_500",
    )
    assert call.last_error.startswith("gave up after 3 attempts")


def test_a_siro_outage_keeps_the_download_and_retries_only_the_upload(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro, clock: Clock
) -> None:
    offer(api, "c1", mp3_bytes())
    siro.fail_next(
        "request_upload",
        SiroTransientError("Siro signed-url: HTTP 503", step="signed-url", http_status=503),
    )

    worker = run()

    call = by_call_id(any_store, "c1")
    assert (call.state, call.error_kind) == (CallState.DOWNLOADED, "siro_signed_url_unavailable")
    assert Path(call.spool_path).is_file()
    clock.advance(minutes=1)
    worker.drain()
    assert by_call_id(any_store, "c1").state == CallState.UPLOADED
    assert api.recordings["/recordings/c1"].served == 1  # downloaded once


def test_siro_refusing_the_recording_fails_it_with_siros_reason(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro
) -> None:
    offer(api, "c1", mp3_bytes())
    siro.fail_next(
        "create_recording",
        SiroPermanentError(
            "Siro create: HTTP 422: conversationType: unknown type", step="create", http_status=422
        ),
    )

    run()

    call = by_call_id(any_store, "c1")
    assert (call.state, call.error_kind) == (CallState.FAILED, "siro_create_rejected")
    assert "conversationType: unknown type" in call.last_error
    assert call.siro_create_sent_at is None  # Siro answered: nothing to look for later
    assert call.spool_path is None


def test_a_lost_create_answer_adopts_the_recording_siro_made(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro, clock: Clock
) -> None:
    offer(api, "c1", mp3_bytes())
    siro.fail_next(
        "create_recording",
        SiroCreateOutcomeUnknown("Siro create: the connection was reset", step="create"),
        after_effect=True,
    )

    worker = run()
    call = by_call_id(any_store, "c1")
    assert (call.state, call.error_kind) == (CallState.DOWNLOADED, "siro_create_unknown")
    assert call.siro_create_sent_at is not None
    clock.advance(minutes=2)
    worker.drain()

    call = by_call_id(any_store, "c1")
    assert call.state == CallState.UPLOADED
    assert len(siro.created) == 1
    assert call.siro_recording_id == next(iter(siro.recordings))
    assert [e.outcome for e in any_store.events_for(call.id)][-1] == "adopted"


def test_a_lost_create_that_made_nothing_is_sent_again_once(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro, clock: Clock
) -> None:
    offer(api, "c1", mp3_bytes())
    siro.fail_next(
        "create_recording", SiroCreateOutcomeUnknown("Siro create: read timeout", step="create")
    )

    worker = run()
    clock.advance(minutes=2)
    worker.drain()

    assert by_call_id(any_store, "c1").state == CallState.UPLOADED
    assert len(siro.created) == 1
    assert siro.calls.count("find_recordings") == 2  # around the call and around the send


def test_a_call_with_no_rep_is_skipped_without_contacting_siro(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro
) -> None:
    offer(api, "nobody", mp3_bytes(), email=None, number=None)

    run()

    call = by_call_id(any_store, "nobody")
    assert (call.state, call.error_kind) == (CallState.SKIPPED, "no_rep_identity")
    assert "create_recording" not in siro.calls and "request_upload" not in siro.calls


def test_a_lost_spool_file_means_downloading_again(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro, clock: Clock
) -> None:
    offer(api, "c1", mp3_bytes())
    siro.fail_next("request_upload", SiroTransientError("503", step="signed-url"))
    worker = run()
    Path(by_call_id(any_store, "c1").spool_path).unlink()

    clock.advance(minutes=1)
    worker.drain()  # finds the file gone, sends the row back to pending
    worker.drain()  # downloads and uploads again

    assert by_call_id(any_store, "c1").state == CallState.UPLOADED
    assert api.recordings["/recordings/c1"].served == 2


def test_a_garbled_spool_file_is_downloaded_again_never_sent(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro, clock: Clock
) -> None:
    # Downloads are not fsynced: after a power cut the file may hold other bytes than the row
    # recorded. Same size, other content: only the SHA-256 tells.
    offer(api, "c1", mp3_bytes())
    siro.fail_next("request_upload", SiroTransientError("503", step="signed-url"))
    worker = run()
    spool_file = Path(by_call_id(any_store, "c1").spool_path)
    spool_file.write_bytes(bytes(spool_file.stat().st_size))

    clock.advance(minutes=1)
    worker.drain()  # finds the file differs, sends the row back to pending, downloads again

    call = by_call_id(any_store, "c1")
    assert call.state == CallState.UPLOADED
    assert api.recordings["/recordings/c1"].served == 2
    (body,) = siro.created  # the garbled file was never sent
    assert siro.audio[body.file_url].sha256 == call.sha256
    assert ("upload", "retry", "spool file differs from the download") in [
        (e.step, e.outcome, e.message) for e in any_store.events_for(call.id)
    ]


def test_a_stop_request_ends_the_drain_without_claiming_more(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    any_store: AnyStore,
    siro: InMemorySiro,
    clock: Clock,
) -> None:
    for index in range(5):
        offer(api, f"c{index}", mp3_bytes(), minute=index)
    settings = settings_for(server, tmp_path)
    poll(settings, any_store, clock)
    worker = worker_for(settings, any_store, siro, clock)
    worker.stop.set()

    report = worker.drain()

    assert report.processed == 0
    assert any_store.status(clock()).due_now == 5


def test_the_rep_goes_to_siro_by_user_id_and_crm_ids_travel_with_their_connection(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    any_store: AnyStore,
    clock: Clock,
) -> None:
    offer(api, "c1", mp3_bytes(), crm={"opportunity_id": "006Q000001"})
    offer(api, "c2", mp3_bytes(), minute=1)  # no CRM id in the record: no link
    siro = InMemorySiro(
        clock=clock,
        users=[SiroUser(id="user-7", email="REP@yourcompany.com")],
        connections=[IntegrationConnection(id="conn-42", name="Salesforce prod")],
    )
    settings = settings_for(server, tmp_path).model_copy(
        update={
            "siro": SiroSettings(
                integration_connection_name="Salesforce prod",
                crm={"objects": {"crm.opportunity_id": "Opportunity"}},
            )
        }
    )
    poll_and_drain(settings, any_store, siro, clock)

    linked, plain = sorted(siro.created, key=lambda body: body.title or "")
    assert (linked.user_id, linked.user_email, linked.user_phone) == ("user-7", None, None)
    assert linked.integration_connection_id == "conn-42"
    assert [(o.object_type, o.object_id) for o in linked.crm_objects or ()] == [
        ("Opportunity", "006Q000001")
    ]
    assert plain.integration_connection_id is None and plain.crm_objects is None
    assert siro.calls.count("list_connections") == 1  # looked up once, not per call
    call = by_call_id(any_store, "c1")
    assert (call.siro_user_id, call.attribution) == ("user-7", "siro_email")
    note = next(e.message for e in any_store.events_for(call.id) if e.step == "attribute")
    assert "linked to Opportunity 006Q000001 through connection conn-42" in note


def test_a_rep_who_left_siro_is_not_given_to_anyone_else(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    any_store: AnyStore,
    clock: Clock,
) -> None:
    offer(api, "c1", mp3_bytes())
    siro = InMemorySiro(
        clock=clock,
        users=[SiroUser(id="user-1", email="rep@yourcompany.com", disabled=True)],
    )
    settings = settings_for(server, tmp_path)
    poll_and_drain(settings, any_store, siro, clock)

    call = by_call_id(any_store, "c1")
    assert (call.state, call.error_kind) == (CallState.SKIPPED, "rep_disabled")
    assert siro.created == []


# -- audio Siro does not take ------------------------------------------------------------

SIRO_LIMIT = 100 * 1024 * 1024


class KeepingSiro(InMemorySiro):
    """The in-memory Siro, keeping a copy of each uploaded file to look into afterwards."""

    def __init__(self, keep: Path, clock: Clock) -> None:
        super().__init__(clock=clock, users=[SiroUser(id="user-9", email="manager@x.com")])
        keep.mkdir()
        self.keep = keep
        self.kept: dict[str, Path] = {}  # by the row's spool file name

    def put_audio(
        self, upload: SignedUpload, path: Path, file_type: AudioFormat, size_bytes: int
    ) -> SignedUpload:
        shutil.copyfile(path, self.keep / path.name)
        self.kept[path.name] = self.keep / path.name
        return super().put_audio(upload, path, file_type, size_bytes)


@pytest.fixture
def keeping_siro(tmp_path: Path, clock: Clock) -> KeepingSiro:
    return KeepingSiro(tmp_path / "siro", clock)


def steps(store: AnyStore, call: Any) -> list[tuple[str, str]]:
    return [(e.step, e.outcome) for e in store.events_for(call.id)]


def test_an_m4a_reaches_siro_once_as_aac_repackaged_with_a_convert_event(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    any_store: AnyStore,
    keeping_siro: KeepingSiro,
    clock: Clock,
) -> None:
    offer(api, "call-789", encoded("m4a", 3.0))

    worker = poll_and_drain(settings_for(server, tmp_path), any_store, keeping_siro, clock)

    (body,) = keeping_siro.created
    assert body.file_type == AudioFormat.AAC
    call = by_call_id(any_store, "call-789")
    assert (call.state, call.audio_format) == (CallState.UPLOADED, "aac")
    assert (call.source_format, call.source_codec) == ("m4a", "aac")
    assert (call.audio_channels, call.audio_sample_rate) == (1, 44100)
    assert call.audio_duration_seconds == pytest.approx(3.0, abs=0.1)
    assert call.duration_seconds == 3  # the provider gave none: the audio's own length
    (sent,) = keeping_siro.kept.values()
    assert probe_audio(sent).siro_format == AudioFormat.AAC
    assert (call.size_bytes, call.sha256) == (
        sent.stat().st_size,
        keeping_siro.audio[body.file_url].sha256,
    )
    assert steps(any_store, call) == [
        ("poll", "listed"),
        ("download", "ok"),
        ("convert", "ok"),
        ("attribute", "fallback_email"),
        ("upload", "create_sent"),
        ("upload", "ok"),
    ]
    convert = next(e for e in any_store.events_for(call.id) if e.step == "convert")
    assert convert.message is not None and convert.duration_ms is not None
    assert convert.message.startswith("m4a (aac, ")
    assert "-> aac (" in convert.message and "repackaged without re-encoding" in convert.message
    assert list(worker.spool.iterdir()) == []


@pytest.mark.parametrize("kind", ["ogg", "webm", "flac", "mp4_mp3"])
def test_other_formats_reach_siro_as_mp3_with_both_channels(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    memory_store: MemoryStore,
    keeping_siro: KeepingSiro,
    clock: Clock,
    kind: str,
) -> None:
    offer(api, "c1", encoded(kind, 3.0, channels=2))

    poll_and_drain(settings_for(server, tmp_path), memory_store, keeping_siro, clock)

    (body,) = keeping_siro.created
    assert body.file_type == AudioFormat.MP3
    (sent,) = keeping_siro.kept.values()
    facts = probe_audio(sent)
    assert (facts.siro_format, facts.channels) == (AudioFormat.MP3, 2)
    assert facts.duration_seconds == pytest.approx(3.0, rel=0.02)
    call = by_call_id(memory_store, "c1")
    assert (call.audio_format, call.source_codec, call.audio_channels) == (
        "mp3",
        facts_codec(kind),
        2,
    )
    convert = next(e for e in memory_store.events_for(call.id) if e.step == "convert")
    assert "-> mp3 (" in (convert.message or "") and "encoded at 64 kbit/s" in (
        convert.message or ""
    )


def facts_codec(kind: str) -> str:
    return {"ogg": "opus", "webm": "opus", "flac": "flac", "mp4_mp3": "mp3"}[kind]


def test_a_150_mb_wav_reaches_siro_as_an_mp3_under_100_mb(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    memory_store: MemoryStore,
    keeping_siro: KeepingSiro,
    clock: Clock,
) -> None:
    wav = tmp_path / "long.wav"
    # 32-bit stereo samples at 192 kHz: 150 MB in under two minutes of audio (at 48 kHz it
    # would be seven, and the conversion four times as long): the size is the point.
    seconds = write_wav(wav, 150 * 1024 * 1024, rate=192000, width=4)
    offer(api, "long", wav)

    worker = poll_and_drain(settings_for(server, tmp_path), memory_store, keeping_siro, clock)

    wav.unlink()
    (body,) = keeping_siro.created
    assert body.file_type == AudioFormat.MP3
    (sent,) = keeping_siro.kept.values()
    assert sent.stat().st_size < SIRO_LIMIT
    facts = probe_audio(sent)
    assert (facts.siro_format, facts.channels) == (AudioFormat.MP3, 2)
    assert facts.duration_seconds == pytest.approx(seconds, rel=0.01)
    call = by_call_id(memory_store, "long")
    assert (call.state, call.source_format, call.size_bytes) == (
        CallState.UPLOADED,
        "wav",
        sent.stat().st_size,
    )
    assert list(worker.spool.iterdir()) == []


def test_a_recording_too_big_for_the_bitrate_is_encoded_lower_to_fit(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    memory_store: MemoryStore,
    keeping_siro: KeepingSiro,
    clock: Clock,
) -> None:
    offer(api, "c1", encoded("flac", 20.0))  # 64 kbit/s would make 160 kB of it

    poll_and_drain(
        settings_for(server, tmp_path, max_file_bytes=100_000), memory_store, keeping_siro, clock
    )

    (sent,) = keeping_siro.kept.values()
    assert sent.stat().st_size <= 100_000
    assert probe_audio(sent).duration_seconds == pytest.approx(20.0, rel=0.01)
    call = by_call_id(memory_store, "c1")
    convert = next(e for e in memory_store.events_for(call.id) if e.step == "convert")
    assert "encoded at 32 kbit/s" in (convert.message or "")


def test_an_encode_that_comes_out_over_the_limit_is_done_again_lower(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    memory_store: MemoryStore,
    keeping_siro: KeepingSiro,
    clock: Clock,
) -> None:
    # A short file's mp3 is a little bigger than its bitrate says (encoder delay, info tag):
    # a limit just under it passes the estimate and fails the encode at 64 kbit/s.
    flac = tmp_path / "short.flac"
    flac.write_bytes(encoded("flac", 2.0))
    encode_mp3(
        flac, tmp_path / "at-64.mp3", bitrate_kbps=64, limits=ROOMY, should_stop=lambda: False
    )
    limit = (tmp_path / "at-64.mp3").stat().st_size - 20
    assert estimated_mp3_bytes(2.0, 64) <= limit
    offer(api, "c1", flac.read_bytes())

    poll_and_drain(
        settings_for(server, tmp_path, max_file_bytes=limit), memory_store, keeping_siro, clock
    )

    (sent,) = keeping_siro.kept.values()
    assert sent.stat().st_size <= limit
    call = by_call_id(memory_store, "c1")
    assert call.state == CallState.UPLOADED
    convert = next(e for e in memory_store.events_for(call.id) if e.step == "convert")
    assert "encoded at 56 kbit/s" in (convert.message or "")


def test_an_m4a_whose_adts_form_is_over_the_limit_goes_as_mp3(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    memory_store: MemoryStore,
    keeping_siro: KeepingSiro,
    clock: Clock,
) -> None:
    # ADTS spends 7 bytes a frame on headers: an M4A right at the limit comes out over it.
    m4a = tmp_path / "call.m4a"
    m4a.write_bytes(encoded("m4a", 10.0))
    remux_to_adts(m4a, tmp_path / "as.aac", limits=ROOMY, should_stop=lambda: False)
    limit = m4a.stat().st_size
    assert (tmp_path / "as.aac").stat().st_size > limit
    offer(api, "c1", m4a.read_bytes())

    poll_and_drain(
        settings_for(server, tmp_path, max_file_bytes=limit), memory_store, keeping_siro, clock
    )

    (body,) = keeping_siro.created
    assert body.file_type == AudioFormat.MP3
    (sent,) = keeping_siro.kept.values()
    assert sent.stat().st_size <= limit
    call = by_call_id(memory_store, "c1")
    convert = next(e for e in memory_store.events_for(call.id) if e.step == "convert")
    assert "-> mp3 (" in (convert.message or "")


def test_a_recording_no_mp3_above_the_floor_fits_fails_with_duration_and_sizes(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro
) -> None:
    offer(api, "c1", encoded("flac", 20.0))  # 16 kbit/s would still be 40 kB

    run(max_file_bytes=30_000, mp3_bitrate_kbps=32, mp3_min_bitrate_kbps=16)

    call = by_call_id(any_store, "c1")
    assert (call.state, call.error_kind, call.attempts) == (CallState.FAILED, "oversize", 1)
    assert (
        "0h00m20s" in call.last_error and "30000 bytes (worker.max_file_bytes)" in call.last_error
    )
    assert "floor of 16 kbit/s" in call.last_error
    assert call.source_format == "flac"  # what it is stays on record
    assert siro.created == []


def test_with_convert_never_such_calls_fail_naming_the_setting(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro
) -> None:
    offer(api, "c1", encoded("ogg", 2.0), minute=1)
    offer(api, "c2", mp3_bytes(1), minute=2)  # 16 kB: fine as it is
    offer(api, "c3", wav_bytes(2), minute=3)  # 32 kB, over the limit below

    worker = run(convert="never", max_file_bytes=20_000)

    call = by_call_id(any_store, "c1")
    assert (call.state, call.error_kind, call.attempts) == (
        CallState.FAILED,
        "unsupported_format",
        1,
    )
    assert call.last_error.startswith(
        'Siro does not take ogg (opus), and worker.convert = "never" leaves it unconverted'
    )
    assert (call.source_format, call.source_codec) == ("ogg", "opus")
    assert steps(any_store, call)[1:] == [("download", "ok"), ("convert", "fail")]
    assert by_call_id(any_store, "c2").state == CallState.UPLOADED  # mp3 needs nothing
    wav = by_call_id(any_store, "c3")
    assert (wav.state, wav.error_kind) == (CallState.FAILED, "oversize")
    assert wav.last_error.startswith("the wav (pcm_s16le) recording is 32044 bytes, over ")
    assert 'worker.convert = "never"' in wav.last_error
    assert len(siro.created) == 1
    assert list(worker.spool.iterdir()) == []


def test_truncated_or_damaged_recordings_fail_as_corrupt_not_as_internal_errors(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro
) -> None:
    whole = encoded("m4a", 4.0)
    streamable = streamable_m4a(6.0)
    offer(api, "no-index", whole[: len(whole) // 2], minute=1)
    offer(api, "cut-short", streamable[: len(streamable) // 3], minute=2)

    worker = run()

    for call_id, words in {
        "no-index": "starts like MP4/M4A audio but cannot be read",
        "cut-short": "truncated",
    }.items():
        call = by_call_id(any_store, call_id)
        assert (call.state, call.error_kind, call.attempts) == (
            CallState.FAILED,
            "corrupt_audio",
            1,
        )
        assert words in call.last_error
    assert siro.created == []
    assert list(worker.spool.iterdir()) == []


def test_break_2_audio_bomb_fails_as_its_own_kind_with_the_figures_and_leaves_nothing(
    run: Any, api: FakeCallLog, any_store: AnyStore, siro: InMemorySiro
) -> None:
    # 130 KB whose header says a minute and which decodes to 20 hours of silence.
    offer(api, "bomb", flac_bomb(declared_seconds=60, real_seconds=20 * 3600), minute=1)
    offer(api, "fine", encoded("flac", 2.0), minute=2)

    worker = run()

    call = by_call_id(any_store, "bomb")
    assert (call.state, call.error_kind, call.attempts) == (CallState.FAILED, "audio_bomb", 1)
    assert "it is said to last 60.0 s, but it decodes to more than 150.0 s" in call.last_error
    written = re.search(r"(\d+) bytes written", call.last_error)
    assert written is not None and int(written.group(1)) < 50 * MB
    assert steps(any_store, call)[-1] == ("convert", "fail")
    assert api.recordings["/recordings/bomb"].served == 1  # not downloaded again
    assert by_call_id(any_store, "fine").state == CallState.UPLOADED
    assert len(siro.created) == 1
    assert list(worker.spool.iterdir()) == []


def flipped(data: bytes, position: int, bit: int) -> bytes:
    damaged = bytearray(data)
    damaged[position] ^= 1 << bit
    return bytes(damaged)


def test_break_9_hostile_files_fail_as_corrupt_audio_once_not_as_internal_errors(
    run: Any,
    api: FakeCallLog,
    any_store: AnyStore,
    siro: InMemorySiro,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wav = encoded("wav", 1.0)
    # Bytes 20-21 of a WAV name its codec: 0x0101 is none FFmpeg knows (the stream has no
    # codec at all), 0x11 is IMA ADPCM, whose decoder refuses PCM's parameters.
    offer(api, "no-codec", flipped(wav, 21, 0), minute=1)
    offer(api, "wrong-codec", flipped(wav, 20, 4), minute=2)
    offer(api, "fine", wav, minute=3)

    worker = run()

    for call_id in ("no-codec", "wrong-codec"):
        call = by_call_id(any_store, call_id)
        assert (call.state, call.error_kind, call.attempts) == (
            CallState.FAILED,
            "corrupt_audio",
            1,
        )
        assert "damaged" in call.last_error
        assert api.recordings[f"/recordings/{call_id}"].served == 1
    assert "unexpected error" not in caplog.text
    assert "Traceback" not in caplog.text
    assert by_call_id(any_store, "fine").state == CallState.UPLOADED
    assert list(worker.spool.iterdir()) == []


def test_break_8_spool_orphans_are_swept_at_start_but_a_leased_rows_files_stay(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    any_store: AnyStore,
    siro: InMemorySiro,
    clock: Clock,
) -> None:
    """What a SIGKILL mid-conversion leaves: the download and the converted file of a row whose
    lease has run out. Another worker's row under a live lease (a shared spool on PostgreSQL)
    keeps its files; a downloaded row keeps the recording waiting for upload."""
    settings = settings_for(server, tmp_path)
    spool = settings.spool_dir
    spool.mkdir(parents=True)
    now = clock()
    killed = seed_call(
        any_store,
        "killed",
        lease_owner="dead-worker",
        lease_expires_at=now - timedelta(minutes=1),
        next_attempt_at=now + timedelta(hours=1),  # not claimed again during this drain
    )
    busy = seed_call(
        any_store,
        "busy",
        lease_owner="other-worker",
        lease_expires_at=now + timedelta(minutes=1),
    )
    waiting = seed_call(
        any_store,
        "waiting",
        state=CallState.DOWNLOADED,
        spool_path=str(spool / f"call-{2**31 - 1}.wav"),  # replaced below, once its id is known
        next_attempt_at=now + timedelta(hours=1),
    )
    waiting_file = spool / f"call-{waiting.id}.wav"
    if isinstance(any_store, MemoryStore):
        any_store.calls[waiting.id] = replace(waiting, spool_path=str(waiting_file))
    else:
        with any_store.engine.begin() as connection:
            connection.execute(
                update(CallRow.__table__)
                .where(CallRow.__table__.c.id == waiting.id)
                .values(spool_path=str(waiting_file))
            )
    planted = {
        f"call-{killed.id}.download": False,
        f"call-{killed.id}.download.part": False,
        f"call-{killed.id}.mp3": False,  # 35 MB in the report; a few bytes do here
        f"call-{busy.id}.download.part": True,
        f"call-{busy.id}.mp3": True,
        waiting_file.name: True,
        f"call-{waiting.id}.download": False,
        "call-99999.aac": False,  # no such row
        "notes.txt": True,  # not the worker's: not the sweep's to judge
    }
    for name in planted:
        (spool / name).write_bytes(b"x" * 1000)

    worker_for(settings, any_store, siro, clock).drain()

    assert sorted(p.name for p in spool.iterdir()) == sorted(
        n for n, kept in planted.items() if kept
    )


def test_break_8_a_killed_workers_files_go_once_its_lease_runs_out(
    api: FakeCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    any_store: AnyStore,
    siro: InMemorySiro,
    clock: Clock,
) -> None:
    # Restarted at once after a SIGKILL: the dead worker's lease still runs, so its files stay
    # (it could be a live worker sharing the spool) until the lease has run out.
    settings = settings_for(server, tmp_path)
    spool = settings.spool_dir
    spool.mkdir(parents=True)
    killed = seed_call(
        any_store,
        "killed",
        lease_owner="dead-worker",
        lease_expires_at=clock() + timedelta(minutes=2),
        next_attempt_at=clock() + timedelta(hours=1),
    )
    for name in (f"call-{killed.id}.download.part", f"call-{killed.id}.aac"):
        (spool / name).write_bytes(b"x" * 1000)
    worker = worker_for(settings, any_store, siro, clock)

    worker.drain()
    assert len(list(spool.iterdir())) == 2

    clock.advance(minutes=3)
    worker.drain()
    assert list(spool.iterdir()) == []
