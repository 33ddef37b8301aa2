"""The Siro client against a fake Siro over real sockets: tokens, credentials, forms, reads."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from poller import __version__
from poller.adapters.siro import SiroHttpClient
from poller.domain.siro import AudioFormat, RecordingCreate
from poller.ports.siro import SiroPermanentError
from poller.simulators.siro_server import FakeSiro, Fault, ManualClock
from tests.siro_settings import siro_settings


@pytest.fixture
def siro() -> Iterator[FakeSiro]:
    with FakeSiro() as fake:
        yield fake


def upload(client: SiroHttpClient, path: Path, **fields: Any) -> str:
    size = path.stat().st_size
    signed = client.request_upload(AudioFormat.MP3, size)
    used = client.put_audio(signed, path, AudioFormat.MP3, size)
    fields.setdefault("user_id", "user-1")
    return client.create_recording(
        RecordingCreate(file_url=used.download_url, file_type=AudioFormat.MP3, **fields)
    )


@pytest.fixture
def audio(tmp_path: Path) -> Path:
    path = tmp_path / "call.mp3"
    path.write_bytes(os.urandom(4096))
    return path


# -- the access token ------------------------------------------------------------------------


def test_the_access_token_is_minted_for_the_configured_user_and_scope(
    siro: FakeSiro, audio: Path
) -> None:
    client = SiroHttpClient(siro_settings(siro, token_scope="write"))

    upload(client, audio)

    (mint,) = siro.state.requests_for("access-token")
    assert mint.path.endswith(f"/v1/core/oauth/apps/{siro.state.client_id}/access-token")
    assert mint.json == {
        "clientSecret": siro.state.client_secret,
        "userId": "user-1",
        "scope": "write",
    }
    assert mint.header("Authorization") == f"Bearer {siro.state.org_token}"


def test_many_concurrent_callers_share_one_minted_token(siro: FakeSiro) -> None:
    siro.state.fail_next("access-token", Fault.slow(0.2))  # a slow mint invites a stampede
    client = SiroHttpClient(siro_settings(siro))
    start = threading.Barrier(16)

    def ask() -> None:
        start.wait()
        client.request_upload(AudioFormat.WAV, 1000)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda _: ask(), range(16)))

    (token,) = siro.state.minted
    signed_url_calls = siro.state.requests_for("signed-url")
    assert len(signed_url_calls) == 16
    assert {r.header("x-siro-auth-token") for r in signed_url_calls} == {token.value}


def test_a_new_token_is_minted_ahead_of_the_expiry_siro_reports() -> None:
    clock = ManualClock()
    with FakeSiro(clock=clock, token_lifetime=timedelta(hours=1)) as siro:
        client = SiroHttpClient(siro_settings(siro, token_refresh_margin_seconds=300), clock=clock)
        client.request_upload(AudioFormat.MP3, 10)

        clock.advance(timedelta(minutes=54))
        client.request_upload(AudioFormat.MP3, 10)
        assert len(siro.state.minted) == 1

        clock.advance(timedelta(minutes=1, seconds=1))  # inside the 5-minute margin
        client.request_upload(AudioFormat.MP3, 10)

        first, second = siro.state.minted
        assert [r.header("x-siro-auth-token") for r in siro.state.requests_for("signed-url")] == [
            first.value,
            first.value,
            second.value,
        ]


def test_without_a_readable_expiry_a_token_is_assumed_to_last_16_hours() -> None:
    clock = ManualClock()
    with FakeSiro(clock=clock, token_info_available=False) as siro:
        client = SiroHttpClient(siro_settings(siro, token_refresh_margin_seconds=300), clock=clock)
        client.request_upload(AudioFormat.MP3, 10)

        clock.advance(timedelta(hours=15, minutes=54))
        client.request_upload(AudioFormat.MP3, 10)
        assert len(siro.state.minted) == 1

        clock.advance(timedelta(minutes=2))
        client.request_upload(AudioFormat.MP3, 10)
        assert len(siro.state.minted) == 2


def test_a_401_mints_a_new_token_and_retries_the_call_once(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro))
    client.request_upload(AudioFormat.MP3, 10)
    siro.state.revoke_all_tokens()  # revoked in Siro before it expired here

    client.request_upload(AudioFormat.MP3, 10)

    assert len(siro.state.minted) == 2
    statuses = [r.header("x-siro-auth-token") for r in siro.state.requests_for("signed-url")]
    assert statuses == [siro.state.minted[0].value] * 2 + [siro.state.minted[1].value]


def test_a_second_401_in_a_row_is_a_permanent_error_that_names_the_settings(
    siro: FakeSiro,
) -> None:
    siro.state.fail_next("signed-url", Fault.http(401), Fault.http(401))
    client = SiroHttpClient(siro_settings(siro))

    with pytest.raises(SiroPermanentError, match="token_user_id") as caught:
        client.request_upload(AudioFormat.MP3, 10)

    assert caught.value.http_status == 401
    assert len(siro.state.minted) == 2
    assert len(siro.state.requests_for("signed-url")) == 2


def test_a_refused_organization_token_is_a_permanent_error(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro, api_token="not-the-org-token"))

    with pytest.raises(SiroPermanentError, match=r"check siro\.api_token") as caught:
        client.list_users()

    assert caught.value.http_status == 401


def test_missing_client_credentials_are_named(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro, client_secret=None))

    with pytest.raises(SiroPermanentError, match=r"siro\.client_secret is not set"):
        client.request_upload(AudioFormat.MP3, 10)

    assert siro.state.requests == []


# -- which credential goes where -------------------------------------------------------------


def test_each_credential_goes_only_to_its_own_surface(siro: FakeSiro, audio: Path) -> None:
    client = SiroHttpClient(siro_settings(siro))

    upload(client, audio)
    client.list_users()
    client.list_connections()
    client.find_recordings(siro.state.clock() - timedelta(days=1))

    for request in siro.state.requests:
        names = request.header_names()
        if request.path.startswith("/api-externalApi/"):
            assert request.header("Authorization") == f"Bearer {siro.state.org_token}"
            assert "x-siro-auth-token" not in names
        elif request.route == "put":
            assert not names & {"authorization", "x-siro-auth-token"}
        else:
            assert request.header("x-siro-auth-token") == siro.state.minted[0].value
            assert "authorization" not in names


def test_every_request_names_siro_poller_and_its_version(siro: FakeSiro, audio: Path) -> None:
    client = SiroHttpClient(siro_settings(siro))

    upload(client, audio)
    client.list_users()

    agents = {request.header("User-Agent") for request in siro.state.requests}
    assert len(agents) == 1
    assert agents.pop().startswith(f"siro-poller/{__version__}")


# -- where Siro's documents disagree ---------------------------------------------------------


@pytest.mark.parametrize("accepted", ["fileSize", "fileSizeInBytes"])
def test_the_signed_url_size_field_that_works_is_found_and_kept(accepted: str) -> None:
    with FakeSiro(signed_url_size_field=accepted) as siro:
        client = SiroHttpClient(siro_settings(siro))

        first = client.request_upload(AudioFormat.WAV, 2048)
        client.request_upload(AudioFormat.WAV, 4096)

        bodies = [r.json for r in siro.state.requests_for("signed-url")]
        tried_first = [{"fileType": "wav", "fileSize": 2048}]
        if accepted == "fileSizeInBytes":
            tried_first.append({"fileType": "wav", "fileSizeInBytes": 2048})
        assert bodies == [*tried_first, {"fileType": "wav", accepted: 4096}]
        assert first.upload_url.startswith(siro.url)


@pytest.mark.parametrize("accepts_organization_id", [True, False])
@pytest.mark.parametrize("accepted", ["fileSize", "fileSizeInBytes"])
def test_a_configured_organization_id_is_sent_until_siro_refuses_it(
    accepts_organization_id: bool, accepted: str
) -> None:
    with FakeSiro(
        signed_url_size_field=accepted,
        signed_url_accepts_organization_id=accepts_organization_id,
    ) as siro:
        client = SiroHttpClient(siro_settings(siro, organization_id="org-fake"))

        client.request_upload(AudioFormat.MP3, 100)
        client.request_upload(AudioFormat.MP3, 200)

        last = siro.state.requests_for("signed-url")[-1].json
        assert last["fileType"] == "mp3"
        assert last[accepted] == 200
        assert ("organizationId" in last) is accepts_organization_id
        assert len(last) == 2 + accepts_organization_id


def test_concurrent_callers_learn_the_signed_url_form_together() -> None:
    with FakeSiro(signed_url_size_field="fileSizeInBytes") as siro:
        client = SiroHttpClient(siro_settings(siro))
        start = threading.Barrier(8)

        def ask() -> None:
            start.wait()
            client.request_upload(AudioFormat.MP3, 10)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: ask(), range(8)))
        client.request_upload(AudioFormat.MP3, 10)

        assert "fileSizeInBytes" in siro.state.requests_for("signed-url")[-1].json
        refused = [r for r in siro.state.requests_for("signed-url") if "fileSize" in r.json]
        assert len(refused) <= 8


def test_the_form_switch_understands_zod_4_wording_too() -> None:
    with FakeSiro(signed_url_size_field="fileSizeInBytes") as siro:
        # Zod 4 words it differently and quotes with "; here the keys list is left out too.
        zod_4_refusal = {
            "name": "ZodError",
            "issues": [
                {"code": "unrecognized_keys", "path": [], "message": 'Unrecognized key: "fileSize"'}
            ],
        }
        siro.state.fail_next("signed-url", Fault.http(422, zod_4_refusal))
        client = SiroHttpClient(siro_settings(siro))

        client.request_upload(AudioFormat.MP3, 10)

        assert [list(r.json) for r in siro.state.requests_for("signed-url")] == [
            ["fileType", "fileSize"],
            ["fileType", "fileSizeInBytes"],
        ]


def test_a_422_unrelated_to_the_form_is_not_retried_with_another_form(siro: FakeSiro) -> None:
    siro.state.fail_next(
        "signed-url",
        Fault.http(
            422,
            {
                "name": "ZodError",
                "issues": [{"code": "custom", "path": ["fileType"], "message": "Unsupported"}],
            },
        ),
    )
    client = SiroHttpClient(siro_settings(siro))

    with pytest.raises(SiroPermanentError, match="fileType: Unsupported") as caught:
        client.request_upload(AudioFormat.MP3, 10)

    assert caught.value.issues[0].path == ("fileType",)
    assert len(siro.state.requests_for("signed-url")) == 1


@pytest.mark.parametrize("id_key", ["id", "recordingId"])
def test_the_new_recording_id_is_read_from_either_documented_key(
    id_key: str, tmp_path: Path
) -> None:
    path = tmp_path / "call.mp3"
    path.write_bytes(b"ID3" + os.urandom(1000))
    with FakeSiro(create_id_key=id_key) as siro:
        client = SiroHttpClient(siro_settings(siro))

        recording_id = upload(client, path, title="Inbound call [call-7]")

        assert recording_id in siro.state.recordings
        assert siro.state.recordings[recording_id]["title"] == "Inbound call [call-7]"


def test_the_create_body_is_exactly_the_model_s_json(siro: FakeSiro, audio: Path) -> None:
    client = SiroHttpClient(siro_settings(siro))

    upload(client, audio, title="t", user_email="rep1@example.com", contact_phone="")

    (create,) = siro.state.requests_for("create")
    assert set(create.json) == {"fileUrl", "fileType", "title", "userId", "userEmail"}
    assert create.json["fileUrl"].startswith(f"{siro.url}/download/")


# -- reads -----------------------------------------------------------------------------------


def test_users_are_read_page_by_page_following_the_cursor() -> None:
    with FakeSiro(users_max_page_size=3) as siro:
        siro.state.users = [
            {**siro.state.users[0], "id": f"user-{n}", "phoneNumber": f"+1555{n:07d}"}
            for n in range(7)
        ]
        client = SiroHttpClient(siro_settings(siro))

        users = client.list_users()

        assert [u.id for u in users] == [f"user-{n}" for n in range(7)]
        assert users[3].phone_number == "+15550000003"
        pages = siro.state.requests_for("users")
        assert [r.query.get("cursor") for r in pages] == [None, ["offset-3"], ["offset-6"]]
        assert all(r.query["pageSize"] == ["100"] for r in pages)


def test_integration_connections_come_from_the_external_api(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro))

    (connection,) = client.list_connections()

    assert connection.id == "conn-1"
    assert connection.is_active is True


def test_conversation_configurations_for_the_caller_s_organization(siro: FakeSiro) -> None:
    client = SiroHttpClient(siro_settings(siro))

    types = [c.conversation_type for c in client.list_conversation_configurations()]

    assert types == ["sales", "service"]
    assert len(siro.state.requests_for("caller-identity")) == 1


def test_one_recording_by_id_or_none_when_siro_does_not_know_it(
    siro: FakeSiro, audio: Path
) -> None:
    client = SiroHttpClient(siro_settings(siro))
    recording_id = upload(client, audio, title="Outbound call [call-9]")

    found = client.get_recording(recording_id)

    assert found is not None
    assert (found.id, found.title, found.user_id) == (
        recording_id,
        "Outbound call [call-9]",
        "user-1",
    )
    assert client.get_recording("no-such-recording") is None


def test_recordings_created_in_a_window_across_pages() -> None:
    clock = ManualClock()
    with FakeSiro(clock=clock, recordings_default_limit=2) as siro:
        start = clock()
        for hour in range(6):
            siro.state.add_recording(
                id=f"rec-{hour}",
                title=f"call [{hour}]",
                dateCreated=(start + timedelta(hours=hour)).isoformat().replace("+00:00", "Z"),
                userId="user-1",
            )
        client = SiroHttpClient(siro_settings(siro), clock=clock)

        found = client.find_recordings(start, start + timedelta(hours=5))

        assert [r.id for r in found] == ["rec-1", "rec-2", "rec-3", "rec-4"]
        assert found[0].date_created == start + timedelta(hours=1)
        first_page = siro.state.requests_for("list-recordings")[0]
        assert first_page.query["dateCreated:gt"] == ["2026-03-02T09:00:00.000Z"]
        assert first_page.query["dateCreated:lt"] == ["2026-03-02T14:00:00.000Z"]
