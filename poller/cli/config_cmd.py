"""`siro-poller config check`."""

from __future__ import annotations

import click
import tomli_w

from poller.cli.root import CliContext, config_problem, emit_json, main_group, pass_cli
from poller.config import masked_dump, requirements_for_daemon


@main_group.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the effective config as JSON.")
@pass_cli
def check(cli: CliContext, as_json: bool) -> None:
    """Validate the config and print the effective values, secrets masked.

    Exits 2 when a value is invalid or the daemon would lack something it needs.
    """
    settings = cli.settings
    dump = masked_dump(settings)
    if as_json:
        emit_json(dump)
    else:
        click.echo(tomli_w.dumps(dump).rstrip())
    problems = requirements_for_daemon(settings)
    if problems:
        raise config_problem(problems)
    click.echo("# config OK", err=True)
