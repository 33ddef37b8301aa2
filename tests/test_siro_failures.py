"""How the client meets failure: what it retries in-call, and which error type reaches the worker.

Waits are kept short by the fake's settings (first retry waits up to 10 ms, no wait beyond
0.5 s), so nothing here sleeps for long.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from poller.adapters.siro import SiroHttpClient
from poller.domain.siro import AudioFormat, RecordingCreate, SignedUpload
from poller.ports.siro import (
    SiroCreateOutcomeUnknown,
    SiroError,
    SiroPermanentError,
    SiroTransientError,
)
from poller.simulators.siro_server import FakeSiro, Fault
from tests.siro_settings import siro_settings

CLIENT_LOGGER = "poller.adapters.siro"


@pytest.fixture
def siro() -> Iterator[FakeSiro]:
    with FakeSiro() as fake:
        yield fake


@pytest.fixture
def client(siro: FakeSiro) -> SiroHttpClient:
    return SiroHttpClient(siro_settings(siro, read_timeout_seconds=0.3))


@pytest.fixture
def uploaded(client: SiroHttpClient, tmp_path: Path) -> SignedUpload:
    """A file already PUT, ready for step 3."""
    path = tmp_path / "call.mp3"
    path.write_bytes(os.urandom(2000))
    signed = client.request_upload(AudioFormat.MP3, 2000)
    return client.put_audio(signed, path, AudioFormat.MP3, 2000)


def create_body(upload: SignedUpload) -> RecordingCreate:
    return RecordingCreate(file_url=upload.download_url, file_type=AudioFormat.MP3, user_id="u")


def retry_waits(caplog: pytest.LogCaptureFixture) -> list[float]:
    return [
        record.retry_wait_seconds
        for record in caplog.records
        if record.name.startswith(CLIENT_LOGGER) and hasattr(record, "retry_wait_seconds")
    ]


# -- idempotent steps are retried in-call ----------------------------------------------------


def test_a_429_is_retried_after_the_retry_after_siro_asked_for(
    siro: FakeSiro, client: SiroHttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=CLIENT_LOGGER)
    siro.state.fail_next("signed-url", Fault.rate_limited(retry_after="0.2"))

    client.request_upload(AudioFormat.MP3, 10)

    refused, accepted = siro.state.requests_for("signed-url")
    assert retry_waits(caplog) == [0.2]
    assert accepted.received_at - refused.received_at >= 0.19
    assert "HTTP 429" in caplog.text


def test_a_retry_after_longer_than_the_in_call_cap_goes_back_to_the_worker(
    siro: FakeSiro, client: SiroHttpClient
) -> None:
    siro.state.fail_next("users", Fault.rate_limited(retry_after="600"))

    with pytest.raises(SiroTransientError) as caught:
        client.list_users()

    assert caught.value.retry_after == 600
    assert caught.value.http_status == 429
    assert len(siro.state.requests_for("users")) == 1


def test_a_429_without_retry_after_backs_off_with_jitter_within_the_cap(
    siro: FakeSiro, client: SiroHttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=CLIENT_LOGGER)
    siro.state.fail_next("users", Fault.rate_limited(), Fault.rate_limited(), Fault.rate_limited())

    client.list_users()

    waits = retry_waits(caplog)
    assert len(waits) == 3
    assert all(0 <= wait <= bound for wait, bound in zip(waits, [0.01, 0.02, 0.04], strict=True))


def test_a_500_is_retried(siro: FakeSiro, client: SiroHttpClient) -> None:
    siro.state.fail_next("signed-url", Fault.server_error(), Fault.server_error(502))

    client.request_upload(AudioFormat.MP3, 10)

    assert len(siro.state.requests_for("signed-url")) == 3


def test_retries_are_bounded_and_end_in_a_transient_error(
    siro: FakeSiro, client: SiroHttpClient
) -> None:
    siro.state.fail_next("connections", *[Fault.server_error(503)] * 10)

    with pytest.raises(SiroTransientError, match="HTTP 503") as caught:
        client.list_connections()

    assert caught.value.http_status == 503
    assert caught.value.step == "connections"
    assert len(siro.state.requests_for("connections")) == 4  # max_retries = 3


def test_a_connection_reset_is_retried(siro: FakeSiro, client: SiroHttpClient) -> None:
    siro.state.fail_next("users", Fault.connection_reset())

    assert len(client.list_users()) == 3
    assert len(siro.state.requests_for("users")) == 2


def test_a_put_reset_mid_upload_is_sent_again_in_full(
    siro: FakeSiro, client: SiroHttpClient, tmp_path: Path
) -> None:
    path = tmp_path / "call.wav"
    path.write_bytes(os.urandom(3 * 1024 * 1024))
    signed = client.request_upload(AudioFormat.WAV, 3 * 1024 * 1024)
    siro.state.fail_next("put", Fault.connection_reset())

    client.put_audio(signed, path, AudioFormat.WAV, 3 * 1024 * 1024)

    first, second = siro.state.requests_for("put")
    assert first.body_sha256 == second.body_sha256
    assert second.body_size == 3 * 1024 * 1024


def test_a_read_timeout_is_retried(siro: FakeSiro, client: SiroHttpClient) -> None:
    siro.state.fail_next("signed-url", Fault.slow(2.0))

    client.request_upload(AudioFormat.MP3, 10)

    assert len(siro.state.requests_for("signed-url")) == 2


def test_a_timeout_that_persists_is_a_transient_error(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro, read_timeout_seconds=0.1, max_retries=1))
    siro.state.fail_next("users", Fault.slow(2.0), Fault.slow(2.0))

    with pytest.raises(SiroTransientError, match=r"no answer within 0\.1 s"):
        client.list_users()


def test_a_422_zod_error_is_a_clear_permanent_error(siro: FakeSiro, client: SiroHttpClient) -> None:
    siro.state.fail_next(
        "signed-url",
        Fault.http(
            422,
            {
                "name": "ZodError",
                "issues": [
                    {
                        "code": "invalid_enum_value",
                        "path": ["fileType"],
                        "message": "Invalid enum value. Expected 'mp3' | 'aac' | 'wav'",
                    },
                    {"code": "too_big", "path": ["fileSize"], "message": "File is too large"},
                ],
            },
        ),
    )

    with pytest.raises(SiroPermanentError) as caught:
        client.request_upload(AudioFormat.MP3, 200 * 1024 * 1024)

    assert caught.value.http_status == 422
    assert [issue.path for issue in caught.value.issues] == [("fileType",), ("fileSize",)]
    assert str(caught.value).startswith(
        "Siro signed-url: HTTP 422: fileType: Invalid enum value. Expected 'mp3' | 'aac' | 'wav'; "
        "fileSize: File is too large; the other documented body {fileType, fileSizeInBytes} was "
        "refused too"
    )
    # It names a size key, so the other documented form was tried once; refused as well, it
    # is not learned: the next call goes in the form that works.
    client.request_upload(AudioFormat.MP3, 1024)
    assert [list(r.json) for r in siro.state.requests_for("signed-url")] == [
        ["fileType", "fileSize"],
        ["fileType", "fileSizeInBytes"],
        ["fileType", "fileSize"],
    ]


@pytest.mark.parametrize("status", [400, 403, 404, 409])
def test_other_4xx_are_permanent_and_not_retried(
    siro: FakeSiro, client: SiroHttpClient, status: int
) -> None:
    siro.state.fail_next("connections", Fault.http(status, {"error": "nope"}))

    with pytest.raises(SiroPermanentError, match=f"HTTP {status}: nope"):
        client.list_connections()

    assert len(siro.state.requests_for("connections")) == 1


def test_a_redirect_is_not_followed(siro: FakeSiro, client: SiroHttpClient) -> None:
    siro.state.fail_next("users", Fault.http(302, {}, {"Location": "https://elsewhere.example/"}))

    with pytest.raises(SiroPermanentError, match="redirect"):
        client.list_users()


def test_the_token_mint_is_retried_like_any_idempotent_step(
    siro: FakeSiro, client: SiroHttpClient
) -> None:
    siro.state.fail_next("access-token", Fault.server_error(), Fault.connection_reset())

    client.request_upload(AudioFormat.MP3, 10)

    assert len(siro.state.minted) == 1
    assert len(siro.state.requests_for("access-token")) == 3


# -- the create step is never retried once it may have arrived -------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.connection_reset(after_processing=True),
        Fault.slow(2.0),
        Fault.server_error(500, after_processing=True),
        Fault.server_error(502),
    ],
    ids=["reset-after-send", "read-timeout", "500", "502"],
)
def test_a_create_whose_answer_was_lost_is_reported_not_retried(
    siro: FakeSiro, client: SiroHttpClient, uploaded: SignedUpload, fault: Fault
) -> None:
    siro.state.fail_next("create", fault)

    with pytest.raises(SiroCreateOutcomeUnknown) as caught:
        client.create_recording(create_body(uploaded))

    assert not isinstance(caught.value, SiroTransientError)  # nothing may retry it blindly
    assert caught.value.step == "create"
    assert len(siro.state.requests_for("create")) == 1
    assert "may have been acted on" in str(caught.value)


def test_after_a_lost_answer_the_recording_can_be_found(
    siro: FakeSiro, client: SiroHttpClient, uploaded: SignedUpload
) -> None:
    siro.state.fail_next("create", Fault.connection_reset(after_processing=True))
    sent_at = siro.state.clock()

    with pytest.raises(SiroCreateOutcomeUnknown):
        client.create_recording(create_body(uploaded))

    (recording,) = client.find_recordings(sent_at.replace(year=sent_at.year - 1))
    assert recording.user_id == "u"


def test_a_create_that_was_refused_with_429_is_retried(
    siro: FakeSiro, client: SiroHttpClient, uploaded: SignedUpload
) -> None:
    siro.state.fail_next("create", Fault.rate_limited(retry_after="0"))

    recording_id = client.create_recording(create_body(uploaded))

    assert list(siro.state.recordings) == [recording_id]
    assert len(siro.state.requests_for("create")) == 2


def test_a_create_after_a_401_is_sent_again_with_a_fresh_token(
    siro: FakeSiro, client: SiroHttpClient, uploaded: SignedUpload
) -> None:
    siro.state.revoke_all_tokens()

    recording_id = client.create_recording(create_body(uploaded))

    assert list(siro.state.recordings) == [recording_id]
    assert len(siro.state.minted) == 2


def test_a_create_that_could_not_connect_is_retried_and_then_transient(siro: FakeSiro) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        closed_port = placeholder.getsockname()[1]
    client = SiroHttpClient(
        siro_settings(siro, api_base_url=f"http://127.0.0.1:{closed_port}", max_retries=2)
    )
    body = RecordingCreate(file_url="https://d/x", file_type=AudioFormat.MP3, user_id="u")
    # The token is minted on the external API, which is up; only the gateway is unreachable.

    with pytest.raises(SiroTransientError, match="Connection refused") as caught:
        client.create_recording(body)

    assert not isinstance(caught.value, SiroCreateOutcomeUnknown)


def test_a_create_answer_without_a_recording_id_is_an_unknown_outcome(
    siro: FakeSiro, client: SiroHttpClient, uploaded: SignedUpload
) -> None:
    siro.state.fail_next("create", Fault.http(201, {"data": {}}, after_processing=True))

    with pytest.raises(SiroCreateOutcomeUnknown, match="names no recording id"):
        client.create_recording(create_body(uploaded))


def test_every_error_is_a_siro_error_with_the_step_named(
    siro: FakeSiro, client: SiroHttpClient
) -> None:
    siro.state.fail_next("users", Fault.http(400))

    with pytest.raises(SiroError) as caught:
        client.list_users()

    assert caught.value.step == "users"
    assert str(caught.value).startswith("Siro users: HTTP 400")
