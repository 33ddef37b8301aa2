"""Alembic, driven from code: the scripts ship inside the wheel as ``poller/migrations``.

Alembic itself is imported only by what migrates or lists the scripts: every other command, and
the daemon, checks the schema's revision at start (:func:`assert_at_head`), and importing alembic
and loading each script costs more CPU than the rest of that check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

import poller

if TYPE_CHECKING:
    from alembic.config import Config

# The newest script's revision in migrations/versions: adding a migration means changing it
# (tests/test_migrations.py compares it with the head alembic finds).
HEAD_REVISION = "0013"
# Where alembic records the revision (its default name; migrations/env.py keeps it).
VERSION_TABLE = "alembic_version"


class SchemaNotCurrent(Exception):
    """The database is not at the revision this version of siro-poller expects."""


def migrations_dir() -> Path:
    package_dir = Path(poller.__file__).resolve().parent
    installed = package_dir / "migrations"
    if (installed / "env.py").is_file():
        return installed
    source_tree = package_dir.parent / "migrations"
    if (source_tree / "env.py").is_file():
        return source_tree
    raise FileNotFoundError("the Alembic migration scripts are missing from this installation")


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str:
    """The head alembic finds in the scripts (:data:`HEAD_REVISION`, which needs no alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


@dataclass(frozen=True, slots=True)
class Revision:
    revision: str
    down_revision: str | None
    doc: str


def revisions(engine: Engine) -> list[Revision]:
    """Every migration this version ships, oldest first."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(alembic_config(engine))
    listed = [
        Revision(
            script.revision,
            script.down_revision if isinstance(script.down_revision, str) else None,
            (script.doc or "").strip(),
        )
        for script in scripts.walk_revisions()
    ]
    return listed[::-1]


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None before the first migration: read as alembic's
    ``MigrationContext.get_current_revision`` reads it, without importing alembic."""
    with engine.connect() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars()
        revisions = list(found)
    if len(revisions) > 1:
        # Alembic refuses such a table too: the history is one line, so one row at most.
        raise SchemaNotCurrent(
            f"the state database records several revisions ({', '.join(sorted(revisions))}) "
            f"in {VERSION_TABLE}, where one is expected"
        )
    return revisions[0] if revisions else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(engine), revision)


def assert_at_head(engine: Engine) -> None:
    current, head = current_revision(engine), HEAD_REVISION
    if current != head:
        found = f"at revision {current}" if current else "not initialised"
        raise SchemaNotCurrent(
            f"the state database is {found}, this siro-poller needs revision {head}: "
            "run `siro-poller db upgrade` first"
        )
