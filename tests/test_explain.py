"""`siro-poller calls explain`: stored attribution, today's resolution, the CRM link."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner, Result

from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.domain.attribution import directory_user
from poller.domain.siro import SiroUser
from poller.domain.states import CallState
from poller.simulators.siro_server import FakeSiro
from tests.conftest import database_url
from tests.seed import seed_call

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LEASE = {"lease_owner": "worker-a", "lease_expires_at": NOW + timedelta(minutes=30)}
SIRO = {
    "integration_connection_id": "conn-1",
    "crm": {"objects": {"crm.opportunity_id": "Opportunity"}},
    "rep_map": {"extension": {"204": "u-ben"}},
}


def run(store: SqlStore, tmp_path: Path, *args: str, siro: dict[str, Any] | None = None) -> Result:
    config = tmp_path / "siro-poller.toml"
    document = {
        "database": {"url": database_url(store.engine)},
        "siro": SIRO if siro is None else siro,
    }
    config.write_text(tomli_w.dumps(document))
    return CliRunner().invoke(main, ["--config", str(config), "calls", "explain", *args])


@pytest.fixture
def store(sql_store: SqlStore) -> SqlStore:
    sql_store.replace_siro_users(
        [
            directory_user(SiroUser(id=user_id, email=email, first_name=name, **extra), NOW, "US")
            for user_id, email, name, extra in [
                ("u-ana", "ana@example.com", "Ana", {}),
                ("u-ben", "ben@example.com", "Ben", {}),
                ("u-old", "old@example.com", "Olga", {"disabled": True}),
            ]
        ],
        NOW,
    )
    return sql_store


def test_a_call_attributed_by_fallback_now_resolves_to_a_siro_user(
    store: SqlStore, tmp_path: Path
) -> None:
    # Uploaded before Ana was synced: it went by email. Today the directory knows her.
    call = seed_call(
        store,
        "call-789",
        rep_email="Ana@Example.com",
        rep_phone="+1 (425) 555-0100 x7",
        contact_name="Jane Smith",
        contact_phone="555-123-4567",
        raw={"call_id": "call-789", "crm": {"opportunity_id": "006A"}},
        **LEASE,
    )
    detail = "no Siro user has the rep's email ana@example.com; sent as userEmail for Siro to match"
    store.record_attribution(call.id, "worker-a", NOW, None, "fallback_email", detail)

    result = run(store, tmp_path, "call-789", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["call"]["provider_call_id"] == "call-789"
    assert document["rep"]["phone_e164"] == "+14255550100"
    assert document["stored"] == {
        "attribution": "fallback_email",
        "siro_user_id": None,
        "siro_user": None,
    }
    assert document["now"]["outcome"] == "attributed"
    assert (document["now"]["attribution"], document["now"]["siro_user_id"]) == (
        "siro_email",
        "u-ana",
    )
    assert document["differs"] is True
    assert document["crm"] == {
        "linked": True,
        "integration_connection_id": "conn-1",
        "crm_objects": [{"objectType": "Opportunity", "objectId": "006A"}],
        "detail": "linked to Opportunity 006A through connection conn-1",
        "connection_note": None,
    }
    assert document["contact"] == {"name": "Jane Smith", "phone": "+15551234567"}
    assert document["directory"]["users"] == 3
    [event] = document["events"]
    assert (event["step"], event["outcome"], event["message"]) == (
        "attribute",
        "fallback_email",
        detail,
    )

    text = run(store, tmp_path, str(call.id))
    assert text.exit_code == 0, text.output
    assert re.search(r"stored\s+fallback_email: no user id", text.stdout)
    assert re.search(r"resolution now\s+siro_email: u-ana", text.stdout)
    assert re.search(r"differs from stored\s+yes", text.stdout)
    assert re.search(r"crm link\s+linked to Opportunity 006A", text.stdout)
    assert "attribution events (1):" in text.stdout


def test_a_call_whose_rep_has_left_would_now_be_skipped(store: SqlStore, tmp_path: Path) -> None:
    call = seed_call(store, "call-1", rep_email="old@example.com", rep_extension="999", **LEASE)
    store.record_attribution(call.id, "worker-a", NOW, "u-old", "siro_email", "...")

    document = json.loads(run(store, tmp_path, "call-1", "--json").stdout)

    assert document["stored"]["siro_user"]["disabled"] is True
    assert document["now"]["outcome"] == "skip"
    assert document["now"]["reason"] == "rep_disabled"
    assert document["differs"] is True
    assert document["crm"]["linked"] is False
    assert "holds no CRM id" in document["crm"]["detail"]
    text = run(store, tmp_path, "call-1").stdout
    assert re.search(r"stored\s+siro_email: u-old \(Olga, disabled\)", text)
    assert re.search(r"resolution now\s+skip as rep_disabled", text)


def test_a_call_skipped_for_its_rep_compares_the_reason(store: SqlStore, tmp_path: Path) -> None:
    seed_call(
        store,
        "call-2",
        state=CallState.SKIPPED,
        error_kind="no_rep_identity",
        last_error="the call names no rep",
    )
    seed_call(store, "call-3", rep_extension="204")

    skipped = json.loads(run(store, tmp_path, "call-2", "--json").stdout)
    assert (skipped["now"]["reason"], skipped["differs"]) == ("no_rep_identity", False)
    assert re.search(r"stored\s+skipped as no_rep_identity", run(store, tmp_path, "call-2").stdout)

    fresh = json.loads(run(store, tmp_path, "call-3", "--json").stdout)
    assert fresh["differs"] is None  # not attributed yet
    assert (fresh["now"]["attribution"], fresh["now"]["siro_user_id"]) == ("map_extension", "u-ben")


def test_an_unknown_call_is_a_one_line_error(store: SqlStore, tmp_path: Path) -> None:
    result = run(store, tmp_path, "nope")
    assert result.exit_code == 1
    assert result.stderr.strip() == "siro-poller: no call with id or provider call id 'nope'"


def test_a_connection_configured_by_name_is_looked_up_in_siro(
    store: SqlStore, tmp_path: Path
) -> None:
    seed_call(store, "call-4", rep_email="ana@example.com", raw={"crm": {"opportunity_id": "006"}})
    crm = {"objects": {"crm.opportunity_id": "Opportunity"}}
    with FakeSiro() as siro:
        named = siro.settings_values(integration_connection_name="salesforce", crm=crm)
        found = json.loads(run(store, tmp_path, "call-4", "--json", siro=named).stdout)
        unknown = siro.settings_values(integration_connection_name="Zoho", crm=crm)
        missing = json.loads(run(store, tmp_path, "call-4", "--json", siro=unknown).stdout)

    assert found["crm"]["integration_connection_id"] == "conn-1"
    assert missing["crm"]["linked"] is False
    assert "no integration connection named 'Zoho'" in missing["crm"]["connection_note"]
    assert missing["crm"]["detail"].startswith("warning: the record names Opportunity 006")

    offline = json.loads(
        run(
            store, tmp_path, "call-4", "--json",
            siro={"integration_connection_name": "Salesforce", "crm": crm},
        ).stdout
    )  # fmt: skip
    assert "siro.api_token is not set" in offline["crm"]["connection_note"]


def test_a_failed_call_shows_the_fix_of_its_error_kind(store: SqlStore, tmp_path: Path) -> None:
    seed_call(
        store,
        "call-refused",
        state=CallState.FAILED,
        rep_email="ana@example.com",
        error_kind="download_refused",
        last_error="the host cdn.voip.example is not allowed",
    )

    document = json.loads(run(store, tmp_path, "call-refused", "--json").stdout)
    assert document["call"]["error_kind"] == "download_refused"
    assert "provider.download_hosts" in document["call"]["error_fix"]

    text = run(store, tmp_path, "call-refused").stdout
    assert re.search(r"error kind\s+download_refused", text)
    assert re.search(r"fix\s+If the host is the provider's storage, add it to", text)


def test_a_call_without_an_error_kind_has_no_fix(store: SqlStore, tmp_path: Path) -> None:
    seed_call(store, "call-fine", rep_email="ana@example.com")
    document = json.loads(run(store, tmp_path, "call-fine", "--json").stdout)
    assert document["call"]["error_fix"] is None
    assert "error kind" not in run(store, tmp_path, "call-fine").stdout
