"""Run the real daemon against the simulators until it is idle, and report what happened.

The daemon is the one ``siro-poller run`` starts (:func:`poller.app.build_daemon`: the
APScheduler jobs, the poll cycle, the worker, the Siro HTTP client and the provider adapter),
with a SQLite database in a fresh state directory and intervals of a second. Only the
outside world is simulated: the phone system and Siro, each an HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from poller.config import ENV_PREFIX, Settings
from poller.demo.scenarios import SCENARIOS, DemoCall, Seeded
from poller.domain.records import Call, StatusSummary
from poller.logs import configure_logging
from poller.ports.store import Store
from poller.simulators.siro_server import FakeSiro

log = logging.getLogger(__name__)

# The longest a demo may run; it normally settles within a few seconds.
TIME_LIMIT = timedelta(seconds=60)
CONFIG_NAME = "demo.toml"


class DemoSettings(Settings):
    """The demo's settings come from its own file only: a ``SIRO_POLLER_*`` variable or a
    systemd credential meant for a real installation must not point it at a real database."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


@dataclass
class DemoOutcome:
    """What the demo left: its settings and files, the seeded calls and their final rows."""

    kind: str
    settings: Settings
    state_dir: Path
    config_path: Path
    database_path: Path
    calls: list[DemoCall]
    rows: dict[str, Call]  # by provider call id
    status: StatusSummary
    siro_recordings: int
    idle: bool
    kept: bool

    @property
    def unexpected(self) -> list[DemoCall]:
        """The seeded calls that did not end as they should (or were never listed)."""
        return [
            call
            for call in self.calls
            if call.call_id not in self.rows or self.rows[call.call_id].state != call.expected
        ]

    @property
    def succeeded(self) -> bool:
        return self.idle and not self.unexpected


def demo_config(state_dir: Path, siro: FakeSiro, seeded: Seeded, now: datetime) -> dict[str, Any]:
    """The demo's config file: the simulators' addresses, and intervals of a second."""
    return {
        "state_dir": str(state_dir),
        "siro": siro.settings_values() | seeded.siro,
        "provider": seeded.provider,
        "poll": {
            "interval_seconds": 1,
            "settle_delay_seconds": 0,
            "start_at": (now - timedelta(hours=1)).isoformat(),
        },
        "worker": {
            "interval_seconds": 1,
            "concurrency": 4,
            "max_attempts": 3,
            "retry_base_seconds": 0.2,
            "retry_max_seconds": 1.0,
            "shutdown_grace_seconds": 5.0,
        },
        "logging": {"level": "INFO", "format": "human"},
    }


def foreign_settings() -> list[str]:
    """Environment variables that a later ``siro-poller --config <demo config>`` would read."""
    return sorted(
        name
        for name in os.environ
        if name.upper().startswith(ENV_PREFIX) or name == "CREDENTIALS_DIRECTORY"
    )


def run_demo(
    kind: str = "generic",
    *,
    keep: bool = False,
    state_parent: Path | None = None,
    announce: Callable[[str], None] = print,
) -> DemoOutcome:
    """Start the simulators, run the daemon until idle, and return what it did.

    Without ``keep`` the state directory is removed before returning (the outcome still holds
    the rows that were read from it).
    """
    scenario = SCENARIOS[kind]
    state_dir = Path(tempfile.mkdtemp(prefix="siro-poller-demo-", dir=state_parent))
    try:
        with ExitStack() as stack:
            now = datetime.now(UTC).replace(microsecond=0)
            siro = stack.enter_context(FakeSiro(verify_audio_type=True))
            seeded = scenario(stack, now)
            config_path = state_dir / CONFIG_NAME
            values = demo_config(state_dir, siro, seeded, now)
            config_path.write_text(tomli_w.dumps(values), encoding="utf-8")
            settings = DemoSettings(**values)
            handler = configure_logging(settings)
            try:
                announce(
                    f"siro-poller demo: a simulated {kind} phone system with "
                    f"{len(seeded.calls)} calls, a simulated Siro, and the real daemon"
                )
                return _run(kind, settings, seeded, siro, state_dir, config_path, keep)
            finally:
                logging.getLogger().removeHandler(handler)
    finally:
        if not keep:
            shutil.rmtree(state_dir, ignore_errors=True)


def _run(
    kind: str,
    settings: Settings,
    seeded: Seeded,
    siro: FakeSiro,
    state_dir: Path,
    config_path: Path,
    keep: bool,
) -> DemoOutcome:
    # The daemon's own libraries (SQLAlchemy, Alembic, the scheduler) are loaded here, not at
    # import: `siro-poller simulate` reads this module's config and starts no daemon.
    from poller import app
    from poller.adapters.sql import migrate

    engine = app.build_engine(settings)
    try:
        migrate.upgrade(engine)
        store = app.open_store(settings, engine)
        stop = threading.Event()
        daemon = app.build_daemon(settings, store, stop)
        thread = threading.Thread(target=daemon.run, name="demo-daemon", daemon=True)
        thread.start()
        try:
            idle = _wait_until_idle(store, seeded)
        finally:
            stop.set()
            thread.join(timeout=settings.worker.shutdown_grace_seconds + 5)
        rows = {row.provider_call_id: row for row in store.list_calls(limit=1000)}
        with siro.state.lock:
            received = len(siro.state.recordings)
        return DemoOutcome(
            kind=kind,
            settings=settings,
            state_dir=state_dir,
            config_path=config_path,
            database_path=state_dir / "siro-poller.sqlite3",
            calls=seeded.calls,
            rows=rows,
            status=store.status(datetime.now(UTC)),
            siro_recordings=received,
            idle=idle,
            kept=keep,
        )
    finally:
        engine.dispose()


def _wait_until_idle(store: Store, seeded: Seeded) -> bool:
    """Until every seeded call has a row in a final state (the late recording made to appear
    once its call was listed); ``False`` if that takes longer than :data:`TIME_LIMIT`."""
    deadline = time.monotonic() + TIME_LIMIT.total_seconds()
    late_pending = seeded.late_recording is not None
    while time.monotonic() < deadline:
        rows = store.list_calls(limit=1000)
        listed = {row.provider_call_id for row in rows}
        if late_pending and seeded.late_call_id in listed and seeded.late_recording is not None:
            log.info("demo: the recording of %s appears at the provider now", seeded.late_call_id)
            seeded.late_recording()
            late_pending = False
        finished = all(row.state.is_terminal for row in rows)
        if not late_pending and finished and all(c.call_id in listed for c in seeded.calls):
            return True
        time.sleep(0.2)
    return False
