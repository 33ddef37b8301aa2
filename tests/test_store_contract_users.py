"""The rep-attribution half of the store contract, on the in-memory fake, SQLite and PostgreSQL.

Plus the audit promise: attribution can be read back with plain SQL on both backends.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, text

from poller.adapters.sql.store import SqlStore
from poller.domain.attribution import directory_user
from poller.domain.records import DirectoryUser, UsersSyncResult
from poller.domain.siro import SiroUser
from poller.domain.states import CallState
from tests.seed import AnyStore, seed_call

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
LEASE = {"lease_owner": "worker-a", "lease_expires_at": NOW + timedelta(minutes=30)}


def listed(user_id: str, **fields: object) -> DirectoryUser:
    values: dict[str, object] = {
        "email": f"{user_id}@Example.com",
        "phone_number": "(425) 555-0100",
        "first_name": user_id.title(),
        **fields,
    }
    return directory_user(SiroUser(id=user_id, **values), NOW, "US")


def test_a_first_sync_stores_every_user_with_its_lookup_keys(any_store: AnyStore) -> None:
    result = any_store.replace_siro_users(
        [listed("ana"), listed("ben", disabled=True, phone_number=None, email=None)], NOW
    )
    assert result == UsersSyncResult(
        listed=2, added=2, updated=0, returned=0, missing=0, disabled=1
    )
    ana, ben = any_store.siro_users()
    assert (ana.id, ana.email, ana.email_lower) == ("ana", "ana@Example.com", "ana@example.com")
    assert (ana.phone_number, ana.phone_e164) == ("(425) 555-0100", "+14255550100")
    assert (ana.disabled, ana.synced_at, ana.missing_since) == (False, NOW, None)
    assert ana.synced_at is not None and ana.synced_at.tzinfo is not None
    assert (ben.disabled, ben.email_lower, ben.phone_e164) == (True, None, None)


def test_a_later_sync_updates_keeps_the_gone_and_marks_them(any_store: AnyStore) -> None:
    any_store.replace_siro_users([listed("ana"), listed("ben"), listed("cy")], NOW)

    result = any_store.replace_siro_users(
        [listed("ana"), listed("ben", disabled=True), listed("dee")], LATER
    )

    assert result == UsersSyncResult(
        listed=3, added=1, updated=1, returned=0, missing=1, disabled=1
    )
    users = {user.id: user for user in any_store.siro_users()}
    assert set(users) == {"ana", "ben", "cy", "dee"}  # cy is kept
    assert (users["ben"].disabled, users["ben"].synced_at) == (True, LATER)
    assert (users["cy"].missing_since, users["cy"].synced_at) == (LATER, NOW)
    assert not users["cy"].active and not users["ben"].active and users["ana"].active

    # Still gone an hour later: marked once, at the first sync that missed it.
    again = any_store.replace_siro_users(
        [listed("ana"), listed("ben", disabled=True), listed("dee")], LATER + timedelta(hours=1)
    )
    assert (again.missing, again.updated, again.added) == (0, 0, 0)
    cy = next(user for user in any_store.siro_users() if user.id == "cy")
    assert cy.missing_since == LATER

    back = any_store.replace_siro_users(
        [listed("cy", first_name="Cyril")], LATER + timedelta(days=2)
    )
    assert (back.returned, back.missing) == (1, 3)
    cy = next(user for user in any_store.siro_users() if user.id == "cy")
    assert (cy.missing_since, cy.first_name) == (None, "Cyril")


def test_a_user_listed_twice_counts_once_the_last_sighting(any_store: AnyStore) -> None:
    # Offset paging can repeat a user when the list shifts between pages.
    result = any_store.replace_siro_users(
        [listed("ana", first_name="Old"), listed("ana", first_name="New")], NOW
    )
    assert (result.listed, result.added) == (1, 1)
    assert [u.first_name for u in any_store.siro_users()] == ["New"]


def test_the_directory_is_a_snapshot_of_the_table(any_store: AnyStore) -> None:
    assert any_store.user_directory().synced_at is None  # never synced
    any_store.replace_siro_users(
        [listed("ana"), listed("old", email="ANA@example.com", disabled=True)], NOW
    )
    any_store.replace_siro_users(
        [listed("ana"), listed("old", email="ANA@example.com", disabled=True)], LATER
    )

    directory = any_store.user_directory()

    assert directory.synced_at == LATER
    assert len(directory) == 2
    assert [u.id for u in directory.by_email("ana@example.com")] == ["ana", "old"]
    assert [u.id for u in directory.by_phone("+14255550100")] == ["ana", "old"]
    assert directory.by_email("nobody@example.com") == ()
    by_id = directory.by_id("old")
    assert by_id is not None and by_id.disabled
    # A snapshot: later syncs do not change it.
    any_store.replace_siro_users([listed("new")], LATER + timedelta(hours=1))
    assert directory.by_id("new") is None


def test_record_attribution_writes_only_under_the_lease(any_store: AnyStore) -> None:
    call = seed_call(any_store, "call-1", next_attempt_at=NOW, **LEASE)

    assert not any_store.record_attribution(
        call.id, "worker-b", LATER, "u-1", "siro_email", "the rep's email ..."
    )
    assert not any_store.record_attribution(999, "worker-a", LATER, "u-1", "siro_email", "x")
    unchanged = any_store.get_call(call.id)
    assert unchanged is not None and (unchanged.siro_user_id, unchanged.attribution) == (None, None)
    assert any_store.events_for(call.id) == []

    detail = "the rep's email ana@example.com belongs to Siro user u-1 (Ana)"
    assert any_store.record_attribution(call.id, "worker-a", LATER, "u-1", "siro_email", detail)

    row = any_store.get_call(call.id)
    assert row is not None
    assert (row.siro_user_id, row.attribution, row.updated_at) == ("u-1", "siro_email", LATER)
    assert row.state is CallState.PENDING and row.lease_owner == "worker-a"
    [event] = any_store.events_for(call.id)
    assert (event.step, event.outcome, event.message, event.at) == (
        "attribute",
        "siro_email",
        detail,
        LATER,
    )
    assert (event.from_state, event.to_state) == ("pending", "pending")


def test_a_fallback_attribution_has_no_user_id(any_store: AnyStore) -> None:
    call = seed_call(any_store, "call-1", **LEASE)
    assert any_store.record_attribution(call.id, "worker-a", NOW, None, "fallback_email", "...")
    row = any_store.get_call(call.id)
    assert row is not None and (row.siro_user_id, row.attribution) == (None, "fallback_email")


def test_attribution_is_auditable_with_plain_sql(engine: Engine) -> None:
    store = SqlStore(engine)
    store.replace_siro_users([listed("ana"), listed("ben", disabled=True)], NOW)
    rows = [
        ("c1", "siro_email", "ana"),
        ("c2", "siro_email", "ana"),
        ("c3", "map_extension", "ben"),
        ("c4", "fallback_email", None),
    ]
    for call_id, method, user_id in rows:
        call = seed_call(store, call_id, **LEASE)
        assert store.record_attribution(call.id, "worker-a", NOW, user_id, method, "...")
    seed_call(store, "c5", state=CallState.SKIPPED, error_kind="no_rep_identity")

    with engine.connect() as connection:
        by_method = connection.execute(
            text("SELECT attribution, count(*) FROM calls GROUP BY attribution")
        ).all()
        by_user = connection.execute(
            text(
                "SELECT c.provider_call_id, c.attribution, u.first_name, u.disabled "
                "FROM calls c JOIN siro_users u ON u.id = c.siro_user_id "
                "ORDER BY c.provider_call_id"
            )
        ).all()
        skipped = connection.execute(
            text("SELECT provider_call_id FROM calls WHERE error_kind = 'no_rep_identity'")
        ).scalar_one()

    assert {tuple(row) for row in by_method} == {
        ("siro_email", 2),
        ("fallback_email", 1),
        ("map_extension", 1),
        (None, 1),  # the skipped call was never attributed
    }
    assert [tuple(row) for row in by_user] == [
        ("c1", "siro_email", "Ana", False),
        ("c2", "siro_email", "Ana", False),
        ("c3", "map_extension", "Ben", True),
    ]
    assert skipped == "c5"


def test_every_directory_column_is_a_siro_users_column(engine: Engine) -> None:
    with engine.connect() as connection:
        row = connection.execute(text("SELECT * FROM siro_users")).keys()
    assert set(row) == {field.name for field in dataclasses.fields(DirectoryUser)}


def test_the_docs_attribution_queries_run_on_both_backends(engine: Engine) -> None:
    page = Path(__file__).resolve().parent.parent / "docs" / "attribution.md"
    section = page.read_text(encoding="utf-8").split("\n## ", 1)[0]
    [block] = re.findall(r"```sql\n(.*?)```", section, flags=re.DOTALL)
    queries = [query.strip() for query in block.split(";") if query.strip()]
    store = SqlStore(engine)
    store.replace_siro_users([listed("ana")], NOW)
    call = seed_call(store, "c1", rep_email="ana@example.com", **LEASE)
    store.record_attribution(call.id, "worker-a", NOW, "ana", "siro_email", "by email")
    seed_call(store, "c2", rep_email="new@example.com", attribution="fallback_email")

    with engine.connect() as connection:
        results = [connection.execute(text(query)).all() for query in queries]

    assert len(results) == 4
    assert {tuple(row) for row in results[0]} == {("siro_email", 1), ("fallback_email", 1)}
    assert [tuple(row) for row in results[2]] == [("new@example.com", None, 1)]
    assert [row.message for row in results[3]] == ["by email"]
