"""Operational errors as one line and exit status 2: the families the CLI translates once.

A database that cannot be reached or opened, a schema revision that does not exist, a state
directory that cannot be written: none of these is a bug, so none deserves a traceback. Each
message names the config key to fix and never the database password.
"""

from __future__ import annotations

import errno
import re
import tempfile
from pathlib import Path

from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError, SQLAlchemyError

from poller.app import describe_database
from poller.config import Settings, env_name
from poller.domain.redaction import redact_text

# Translated by :func:`operational_message`; anything else is a bug and keeps its traceback.
OPERATIONAL_ERRORS: tuple[type[BaseException], ...] = (
    # The database cannot be reached, opened or written; not a constraint or a query bug.
    OperationalError,
    InterfaceError,
    CommandError,
    RevisionError,
    OSError,
)


def operational_message(exc: BaseException, settings: Settings | None) -> str | None:
    """The one line that tells what went wrong and which key to fix, or ``None`` when
    ``exc`` is not an operational error (it then propagates with its traceback)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return _database_message(exc, settings)
    if isinstance(exc, CommandError | RevisionError):
        return (
            f"schema revision: {first_line(str(exc))}; `siro-poller db history` lists the revisions"
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return _read_only_database(exc, settings) or _file_message(exc, settings)
    return None


def _database_message(exc: OperationalError | InterfaceError, settings: Settings | None) -> str:
    where = "the state database"
    if settings is not None:
        where = f"the state database {describe_database(settings.database_url)}"
        refused = _refused_password(exc, settings)
        if refused is not None:
            return f"{where} {refused}"
        read_only = _read_only_sqlite(exc, settings)
        if read_only is not None:
            return read_only
    return f"{where} cannot be used: {database_reason(exc, settings)}; check database.url"


# What libpq says when the server refused the password (a refused login carries no SQLSTATE
# the driver could read), and when the server wanted one it did not have.
_REFUSED = "password authentication failed"
_NOTHING_TO_SEND = "no password supplied"


def _refused_password(exc: SQLAlchemyError, settings: Settings) -> str | None:
    """What to fix when the server refused the password (or wanted one and got none)."""
    said = str(getattr(exc, "orig", None) or exc)
    wrong = _REFUSED in said
    if not wrong and _NOTHING_TO_SEND not in said:
        return None
    user = _url_user(settings.database_url)
    who = f" for user {user}" if user else ""
    source = _password_source()
    if not wrong:
        return f"wants a password{who} and none was given; set {source}"
    if settings.database.password is None and _url_password(settings.database_url):
        return (
            f"refused the password{who} written in database.url; check it, or better move "
            f"it to {source}"
        )
    return f"refused the password{who}; check {source}"


def _password_source() -> str:
    variable = env_name(("database", "password"))
    return f"database.password ({variable} or the credential file database.password)"


# SQLite's result codes (the primary code is the low byte of an extended one).
_SQLITE_READONLY = 8
_SQLITE_CANTOPEN = 14
# What the system says of a file or directory this user may not write.
_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def _read_only_sqlite(exc: SQLAlchemyError, settings: Settings) -> str | None:
    """SQLite could not write its file, or not create its journal beside it."""
    database = _sqlite_path(settings.database_url)
    code = getattr(getattr(exc, "orig", None), "sqlite_errorcode", None)
    if database is None or not isinstance(code, int):
        return None
    if code & 0xFF == _SQLITE_READONLY:
        blocked = _unwritable(database) or _unwritable(database.parent) or database
        return _read_only_line(blocked, "", settings)
    if code & 0xFF == _SQLITE_CANTOPEN:
        directory = _unwritable(database.parent)
        if directory is not None:
            return _read_only_line(directory, "", settings)
    return None


def _read_only_database(exc: OSError, settings: Settings | None) -> str | None:
    """An :class:`OSError` on the SQLite file itself, or its directory, refusing writes."""
    if settings is None or exc.errno not in _NOT_WRITABLE:
        return None
    database = _sqlite_path(settings.database_url)
    path = Path(str(exc.filename))
    if database is None or path.absolute() not in (
        database.absolute(),
        database.absolute().parent,
    ):
        return None
    return _read_only_line(path, f" ({exc.strerror})", settings)


def _read_only_line(path: Path, why: str, settings: Settings) -> str:
    what = "directory" if path.is_dir() else "file"
    key = "database.url" if settings.database.url is not None else "state_dir"
    return (
        f"the state database cannot be written: the {what} {path} is read-only for this "
        f"user{why}; make it writable by the user siro-poller runs as, or check {key}"
    )


def _unwritable(path: Path) -> Path | None:
    """``path`` if this process cannot write it, found by trying (as root, permission bits
    say nothing: an immutable file or a read-only mount is only found by writing)."""
    try:
        if path.is_dir():
            with tempfile.TemporaryFile(dir=path):
                return None
        with path.open("r+b"):
            return None
    except OSError as exc:
        return path if exc.errno in _NOT_WRITABLE else None


def database_reason(exc: SQLAlchemyError, settings: Settings | None) -> str:
    """Why the database refused, as the driver says it in its first line, password masked."""
    original = getattr(exc, "orig", None)
    reason = first_line(str(original) if original is not None else str(exc))
    secrets: list[str] = []
    if settings is not None:
        if settings.database.password is not None:
            secrets.append(settings.database.password.get_secret_value())
        password = _url_password(settings.database_url)
        if password:
            secrets.append(password)
    return redact_text(reason, secrets)


def _file_message(exc: OSError, settings: Settings | None) -> str:
    path = str(exc.filename)
    reason = exc.strerror or type(exc).__name__
    if isinstance(exc, FileExistsError | NotADirectoryError):
        reason = "a file stands where a directory is needed"
    return f"{path}: {reason}; {_key_for(Path(path), settings)}"


def _key_for(path: Path, settings: Settings | None) -> str:
    """The config key whose directory ``path`` lies in."""
    if settings is None:
        return "check state_dir"
    candidates = [
        (settings.spool_dir, "worker.spool_dir" if settings.worker.spool_dir else "state_dir"),
        (settings.state_dir, "state_dir"),
    ]
    database = _sqlite_path(settings.database_url)
    if database is not None and settings.database.url is not None:
        candidates.insert(0, (database, "database.url"))
    for directory, key in candidates:
        if _within(path, directory) or _within(directory, path):
            return f"check {key} (it must be a directory this user can write)"
    return "check state_dir"


def _within(path: Path, directory: Path) -> bool:
    try:
        path.absolute().relative_to(directory.absolute())
    except ValueError:
        return False
    return True


def _sqlite_path(url: str) -> Path | None:
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


def _url_user(url: str) -> str | None:
    try:
        user = make_url(url).username
    except ArgumentError:
        return None
    return str(user) if user else None


def _url_password(url: str) -> str | None:
    try:
        password = make_url(url).password
    except ArgumentError:
        return None
    return str(password) if password else None


def first_line(text: str) -> str:
    """The driver's reason without its hints and links, whitespace collapsed."""
    line = next((part for part in text.splitlines() if part.strip()), text)
    return re.sub(r"\s+", " ", line).strip()
