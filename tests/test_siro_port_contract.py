"""The Siro port's contract, run against both adapters.

The HTTP client (over the fake server) and the in-memory fake the worker's unit tests use must
behave alike; if the fake drifts from the real client, these fail.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from poller.adapters.siro import SiroHttpClient
from poller.adapters.siro_fake import InMemorySiro
from poller.domain.siro import (
    AudioFormat,
    ConversationConfiguration,
    IntegrationConnection,
    RecordingCreate,
    SiroUser,
)
from poller.ports.siro import (
    SiroCreateOutcomeUnknown,
    SiroPermanentError,
    SiroPort,
    SiroTransientError,
)
from poller.simulators.siro_server import FakeSiro, ManualClock
from tests.siro_settings import siro_settings


@dataclass
class Subject:
    port: SiroPort
    clock: ManualClock
    expire_next_signed_url: Callable[[datetime], None]


@pytest.fixture(params=["http", "memory"])
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    clock = ManualClock()
    if request.param == "http":
        with FakeSiro(clock=clock) as siro:
            yield Subject(
                SiroHttpClient(siro_settings(siro), clock=clock),
                clock,
                siro.state.expire_next_signed_url_at,
            )
        return
    fake = InMemorySiro(
        clock=clock,
        users=[SiroUser(id="user-1", email="rep1@example.com")],
        connections=[IntegrationConnection(id="conn-1", name="Salesforce")],
        conversation_configurations=[ConversationConfiguration(id="c", conversation_type="sales")],
    )

    def expire_next(moment: datetime) -> None:
        fake.signed_url_lifetime = moment - clock()

    yield Subject(fake, clock, expire_next)


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    path = tmp_path / "call.wav"
    path.write_bytes(os.urandom(12_345))
    return path


def create_body(download_url: str, **fields: object) -> RecordingCreate:
    return RecordingCreate(
        file_url=download_url, file_type=AudioFormat.WAV, user_id="user-1", **fields
    )


def test_an_uploaded_recording_can_be_read_back_and_found(subject: Subject, audio: Path) -> None:
    port, clock = subject.port, subject.clock
    call_time = clock() - timedelta(minutes=30)
    signed = port.request_upload(AudioFormat.WAV, 12_345)
    used = port.put_audio(signed, audio, AudioFormat.WAV, 12_345)

    recording_id = port.create_recording(
        create_body(used.download_url, title="Inbound call [c-1]", date_created=call_time)
    )

    found = port.get_recording(recording_id)
    assert found is not None
    assert (found.title, found.user_id, found.date_created) == (
        "Inbound call [c-1]",
        "user-1",
        call_time,
    )
    window = port.find_recordings(
        call_time - timedelta(minutes=1), call_time + timedelta(minutes=1)
    )
    assert [r.id for r in window] == [recording_id]
    assert (
        port.find_recordings(call_time, call_time + timedelta(hours=1)) == []
    )  # bounds are strict


def test_an_unknown_recording_is_none(subject: Subject) -> None:
    assert subject.port.get_recording("rec-does-not-exist") is None


def test_a_recording_needs_its_file_put_first(subject: Subject) -> None:
    signed = subject.port.request_upload(AudioFormat.WAV, 10)

    with pytest.raises(SiroPermanentError) as caught:
        subject.port.create_recording(create_body(signed.download_url))

    assert caught.value.http_status == 422


def test_an_expired_signed_url_is_replaced_and_the_new_download_url_works(
    subject: Subject, audio: Path
) -> None:
    subject.expire_next_signed_url(subject.clock() + timedelta(minutes=1))
    signed = subject.port.request_upload(AudioFormat.WAV, 12_345)
    subject.clock.advance(timedelta(minutes=2))

    used = subject.port.put_audio(signed, audio, AudioFormat.WAV, 12_345)

    assert used.download_url != signed.download_url
    assert subject.port.create_recording(create_body(used.download_url))


def test_a_file_of_the_wrong_size_is_a_value_error(subject: Subject, audio: Path) -> None:
    signed = subject.port.request_upload(AudioFormat.WAV, 100)

    with pytest.raises(ValueError, match="12345 bytes on disk"):
        subject.port.put_audio(signed, audio, AudioFormat.WAV, 100)


def test_the_reads_return_typed_records(subject: Subject) -> None:
    assert subject.port.list_users()[0].id == "user-1"
    assert subject.port.list_connections()[0].id == "conn-1"
    assert subject.port.list_conversation_configurations()[0].conversation_type == "sales"


# -- the in-memory fake's scripting, as the worker's tests will use it -----------------------


def test_the_fake_can_lose_a_create_answer_after_the_recording_was_made(audio: Path) -> None:
    fake = InMemorySiro()
    signed = fake.put_audio(
        fake.request_upload(AudioFormat.WAV, 12_345), audio, AudioFormat.WAV, 12_345
    )
    fake.fail_next(
        "create_recording",
        SiroCreateOutcomeUnknown("Siro create: no answer within 60 s", step="create"),
        after_effect=True,
    )

    with pytest.raises(SiroCreateOutcomeUnknown):
        fake.create_recording(create_body(signed.download_url))

    (recording,) = fake.recordings.values()
    assert recording.user_id == "user-1"
    assert fake.calls == ["request_upload", "put_audio", "create_recording"]


def test_the_fake_can_fail_a_step_before_it_takes_effect(audio: Path) -> None:
    fake = InMemorySiro()
    fake.fail_next(
        "request_upload", SiroTransientError("Siro signed-url: HTTP 503", http_status=503)
    )

    with pytest.raises(SiroTransientError):
        fake.request_upload(AudioFormat.WAV, 10)

    assert fake.audio == {}
    assert fake.request_upload(AudioFormat.WAV, 10).download_url in fake.audio


def test_the_fake_records_what_arrived(audio: Path) -> None:
    fake = InMemorySiro()
    used = fake.put_audio(
        fake.request_upload(AudioFormat.WAV, 12_345), audio, AudioFormat.WAV, 12_345
    )

    stored = fake.audio[used.download_url]
    assert stored.sha256 == hashlib.sha256(audio.read_bytes()).hexdigest()
    assert stored.received_bytes == 12_345
