"""Alembic, driven from code: the scripts ship inside the wheel as ``poller/migrations``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

import poller


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
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["engine"] = engine
    return config


def head_revision(engine: Engine) -> str:
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
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def assert_at_head(engine: Engine) -> None:
    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        found = f"at revision {current}" if current else "not initialised"
        raise SchemaNotCurrent(
            f"the state database is {found}, this siro-poller needs revision {head}: "
            "run `siro-poller db upgrade` first"
        )
