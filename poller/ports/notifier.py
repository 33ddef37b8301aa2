"""The service-manager port: readiness, status, watchdog pings and stopping (systemd's sd_notify).

A no-op outside a service manager; :class:`NoNotifier` is that no-op.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol


class ServiceNotifier(Protocol):
    @property
    def watchdog_interval(self) -> timedelta | None:
        """How often the manager expects a watchdog ping, or None when it expects none."""
        ...

    def ready(self, status: str) -> None: ...

    def status(self, status: str) -> None: ...

    def watchdog(self) -> None: ...

    def stopping(self, status: str) -> None: ...


class NoNotifier:
    @property
    def watchdog_interval(self) -> timedelta | None:
        return None

    def ready(self, status: str) -> None:
        pass

    def status(self, status: str) -> None:
        pass

    def watchdog(self) -> None:
        pass

    def stopping(self, status: str) -> None:
        pass
