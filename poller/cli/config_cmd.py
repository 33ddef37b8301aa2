"""`siro-poller config check`."""

from __future__ import annotations

import os

import click
import tomli_w

from poller.cli.root import CliContext, config_problem, emit_json, main_group, pass_cli
from poller.config import config_path_from, masked_dump, requirements_for_daemon
from poller.config_checks import config_findings


@main_group.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@click.option("--json", "as_json", is_flag=True, help="Print the effective config as JSON.")
@pass_cli
def check(cli: CliContext, as_json: bool) -> None:
    """Validate the config and print the effective values, secrets masked.

    Warns about secrets in files others can read and about SIRO_POLLER_* variables that set
    nothing. Exits 2 when a value is invalid, still the example's placeholder, or the daemon
    would lack something it needs.
    """
    settings = cli.settings
    dump = masked_dump(settings)
    if as_json:
        emit_json(dump)
    else:
        click.echo(tomli_w.dumps(dump).rstrip())
    findings = config_findings(
        settings, config_path=config_path_from(cli.config_path), environ=os.environ
    )
    warnings = [f.line() for f in findings if f.level == "warning"]
    for warning in warnings:
        click.echo(f"siro-poller: warning: {warning}", err=True)
    problems = [f.line() for f in findings if f.level == "error"]
    problems += requirements_for_daemon(settings)
    if problems:
        raise config_problem(problems)
    counted = f" ({len(warnings)} warning{'s' if len(warnings) > 1 else ''})" if warnings else ""
    click.echo(f"# config OK{counted}", err=True)
