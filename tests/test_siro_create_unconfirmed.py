"""A create that Siro answers 2xx without a recording id is never sent again.

Measured before: Siro answered the create 2xx with no id while its recordings list lagged, and
each of 4 attempts created the recording again: 4 recordings. Now the row is reconciled by its
title only; found, it is adopted; never found, it is parked as ``failed``
(``siro_create_unconfirmed``) for someone to look in Siro. Real HTTP throughout: the provider
server, the fake Siro, and the stores on SQLite, PostgreSQL and in memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from poller.adapters.providers.generic import GenericProvider
from poller.adapters.siro import SiroHttpClient
from poller.app import build_worker
from poller.config import Settings
from poller.core.users_sync import sync_users
from poller.domain.siro import AudioFormat, RecordingCreate
from poller.domain.states import CallState
from poller.ports.siro import SiroCreateOutcomeUnknown, SiroCreateUnconfirmed
from poller.simulators.audio import mp3_bytes
from poller.simulators.provider_server import FakeCallLog, serve
from poller.simulators.siro_server import FakeSiro, Fault
from tests.seed import AnyStore
from tests.siro_settings import siro_settings
from tests.test_worker import NO_WAIT, STARTED, Clock, by_call_id, offer, poll

UNCONFIRMED = "siro_create_unconfirmed"


# -- the client ------------------------------------------------------------------------------


def test_a_2xx_create_without_an_id_is_unconfirmed_and_sent_once(tmp_path: Path) -> None:
    audio = tmp_path / "call.mp3"
    audio.write_bytes(os.urandom(1000))
    with FakeSiro(create_answers_without_id=True) as siro:
        client = SiroHttpClient(siro_settings(siro))
        signed = client.request_upload(AudioFormat.MP3, 1000)
        used = client.put_audio(signed, audio, AudioFormat.MP3, 1000)

        with pytest.raises(SiroCreateUnconfirmed) as caught:
            client.create_recording(
                RecordingCreate(file_url=used.download_url, file_type=AudioFormat.MP3, user_id="u")
            )

        assert isinstance(caught.value, SiroCreateOutcomeUnknown)  # may have made a recording
        assert caught.value.http_status == 201
        assert "names no recording id" in str(caught.value)
        assert len(siro.state.requests_for("create")) == 1
        assert len(siro.state.recordings) == 1


# -- the worker ------------------------------------------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock(STARTED + timedelta(hours=1))


@pytest.fixture
def api() -> Iterator[FakeCallLog]:
    log = FakeCallLog(auth=("bearer", "provider-token-123"))
    with serve(log) as running:
        log.base_url = running.url
        yield log


@pytest.fixture
def siro(clock: Clock) -> Iterator[FakeSiro]:
    # Siro answers the create 201 without an id, and its list shows a recording a day late.
    with FakeSiro(
        clock=clock, create_answers_without_id=True, recordings_list_lag=timedelta(days=1)
    ) as fake:
        yield fake


def settings_for(api: FakeCallLog, siro: FakeSiro, tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        provider={"base_url": api.base_url, "auth": "bearer", "token": "provider-token-123"},
        poll={"start_at": STARTED - timedelta(hours=1), "settle_delay_seconds": 0},
        worker={"retry_base_seconds": 30, "retry_max_seconds": 600, "max_attempts": 4},
        siro=siro.settings_values(),
    )


def drain_once(settings: Settings, store: AnyStore, clock: Clock) -> None:
    """One run of a freshly started worker and client: only the row carries anything over."""
    client = SiroHttpClient(settings.siro, clock=clock)
    provider = GenericProvider(settings.provider, retry=NO_WAIT)
    worker = build_worker(
        settings, store, threading.Event(), providers={provider.name: provider}, siro=client
    )
    worker.clock = clock
    try:
        worker.drain()
    finally:
        client.close()


def served(api: FakeCallLog, call_id: str) -> int:
    return api.recordings[f"/recordings/{call_id}"].served


@pytest.fixture
def uploaded_once(
    api: FakeCallLog, siro: FakeSiro, any_store: AnyStore, clock: Clock, tmp_path: Path
) -> Any:
    """A call whose create Siro took without naming the recording, after the first attempt."""
    offer(api, "c1", mp3_bytes())
    settings = settings_for(api, siro, tmp_path)
    with SiroHttpClient(settings.siro, clock=clock) as client:
        sync_users(client, any_store, clock(), default_region="US")
    poll(settings, any_store, clock)
    drain_once(settings, any_store, clock)
    call = by_call_id(any_store, "c1")
    assert (call.state, call.error_kind, call.attempts) == (CallState.DOWNLOADED, UNCONFIRMED, 1)
    assert call.siro_create_sent_at is not None
    return settings


def test_four_attempts_make_one_recording_and_park_the_call_for_review(
    uploaded_once: Settings, api: FakeCallLog, siro: FakeSiro, any_store: AnyStore, clock: Clock
) -> None:
    for _ in range(3):
        clock.advance(minutes=11)  # past the longest retry wait
        drain_once(uploaded_once, any_store, clock)

    assert len(siro.state.requests_for("create")) == 1
    assert len(siro.state.recordings) == 1
    assert len(siro.state.requests_for("put")) == 1
    assert siro.state.requests_for("list-recordings")  # it was looked for
    call = by_call_id(any_store, "c1")
    assert (call.state, call.error_kind, call.attempts) == (CallState.FAILED, UNCONFIRMED, 4)
    assert "look for it in Siro" in call.last_error
    assert call.title and repr(call.title) in call.last_error
    assert call.last_error.startswith("gave up after 4 attempts")
    assert call.spool_path is None
    assert served(api, "c1") == 1


def test_the_recording_is_adopted_once_siro_lists_it(
    uploaded_once: Settings, siro: FakeSiro, any_store: AnyStore, clock: Clock
) -> None:
    siro.state.recordings_list_lag = timedelta(minutes=10)
    clock.advance(minutes=11)
    drain_once(uploaded_once, any_store, clock)

    (made,) = siro.state.recordings
    call = by_call_id(any_store, "c1")
    assert (call.state, call.siro_recording_id, call.attempts) == (CallState.UPLOADED, made, 2)
    assert [e.outcome for e in any_store.events_for(call.id)][-1] == "adopted"
    assert len(siro.state.requests_for("create")) == 1


def test_a_failed_lookup_keeps_the_call_in_lookup_only_mode_without_its_spool_file(
    uploaded_once: Settings, api: FakeCallLog, siro: FakeSiro, any_store: AnyStore, clock: Clock
) -> None:
    siro.state.fail_next("list-recordings", *[Fault.server_error()] * 4)  # past the retries
    spool = by_call_id(any_store, "c1").spool_path
    Path(spool).unlink()
    clock.advance(minutes=11)
    drain_once(uploaded_once, any_store, clock)

    call = by_call_id(any_store, "c1")
    assert (call.state, call.error_kind, call.attempts) == (CallState.DOWNLOADED, UNCONFIRMED, 2)
    assert "looking for it failed this time" in call.last_error

    siro.state.recordings_list_lag = timedelta(0)
    clock.advance(minutes=11)
    drain_once(uploaded_once, any_store, clock)

    assert by_call_id(any_store, "c1").state == CallState.UPLOADED
    assert len(siro.state.requests_for("create")) == 1
    assert served(api, "c1") == 1  # never downloaded again


def test_a_retry_after_review_sends_it_again_once(
    uploaded_once: Settings, api: FakeCallLog, siro: FakeSiro, any_store: AnyStore, clock: Clock
) -> None:
    for _ in range(3):
        clock.advance(minutes=11)
        drain_once(uploaded_once, any_store, clock)
    call = by_call_id(any_store, "c1")
    assert call.state == CallState.FAILED
    # Someone looked in Siro, found nothing, and retries the call; Siro answers properly now.
    siro.state.create_answers_without_id = False
    siro.state.recordings.clear()
    any_store.requeue(call.id, clock())
    drain_once(uploaded_once, any_store, clock)

    call = by_call_id(any_store, "c1")
    assert call.state == CallState.UPLOADED
    assert len(siro.state.requests_for("create")) == 2
    assert call.siro_recording_id in siro.state.recordings
