"""Run the CLI as a subprocess on a real pseudo-terminal, as a person at a terminal sees it."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_on_terminal(args: list[str], env: Mapping[str, str], timeout: float = 120) -> str:
    """``siro-poller ARGS`` with stdout and stderr on one pseudo-terminal: what it showed."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SIRO_POLLER_")}
    environment.pop("NO_COLOR", None)
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO), environment.get("PYTHONPATH")])
    )
    environment.update(env)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "poller", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=environment,
    )
    os.close(follower)
    chunks: list[bytes] = []
    try:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        process.wait(timeout=timeout)
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    # The terminal turns each newline into CR LF.
    return b"".join(chunks).decode().replace("\r\n", "\n")
