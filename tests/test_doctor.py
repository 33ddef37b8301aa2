"""`siro-poller doctor` through the command line, against the Siro fake and the phone-system
simulators on real sockets, with real SQLite and PostgreSQL databases."""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner, Result

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.cli import main
from poller.simulators.aircall_server import AircallSimulator, aircall_call
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.simulators.siro_server import FakeSiro, Fault
from tests.terminal import run_on_terminal

PROVIDER_TOKEN = "doctor-provider-token-0001"
ESCAPE = re.compile(r"\x1b\[")
CHECKS = [
    "config",
    "database",
    "Siro access token",
    "Siro users",
    "Siro token user",
    "provider generic",
    "spool",
    "disk space",
]


@pytest.fixture
def siro() -> Iterator[FakeSiro]:
    with FakeSiro() as fake:
        yield fake


@pytest.fixture
def call_log() -> Iterator[LocalHTTPServer]:
    log = FakeCallLog(page_size=50, auth=("bearer", PROVIDER_TOKEN))
    recent = datetime.now(UTC) - timedelta(hours=2)
    for n in range(3):
        log.add_call(quickstart_call(f"call-{n}", recent + timedelta(minutes=n)), recent)
    with serve(log) as server:
        yield server


@pytest.fixture
def database_url(state_database_url: str) -> str:
    """A state database at head, on SQLite and on PostgreSQL."""
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    return state_database_url


def write_config(
    tmp_path: Path,
    fake_siro: FakeSiro,
    provider_url: str,
    database_url: str,
    /,
    **sections: dict[str, Any],
) -> Path:
    """A complete config file pointing at the simulators; ``sections`` override its tables."""
    config: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "database": {"url": database_url},
        "siro": fake_siro.settings_values(),
        "provider": {
            "base_url": provider_url,
            "auth": "bearer",
            "token": PROVIDER_TOKEN,
            "max_retries": 0,
        },
        # Small enough for any test machine's disk: 2 downloads of 64 MiB and their copies,
        # and 4 downloaded recordings in the upload stage.
        "worker": {
            "concurrency": 2,
            "max_file_bytes": 32 * 1024 * 1024,
            "max_download_bytes": 64 * 1024 * 1024,
        },
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    path = tmp_path / "siro-poller.toml"
    path.write_text(tomli_w.dumps(config))
    path.chmod(0o600)  # it holds secrets
    return path


