"""`siro-poller doctor`: check a setup online, one line per check, each failure with its fix.

The checks and their verdicts are :mod:`poller.core.doctor`'s; this module loads the config,
builds the adapters through the composition root and prints the results as they come.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import click

from poller.cli.output import colour_wanted, shown
from poller.cli.root import CliContext, emit_json, main_group, pass_cli
from poller.domain.clock import utcnow

if TYPE_CHECKING:
    from rich.text import Text

    from poller.config import Settings
    from poller.core.doctor import Check, CheckResult, Outcome, SchemaRevisions
    from poller.ports.siro import SiroPort

# The window each provider check lists, as `provider check` does by default.
PROVIDER_WINDOW = timedelta(hours=24)
CONFIG_CHECK = "config"


@main_group.command("doctor")
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=30.0,
    show_default=True,
    help="Seconds each check may take before it counts as failed.",
)
@click.option("--json", "as_json", is_flag=True, help="The results as one JSON document.")
@pass_cli
def doctor(cli: CliContext, timeout: float, as_json: bool) -> None:
    """Check the setup online: the config, the database, Siro, each phone system, the spool.

    Each check prints a line, ✓ or ✗, and a failed one the fix; a check that fails stops
    none after it. Nothing is written but a probe file in the spool (removed at once). Exits
    0 when every check passes, 1 when one fails, 2 when the config cannot be loaded.
    """
    from poller.app import build_siro_client
    from poller.config import ConfigError, config_path_from, load_settings
    from poller.core.doctor import run_checks

    printer = ResultPrinter(enabled=not as_json)
    config_path = config_path_from(cli.config_path)
    try:
        # Loaded here for its problems as a doctor line; cli.settings is the load every
        # command shares (logging set up), which then succeeds the same way.
        load_settings(config_path)
    except ConfigError as exc:
        result = _unloadable_config(config_path, exc.problems)
        printer.show(result)
        if as_json:
            emit_json([result.to_dict()])
        raise click.exceptions.Exit(2) from None
    settings = cli.settings
    siro = build_siro_client(_siro_bounded_by(settings, timeout))
    try:
        results = run_checks(
            doctor_checks(settings, config_path, siro),
            timeout_seconds=timeout,
            report=printer.show,
        )
    finally:
        siro.close()
    if as_json:
        emit_json([result.to_dict() for result in results])
    if any(result.failed for result in results):
        raise click.exceptions.Exit(1)


def doctor_checks(settings: Settings, config_path: Path | None, siro: SiroPort) -> list[Check]:
    """Every check, in the order they run."""
    from poller.core.doctor import (
        Check,
        SpoolNeed,
        judge_spool_space,
        judge_spool_writable,
        siro_checks,
    )
    from poller.domain.audio import ConvertMode
    from poller.wiring import crm_rules_from_settings

    checks = [
        Check(CONFIG_CHECK, lambda: _config_outcome(settings, config_path)),
        Check("database", lambda: _database_outcome(settings)),
        *siro_checks(
            siro,
            token_user_id=settings.siro.token_user_id,
            crm=crm_rules_from_settings(settings.siro),
        ),
        *(_provider_check(settings, entry.name) for entry in settings.configured_providers),
        *(
            _deletion_check(settings, entry.name)
            for entry in settings.configured_providers
            if entry.delete_at_source
        ),
        *(
            _webhook_check(settings, entry.name)
            for entry in settings.configured_providers
            if entry.webhook.enabled
        ),
    ]
    if settings.worker.role == "poller":
        return checks  # this process lists calls only: it never downloads into a spool
    need = SpoolNeed(
        concurrency=settings.worker.concurrency,
        max_download_bytes=settings.worker.max_download_bytes,
        converts=settings.worker.convert is not ConvertMode.NEVER,
    )
    checks += [
        Check("spool", lambda: judge_spool_writable(settings.spool_dir)),
        Check("disk space", lambda: judge_spool_space(settings.spool_dir, need)),
    ]
    return checks


def _siro_bounded_by(settings: Settings, timeout: float) -> Settings:
    """The settings with no Siro request allowed longer than a check: one that hangs ends on
    its own soon after its check has been given up on."""
    siro = settings.siro
    bounded = siro.model_copy(update={"deadline_seconds": min(siro.deadline_seconds, timeout)})
    return settings.model_copy(update={"siro": bounded})


# -- the config ---------------------------------------------------------------------------------


def _unloadable_config(config_path: Path | None, problems: list[str]) -> CheckResult:
    from poller.core.doctor import CheckResult, Verdict

    where = str(config_path) if config_path is not None else "the environment"
    return CheckResult(
        CONFIG_CHECK,
        Verdict.FAILED,
        f"{where} cannot be loaded",
        "correct the keys listed above; no other check runs before the config loads",
        tuple(problems),
    )


def _config_outcome(settings: Settings, config_path: Path | None) -> Outcome:
    from poller.config import requirements_for_daemon
    from poller.config_checks import config_findings
    from poller.core.doctor import failed, passed, warned

    where = str(config_path) if config_path is not None else "the environment (no config file)"
    problems = requirements_for_daemon(settings)
    findings = config_findings(settings, config_path=config_path, environ=os.environ)
    problems += [finding.line() for finding in findings if finding.level == "error"]
    warnings = [f"warning: {finding.line()}" for finding in findings if finding.level == "warning"]
    if problems:
        count = f"{len(problems)} problem" + ("s" if len(problems) > 1 else "")
        return failed(
            f"{where}: {count}",
            "correct each key listed above (`siro-poller config check` shows the effective values)",
            problems + warnings,
        )
    if warnings:
        return warned(f"{where} loads, with warnings", "see each line above", warnings)
    return passed(f"{where} loads: no placeholder, nothing missing")


# -- the database -------------------------------------------------------------------------------


def _database_outcome(settings: Settings) -> Outcome:
    from poller.app import describe_database
    from poller.core.doctor import judge_database

    return judge_database(describe_database(settings.database_url), lambda: _revisions(settings))


def _revisions(settings: Settings) -> SchemaRevisions:
    from sqlalchemy.exc import SQLAlchemyError

    from poller.adapters.sql import migrate
    from poller.app import build_engine
    from poller.cli.errors import database_reason
    from poller.core.doctor import DatabaseUnreachable, SchemaRevisions

    engine = None
    try:
        engine = build_engine(settings)
        return SchemaRevisions(migrate.current_revision(engine), migrate.head_revision(engine))
    except SQLAlchemyError as exc:
        raise DatabaseUnreachable(database_reason(exc, settings)) from None
    except OSError as exc:  # SQLite: its directory cannot be made or written
        raise DatabaseUnreachable(f"{exc.filename or ''}: {exc.strerror or exc}") from None
    finally:
        if engine is not None:
            engine.dispose()


# -- the phone systems --------------------------------------------------------------------------


def _provider_check(settings: Settings, name: str) -> Check:
    from poller.app import build_provider
    from poller.config import ConfigError
    from poller.core.doctor import Check, failed, judge_provider
    from poller.domain.windows import Window

    entry = settings.provider_named(name)

    def run() -> Outcome:
        try:
            provider = build_provider(settings, name)
        except ConfigError as exc:
            return failed(
                "its settings are incomplete",
                "set the keys listed above",
                exc.problems,
            )
        now = utcnow()
        return judge_provider(
            name, provider, Window(now - PROVIDER_WINDOW, now), config_key=entry.config_key
        )

    return Check(f"provider {name}", run)


def _deletion_check(settings: Settings, name: str) -> Check:
    """For a provider with delete_at_source on: would its deletes be let through?"""
    from poller.app import build_provider
    from poller.config import ConfigError
    from poller.core.doctor import Check, failed, passed, warned
    from poller.ports.provider import ProviderError, SourceDeletionCheck

    def run() -> Outcome:
        try:
            provider = build_provider(settings, name)
        except ConfigError as exc:
            return failed("its settings are incomplete", "set the keys listed above", exc.problems)
        if not isinstance(provider, SourceDeletionCheck):
            return passed("on; this vendor offers no way to check the permission before a delete")
        try:
            problems = provider.deletion_problems()
        except ProviderError as exc:
            return warned(
                f"could not be checked: {exc}",
                f"`siro-poller provider check --provider {name}` checks it again",
            )
        if problems:
            return failed(
                "deletes would be refused",
                "grant the permissions named, or set delete_at_source = false",
                problems,
            )
        return passed("on; the credentials may delete recordings")

    return Check(f"deletion at the source ({name})", run)


def _webhook_check(settings: Settings, name: str) -> Check:
    """For a provider with webhook.enabled: receiver, subscription state, last event."""
    from poller.app import build_provider, open_store
    from poller.config import ConfigError
    from poller.core.doctor import Check, failed, judge_webhook
    from poller.core.webhook_subscriptions import subscriptions_of
    from poller.ports.webhooks import Subscription

    url = settings.provider_named(name).webhook.public_url

    def run() -> Outcome:
        store = open_store(settings)
        try:
            saved = {row.provider: row for row in store.webhook_subscription_states()}
        finally:
            store.engine.dispose()
        try:
            api = subscriptions_of(build_provider(settings, name))
        except ConfigError as exc:
            return failed("its settings are incomplete", "set the keys listed above", exc.problems)
        live: Callable[[], Subscription] | None = None
        if api is not None and api.console_steps(url or "") is None:
            live = partial(api.status, url)
        receiver = receiver_address(settings)
        return judge_webhook(
            name, receiver=receiver, saved=saved.get(name), live=live, now=utcnow()
        )

    return Check(f"webhooks ({name})", run, needs=("database",))


def receiver_address(settings: Settings) -> str | None:
    """``[webhooks] listen``, where this version's config has it."""
    section = getattr(settings, "webhooks", None)
    listen = getattr(section, "listen", None)
    return str(listen) if listen else None


