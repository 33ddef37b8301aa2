"""systemd's notification protocol (sd_notify): readiness, status, watchdog, stopping.

A datagram to the socket named by ``$NOTIFY_SOCKET``; outside systemd every call is a no-op.
The protocol is a few lines, and the available libraries either need libsystemd headers to build
or silently swallow errors, which is wrong for a watchdog.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from datetime import timedelta

log = logging.getLogger(__name__)


class SystemdNotifier:
    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        # A leading "@" names a socket in the abstract namespace.
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self._watchdog = _watchdog_interval(environ)
        self._warned = False

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    @property
    def watchdog_interval(self) -> timedelta | None:
        """How often systemd expects WATCHDOG=1, or None when the unit has no WatchdogSec."""
        return self._watchdog

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def status(self, status: str) -> None:
        self._send(f"STATUS={status}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self, status: str) -> None:
        self._send(f"STOPPING=1\nSTATUS={status}")

    def _send(self, message: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(message.encode())
        except OSError as exc:
            if not self._warned:  # once: a broken socket would otherwise flood the log
                log.warning("could not notify systemd at $NOTIFY_SOCKET: %s", exc)
                self._warned = True


def _watchdog_interval(environ: Mapping[str, str]) -> timedelta | None:
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit():
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were started by a wrapper)
    return timedelta(microseconds=int(usec))
