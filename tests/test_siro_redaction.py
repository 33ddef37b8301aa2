"""No token, secret or signed URL in a log line or an error text, even when things go wrong.

Checked twice: in the raw records of the client's logger (caplog, before any filter), which
proves the client itself never writes them, and in the daemon's real log output
(``configure_logging``, whose handler carries ``RedactionFilter``).
"""

from __future__ import annotations

import io
import logging
import os
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from poller.adapters.siro import SiroHttpClient
from poller.config import LoggingSettings, Settings
from poller.domain.siro import AudioFormat, RecordingCreate, SignedUpload
from poller.logs import configure_logging
from poller.ports.siro import SiroError
from poller.simulators.siro_server import FakeSiro, Fault
from tests.siro_settings import siro_settings

CLIENT_LOGGER = "poller.adapters.siro"


@pytest.fixture
def daemon_log() -> Iterator[io.StringIO]:
    """The daemon's own log handler at DEBUG, writing to a string; undone afterwards."""
    root = logging.getLogger()
    touched = ["urllib3", "apscheduler.scheduler", "alembic"]
    saved = root.level, {name: logging.getLogger(name).level for name in touched}
    stream = io.StringIO()
    settings = Settings(logging=LoggingSettings(level="DEBUG", format="human"))
    handler = configure_logging(settings, stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


def expect_siro_error(action: object) -> SiroError:
    assert callable(action)
    try:
        action()
    except SiroError as exc:
        return exc
    raise AssertionError("expected a SiroError")


def test_nothing_secret_is_logged_or_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, daemon_log: io.StringIO
) -> None:
    caplog.set_level(logging.DEBUG, logger=CLIENT_LOGGER)
    path = tmp_path / "call.mp3"
    path.write_bytes(os.urandom(50_000))
    errors: list[SiroError] = []
    urls: list[str] = []
    with FakeSiro(signed_url_size_field="fileSizeInBytes", token_info_available=False) as siro:
        state = siro.state
        client = SiroHttpClient(
            siro_settings(siro, organization_id="org-fake", read_timeout_seconds=0.15)
        )
        body = {"file_type": AudioFormat.MP3, "user_id": "user-1"}

        # A Siro that echoes credentials back in its error bodies.
        state.fail_next("users", Fault.http(400, {"error": f"bad token {state.org_token}"}))
        errors.append(expect_siro_error(client.list_users))
        state.fail_next(
            "access-token", Fault.http(403, {"error": f"secret {state.client_secret} refused"})
        )
        errors.append(expect_siro_error(lambda: client.request_upload(AudioFormat.MP3, 50_000)))

        # The upload, through a form switch, a 401, a 429, a 500 and a reset on the PUT.
        state.fail_next("signed-url", Fault.rate_limited("0"), Fault.server_error())
        signed = client.request_upload(AudioFormat.MP3, 50_000)
        state.revoke_all_tokens()
        state.fail_next("put", Fault.connection_reset())
        used = client.put_audio(
            client.request_upload(AudioFormat.MP3, 50_000), path, AudioFormat.MP3, 50_000
        )
        urls += [signed.upload_url, signed.download_url, used.upload_url, used.download_url]

        # Errors that could carry the signed URL: a refused PUT whose body echoes it, a timeout.
        tampered = SignedUpload(
            used.upload_url, used.download_url, used.expires_at, {"Content-Type": "audio/x"}
        )
        errors.append(
            expect_siro_error(lambda: client.put_audio(tampered, path, AudioFormat.MP3, 50_000))
        )
        state.fail_next("put", *[Fault.slow(1.0)] * 4)
        errors.append(
            expect_siro_error(lambda: client.put_audio(used, path, AudioFormat.MP3, 50_000))
        )

        # The access token echoed back, and a create whose answer is lost.
        token = state.minted[-1].value
        state.fail_next("create", Fault.http(400, {"error": f"x-siro-auth-token {token} invalid"}))
        create = RecordingCreate(file_url=used.download_url, **body)
        errors.append(expect_siro_error(lambda: client.create_recording(create)))
        state.fail_next("create", Fault.connection_reset(after_processing=True))
        errors.append(expect_siro_error(lambda: client.create_recording(create)))
        client.create_recording(create)

        secrets = [*state.secrets(), *urls]

    error_texts = ["".join(traceback.format_exception(error)) + repr(error) for error in errors]
    raw_log = caplog.text
    daemon_output = daemon_log.getvalue()
    assert len(errors) == 6 and raw_log and daemon_output  # the scenario really ran
    assert "minted a Siro access token" in raw_log
    for secret in secrets:
        assert secret not in raw_log
        assert secret not in daemon_output
        for text in error_texts:
            assert secret not in text
