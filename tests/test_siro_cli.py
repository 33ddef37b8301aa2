"""`siro-poller siro ...` against the fake Siro, through the real command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner, Result

from poller.cli import main
from poller.simulators.siro_server import FakeSiro, Fault


@pytest.fixture
def siro() -> Iterator[FakeSiro]:
    with FakeSiro(create_app_client_id_key="clientID") as fake:
        yield fake


def run(siro: FakeSiro, tmp_path: Path, *args: str, **siro_settings: Any) -> Result:
    config = tmp_path / "siro-poller.toml"
    config.write_text(
        tomli_w.dumps({"state_dir": str(tmp_path), "siro": siro.settings_values(**siro_settings)})
    )
    return CliRunner().invoke(
        main, ["--config", str(config), "siro", *args], catch_exceptions=False
    )


@pytest.mark.parametrize("client_id_key", ["clientID", "clientId"])
def test_create_app_prints_the_credentials_once_and_warns_on_stderr(
    tmp_path: Path, client_id_key: str
) -> None:
    with FakeSiro(create_app_client_id_key=client_id_key) as siro:
        result = run(siro, tmp_path, "create-app", "--name", "siro-poller", "--owner", "user-2")

        assert result.exit_code == 0, result.stderr
        (client_id,) = [
            cid for cid, app in siro.state.apps.items() if app["appName"] == "siro-poller"
        ]
        secret = siro.state.apps[client_id]["clientSecret"]
        assert result.stdout == f"client_id: {client_id}\nclient_secret: {secret}\n"
        assert "only once" in result.stderr
        assert "siro.client_secret" in result.stderr
        assert secret not in result.stderr
        (request,) = siro.state.requests_for("create-app")
        assert request.json == {
            "appName": "siro-poller",
            "owner": "user-2",
            "organizationId": "org-fake",  # from caller-identity, as none is configured
        }


def test_create_app_owner_defaults_to_the_token_user_and_org_to_the_config(
    siro: FakeSiro, tmp_path: Path
) -> None:
    result = run(
        siro, tmp_path, "create-app", "--name", "n", "--json", organization_id="org-configured"
    )

    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert set(printed) == {"app_name", "client_id", "client_secret"}
    assert siro.state.requests_for("create-app")[0].json["owner"] == siro.state.token_user_id
    assert siro.state.requests_for("create-app")[0].json["organizationId"] == "org-configured"
    assert siro.state.requests_for("caller-identity") == []


def test_create_app_without_an_owner_says_how_to_give_one(siro: FakeSiro, tmp_path: Path) -> None:
    result = run(siro, tmp_path, "create-app", "--name", "n", token_user_id=None)

    assert result.exit_code == 2
    assert "--owner USER_ID" in result.stderr
    assert "siro.token_user_id" in result.stderr
    assert siro.state.requests == []


def test_create_app_refuses_the_example_s_placeholders_naming_each_key(
    siro: FakeSiro, tmp_path: Path
) -> None:
    # The untouched example, with only the organization token given: the owner, the org id and
    # the token itself are what the app would be made with.
    result = run(
        siro,
        tmp_path,
        "create-app",
        "--name",
        "siro-poller",
        token_user_id="replace-with-a-siro-user-id",
        organization_id="...",
        api_token="<org-api-token>",
    )

    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("siro-poller: config error: siro.api_token: still the example's")
    assert "<org-api-token>" not in result.stderr  # a secret, even a placeholder, is not shown
    assert lines[1].startswith(
        "siro-poller: config error: siro.token_user_id: still the example's placeholder "
        "'replace-with-a-siro-user-id'"
    )
    assert "or pass --owner USER_ID (`siro-poller siro users` lists the ids)" in lines[1]
    assert lines[2].startswith("siro-poller: config error: siro.organization_id: still the")
    assert siro.state.requests == []


@pytest.mark.parametrize("owner", ["USER_ID", "<user-id>", "replace-with-a-siro-user-id", "..."])
def test_create_app_refuses_a_placeholder_owner(siro: FakeSiro, tmp_path: Path, owner: str) -> None:
    result = run(siro, tmp_path, "create-app", "--name", "n", "--owner", owner)

    assert result.exit_code == 2
    assert result.stderr == (
        f"siro-poller: config error: --owner {owner!r} is a placeholder, not a Siro user id "
        "(`siro-poller siro users` lists the ids)\n"
    )
    assert siro.state.requests == []


def test_create_app_runs_before_the_client_id_is_set_and_with_an_owner_over_the_example(
    siro: FakeSiro, tmp_path: Path
) -> None:
    """The client id and secret are what create-app makes: their placeholders are expected."""
    result = run(
        siro,
        tmp_path,
        "create-app",
        "--name",
        "n",
        "--owner",
        "user-2",
        client_id="replace-with-your-client-id",
        client_secret="...",
        token_user_id="replace-with-a-siro-user-id",
    )

    assert result.exit_code == 0, result.stderr
    assert siro.state.requests_for("create-app")[0].json["owner"] == "user-2"


def test_create_app_whose_answer_was_lost_says_the_app_may_exist(
    siro: FakeSiro, tmp_path: Path
) -> None:
    siro.state.fail_next("create-app", Fault.connection_reset(after_processing=True))

    result = run(siro, tmp_path, "create-app", "--name", "siro-poller")

    assert result.exit_code == 1
    assert "may exist now" in result.stderr
    assert len(siro.state.requests_for("create-app")) == 1  # never sent twice


def test_a_refused_org_token_is_one_clear_line(siro: FakeSiro, tmp_path: Path) -> None:
    result = run(siro, tmp_path, "users", api_token="wrong-token")

    assert result.exit_code == 1
    assert result.stderr.startswith("siro-poller: Siro users: HTTP 401")
    assert "check siro.api_token" in result.stderr
    assert "Traceback" not in result.stderr


def test_users_lists_the_ids_to_configure(siro: FakeSiro, tmp_path: Path) -> None:
    result = run(siro, tmp_path, "users")

    assert result.exit_code == 0, result.stderr
    assert "user-1" in result.stdout and "rep1@example.com" in result.stdout
    as_json = json.loads(run(siro, tmp_path, "users", "--json").stdout)
    assert [user["id"] for user in as_json] == ["user-1", "user-2", "user-3"]


def test_connections_and_conversation_types(siro: FakeSiro, tmp_path: Path) -> None:
    connections = run(siro, tmp_path, "connections")
    types = json.loads(run(siro, tmp_path, "conversation-types", "--json").stdout)

    assert connections.exit_code == 0 and "conn-1" in connections.stdout
    assert [t["conversation_type"] for t in types] == ["sales", "service"]


def test_without_an_org_token_nothing_is_sent(siro: FakeSiro, tmp_path: Path) -> None:
    result = run(siro, tmp_path, "users", api_token=None)

    assert result.exit_code == 2
    assert "siro.api_token" in result.stderr
    assert siro.state.requests == []
