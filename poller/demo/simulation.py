"""The demo's simulators kept running, for rehearsing one's own setup (`siro-poller simulate`).

The phone system of one kind, seeded as the demo seeds it, and Siro, each an HTTP server on
127.0.0.1. What points a config at them is split as a real installation splits it: the plain
settings go in the file, the secrets in environment variables.
"""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from poller.config import Settings, env_name, secret_paths
from poller.demo.runner import demo_config
from poller.demo.scenarios import SCENARIOS, Seeded
from poller.simulators.http_server import ports_from
from poller.simulators.siro_server import FakeSiro

# The demo makes its late recording appear once the daemon has listed the call; here nothing
# watches the daemon, so it appears this long after the start.
LATE_RECORDING_SECONDS = 20.0
# Keys of the simulators' config that an installation's own config of the same kind should keep.
_OWN_KEYS = {("provider", "name")}


@dataclass
class Simulation:
    """Running simulators and the settings that reach them."""

    kind: str
    siro: FakeSiro
    seeded: Seeded
    config: dict[str, Any]  # the ready config, without its secrets
    secrets: dict[str, str]  # environment variable -> value
    overrides: dict[str, str]  # environment variable -> value: any config of this kind to here

    def exports(self) -> list[str]:
        return [f"export {name}={_shell_word(value)}" for name, value in self.secrets.items()]

    def override_exports(self) -> list[str]:
        return [f"export {name}={_shell_word(value)}" for name, value in self.overrides.items()]


@contextmanager
def simulate(kind: str, state_dir: Path, *, first_port: int = 0) -> Iterator[Simulation]:
    """Start the simulators of ``kind`` and Siro until the block ends.

    ``first_port`` 0 takes free ports; otherwise the servers listen on it and the ports after.
    """
    with ExitStack() as stack:
        if first_port:
            stack.enter_context(ports_from(first_port))
        now = datetime.now(UTC).replace(microsecond=0)
        siro = stack.enter_context(FakeSiro(verify_audio_type=True))
        seeded = SCENARIOS[kind](stack, now)
        if seeded.late_recording is not None:
            timer = threading.Timer(LATE_RECORDING_SECONDS, seeded.late_recording)
            timer.daemon = True
            timer.start()
            stack.callback(timer.cancel)
        values = demo_config(state_dir, siro, seeded, now)
        secrets = _pop_secrets(values)
        overrides = {
            env_name((table, key)): _env_value(value)
            for table in ("siro", "provider")
            for key, value in values[table].items()
            if (table, key) not in _OWN_KEYS
        }
        overrides.update(secrets)
        yield Simulation(kind, siro, seeded, values, secrets, overrides)


def _pop_secrets(values: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in secret_paths(Settings):
        node = values
        for key in path[:-1]:
            node = node.get(key, {})
        if isinstance(node, dict) and path[-1] in node:
            found[env_name(path)] = str(node.pop(path[-1]))
    return found


def _env_value(value: Any) -> str:
    # As pydantic-settings reads complex values: lists and tables as JSON.
    return value if isinstance(value, str) else json.dumps(value)


def _shell_word(text: str) -> str:
    return shlex.quote(text)
