"""`siro-poller db ...`: create, upgrade and inspect the state database schema."""

from __future__ import annotations

import click
from sqlalchemy.engine import make_url

from poller.adapters.sql import migrate
from poller.app import build_engine
from poller.cli.root import CliContext, main_group, pass_cli


@main_group.group("db")
def db_group() -> None:
    """Manage the state database."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_cli
def upgrade(cli: CliContext, revision: str) -> None:
    """Create the state database or bring it to the current schema."""
    engine = build_engine(cli.settings)
    before = migrate.current_revision(engine)
    migrate.upgrade(engine, revision)
    after = migrate.current_revision(engine)
    where = make_url(cli.settings.database_url).render_as_string(hide_password=True)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'empty'} to revision {after}")


@db_group.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def downgrade(cli: CliContext, revision: str, yes: bool) -> None:
    """Step the schema back to REVISION ('base' removes every table and its data)."""
    if not yes:
        click.confirm(
            f"Downgrading to {revision} drops what later revisions added, data included. Continue?",
            abort=True,
        )
    engine = build_engine(cli.settings)
    migrate.downgrade(engine, revision)
    click.echo(f"downgraded to {migrate.current_revision(engine) or 'base'}")


@db_group.command("current")
@pass_cli
def current(cli: CliContext) -> None:
    """Show the schema revision of the database and the one this version needs."""
    engine = build_engine(cli.settings)
    click.echo(
        f"database: {migrate.current_revision(engine) or 'empty'}; "
        f"needed: {migrate.head_revision(engine)}"
    )
