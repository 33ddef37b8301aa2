"""What `run` says about itself when it starts: version, database, providers, metrics, role."""

from __future__ import annotations

from pathlib import Path

from poller import __version__
from poller.app import startup_summary
from poller.config import Settings


def test_the_start_up_line_names_the_sqlite_file_the_providers_and_metrics_off(
    tmp_path: Path,
) -> None:
    settings = Settings(
        state_dir=tmp_path / "state",
        provider={"base_url": "http://127.0.0.1:9", "auth": "none"},
    )
    assert startup_summary(settings) == (
        f"version {__version__}, role all, "
        f"database {tmp_path / 'state' / 'siro-poller.sqlite3'} (SQLite), "
        "provider generic (generic), metrics off"
    )


def test_the_start_up_line_never_shows_the_database_password(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path / "state",
        database={
            "url": "postgresql+psycopg://poller:inline-pw-123@db.internal:5432/poller",
            "password": "configured-pw-456",
        },
        providers=[
            {"name": "sales", "base_url": "http://127.0.0.1:9", "auth": "none"},
            {"name": "support", "kind": "aircall", "api_id": "id", "api_token": "token"},
        ],
        metrics={"listen": "127.0.0.1:9464"},
        worker={"role": "poller"},
    )
    line = startup_summary(settings)
    assert line == (
        f"version {__version__}, role poller, "
        "database postgresql+psycopg://poller:***@db.internal:5432/poller, "
        "providers sales (generic), support (aircall), metrics on 127.0.0.1:9464"
    )
    assert "inline-pw-123" not in line and "configured-pw-456" not in line
