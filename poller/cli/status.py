"""`siro-poller status`: what is where, what is due, how polling goes, and whether all is well.

A monitoring check as well: it exits 0 while healthy and 1 while degraded (a credential pause,
polling that never succeeded or last succeeded too long ago, no fresh worker heartbeat); see
:mod:`poller.domain.health`. A webhook subscription the vendor disabled is a warning: shown,
but the exit status stays 0, since polling still brings every call.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import click

from poller.cli.output import shown
from poller.cli.root import EXIT_FAILURE, CliContext, emit_json, emit_table, main_group, pass_cli
from poller.domain.clock import human_age, utcnow

if TYPE_CHECKING:
    from poller.domain.health import Health
    from poller.domain.records import StatusSummary
    from poller.domain.retention import TableSizes
    from poller.ports.store import SavedSubscription


def status_document(
    summary: StatusSummary,
    health: Health,
    now: datetime,
    sizes: TableSizes | None = None,
    webhooks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    oldest = summary.oldest_due_at
    return {
        "health": health.to_dict(),
        "pauses": [pause.to_dict() for pause in summary.pauses],
        "counts": summary.counts,
        "total": sum(summary.counts.values()),
        "uploaded_by_attribution": summary.uploaded_by_attribution,
        "due_now": summary.due_now,
        "oldest_due_at": oldest,
        "oldest_due_age_seconds": round((now - oldest).total_seconds(), 3) if oldest else None,
        "cursors": [cursor.to_dict() for cursor in summary.cursors],
        "unmapped": summary.unmapped,
        "unmapped_expired": summary.unmapped_expired,
        "forgotten": summary.forgotten,
        "workers": [worker.to_dict() for worker in summary.workers],
        "database": sizes.to_dict() if sizes is not None else None,
        "webhooks": webhooks or [],
    }


def webhook_entries(
    providers: tuple[str, ...], saved: list[SavedSubscription]
) -> list[dict[str, Any]]:
    """Each enabled webhook's subscription as last saved (state null: never checked)."""
    from poller.ports.store import SavedSubscription

    by_provider = {row.provider: row for row in saved}
    return [
        (by_provider.get(name) or SavedSubscription(name, None)).to_dict() for name in providers
    ]


@main_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (see README).")
@pass_cli
def status(cli: CliContext, as_json: bool) -> None:
    """Counts by state (and of forgotten calls) and uploaded calls by attribution, the oldest
    due row, each provider's cursor, unmapped records, credential pauses, workers and the
    database's size; exits 1 when degraded (a monitoring check)."""
    from poller.domain.health import assess, freshest
    from poller.wiring import health_rules_from_settings

    now = utcnow()
    summary = cli.store.status(now)
    rules = health_rules_from_settings(cli.settings)
    webhooks = webhook_entries(
        rules.webhook_providers,
        cli.store.webhook_subscription_states() if rules.webhook_providers else [],
    )
    health = assess(
        rules,
        now,
        pauses=summary.pauses,
        cursors=summary.cursors,
        last_worker_beat=freshest(summary.workers),
        webhook_states={entry["provider"]: entry["state"] for entry in webhooks},
    )
    document = status_document(summary, health, now, cli.store.table_sizes(), webhooks)
    if as_json:
        emit_json(document)
    else:
        _print(summary, document, now)
    if not health.healthy:
        raise SystemExit(EXIT_FAILURE)


def _print(summary: StatusSummary, document: dict[str, Any], now: datetime) -> None:
    # First: work that waits for a person to fix a credential.
    for pause in summary.pauses:
        click.echo(
            f"PAUSED ({pause.scope}) since {pause.since:%Y-%m-%d %H:%M:%SZ}, "
            f"{human_age(pause.age(now))}: {shown(pause.reason)}"
        )
    if summary.pauses:
        click.echo(
            "  no call fails and no attempt is spent meanwhile; once the credential is fixed "
            "(restart the service after changing a credential file) the work resumes by itself"
        )
        click.echo()
    _print_unmapped(document["unmapped"], document["unmapped_expired"])
    emit_table(
        [[state, count] for state, count in document["counts"].items()]
        + [["total", document["total"]]],
        headers=["state", "calls"],
    )
    _print_forgotten(document["forgotten"])
    click.echo()
    _print_attribution(document["uploaded_by_attribution"])
    if document["due_now"]:
        age = document["oldest_due_age_seconds"]
        since = f", oldest due for {human_age(timedelta(seconds=age))}" if age is not None else ""
        click.echo(f"due now: {document['due_now']}{since}")
    else:
        click.echo("due now: 0")
    click.echo()
    if not document["cursors"]:
        click.echo("polling: never ran")
    else:
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
    click.echo()
    if summary.workers:
        newest = summary.workers[0]
        click.echo(
            f"workers: last heartbeat {human_age(now - newest.beat_at)} ago ({shown(newest.owner)})"
        )
    else:
        click.echo("workers: none has reported a heartbeat")
    _print_webhooks(document["webhooks"], now)
    _print_sizes(document["database"])
    health = document["health"]
    if health["healthy"]:
        click.echo("health: ok")
    else:
        click.echo("health: degraded")
        for reason in health["reasons"]:
            click.echo(f"  - {shown(reason['message'])}")
    for warning in health["warnings"]:
        click.echo(f"  warning: {shown(warning['message'])}")


def _print_webhooks(webhooks: list[dict[str, Any]], now: datetime) -> None:
    # One line per enabled webhook: a lost subscription hides behind polling otherwise.
    for entry in webhooks:
        last = entry["last_event_at"]
        arrived = f"last event {human_age(now - last)} ago" if last else "no event yet"
        click.echo(
            f"webhooks: {entry['provider']} subscription {entry['state'] or 'never checked'}, "
            f"{arrived}"
        )


def _print_attribution(by_kind: dict[str, int]) -> None:
    # How each uploaded call found its rep: many fallback_* or none beside siro_* is the
    # pattern of reps Siro does not know (or of a mapping gone wrong).
    found = [[kind, count] for kind, count in by_kind.items() if count]
    if not found:
        return
    emit_table(found, headers=["uploaded by attribution", "calls"])
    click.echo("  the calls of one kind: `siro-poller calls list --attribution KIND`")
    click.echo()


def _print_sizes(database: dict[str, Any] | None) -> None:
    # What retention keeps the database to ([retention]; `siro-poller db prune` runs a pass).
    if database is None:
        return
    size = database["database_bytes"]
    shown_size = f"{size / 1_048_576:.1f} MB" if size is not None else "size unknown"
    rows = ", ".join(f"{table} {count}" for table, count in database["rows"].items())
    click.echo(f"database: {shown_size}; rows: {rows}")


def _print_forgotten(forgotten: dict[str, int]) -> None:
    # Counted in the states above too: an operator reading "skipped 40" should see why.
    for provider, count in forgotten.items():
        click.echo(
            f"forgotten: {count} call(s) of {provider} erased by `calls forget` (tombstones: "
            "never listed or uploaded again; counted in their states above)"
        )


def _print_unmapped(unmapped: dict[str, int], expired: dict[str, int]) -> None:
    # A record that fails mapping is a call that is not going to Siro.
    for provider, count in unmapped.items():
        click.echo(
            f"unmapped: {count} record(s) of {provider} failed the field mapping and are not "
            "calls yet; see `siro-poller calls unmapped`"
        )
    for provider, count in expired.items():
        click.echo(
            f"unmapped: {count} record(s) of {provider} expired without ever mapping "
            "(see [retention]); their raw text is gone"
        )
    if unmapped or expired:
        click.echo()
