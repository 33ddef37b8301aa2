"""`siro-poller db ...`: create, upgrade and inspect the state database schema."""

from __future__ import annotations

from pathlib import Path

import click

from poller.cli.root import CliContext, UserError, emit_json, main_group, pass_cli


@main_group.group("db")
def db_group() -> None:
    """Manage the state database."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_cli
def upgrade(cli: CliContext, revision: str) -> None:
    """Create the state database or bring it to the current schema."""
    from sqlalchemy.engine import make_url

    from poller.adapters.sql import migrate
    from poller.app import build_engine

    engine = build_engine(cli.settings)
    before = migrate.current_revision(engine)
    migrate.upgrade(engine, revision)
    after = migrate.current_revision(engine)
    where = make_url(cli.settings.database_url).render_as_string(hide_password=True)
    if before == after:
        click.echo(f"{where}: already at revision {after}")
    else:
        click.echo(f"{where}: upgraded from {before or 'empty'} to revision {after}")


@db_group.command(
    "downgrade",
    # `db downgrade -1` steps back one revision: let a negative number through as REVISION.
    context_settings={"ignore_unknown_options": True},
)
@click.argument("revision", required=False)
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    help="Step back this many revisions (same as REVISION -N).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def downgrade(cli: CliContext, revision: str | None, steps: int | None, yes: bool) -> None:
    """Step the schema back to REVISION, or by -N / --steps N revisions.

    'base' removes every table and its data; `db history` lists the revisions.
    """
    if (revision is None) == (steps is None):
        raise click.UsageError("give either REVISION (an id, -N or base) or --steps N")
    if revision is not None and revision.startswith("-") and not revision[1:].isdigit():
        raise click.UsageError(f"no such option: {revision}")
    from poller.adapters.sql import migrate
    from poller.app import build_engine

    target = revision if revision is not None else f"-{steps}"
    if not yes:
        click.confirm(
            f"Downgrading to {target} drops what later revisions added, data included. Continue?",
            abort=True,
        )
    engine = build_engine(cli.settings)
    migrate.downgrade(engine, target)
    click.echo(f"downgraded to {migrate.current_revision(engine) or 'base'}")


@db_group.command("current")
@click.option("--json", "as_json", is_flag=True, help="The two revisions as one JSON document.")
@pass_cli
def current(cli: CliContext, as_json: bool) -> None:
    """Show the schema revision of the database and the one this version needs."""
    from poller.adapters.sql import migrate
    from poller.app import build_engine

    engine = build_engine(cli.settings)
    current, head = migrate.current_revision(engine), migrate.head_revision(engine)
    if as_json:
        emit_json(
            {"current_revision": current, "head_revision": head, "up_to_date": current == head}
        )
        return
    click.echo(f"database: {current or 'empty'}; needed: {head}")


@db_group.command("history")
@click.option("--json", "as_json", is_flag=True, help="The revisions as a JSON array.")
@pass_cli
def history(cli: CliContext, as_json: bool) -> None:
    """The schema revisions, oldest first; the database's current one is marked."""
    from poller.adapters.sql import migrate
    from poller.app import build_engine

    engine = build_engine(cli.settings)
    current = migrate.current_revision(engine)
    head = migrate.head_revision(engine)
    revisions = migrate.revisions(engine)
    if as_json:
        emit_json(
            [
                {
                    "revision": revision.revision,
                    "down_revision": revision.down_revision,
                    "summary": _summary(revision.doc),
                    "current": revision.revision == current,
                    "head": revision.revision == head,
                }
                for revision in revisions
            ]
        )
        return
    for revision in revisions:
        marks = [
            mark
            for mark, revision_id in (("current", current), ("head", head))
            if revision.revision == revision_id
        ]
        suffix = f"  ({', '.join(marks)})" if marks else ""
        click.echo(f"{revision.revision}  {_summary(revision.doc)}{suffix}")
    if current is None:
        click.echo("the database is empty: `siro-poller db upgrade` creates it")


def _summary(doc: str) -> str:
    return doc.splitlines()[0] if doc else ""


@db_group.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@pass_cli
def backup(cli: CliContext, target: Path) -> None:
    """Copy the SQLite state database to TARGET, consistently, while the daemon runs.

    TARGET must not exist; it is created readable by you only. PostgreSQL: use pg_dump (the
    command says the line).
    """
    from sqlalchemy.engine import make_url

    from poller.adapters.sql.backup import backup_sqlite

    url = make_url(cli.settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        shown_url = url.set(drivername="postgresql").render_as_string(hide_password=True)
        raise UserError(
            "db backup copies SQLite databases only; for PostgreSQL run pg_dump, e.g.\n"
            f"  pg_dump --format=custom --file {target} '{shown_url}'\n"
            "(docs/operations/data-lifecycle.md: backup and restore)"
        )
    try:
        made = backup_sqlite(Path(url.database), target)
    except FileExistsError:
        raise UserError(f"{target} exists: choose a new file name") from None
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    if made.integrity != "ok":
        raise UserError(f"the copy at {target} fails its integrity check: {made.integrity}")
    click.echo(
        f"backed up to {made.path}: {made.size_bytes} bytes, {made.calls} calls, integrity ok"
    )


@db_group.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="What was removed as one JSON document.")
@pass_cli
def prune(cli: CliContext, dry_run: bool, as_json: bool) -> None:
    """Run one retention pass now, as `run` does every retention.interval_seconds.

    Removes the personal data of calls finished retention.personal_data_days ago, events older
    than retention.events_days (not those that prove an upload) and unmapped records past
    their limits; prints what it removed, or with --dry-run what it would remove.
    """
    from poller.core.retention import run_retention
    from poller.domain.clock import utcnow
    from poller.wiring import retention_rules_from_settings

    report = run_retention(
        retention_rules_from_settings(cli.settings), cli.store, utcnow(), dry_run=dry_run
    )
    if as_json:
        emit_json(report.to_dict())
        return
    click.echo(report.summary())
