"""The ``[siro]`` settings that point the real client at a running Siro simulator."""

from __future__ import annotations

from typing import Any

from poller.adapters.siro.settings import SiroSettings
from poller.simulators.siro_server import FakeSiro


def siro_settings(siro: FakeSiro, **overrides: Any) -> SiroSettings:
    """Settings for ``siro`` with its fast test timeouts, ``overrides`` on top."""
    return SiroSettings(**siro.settings_values(**overrides))
