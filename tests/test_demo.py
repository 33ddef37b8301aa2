"""`siro-poller demo`: the real daemon against the simulators, as a new user first runs it.

The first test installs the built wheel into a fresh virtual environment, its dependencies with
it, and runs the installed command, as the README's first step does.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

import pytest
from click.testing import CliRunner

from poller.adapters.providers.registry import KINDS
from poller.cli import main
from poller.demo import DEMO_KINDS, run_demo
from poller.demo.scenarios import SCENARIOS
from poller.domain.states import CallState
from tests.wheelhouse import offline_pip

GENERIC_GOOD = [
    "demo-001",
    "demo-002",
    "demo-003",
    "demo-004",
    "demo-005",
    "demo-006",
    "demo-m4a",
    "demo-ogg",
    "demo-newhire",
    "demo-late",
]


def clean_environment(tmp_path: Path) -> dict[str, str]:
    """No ``SIRO_POLLER_*``, no PYTHONPATH: the installed package, as a user's shell has it."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SIRO_POLLER_")
        and name not in ("PYTHONPATH", "VIRTUAL_ENV", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")
    }
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    return env


def test_the_installed_demo_uploads_every_good_call_and_explains_the_bad_ones(
    tmp_path: Path, built_wheel: Path, wheelhouse: Path
) -> None:
    environment = tmp_path / "venv"
    # Installed by this pip: a pip of the venv's own would only add seconds of bootstrap. Not
    # compiled: the demo imports a fraction of what pip would compile, most of the install's CPU.
    venv.create(environment, with_pip=False)
    python = environment / "bin" / "python"
    env = clean_environment(tmp_path)
    # The dependencies as this environment's install left them (tests/wheelhouse.py), not
    # resolved against the package index again.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-compile",
            str(built_wheel),
        ],
        check=True,
        timeout=900,
        env=env | offline_pip(wheelhouse),
    )

    result = subprocess.run(
        [str(environment / "bin" / "siro-poller"), "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for call_id in GENERIC_GOOD:
        (line,) = [line for line in lines if re.search(rf"\b{call_id}\s", line)]
        assert " uploaded " in line, line
    (login_page,) = [line for line in lines if " demo-login-page " in line]
    assert "failed" in login_page
    assert "not_audio: the downloaded body is not audio" in login_page
    (flac,) = [line for line in lines if " demo-flac " in line]
    assert "corrupt_audio" in flac
    assert "newhire@example.com (fallback_email)" in result.stdout
    assert "Siro (simulated) received 10 recordings." in result.stdout
    # The simulated secrets never reach the log; the temporary state is gone.
    assert "demo-provider-token" not in result.stderr
    assert "INFO" in result.stderr
    assert list((tmp_path / "tmp").iterdir()) == []


@pytest.mark.parametrize("kind", DEMO_KINDS)
def test_each_provider_kind_demo_ends_every_call_as_it_should(kind: str, tmp_path: Path) -> None:
    outcome = run_demo(kind, state_parent=tmp_path, announce=lambda _line: None)

    assert outcome.idle
    assert outcome.unexpected == []
    states = {call.call_id: outcome.rows[call.call_id].state for call in outcome.calls}
    uploaded = [call_id for call_id, state in states.items() if state == CallState.UPLOADED]
    assert outcome.siro_recordings == len(uploaded) >= 3
    # Each demo shows a bad or skipped call with its reason, and a rep Siro does not know.
    explained = [
        outcome.rows[call.call_id]
        for call in outcome.calls
        if call.expected in (CallState.FAILED, CallState.SKIPPED)
    ]
    assert explained and all(row.error_kind for row in explained)
    attributions = {outcome.rows[c.call_id].attribution for c in outcome.calls}
    assert attributions & {"fallback_email", "fallback_phone"}
    assert list(tmp_path.iterdir()) == []  # without --keep, nothing is left


def test_every_provider_kind_has_a_demo() -> None:
    assert set(SCENARIOS) == set(KINDS)


@pytest.mark.parametrize("kind", ["generic", "twilio"])
def test_the_demo_command_takes_a_provider_kind(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    result = CliRunner().invoke(main, ["demo", "--provider", kind])

    assert result.exit_code == 0, result.output
    assert f"a simulated {kind} phone system" in result.output
    assert "run `siro-poller demo --keep`" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def kept_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """One `siro-poller demo --keep` for the tests that look at what it kept: its output, and
    the one state directory it left."""
    where = tmp_path_factory.mktemp("kept-demo")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(tempfile, "tempdir", str(where))
        result = CliRunner().invoke(main, ["demo", "--keep"])
    assert result.exit_code == 0, result.output
    (state_dir,) = where.iterdir()
    return result.output, state_dir


def test_keep_leaves_a_database_the_printed_commands_open(kept_demo: tuple[str, Path]) -> None:
    output, state_dir = kept_demo

    assert f"state directory is kept: {state_dir}" in output
    # Its config names simulators that stopped with it: the way to running ones is named.
    assert "siro-poller simulate --provider generic --config-out" in output
    database = state_dir / "siro-poller.sqlite3"
    with sqlite3.connect(database) as connection:
        rows = dict(connection.execute("SELECT provider_call_id, state FROM calls").fetchall())
    assert len(rows) == 12
    assert {rows[call_id] for call_id in GENERIC_GOOD} == {"uploaded"}
    assert rows["demo-login-page"] == rows["demo-flac"] == "failed"

    show = re.search(r"siro-poller (--config \S+ calls show \d+)", output)
    explain = re.search(r"siro-poller (--config \S+ calls explain \d+)", output)
    assert show and explain
    shown = CliRunner().invoke(main, show.group(1).split())
    assert shown.exit_code == 0, shown.output
    assert re.search(r"\b(not_audio|corrupt_audio)\b", shown.output)
    explained = CliRunner().invoke(main, explain.group(1).split())
    assert explained.exit_code == 0, explained.output
    assert "fallback_email" in explained.output


def test_the_kept_demo_database_keeps_every_measured_duration(
    kept_demo: tuple[str, Path],
) -> None:
    # The demo's recordings list no duration: the worker measures it from the audio, and the
    # polls that follow the upload (the demo runs several) must not wipe it.
    _output, state_dir = kept_demo
    with sqlite3.connect(state_dir / "siro-poller.sqlite3") as connection:
        uploaded = connection.execute(
            "SELECT provider_call_id, duration_seconds, audio_duration_seconds FROM calls "
            "WHERE state = 'uploaded'"
        ).fetchall()
        duration_events = connection.execute(
            "SELECT call_id FROM call_events WHERE message LIKE 'metadata changed:%duration%'"
        ).fetchall()
    assert len(uploaded) == len(GENERIC_GOOD)
    for call_id, duration, measured in uploaded:
        assert duration == round(measured), call_id
    assert duration_events == []
