"""Refused credentials are :class:`SiroCredentialError`, naming the settings, never a secret.

The worker pauses on this error instead of failing calls (measured before: a wrong client
secret failed 14 of 14 calls as ``siro_mint_token_rejected``). Here, at the client: which
refusals are about the credentials, and which are not.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from poller.adapters.siro import SiroHttpClient
from poller.domain.siro import AudioFormat, SignedUpload
from poller.ports.siro import SiroCredentialError, SiroError, SiroPermanentError
from poller.simulators.siro_server import FakeSiro, Fault
from tests.siro_settings import siro_settings

MINT_KEYS = "siro.client_id, siro.client_secret, siro.token_user_id and siro.api_token"


@pytest.fixture
def siro() -> Iterator[FakeSiro]:
    with FakeSiro() as fake:
        yield fake


def credential_error(siro: FakeSiro, action: object) -> SiroCredentialError:
    assert callable(action)
    with pytest.raises(SiroCredentialError) as caught:
        action()
    error = caught.value
    for secret in [*siro.state.secrets(), "wrong-secret-value"]:
        assert secret not in str(error)
    return error


def test_a_wrong_client_secret_is_a_credential_error_naming_the_settings(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro, client_secret="wrong-secret-value"))

    error = credential_error(siro, lambda: client.request_upload(AudioFormat.MP3, 10))

    assert error.http_status == 401
    assert error.step == "mint-token"
    assert f"check {MINT_KEYS}" in str(error)
    assert siro.state.requests_for("signed-url") == []


@pytest.mark.parametrize("status", [400, 403, 404])
def test_any_refused_mint_is_a_credential_error(siro: FakeSiro, status: int) -> None:
    siro.state.fail_next("access-token", Fault.http(status, {"error": "no such app"}))
    client = SiroHttpClient(siro_settings(siro))

    error = credential_error(siro, lambda: client.request_upload(AudioFormat.MP3, 10))

    assert error.http_status == status
    assert f"HTTP {status}: no such app" in str(error)
    assert MINT_KEYS in str(error)


def test_an_unknown_client_id_is_a_credential_error(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro, client_id="client-nobody-knows"))

    error = credential_error(siro, client.list_conversation_configurations)

    assert error.http_status == 404


def test_a_401_that_a_freshly_minted_token_gets_too_is_a_credential_error(
    siro: FakeSiro,
) -> None:
    siro.state.fail_next("list-recordings", Fault.http(401), Fault.http(401))
    client = SiroHttpClient(siro_settings(siro))

    error = credential_error(siro, lambda: client.find_recordings(siro.state.clock()))

    assert "a freshly minted access token was refused too" in str(error)
    assert len(siro.state.minted) == 2


@pytest.mark.parametrize(
    ("route", "keys"),
    [
        ("signed-url", "siro.token_user_id and siro.token_scope"),
        ("users", "siro.api_token"),
    ],
)
def test_a_403_from_either_surface_is_a_credential_error(
    siro: FakeSiro, route: str, keys: str
) -> None:
    siro.state.fail_next(route, Fault.http(403, {"error": "Forbidden"}))  # type: ignore[arg-type]
    client = SiroHttpClient(siro_settings(siro))
    action = (
        (lambda: client.request_upload(AudioFormat.MP3, 10))
        if route == "signed-url"
        else client.list_users
    )

    error = credential_error(siro, action)

    assert error.http_status == 403
    assert keys in str(error)


def test_a_refused_organization_token_is_a_credential_error(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro, api_token="not-the-org-token"))

    error = credential_error(siro, client.list_connections)

    assert error.http_status == 401
    assert str(error).endswith("check siro.api_token")


@pytest.mark.parametrize(
    ("missing", "action"),
    [
        ("client_secret", "upload"),
        ("client_id", "upload"),
        ("token_user_id", "upload"),
        ("api_token", "users"),
    ],
)
def test_a_missing_credential_setting_is_a_credential_error_before_any_request(
    siro: FakeSiro, missing: str, action: str
) -> None:
    client = SiroHttpClient(siro_settings(siro, **{missing: ""}))
    call = (
        (lambda: client.request_upload(AudioFormat.MP3, 10))
        if action == "upload"
        else (client.list_users)
    )

    error = credential_error(siro, call)

    assert f"siro.{missing} is not set" in str(error)
    assert siro.state.requests == []


def test_a_storage_403_is_about_the_signed_url_not_the_credentials(
    siro: FakeSiro, tmp_path: Path
) -> None:
    audio = tmp_path / "a.mp3"
    audio.write_bytes(os.urandom(100))
    client = SiroHttpClient(siro_settings(siro))
    signed = client.request_upload(AudioFormat.MP3, 100)
    tampered = SignedUpload(
        signed.upload_url.replace("X-Goog-Signature=", "X-Goog-Signature=0"),
        signed.download_url,
        signed.expires_at,
        signed.upload_headers,
    )

    with pytest.raises(SiroPermanentError, match="SignatureDoesNotMatch") as caught:
        client.put_audio(tampered, audio, AudioFormat.MP3, 100)

    assert not isinstance(caught.value, SiroCredentialError)


def test_verify_credentials_mints_afresh_each_time(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro))
    client.request_upload(AudioFormat.MP3, 10)

    client.verify_credentials()
    client.verify_credentials()

    assert len(siro.state.minted) == 3
    client.request_upload(AudioFormat.MP3, 10)
    assert siro.state.requests_for("signed-url")[-1].header("x-siro-auth-token") == (
        siro.state.minted[-1].value
    )


def test_verify_credentials_raises_while_siro_refuses_and_passes_once_it_accepts(
    siro: FakeSiro,
) -> None:
    client = SiroHttpClient(siro_settings(siro, client_secret="wrong-secret-value"))

    credential_error(siro, client.verify_credentials)
    credential_error(siro, client.verify_credentials)  # asked again, not a remembered answer
    assert len(siro.state.requests_for("access-token")) == 2

    # The secret is put right in Siro (the app's secret is now the one configured).
    with siro.state.lock:
        siro.state.apps[siro.state.client_id]["clientSecret"] = "wrong-secret-value"
    client.verify_credentials()
    client.request_upload(AudioFormat.MP3, 10)


def test_a_transient_mint_failure_is_not_a_credential_error(siro: FakeSiro) -> None:
    siro.state.fail_next("access-token", *[Fault.server_error()] * 4)
    client = SiroHttpClient(siro_settings(siro))

    with pytest.raises(SiroError) as caught:
        client.verify_credentials()

    assert not isinstance(caught.value, SiroPermanentError)
