"""`siro-poller provider check`: is the phone system reachable, are we let in, do records map?"""

from __future__ import annotations

import click

from poller.cli.output import shown
from poller.cli.root import (
    CliContext,
    UserError,
    emit_json,
    main_group,
    parse_when,
    pass_cli,
    selected_providers,
)
from poller.domain.clock import utcnow


@main_group.group("provider")
def provider_group() -> None:
    """Check the phone system's side of the configuration."""


@provider_group.command("check")
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="Start of the window to list: an age (6h, 2d) or an ISO 8601 time.",
)
@click.option(
    "--provider",
    "names",
    multiple=True,
    metavar="NAME",
    help="Check only this provider (repeatable); default: every configured one.",
)
@click.option("--json", "as_json", is_flag=True, help="The outcome as one JSON document.")
@pass_cli
def check(cli: CliContext, since: str, names: tuple[str, ...], as_json: bool) -> None:
    """List one page of the call log, read-only, and say what works and what does not.

    Nothing is written: no cursor, no call (only a rotated OAuth refresh token is kept, as the
    old one no longer works). Exits 1 when the credentials are refused, the host cannot be
    reached or refuses, the answer has the wrong shape, or no record maps; 2 when the settings
    are incomplete.
    """
    from poller.app import build_provider
    from poller.core.provider_check import check_provider
    from poller.domain.windows import Window

    settings = cli.settings
    now = utcnow()
    start = parse_when(since)
    if start >= now:
        raise click.BadParameter("must be in the past", param_hint="--since")
    window = Window(start, now)
    checks = []
    deletion: dict[str, list[str]] = {}
    for name in selected_providers(settings, names):
        adapter = build_provider(settings, name)
        checks.append(check_provider(name, adapter, window))
        if settings.provider_named(name).delete_at_source:
            deletion[name] = _deletion_problems(adapter)
    if as_json:
        documents = [
            {**outcome.to_dict(), **_deletion_document(deletion, outcome.provider)}
            for outcome in checks
        ]
        emit_json(documents[0] if len(documents) == 1 else documents)
    else:
        for outcome in checks:
            click.echo(f"provider {outcome.provider}: {shown(outcome.summary)}")
            if outcome.provider in deletion:
                problems = deletion[outcome.provider] or ["ok"]
                for problem in problems:
                    click.echo(f"provider {outcome.provider}: deletion at the source: {problem}")
    failed = [
        f"provider check failed for {o.provider}: {shown(o.summary)}" for o in checks if not o.ok
    ]
    failed += [
        f"provider check failed for {name}: deletion at the source: {problem}"
        for name, problems in deletion.items()
        for problem in problems
    ]
    if failed:
        raise UserError("\n".join(failed))


def _deletion_problems(adapter: object) -> list[str]:
    """What the provider says would stop its deletes (delete_at_source is on for it)."""
    from poller.ports.provider import ProviderError, SourceDeletionCheck

    if not isinstance(adapter, SourceDeletionCheck):
        return []  # the vendor gives no way to tell before a delete
    try:
        return adapter.deletion_problems()
    except ProviderError as exc:
        return [f"could not be checked: {exc}"]


def _deletion_document(deletion: dict[str, list[str]], name: str) -> dict[str, object]:
    if name not in deletion:
        return {}
    return {"deletion_problems": deletion[name]}
