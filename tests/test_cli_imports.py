"""`--version`, `--help` and TAB completion stay fast: they load none of the heavy libraries.

Each answer once took 2.2 s and 100 MB, most of it importing SQLAlchemy, alembic, requests,
PyAV and APScheduler that none of them needs. Each case runs in a fresh interpreter and reads
``sys.modules`` afterwards: a behaviour test, not a timing one (bench/bench_cli.py times it).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from poller.cli import main

# The database layer, the HTTP clients, the audio library, the scheduler, the settings models
# and what they bring; the metrics client and the table renderer too.
HEAVY = frozenset(
    {
        "alembic",
        "apscheduler",
        "av",
        "cryptography",
        "phonenumbers",
        "prometheus_client",
        "pydantic",
        "pydantic_settings",
        "requests",
        "rich",
        "sqlalchemy",
    }
)

# Runs the CLI as the `siro-poller` script does, then prints which heavy packages it loaded.
PROBE = """
import json, sys
from poller.cli import main
try:
    main(json.loads(sys.argv[1]), prog_name="siro-poller")
except SystemExit:
    pass
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[2])))
print("\\nloaded: " + json.dumps(loaded))
"""

GROUPS = sorted(name for name, command in main.commands.items() if isinstance(command, click.Group))


def heavy_modules_loaded(arguments: list[str], **environment: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(arguments), json.dumps(sorted(HEAVY))],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin", **environment},
    )
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("loaded: "), result.stdout + result.stderr
    loaded: list[str] = json.loads(last.removeprefix("loaded: "))
    return loaded


def test_the_version_is_printed_without_loading_any_heavy_library() -> None:
    assert heavy_modules_loaded(["--version"]) == []


def test_help_lists_every_command_without_loading_any_heavy_library() -> None:
    assert heavy_modules_loaded(["--help"]) == []


@pytest.mark.parametrize("group", GROUPS)
def test_each_command_groups_help_loads_no_heavy_library(group: str) -> None:
    assert heavy_modules_loaded([group, "--help"]) == []


@pytest.mark.parametrize(
    ("words", "cword"), [("siro-poller ca", "1"), ("siro-poller calls re", "2")]
)
def test_tab_completion_loads_no_heavy_library(words: str, cword: str) -> None:
    loaded = heavy_modules_loaded(
        [], _SIRO_POLLER_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=cword
    )
    assert loaded == []


def test_a_command_that_needs_them_still_loads_them() -> None:
    """The probe sees what a command imports: `config check` reads the settings models."""
    assert "pydantic_settings" in heavy_modules_loaded(["config", "check"])


# What a module loads when imported alone, in a fresh interpreter.
IMPORT_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def packages_loaded(probe: str, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages a probe (a script that prints them last) reports loaded."""
    result = subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=env,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def top_level_packages_loaded(module: str) -> set[str]:
    return packages_loaded(IMPORT_PROBE, module)


def test_simulate_starts_the_simulators_without_the_daemons_libraries() -> None:
    """`siro-poller simulate` (and each test that starts it) imports no database layer,
    migrations or scheduler: only the demo's run of the daemon needs them."""
    loaded = top_level_packages_loaded("poller.demo.simulation")
    assert loaded & {"sqlalchemy", "alembic", "apscheduler"} == set()


def test_the_daemons_progress_hook_loads_rich_only_for_a_terminal() -> None:
    """`run` and `work` under systemd, in a file or in a test log a summary instead of drawing
    a line: rich stays unloaded."""
    assert "rich" not in top_level_packages_loaded("poller.cli.progress_display")
    assert "rich" in top_level_packages_loaded("poller.cli.progress_terminal")


def test_the_daemon_loads_no_library_only_one_vendors_webhooks_need() -> None:
    """The provider registry imports every adapter; PyJWT waits for a Dialpad webhook."""
    assert "jwt" not in top_level_packages_loaded("poller.app")


# Opens the store as every command that reads the state database does, then prints which
# top-level packages that loaded.
STORE_PROBE = """
import json, sys
from poller.adapters.sql.database import make_engine
from poller.app import open_store
from poller.config import Settings
open_store(Settings(), engine=make_engine(sys.argv[1])).list_calls()
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def test_opening_the_store_loads_neither_alembic_nor_what_only_the_daemon_needs(
    tmp_path: Path,
) -> None:
    """`status`, `calls list` and the other commands that read the state database, and each
    start of `run`, check the schema's revision without loading alembic and every migration
    script; the audio library, the scheduler, the metrics client and the HTTP client wait for
    the daemon (or the command) that uses them, though the settings name every provider kind."""
    from poller.adapters.sql import migrate
    from poller.adapters.sql.database import make_engine

    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    loaded = packages_loaded(STORE_PROBE, url, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert "sqlalchemy" in loaded  # the probe did open the store
    assert loaded & {"alembic", "av", "apscheduler", "prometheus_client", "requests"} == set()


def test_the_rules_commands_read_from_the_wiring_load_no_scheduler() -> None:
    """`status`, `poll`, `backfill`, `explain` and the others read their rules from
    poller.wiring, which names the daemon's parameters: the scheduler waits for `run`."""
    assert "apscheduler" not in top_level_packages_loaded("poller.wiring")
