"""The `siro-poller` command group and what every action shares: settings, store, output.

Importing the CLI costs only click and the light parts of the domain: `--version`, `--help`
and each TAB completion answer without loading the database layer, the HTTP clients, the
audio library or the settings models. Each command imports those when it runs (see
tests/test_cli_imports.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import click

from poller.cli.output import emit_table as emit_table
from poller.cli.output import shown

if TYPE_CHECKING:
    from poller.adapters.sql.store import SqlStore
    from poller.config import Settings

# Exit statuses: 0 done, 1 the action failed, 2 bad config or usage (as click uses for usage).
EXIT_FAILURE = 1
EXIT_CONFIG = 2


class UserError(click.ClickException):
    """An error the user can act on: one clear message, no traceback."""

    exit_code = EXIT_FAILURE

    def show(self, file: Any = None) -> None:
        # Messages quote provider data: each line shown clean (only "\n" separates lines).
        for line in self.format_message().split("\n"):
            click.echo(f"siro-poller: {shown(line)}", err=True)


class ConfigProblem(UserError):
    """The config or the database schema must be fixed before anything can run."""

    exit_code = EXIT_CONFIG


def config_problem(problems: list[str]) -> ConfigProblem:
    return ConfigProblem("\n".join(f"config error: {p}" for p in problems))


def selected_providers(settings: Settings, names: tuple[str, ...]) -> list[str]:
    """The names ``--provider`` chose (every configured one without it); exit 2 on a typo."""
    configured = [provider.name for provider in settings.configured_providers]
    unknown = [name for name in names if name not in configured]
    if unknown:
        raise config_problem(
            [
                f"--provider {name}: no provider of that name is configured "
                f"(configured: {', '.join(configured)})"
                for name in unknown
            ]
        )
    return list(names) or configured


@dataclass
class CliContext:
    config_path: str | None
    # -q is -1, no flag 0, each -v one more: see apply_verbosity.
    verbosity: int = 0

    @cached_property
    def settings(self) -> Settings:
        from poller.config import ConfigError, load_settings
        from poller.logs import configure_logging

        try:
            settings = load_settings(self.config_path)
        except ConfigError as exc:
            raise config_problem(exc.problems) from None
        configure_logging(settings)
        apply_verbosity(self.verbosity)
        return settings

    @cached_property
    def store(self) -> SqlStore:
        from poller.adapters.sql.migrate import SchemaNotCurrent
        from poller.app import open_store

        try:
            return open_store(self.settings)
        except SchemaNotCurrent as exc:
            raise ConfigProblem(str(exc)) from None


class RootGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # already a message and an exit status
        except Exception as exc:
            problem = _as_config_problem(exc, ctx)
            if problem is None:
                raise
            raise problem from None


def _as_config_problem(exc: Exception, ctx: click.Context) -> ConfigProblem | None:
    """A bad config or an operational error (:mod:`poller.cli.errors`) as one line, exit 2;
    ``None`` for anything else, a bug, which keeps its traceback."""
    # Imported here: what raises these was imported by the command, not by the CLI's start.
    from poller.cli.errors import OPERATIONAL_ERRORS, operational_message
    from poller.config import ConfigError

    if isinstance(exc, ConfigError):
        return config_problem(exc.problems)
    if not isinstance(exc, OPERATIONAL_ERRORS):
        return None
    settings = getattr(ctx.obj, "__dict__", {}).get("settings")  # only if loaded
    message = operational_message(exc, settings)
    return None if message is None else ConfigProblem(message)


def _print_version(ctx: click.Context, asked: bool) -> None:
    """``--version``, as click's version option prints it; the version is read only now
    (``poller.__version__`` is looked up when first asked for)."""
    if not asked or ctx.resilient_parsing:
        return
    from poller import __version__

    click.echo(f"siro-poller, version {__version__}")
    ctx.exit()


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="SIRO_POLLER_CONFIG",
    help="TOML config file (default: $SIRO_POLLER_CONFIG).",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="More log lines: -v the poller's debug lines, -vv the libraries' too "
    "(over logging.level).",
)
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors (over logging.level).")
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, _param, asked: _print_version(ctx, asked),
    help="Show the version and exit.",
)
@click.pass_context
def main_group(ctx: click.Context, config_path: str | None, verbose: int, quiet: bool) -> None:
    """Poll a phone system's call log and upload every recording to Siro exactly once."""
    if verbose and quiet:
        raise click.UsageError("-v and -q contradict each other; give one of them")
    ctx.obj = CliContext(config_path=config_path, verbosity=-1 if quiet else verbose)


pass_cli = click.make_pass_decorator(CliContext)


def apply_verbosity(verbosity: int) -> None:
    """-q and -v over the configured ``logging.level``, for this invocation only.

    -q: warnings and errors only; -v: the poller's own debug lines too; -vv: the libraries'
    debug lines as well (the HTTP connections, the scheduler, the migrations).
    """
    from poller.logs import NOISY_LIBRARIES

    root = logging.getLogger()
    own = logging.getLogger("poller")
    own.setLevel(logging.NOTSET)  # what an earlier invocation in this process set
    if verbosity < 0:
        root.setLevel(max(root.level, logging.WARNING))
    elif verbosity >= 1:
        own.setLevel(logging.DEBUG)
    if verbosity >= 2:
        root.setLevel(logging.DEBUG)
        for library in NOISY_LIBRARIES:
            logging.getLogger(library).setLevel(logging.DEBUG)


def emit_json(data: Any) -> None:
    """The --json contract: one JSON document on stdout, UTC times in ISO 8601, stable keys."""
    click.echo(json_text(data))


def json_text(data: Any) -> str:
    """``data`` as `emit_json` prints it."""
    return json.dumps(data, indent=2, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class LazyChoice(click.Choice[str]):
    """A :class:`click.Choice` whose values are read when first needed (parsing the option,
    completing it, its command's help), not when the CLI is imported: for values that live
    in a module too heavy to load for `--help`."""

    def __init__(self, values: Callable[[], Iterable[str]]) -> None:
        # click.Choice.__init__ would read the values now.
        self._values = values
        self._choices: tuple[str, ...] | None = None
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        if self._choices is None:
            self._choices = tuple(self._values())
        return self._choices


def parse_when(value: str) -> datetime:
    """Parse a CLI time: ISO 8601, or a relative age like 30m, 6h, 2d (before now)."""
    from datetime import timedelta

    from poller.domain.clock import as_utc, utcnow

    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if value[-1:] in units and value[:-1].isdigit():
        return utcnow() - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither ISO 8601 (2026-11-24T09:00:00Z) nor an age like 6h or 2d"
        ) from None
