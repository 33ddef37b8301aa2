"""`siro-poller config check`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

import click

from poller.cli.root import CliContext, config_problem, emit_json, main_group, pass_cli


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
    import tomli_w

    from poller.config import config_path_from, masked_dump, requirements_for_daemon
    from poller.config_checks import config_findings

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


F = TypeVar("F", bound=Callable[..., Any])

# The kinds as the registry lists them; a plain tuple keeps `--help` free of the adapters.
PROVIDER_KINDS = (
    *("generic", "aircall", "dialpad", "ringcentral", "zoom", "twilio"),
    *("salesloft", "cloudtalk", "callrail", "freshcaller", "justcall", "outreach", "webex"),
    *("8x8", "vonage", "quo"),
)


def provider_kind_option(help_text: str) -> Callable[[F], F]:
    """``--provider KIND`` (the parameter ``kind``), one of the registered kinds."""
    return click.option(
        "--provider",
        "kind",
        type=click.Choice(PROVIDER_KINDS),
        default="generic",
        show_default=True,
        help=help_text,
    )


@config_group.command("init")
@provider_kind_option("The phone system's kind.")
@click.option(
    "--database",
    type=click.Choice(["sqlite", "postgres"]),
    default="sqlite",
    show_default=True,
    help="SQLite in the state directory, or a PostgreSQL server.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default="config.toml",
    show_default=True,
    help="Where to write the config.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(kind: str, database: str, output: str, force: bool) -> None:
    """Write a minimal config for one provider kind, its secrets left to the environment.

    Prints the keys still to fill in and the environment variables (or systemd credential
    files) that must supply the secrets. Every other key keeps its default; the example of the
    kind lists them all.
    """
    from pathlib import Path

    from poller.config_schema import render_minimal_config

    config = render_minimal_config(kind, database=database)
    path = Path(output)
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists; pass --force to overwrite it")
    path.write_text(config.text, encoding="utf-8")
    # The file holds no secret, but it names where they come from: owner and group only.
    path.chmod(0o640)
    click.echo(f"Wrote {path} for a {kind} phone system.")
    if config.placeholders:
        click.echo("Replace the placeholders of these keys with your own values:")
        for key in config.placeholders:
            click.echo(f"  {key.dotted}")
    click.echo("Supply these secrets in the environment (or as systemd credential files):")
    for key in config.secrets:
        variable = key.supplied_by().split()[1]
        click.echo(f"  export {variable}=...  # or the credential file {key.dotted}")
    click.echo(f"Then check it: siro-poller --config {path} config check")
