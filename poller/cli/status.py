"""`siro-poller status`: what is where, what is due, and how polling goes."""

from __future__ import annotations

from typing import Any

import click

from poller.cli.root import CliContext, emit_json, emit_table, main_group, pass_cli
from poller.domain.clock import utcnow
from poller.domain.records import StatusSummary


def status_document(summary: StatusSummary) -> dict[str, Any]:
    now = utcnow()
    oldest = summary.oldest_due_at
    return {
        "counts": summary.counts,
        "total": sum(summary.counts.values()),
        "due_now": summary.due_now,
        "oldest_due_at": oldest,
        "oldest_due_age_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
        "cursors": [cursor.to_dict() for cursor in summary.cursors],
        "unmapped": summary.unmapped,
    }


@main_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (see README).")
@pass_cli
def status(cli: CliContext, as_json: bool) -> None:
    """Counts by state, the oldest due row, each provider's cursor, and unmapped records."""
    document = status_document(cli.store.status(utcnow()))
    if as_json:
        emit_json(document)
        return
    _print_unmapped(document["unmapped"])
    emit_table(
        [[state, count] for state, count in document["counts"].items()]
        + [["total", document["total"]]],
        headers=["state", "calls"],
    )
    click.echo()
    if document["due_now"]:
        age = document["oldest_due_age_seconds"]
        since = f", oldest due for {_age(age)}" if age is not None else ""
        click.echo(f"due now: {document['due_now']}{since}")
    else:
        click.echo("due now: 0")
    click.echo()
    if not document["cursors"]:
        click.echo("polling: never ran")
        return
    emit_table(
        [
            [
                c["provider"],
                c["cursor_value"],
                c["last_polled_at"],
                c["last_success_at"],
                c["last_error"],
            ]
            for c in document["cursors"]
        ],
        headers=["provider", "listed up to", "last poll", "last success", "last error"],
    )


def _print_unmapped(unmapped: dict[str, int]) -> None:
    # First: a record that fails mapping is a call that is not going to Siro.
    for provider, count in unmapped.items():
        click.echo(
            f"unmapped: {count} record(s) of {provider} failed the field mapping and are not "
            "calls yet; see `siro-poller calls unmapped`"
        )
    if unmapped:
        click.echo()


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