def doctor(config: Path, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(
        main, ["--config", str(config), "doctor", *args], env=env, catch_exceptions=False
    )


def lines_of(result: Result) -> dict[str, str]:
    """Each check's line (its mark, name and summary) and what is printed under it."""
    found: dict[str, str] = {}
    current = None
    for line in result.stdout.splitlines():
        if line.startswith("    "):
            assert current is not None, result.stdout
            found[current] += "\n" + line.strip()
            continue
        current = line.split(" ", 1)[1].split(": ", 1)[0]
        found[current] = line
    return found


def marks(result: Result) -> dict[str, str]:
    return {name: line.split(" ", 1)[0] for name, line in lines_of(result).items()}


def test_a_good_setup_passes_every_check_in_order(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, siro, call_log.url, database_url)

    result = doctor(config)

    assert result.exit_code == 0, result.output
    assert list(marks(result).items()) == [(name, "✓") for name in CHECKS]
    lines = lines_of(result)
    head = migrate.head_revision(make_engine(database_url))
    assert f"is at revision {head}" in lines["database"]
    assert "3 users" in lines["Siro users"]
    assert "user-1 is Rep 1 <rep1@example.com>" in lines["Siro token user"]
    assert "ok: 3 of 3 records mapped" in lines["provider generic"]
    assert "512.0 MiB the spool may need" in lines["disk space"]
    assert "fix:" not in result.stdout
    for secret in (*siro.state.secrets(), PROVIDER_TOKEN):
        assert secret not in result.output
    # The spool exists now, private to the service user, and the probe file is gone.
    spool = tmp_path / "state" / "spool"
    assert spool.stat().st_mode & 0o777 == 0o700
    assert list(spool.iterdir()) == []


def test_a_wrong_siro_secret_fails_the_token_check_with_the_keys_to_check(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, siro, call_log.url, database_url, siro={"client_secret": "not-the-secret"}
    )

    result = doctor(config)

    assert result.exit_code == 1
    checks = marks(result)
    assert checks["Siro access token"] == "✗"
    # The organization token still works: the other Siro checks and all after them pass.
    assert {name for name, mark in checks.items() if mark != "✓"} == {"Siro access token"}
    token = lines_of(result)["Siro access token"]
    assert "HTTP 401" in token
    assert "fix: check siro.client_id, siro.client_secret and siro.token_user_id" in token
    assert "not-the-secret" not in result.output


def test_an_unknown_token_user_is_named_with_where_to_find_the_ids(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, siro, call_log.url, database_url, siro={"token_user_id": "user-404"}
    )

    result = doctor(config)

    assert result.exit_code == 1
    line = lines_of(result)["Siro token user"]
    assert line.startswith("✗ Siro token user: Siro has no user 'user-404' (siro.token_user_id)")
    assert "fix: set siro.token_user_id" in line and "`siro-poller siro users`" in line


def test_a_disabled_token_user_fails_with_its_name(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    siro.state.users[0]["disabled"] = True
    config = write_config(tmp_path, siro, call_log.url, database_url)

    result = doctor(config)

    assert result.exit_code == 1
    assert "3 users (1 disabled)" in lines_of(result)["Siro users"]
    line = lines_of(result)["Siro token user"]
    assert "the token user user-1 (Rep 1 <rep1@example.com>) is disabled in Siro" in line
    assert "fix: enable the user in Siro, or set siro.token_user_id to another user" in line


def test_a_database_not_upgraded_says_to_run_db_upgrade_and_the_rest_still_runs(
    siro: FakeSiro, call_log: LocalHTTPServer, state_database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, siro, call_log.url, state_database_url)

    result = doctor(config)

    assert result.exit_code == 1
    line = lines_of(result)["database"]
    assert "is not initialised; this version needs revision" in line
    assert "fix: run `siro-poller db upgrade`" in line
    assert {name for name, mark in marks(result).items() if mark != "✓"} == {"database"}


def test_an_unreachable_database_is_named_with_its_password_masked(
    siro: FakeSiro, call_log: LocalHTTPServer, tmp_path: Path
) -> None:
    port = _closed_port()
    url = f"postgresql+psycopg://poller:db-secret-0001@127.0.0.1:{port}/siro_poller"
    config = write_config(tmp_path, siro, call_log.url, url)

    result = doctor(config)

    assert result.exit_code == 1
    line = lines_of(result)["database"]
    assert line.startswith(
        f"✗ database: postgresql+psycopg://poller:***@127.0.0.1:{port}/siro_poller cannot be "
        "reached:"
    )
    assert "Connection refused" in line or "connection refused" in line.lower()
    assert "fix: check database.url" in line
    assert "db-secret-0001" not in result.output
    assert {name for name, mark in marks(result).items() if mark != "✓"} == {"database"}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_refused_provider_credential_is_an_auth_failure_with_its_fix(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, siro, call_log.url, database_url, provider={"token": "not-the-token"}
    )

    result = doctor(config)

    assert result.exit_code == 1
    line = lines_of(result)["provider generic"]
    assert line.startswith("✗ provider generic: auth:") and "HTTP 401" in line
    assert "the provider refused the credentials; check provider.token" in line
    assert "fix: correct the credentials the message names" in line
    assert "`siro-poller provider check --provider generic` runs this check alone" in line
    assert "not-the-token" not in result.output


def test_a_native_provider_refusing_its_credentials_fails_its_check(
    siro: FakeSiro, database_url: str, tmp_path: Path
) -> None:
    with AircallSimulator("aircall-id", "aircall-token-0001") as aircall:
        aircall.api.add_call(aircall_call(1, datetime.now(UTC) - timedelta(hours=1)))
        good = {"kind": "aircall", "base_url": aircall.url, "api_id": "aircall-id"}
        config = write_config(
            tmp_path, siro, aircall.url, database_url, provider=good | {"api_token": "wrong"}
        )
        # write_config's generic keys do not exist for Aircall: keep only the kind's own.
        _drop_provider_keys(config, "auth", "token")

        refused = doctor(config)
        _set_provider_key(config, "api_token", "aircall-token-0001")
        accepted = doctor(config)

    assert refused.exit_code == 1
    line = lines_of(refused)["provider aircall"]
    assert line.startswith("✗ provider aircall: auth:")
    assert "fix: correct the credentials" in line
    assert accepted.exit_code == 0, accepted.output
    assert "ok: 1 of 1 records mapped" in lines_of(accepted)["provider aircall"]


def _drop_provider_keys(config: Path, *keys: str) -> None:
    import tomllib

    data = tomllib.loads(config.read_text())
    for key in keys:
        data["provider"].pop(key, None)
    config.write_text(tomli_w.dumps(data))


def _set_provider_key(config: Path, key: str, value: str) -> None:
    import tomllib

    data = tomllib.loads(config.read_text())
    data["provider"][key] = value
    config.write_text(tomli_w.dumps(data))


def test_a_spool_that_cannot_be_written_fails_with_the_key_to_change(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    # Tests may run as root, for whom no mode bit forbids writing: a file where the spool's
    # parent directory should be stops anyone.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = write_config(
        tmp_path, siro, call_log.url, database_url, worker={"spool_dir": str(blocker / "spool")}
    )

    result = doctor(config)

    assert result.exit_code == 1
    line = lines_of(result)["spool"]
    assert line.startswith(f"✗ spool: {blocker / 'spool'} is not writable: Not a directory")
    assert "fix: set worker.spool_dir (or state_dir)" in line
    # The free space is still judged, on the filesystem the spool would be on.
    assert marks(result)["disk space"] == "✓"


def test_too_little_disk_for_the_largest_downloads_fails_with_the_keys_to_lower(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        siro,
        call_log.url,
        database_url,
        worker={"concurrency": 3, "max_download_bytes": 2**50},  # a pebibyte each
    )

    result = doctor(config)

    assert result.exit_code == 1
    line = lines_of(result)["disk space"]
    assert "less than one recording of the largest size may take (2048.0 TiB)" in line
    assert "fix: free space there" in line and "lower worker.concurrency or" in line
    assert {name for name, mark in marks(result).items() if mark != "✓"} == {"disk space"}


def test_room_for_one_largest_download_but_not_for_all_at_once_is_a_warning(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    free = shutil.disk_usage(tmp_path).free
    config = write_config(
        tmp_path,
        siro,
        call_log.url,
        database_url,
        # One download fits three times over; four at once do not.
        worker={"concurrency": 4, "max_download_bytes": free // 3, "convert": "never"},
    )

    result = doctor(config)

    assert result.exit_code == 0, result.output
    line = lines_of(result)["disk space"]
    assert marks(result)["disk space"] == "!"
    assert "the spool needs at worst: 4 downloads at once (worker.concurrency)" in line
    assert "fix: free space there" in line


def test_without_conversions_the_spool_needs_no_room_for_copies(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, siro, call_log.url, database_url, worker={"convert": "never"})

    result = doctor(config)

    assert result.exit_code == 0, result.output
    # 2 downloads of 64 MiB, no copies, and 2 downloaded recordings waiting for their upload.
    assert "384.0 MiB the spool may need" in lines_of(result)["disk space"]


def test_a_polling_only_process_has_no_spool_to_check(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        siro,
        call_log.url,
        database_url,
        worker={"role": "poller", "max_download_bytes": 2**50},
    )

    result = doctor(config)

    assert result.exit_code == 0, result.output
    assert list(marks(result)) == CHECKS[:-2]
    assert not (tmp_path / "state" / "spool").exists()


def test_a_placeholder_left_in_the_config_fails_the_config_check(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path,
        siro,
        call_log.url,
        database_url,
        siro={"client_id": "replace-with-your-client-id"},
    )

    result = doctor(config)

    assert result.exit_code == 1
    line = lines_of(result)["config"]
    assert line.startswith(f"✗ config: {config}: 1 problem")
    assert "- siro.client_id: still the example's placeholder 'replace-with-your-client-id'" in line
    assert "fix: correct each key listed above" in line
    # The placeholder is no OAuth app Siro knows; the check after says so on its own.
    assert marks(result)["Siro access token"] == "✗"
    assert marks(result)["database"] == "✓"


def test_a_misspelled_environment_section_is_flagged_by_its_variable(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, siro, call_log.url, database_url)

    result = doctor(config, env={"SIRO_POLLER_WROKER__CONCURRENCY": "2"})

    # Ignored, so nothing fails: a warning, shown with what it would have set.
    assert result.exit_code == 0, result.output
    line = lines_of(result)["config"]
    assert line.startswith(f"! config: {config} loads, with warnings")
    assert "- warning: SIRO_POLLER_WROKER__CONCURRENCY:" in line
    assert "ignore" in line and "WORKER" in line
    assert {name for name, mark in marks(result).items() if mark != "✓"} == {"config"}


def test_a_config_missing_what_the_daemon_needs_fails_the_config_check(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, siro, call_log.url, database_url)
    text = config.read_text().replace(f'client_secret = "{siro.state.client_secret}"\n', "")
    config.write_text(text)

    result = doctor(config)

    assert result.exit_code == 1
    line = lines_of(result)["config"]
    assert "- siro.client_secret: required to mint upload tokens" in line
    assert "siro.client_secret is not set" in lines_of(result)["Siro access token"]


def test_a_config_that_cannot_be_loaded_is_one_failed_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "siro-poller.toml"
    config.write_text('[worker]\nconcurrency = "many"\n')

    result = doctor(config)

    assert result.exit_code == 2
    assert list(marks(result).items()) == [("config", "✗")]
    line = lines_of(result)["config"]
    assert f"{config} cannot be loaded" in line
    assert "- worker.concurrency: Input should be a valid integer" in line
    assert "fix: correct the keys listed above" in line


def test_the_crm_connection_is_checked_when_crm_linking_is_configured(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    crm = {"crm": {"objects": {"crm.opportunity_id": "Opportunity"}}}
    good = write_config(
        tmp_path,
        siro,
        call_log.url,
        database_url,
        siro={"integration_connection_name": "salesforce", **crm},
    )
    result = doctor(good)
    assert result.exit_code == 0, result.output
    assert lines_of(result)["Siro CRM connection"] == (
        "✓ Siro CRM connection: recordings link through Salesforce (conn-1, MERGE)"
    )

    unknown = write_config(
        tmp_path,
        siro,
        call_log.url,
        database_url,
        siro={"integration_connection_id": "conn-404", **crm},
    )
    result = doctor(unknown)
    assert result.exit_code == 1
    line = lines_of(result)["Siro CRM connection"]
    assert "Siro has no integration connection 'conn-404'" in line
    assert "`siro-poller siro connections`" in line


def test_a_check_that_gets_no_answer_in_time_fails_and_the_next_ones_still_run(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    # Every try of the users list hangs: each ends at its deadline, the check's time, and the
    # retries keep the check busy far beyond it.
    siro.state.fail_next("users", *[Fault.slow(30)] * 11)
    config = write_config(tmp_path, siro, call_log.url, database_url, siro={"max_retries": 10})

    result = doctor(config, "--timeout", "1")

    assert result.exit_code == 1
    lines = lines_of(result)
    assert lines["Siro users"].startswith("✗ Siro users: no result within 1 s")
    assert lines["Siro token user"] == ("- Siro token user: not checked: Siro users did not pass")
    assert {name for name, mark in marks(result).items() if mark not in "✓-"} == {"Siro users"}


def test_json_output_has_every_check_with_its_verdict_and_fix(
    siro: FakeSiro, call_log: LocalHTTPServer, state_database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, siro, call_log.url, state_database_url)

    result = doctor(config, "--json")

    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert [entry["check"] for entry in document] == CHECKS
    database = document[1]
    assert database["verdict"] == "failed"
    assert database["fix"] == "run `siro-poller db upgrade`"
    assert {entry["verdict"] for entry in document[2:]} == {"ok"}


def test_colour_on_a_terminal_and_plain_text_when_piped(
    siro: FakeSiro, call_log: LocalHTTPServer, database_url: str, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path, siro, call_log.url, database_url, siro={"token_user_id": "user-404"}
    )
    args = ["--config", str(config), "doctor"]

    piped = doctor(config)
    shown = run_on_terminal(args, {})
    uncoloured = run_on_terminal(args, {"NO_COLOR": "1"})

    assert not ESCAPE.search(piped.stdout)
    assert re.search(r"\x1b\[[0-9;]*32m✓", shown)  # green
    assert re.search(r"\x1b\[[0-9;]*31m✗", shown)  # red
    assert "Siro has no user 'user-404'" in shown
    assert not ESCAPE.search(uncoloured)
    assert "✗ Siro token user: Siro has no user 'user-404'" in uncoloured