# -- output -------------------------------------------------------------------------------------


class ResultPrinter:
    """One line per result, as it comes: ✓/✗ in colour on a terminal, plain text when piped."""

    # By poller.core.doctor.Verdict, a StrEnum: its values are the keys.
    MARKS: ClassVar[dict[str, tuple[str, str, str]]] = {
        "ok": ("✓", "ok", "green"),
        "warning": ("!", "warn", "yellow"),
        "failed": ("✗", "FAIL", "red"),
        "skipped": ("-", "skip", "dim"),
    }

    def __init__(self, *, enabled: bool = True) -> None:
        from rich.console import Console

        self.enabled = enabled
        colour = colour_wanted(sys.stdout)
        self.console = Console(
            color_system="standard" if colour else None,
            force_terminal=colour,
            # Off: rich would colour numbers and paths in the messages by guesswork.
            highlight=False,
            markup=False,
            emoji=False,
        )

    def show(self, result: CheckResult) -> None:
        from rich.text import Text

        if not self.enabled:
            return
        symbol, word, style = self.MARKS[result.verdict]
        mark = symbol if _can_print(symbol) else word
        line = Text.assemble((mark, f"bold {style}"), " ", (result.name, "bold"), ": ")
        # What a check found may quote the provider or Siro: shown clean (never as markup).
        line.append(shown(result.summary))
        self._print(line)
        for detail in result.details:
            self._print(Text(f"    - {shown(detail)}"))
        if result.fix:
            self._print(Text.assemble("    ", ("fix:", style), f" {shown(result.fix)}"))

    def _print(self, text: Text) -> None:
        # soft_wrap: a piped line stays one line, for grep, whatever the width.
        self.console.print(text, soft_wrap=True)


def _can_print(symbol: str) -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        symbol.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
