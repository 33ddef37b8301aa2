"""`siro-poller poll`: run one poll cycle now, or show what it would do.

A catch-up may touch a hundred thousand calls: the table shows the first
:data:`SHOWN_CHANGES` and counts the rest, and --json writes each change as it is made.
Neither holds every change, so memory stays flat whatever the number of calls.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import click

from poller.cli.backfill import backfill
from poller.cli.output import shown
from poller.cli.root import (
    CliContext,
    UserError,
    emit_table,
    json_text,
    main_group,
    pass_cli,
    selected_providers,
)
from poller.domain.clock import utcnow

if TYPE_CHECKING:
    from poller.core.poll_report import PollReport
    from poller.domain.ingest import IngestChange

# The changes a poll prints as a table; the others are counted ("N more; --json for all").
SHOWN_CHANGES = 20


@main_group.command("poll")
@click.option("--dry-run", is_flag=True, help="List the provider, change nothing; print the plan.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="The report as one JSON document, every change in it, written as the poll goes.",
)
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
    from poller.app import build_provider
    from poller.core.poll import poll_once
    from poller.wiring import poll_params_from_settings

    settings = cli.settings
    chosen = selected_providers(settings, names)
    providers = [(name, build_provider(settings, name)) for name in chosen]
    store = cli.store  # opened before any output: a schema to upgrade is one clean error
    stream = JsonReports(several=len(providers) > 1) if as_json else None
    reports: list[PollReport] = []
    for name, provider in providers:
        if stream is not None:
            stream.begin()
        report = poll_once(
            poll_params_from_settings(settings, name),
            provider,
            store,
            utcnow(),
            dry_run=dry_run,
            keep_changes=0 if stream is not None else SHOWN_CHANGES,
            on_change=stream.change if stream is not None else None,
        )
        if stream is not None:
            stream.end(report)
        else:
            _print(report)
        reports.append(report)
    if stream is not None:
        stream.finish()
    failed = [report for report in reports if report.error]
    if failed:
        raise UserError(
            "\n".join(
                f"poll failed for {report.provider}: {shown(report.error)}" for report in failed
            )
        )


class JsonReports:
    """`poll --json` as the poll goes: the document `emit_json` would print for the reports
    (one, or a list of several), each change written as it is made instead of gathered."""

    def __init__(self, *, several: bool) -> None:
        self.several = several
        self.depth = 1 if several else 0  # the indent level of a report's braces
        self.reports = 0
        self.changes = 0
        if several:
            self._write("[")

    def begin(self) -> None:
        """A report's document opens; its changes come first (its other keys need the end)."""
        before = ("," if self.reports else "") + ("\n" + self._pad(1) if self.several else "")
        self._write(f'{before}{{\n{self._pad(self.depth + 1)}"changes": [')
        self.changes = 0

    def change(self, change: IngestChange) -> None:
        from poller.core.poll_report import change_document

        pad = self._pad(self.depth + 2)
        text = json_text(change_document(change)).replace("\n", "\n" + pad)
        self._write(("," if self.changes else "") + "\n" + pad + text)
        self.changes += 1

    def end(self, report: PollReport) -> None:
        """The report's other keys, in the order `emit_json` sorts them ("changes" is first)."""
        document = report.to_dict()
        del document["changes"]
        rest = json_text(document).removeprefix("{")  # "\n  \"counts\": ...\n}"
        closing = "\n" + self._pad(self.depth + 1) + "]" if self.changes else "]"
        self._write(closing + "," + rest.replace("\n", "\n" + self._pad(self.depth)))
        self.reports += 1

    def finish(self) -> None:
        self._write("\n]\n" if self.several else "\n")

    @staticmethod
    def _pad(depth: int) -> str:
        return "  " * depth

    @staticmethod
    def _write(text: str) -> None:
        click.echo(text, nl=False)


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
        more = report.changed - len(report.changes)
        if more:
            click.echo(f"{more} more; --json for all")
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
