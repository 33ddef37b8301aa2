"""The environment of a `siro-poller run` subprocess in end-to-end tests, written once."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from poller.simulators.siro_server import FakeSiro

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on now, for a daemon's receiver or metrics."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def daemon_environment(
    *,
    state_dir: Path,
    database_url: str,
    siro: FakeSiro,
    start_at: datetime,
    settings: Mapping[str, str],
) -> dict[str, str]:
    """This checkout's code, no inherited ``SIRO_POLLER_*``, quick poll and work cycles.

    ``settings`` are ``SECTION__KEY`` names (``PROVIDER__KIND``...) that add to or override
    these defaults.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRO_POLLER_")}
    env.pop("STATE_DIRECTORY", None)
    # The daemon runs this checkout's code, whatever the environment has installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    values = {
        "STATE_DIR": str(state_dir),
        "DATABASE__URL": database_url,
        "PROVIDER__MAX_RETRIES": "2",
        "PROVIDER__CONNECT_TIMEOUT_SECONDS": "2",
        "PROVIDER__READ_TIMEOUT_SECONDS": "5",
        "POLL__INTERVAL_SECONDS": "1",
        "POLL__SETTLE_DELAY_SECONDS": "0",
        "POLL__START_AT": start_at.isoformat(),
        "WORKER__INTERVAL_SECONDS": "1",
        "WORKER__RETRY_BASE_SECONDS": "0.2",
        "WORKER__RETRY_MAX_SECONDS": "1",
        "LOGGING__FORMAT": "human",
    }
    values.update(
        {f"SIRO__{key.upper()}": env_text(v) for key, v in siro.settings_values().items()}
    )
    values.update(settings)
    env.update({f"SIRO_POLLER_{key}": value for key, value in values.items()})
    return env


def env_text(value: object) -> str:
    """A setting's value as an environment variable holds it: lists and tables as JSON."""
    return json.dumps(value) if isinstance(value, list | dict) else str(value)
