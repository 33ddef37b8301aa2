"""Copying Siro's users into siro_users: every page, all or nothing, and `siro sync-users`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner
from sqlalchemy import Engine

from poller.adapters.siro import SiroHttpClient
from poller.adapters.siro_fake import InMemorySiro
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.core.users_sync import UsersSyncError, sync_users
from poller.domain.attribution import RepRules, attribute
from poller.domain.failures import StepFailure
from poller.domain.records import Call
from poller.domain.siro import SiroUser
from poller.domain.states import CallState
from poller.ports.siro import SiroTransientError
from poller.simulators.siro_server import FakeSiro, Fault
from tests.conftest import database_url
from tests.seed import AnyStore
from tests.siro_settings import siro_settings

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def siro_user(n: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": f"user-{n}",
        "email": f"Rep{n}@Example.com",
        "organizationId": "org-fake",
        "phoneNumber": f"+1 (425) 555-01{n:02d}",
        "firstName": "Rep",
        "lastName": str(n),
        "memberTeamId": None,
        "coachTeamIds": [],
        "externalId": None,
        "createdAt": "2026-01-01T00:00:00.000Z",
        "disabled": False,
        "billable": True,
        **fields,
    }


@pytest.fixture
def siro() -> Iterator[FakeSiro]:
    # Fewer users per page than users, so a sync must follow the cursor.
    with FakeSiro(users_max_page_size=2) as fake:
        fake.state.users = [
            siro_user(1),
            siro_user(2, phoneNumber="4255550102"),
            siro_user(3, phoneNumber="425-555-0103 x12"),
            siro_user(4, disabled=True),
            siro_user(5, email=None, phoneNumber=None),
        ]
        yield fake


def test_every_page_of_users_is_synced_over_http(siro: FakeSiro, any_store: AnyStore) -> None:
    client = SiroHttpClient(siro_settings(siro))
    try:
        result = sync_users(client, any_store, NOW, default_region="US")
    finally:
        client.close()

    assert len(siro.state.requests_for("users")) == 3
    assert (result.listed, result.added, result.disabled) == (5, 5, 1)
    users = {user.id: user for user in any_store.siro_users()}
    assert sorted(users) == [f"user-{n}" for n in range(1, 6)]
    assert [users[f"user-{n}"].phone_e164 for n in (1, 2, 3)] == [
        "+14255550101",
        "+14255550102",
        "+14255550103",
    ]
    assert users["user-1"].email_lower == "rep1@example.com"
    assert users["user-4"].disabled and not users["user-4"].active
    assert (users["user-5"].email_lower, users["user-5"].phone_e164) == (None, None)


def test_a_failed_page_leaves_the_table_as_it_was(siro: FakeSiro, any_store: AnyStore) -> None:
    client = SiroHttpClient(siro_settings(siro))
    try:
        sync_users(client, any_store, NOW, default_region="US")
        before = any_store.siro_users()
        siro.state.users = siro.state.users[:3]  # two users "gone", if the listing were whole
        siro.state.fail_next("users", Fault(), Fault.http(403))  # page 1 answers, then a 403

        with pytest.raises(UsersSyncError, match="siro_users is unchanged"):
            sync_users(client, any_store, NOW + timedelta(hours=1), default_region="US")
    finally:
        client.close()

    assert len(siro.state.requests_for("users")) == 3 + 2  # the second sync reached page 2
    assert any_store.siro_users() == before


def test_a_transient_failure_is_reported_and_changes_nothing(any_store: AnyStore) -> None:
    siro = InMemorySiro(users=[SiroUser(id="u-1", email="a@example.com")])
    sync_users(siro, any_store, NOW, default_region="US")
    siro.fail_next("list_users", SiroTransientError("Siro users: HTTP 503", step="users"))

    with pytest.raises(UsersSyncError, match="HTTP 503"):
        sync_users(siro, any_store, NOW + timedelta(hours=1), default_region="US")

    [user] = any_store.siro_users()
    assert (user.synced_at, user.missing_since) == (NOW, None)


def test_an_empty_list_never_marks_every_known_user_gone(any_store: AnyStore) -> None:
    siro = InMemorySiro()
    assert sync_users(siro, any_store, NOW, default_region="US").listed == 0  # nothing known yet
    siro.users = [SiroUser(id="u-1")]
    sync_users(siro, any_store, NOW, default_region="US")
    siro.users = []

    with pytest.raises(UsersSyncError, match="listed no users at all, while 1 were active"):
        sync_users(siro, any_store, NOW + timedelta(hours=1), default_region="US")

    assert [user.active for user in any_store.siro_users()] == [True]


def test_a_rep_who_left_siro_is_no_longer_attributed(any_store: AnyStore) -> None:
    siro = InMemorySiro(users=[SiroUser(id="u-1", email="rep@example.com"), SiroUser(id="u-2")])
    sync_users(siro, any_store, NOW, default_region="US")
    call = Call(
        id=1,
        provider="p",
        provider_call_id="c",
        state=CallState.PENDING,
        rep_email="rep@example.com",
    )
    assert attribute(call, any_store.user_directory(), RepRules()).siro_user_id == "u-1"

    siro.users = [SiroUser(id="u-2")]
    result = sync_users(siro, any_store, NOW + timedelta(hours=1), default_region="US")

    assert result.missing == 1
    with pytest.raises(StepFailure) as caught:
        attribute(call, any_store.user_directory(), RepRules())
    assert caught.value.kind == "rep_disabled"


def test_sync_users_command(siro: FakeSiro, sql_store: SqlStore, tmp_path: Path) -> None:
    engine: Engine = sql_store.engine
    config = tmp_path / "siro-poller.toml"
    config.write_text(
        tomli_w.dumps({"database": {"url": database_url(engine)}, "siro": siro.settings_values()})
    )

    result = CliRunner().invoke(main, ["--config", str(config), "siro", "sync-users"])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "5 users listed by Siro (1 disabled): 5 new, 0 changed, 0 back, 0 no longer listed"
    )
    assert result.output.count("5 users listed by Siro") == 1  # said once, not logged again
    assert len(sql_store.siro_users()) == 5

    siro.state.fail_next("users", Fault.http(403))
    failed = CliRunner().invoke(main, ["--config", str(config), "siro", "sync-users", "--json"])
    assert failed.exit_code == 1
    assert "siro_users is unchanged" in failed.stderr
    assert "Traceback" not in failed.output
