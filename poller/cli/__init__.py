"""Command line: thin actions over the core. Each module adds one command group."""

from __future__ import annotations

from poller.cli.root import main_group

# Importing a command module registers its commands on the group.
from poller.cli import backfill, calls, calls_data, config_cmd, db, demo  # noqa: F401  isort: skip
from poller.cli import doctor, explain, poll, provider, run, simulate  # noqa: F401  isort: skip
from poller.cli import siro, source, status, webhooks  # noqa: F401  isort: skip

main = main_group
