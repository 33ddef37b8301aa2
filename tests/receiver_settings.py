"""The ``[webhooks]`` table a config with an enabled provider webhook carries in these tests.

The receiver's settings refuse an enabled webhook with no ``webhooks.listen``; a version of the
settings without that table refuses the table itself. Either way the tests' configs load.
"""

from __future__ import annotations

from poller.config import Settings

LISTEN = "127.0.0.1:8788"


def receiver_section() -> dict[str, dict[str, str]]:
    if "webhooks" not in Settings.model_fields:
        return {}
    return {"webhooks": {"listen": LISTEN}}
