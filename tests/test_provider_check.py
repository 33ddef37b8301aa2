"""`siro-poller provider check` against a fake call log on a real socket: each verdict."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from poller.cli import main
from poller.simulators.audio import mp3_bytes
from poller.simulators.freshcaller_server import API_KEY as FRESHCALLER_KEY
from poller.simulators.freshcaller_server import FreshcallerSimulator, freshcaller_call
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.justcall_server import API_KEY as JUSTCALL_KEY
from poller.simulators.justcall_server import API_SECRET as JUSTCALL_SECRET
from poller.simulators.justcall_server import JustCallSimulator, justcall_call
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.simulators.salesloft_server import API_KEY as SALESLOFT_KEY
from poller.simulators.salesloft_server import SalesloftSimulator, salesloft_cdr

TOKEN = "provider-bearer-token-value"


@pytest.fixture
def api() -> FakeCallLog:
    log = FakeCallLog(page_size=50, auth=("bearer", TOKEN))
    recent = datetime.now(UTC) - timedelta(hours=2)
    for n in range(5):
        log.add_call(quickstart_call(f"call-{n}", recent + timedelta(minutes=n)), recent)
    return log


@pytest.fixture
def server(api: FakeCallLog) -> Iterator[LocalHTTPServer]:
    with serve(api) as running:
        yield running


def check(url: str, *args: str, **env: str) -> Result:
    environment = {
        "SIRO_POLLER_PROVIDER__BASE_URL": url,
        "SIRO_POLLER_PROVIDER__AUTH": "bearer",
        "SIRO_POLLER_PROVIDER__TOKEN": TOKEN,
        "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        **env,
    }
    return CliRunner().invoke(main, ["provider", "check", *args], env=environment)


def test_a_working_provider_maps_every_record(
    api: FakeCallLog, server: LocalHTTPServer, tmp_path: Path
) -> None:
    result = check(server.url)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "provider generic: ok: 5 of 5 records mapped"
    assert TOKEN not in result.output
    # Read-only: one listing request, and no state database was made.
    assert len(api.list_requests()) == 1
    assert not list((tmp_path / "state").glob("*.sqlite3"))


def test_refused_credentials_are_an_auth_verdict_naming_the_keys(server: LocalHTTPServer) -> None:
    result = check(server.url, SIRO_POLLER_PROVIDER__TOKEN="not-the-token")
    assert result.exit_code == 1
    assert "provider generic: auth:" in result.stdout
    assert "HTTP 401" in result.stdout and "check provider.token" in result.stdout
    assert "not-the-token" not in result.output


def test_a_host_that_does_not_answer_is_a_host_verdict() -> None:
    with LocalHTTPServer(type("Gone", (), {})) as gone:  # type: ignore[arg-type]
        url = gone.url
    result = check(url)
    assert result.exit_code == 1
    assert "provider generic: host:" in result.stdout
    assert "connection failed" in result.stdout


def test_a_wrong_field_mapping_names_the_path_and_the_keys_the_records_have(
    server: LocalHTTPServer,
) -> None:
    result = check(server.url, SIRO_POLLER_PROVIDER__FIELDS__STARTED_AT="start_time")
    assert result.exit_code == 1
    assert result.stdout.strip() == (
        "provider generic: mapping: 0 of 5 records mapped: started_at has no value at path "
        "start_time (5 records); the records have keys: call_id, contact_name, contact_phone, "
        "email, number, recording_url, started_at"
    )


def test_an_answer_of_the_wrong_shape_is_a_listing_verdict(server: LocalHTTPServer) -> None:
    result = check(server.url, SIRO_POLLER_PROVIDER__LISTING__ITEMS_PATH="data.calls")
    assert result.exit_code == 1
    assert "provider generic: listing:" in result.stdout
    assert "provider.listing.items_path 'data.calls'" in result.stdout
    assert "next_page_token" in result.stdout or "calls" in result.stdout


def test_an_empty_window_is_ok_and_says_to_widen_it(server: LocalHTTPServer) -> None:
    result = check(server.url, "--since", "30m")
    assert result.exit_code == 0, result.output
    assert "no calls in" in result.stdout and "widen" in result.stdout


def test_json_output_carries_the_verdict_and_reasons(server: LocalHTTPServer) -> None:
    result = check(server.url, "--json", SIRO_POLLER_PROVIDER__FIELDS__STARTED_AT="start_time")
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["verdict"] == "mapping"
    assert (document["records"], document["mapped"]) == (5, 0)
    assert document["reasons"] == {"started_at has no value at path start_time": 5}
    assert "started_at" in document["record_keys"]


def test_missing_credentials_are_a_config_error_before_any_request(
    api: FakeCallLog, server: LocalHTTPServer
) -> None:
    result = CliRunner().invoke(
        main,
        ["provider", "check"],
        env={"SIRO_POLLER_PROVIDER__BASE_URL": server.url, "SIRO_POLLER_PROVIDER__AUTH": "bearer"},
    )
    assert result.exit_code == 2
    assert "provider.token: required for provider.auth = 'bearer'" in result.stderr
    assert api.list_requests() == []


def test_each_of_several_providers_is_checked_and_an_unknown_name_is_refused(
    server: LocalHTTPServer, tmp_path: Path
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f'[[providers]]\nname = "good"\nbase_url = "{server.url}"\nauth = "bearer"\n'
        f'[[providers]]\nname = "bad"\nbase_url = "{server.url}"\nauth = "bearer"\n'
        '[providers.fields]\ncall_id = "id"\n',
        encoding="utf-8",
    )
    env = {
        "SIRO_POLLER_PROVIDERS__GOOD__TOKEN": TOKEN,
        "SIRO_POLLER_PROVIDERS__BAD__TOKEN": TOKEN,
    }
    both = CliRunner().invoke(main, ["--config", str(config), "provider", "check"], env=env)
    assert both.exit_code == 1
    assert "provider good: ok: 5 of 5 records mapped" in both.stdout
    assert "provider bad: mapping: 0 of 5 records mapped: call_id has no value" in both.stdout

    one = CliRunner().invoke(
        main, ["--config", str(config), "provider", "check", "--provider", "good"], env=env
    )
    assert one.exit_code == 0, one.output

    typo = CliRunner().invoke(
        main, ["--config", str(config), "provider", "check", "--provider", "goood"], env=env
    )
    assert typo.exit_code == 2
    assert "no provider of that name is configured (configured: good, bad)" in typo.stderr


def test_a_profile_is_checked_as_a_native_kind_is() -> None:
    with SalesloftSimulator() as sim:
        sim.api.add_user(10, "rep1@example.com", "Rep One")
        recent = datetime.now(UTC) - timedelta(hours=2)
        for n in range(3):
            sim.api.add_call(salesloft_cdr(n + 1, recent + timedelta(minutes=n)), mp3_bytes(1))
        env = {
            "SIRO_POLLER_PROVIDER__KIND": "salesloft",
            "SIRO_POLLER_PROVIDER__BASE_URL": sim.url,
            "SIRO_POLLER_PROVIDER__TOKEN": SALESLOFT_KEY,
            "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        }
        ok = CliRunner().invoke(main, ["provider", "check"], env=env)
        assert ok.exit_code == 0, ok.output
        assert ok.stdout.strip() == "provider salesloft: ok: 3 of 3 records mapped"

        refused = CliRunner().invoke(
            main, ["provider", "check"], env=env | {"SIRO_POLLER_PROVIDER__TOKEN": "wrong-key"}
        )
        assert refused.exit_code == 1
        assert "provider salesloft: auth:" in refused.stdout
        assert "check provider.token" in refused.stdout and "wrong-key" not in refused.output

        fixed = CliRunner().invoke(
            main,
            ["provider", "check"],
            env=env | {"SIRO_POLLER_PROVIDER__LISTING__PATH": "/v2/calls.json"},
        )
        assert fixed.exit_code == 2
        assert "provider.listing: fixed by the salesloft profile" in fixed.stderr
        assert "SIRO_POLLER_PROVIDER__LISTING__PATH" in fixed.stderr
        assert SALESLOFT_KEY not in ok.output + refused.output + fixed.output


def test_freshcaller_is_checked_as_a_native_kind_is() -> None:
    with FreshcallerSimulator() as sim:
        sim.api.add_user(10, "rep1@example.com", "Rep One")
        recent = datetime.now(UTC) - timedelta(hours=2)
        for n in range(3):
            sim.api.add_call(freshcaller_call(n + 1, recent + timedelta(minutes=n)), mp3_bytes(1))
        env = {
            "SIRO_POLLER_PROVIDER__KIND": "freshcaller",
            "SIRO_POLLER_PROVIDER__BASE_URL": sim.url,
            "SIRO_POLLER_PROVIDER__API_KEY": FRESHCALLER_KEY,
            "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        }
        ok = CliRunner().invoke(main, ["provider", "check"], env=env)
        assert ok.exit_code == 0, ok.output
        assert ok.stdout.strip() == "provider freshcaller: ok: 3 of 3 records mapped"

        refused = CliRunner().invoke(
            main, ["provider", "check"], env=env | {"SIRO_POLLER_PROVIDER__API_KEY": "wrong-key"}
        )
        assert refused.exit_code == 1
        assert "provider freshcaller: auth:" in refused.stdout
        assert "check provider.api_key" in refused.stdout and "wrong-key" not in refused.output

        unset = CliRunner().invoke(
            main, ["provider", "check"], env={"SIRO_POLLER_PROVIDER__KIND": "freshcaller"}
        )
        assert unset.exit_code == 2
        assert "provider.subdomain: required" in unset.stderr
        assert "provider.api_key: required" in unset.stderr
        assert FRESHCALLER_KEY not in ok.output + refused.output + unset.output


def test_justcall_is_checked_as_a_native_kind_is() -> None:
    with JustCallSimulator() as sim:
        recent = datetime.now(UTC) - timedelta(hours=2)
        for n in range(3):
            sim.api.add_call(justcall_call(n + 1, recent + timedelta(minutes=n)), mp3_bytes(1))
        env = {
            "SIRO_POLLER_PROVIDER__KIND": "justcall",
            "SIRO_POLLER_PROVIDER__BASE_URL": sim.url,
            "SIRO_POLLER_PROVIDER__API_KEY": JUSTCALL_KEY,
            "SIRO_POLLER_PROVIDER__API_SECRET": JUSTCALL_SECRET,
            "SIRO_POLLER_PROVIDER__TIME_ZONE": "America/New_York",
            "SIRO_POLLER_PROVIDER__MAX_RETRIES": "0",
        }
        ok = CliRunner().invoke(main, ["provider", "check"], env=env)
        assert ok.exit_code == 0, ok.output
        assert ok.stdout.strip() == "provider justcall: ok: 3 of 3 records mapped"

        refused = CliRunner().invoke(
            main,
            ["provider", "check"],
            env=env | {"SIRO_POLLER_PROVIDER__API_SECRET": "wrong-secret"},
        )
        assert refused.exit_code == 1
        assert "provider justcall: auth:" in refused.stdout
        assert "check provider.api_key, provider.api_secret" in refused.stdout
        assert "wrong-secret" not in refused.output

        unset = CliRunner().invoke(
            main, ["provider", "check"], env={"SIRO_POLLER_PROVIDER__KIND": "justcall"}
        )
        assert unset.exit_code == 2
        assert "provider.time_zone: required" in unset.stderr
        secrets = (JUSTCALL_KEY, JUSTCALL_SECRET)
        assert not any(s in ok.output + refused.output + unset.output for s in secrets)
