"""`siro-poller poll`: run one poll cycle now, or show what it would do."""

from __future__ import annotations

from datetime import datetime

import click

from poller.app import build_provider
from poller.cli.backfill import backfill
from poller.cli.output import shown
from poller.cli.root import (
    CliContext,
    UserError,
    emit_json,
    emit_table,
    main_group,
    pass_cli,
    selected_providers,
)
from poller.core.poll import PollReport, poll_once
from poller.domain.clock import utcnow
from poller.wiring import poll_params_from_settings


@main_group.command("poll")
@click.option("--dry-run", is_flag=True, help="List the provider, change nothing; print the plan.")
@click.option("--json", "as_json", is_flag=True, help="The report as one JSON document.")
@click.option(
    "--provider",
    "names",
    multiple=True,
    metavar="NAME",
    help="Poll only this provider (repeatable); default: every configured one.",
)
@click.option("--since", help="With --until: list this past range instead (as `backfill`).")
@click.option("--until", help="End of the past range (exclusive); see `backfill --help`.")
@pass_cli
def poll(
    cli: CliContext,
    dry_run: bool,
    as_json: bool,
    names: tuple[str, ...],
    since: str | None,
    until: str | None,
) -> None:
    """List the call log since the cursor and insert or update the calls found.

    With several providers configured, each is polled in turn and --json prints a list of
    reports. Exits 1 when listing failed part-way for any of them (what was read is kept; the
    cursor stays before the failure) and 2 when a provider's settings are incomplete.

    With --since and --until, lists that past range instead, without moving the cursor:
    the same as `siro-poller backfill` (resumable, with its summary).
    """
    if since is not None or until is not None:
        if since is None or until is None or dry_run:
            raise click.UsageError("poll --since needs --until (and no --dry-run): a backfill")
        click.get_current_context().invoke(
            backfill, since=since, until=until, names=names, as_json=as_json
        )
        return
    settings = cli.settings
    chosen = selected_providers(settings, names)
    providers = [(name, build_provider(settings, name)) for name in chosen]
    reports = [
        poll_once(
            poll_params_from_settings(settings, name),
            provider,
            cli.store,
            utcnow(),
            dry_run=dry_run,
        )
        for name, provider in providers
    ]
    if as_json:
        documents = [report.to_dict() for report in reports]
        emit_json(documents[0] if len(documents) == 1 else documents)
    else:
        for report in reports:
            _print(report)
    failed = [report for report in reports if report.error]
    if failed:
        raise UserError(
            "\n".join(
                f"poll failed for {report.provider}: {shown(report.error)}" for report in failed
            )
        )


def _print(report: PollReport) -> None:
    window = f"{report.window}" if report.window else "nothing to list yet"
    click.echo(f"provider {report.provider}: window {window}")
    listed = f"{report.pages} page(s), {report.listed} call(s) listed"
    if report.malformed_count:
        kept = "would be kept" if report.dry_run else "were kept"
        listed += (
            f", {report.malformed_count} record(s) failed mapping and {kept} "
            "(siro-poller calls unmapped)"
        )
    click.echo(listed)
    if report.remapped:
        went = "would go in" if report.dry_run else "went in"
        click.echo(f"{report.remapped} record(s) kept as unmapped before map now and {went}")
    if report.changes:
        click.echo()
        emit_table(
            [
                [
                    change.action.value,
                    change.provider_call_id,
                    change.call_id,
                    change.from_state.value if change.from_state else None,
                    change.to_state.value,
                    change.message,
                ]
                for change in report.changes
            ],
            headers=["action", "call", "id", "from", "to", "why"],
        )
    click.echo()
    counts = {name: count for name, count in sorted(report.counts.items()) if count}
    summary = ", ".join(f"{name} {count}" for name, count in counts.items()) or "no changes"
    click.echo(f"{'would change' if report.dry_run else 'changed'}: {summary}")
    if report.expired:
        click.echo(
            f"{'would skip' if report.dry_run else 'skipped'} {len(report.expired)} call(s) "
            "still without a recording: "
            + ", ".join(shown(call_id) for call_id in report.expired[:10])
            + (" ..." if len(report.expired) > 10 else "")
        )
    moved = f"cursor: {_when(report.cursor_before)} -> {_when(report.cursor_after)}"
    click.echo(moved + (" (dry run: not moved)" if report.dry_run else ""))


def _when(value: datetime | None) -> str:
    return "never" if value is None else value.isoformat().replace("+00:00", "Z")
