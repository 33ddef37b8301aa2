"""`siro-poller source ...`: deletion of recordings at the phone system (opt-in per provider).

`source pause` and `source resume` stop and restart every process's deletions through the
state database, without a restart; `source purge` shows (--dry-run) or does now what the
daemon's deletion turns do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from poller.cli.calls import operator
from poller.cli.output import shown
from poller.cli.root import CliContext, UserError, emit_json, main_group, pass_cli
from poller.domain.clock import utcnow

if TYPE_CHECKING:
    from poller.core.source_deletion import PlannedRow, SourceDeletionJob


@main_group.group("source")
def source_group() -> None:
    """Delete recordings at the phone system once Siro holds them (opt-in per provider)."""


def _deletions(cli: CliContext) -> SourceDeletionJob:
    from poller.app import build_source_deletion

    return build_source_deletion(cli.settings, cli.store)


@source_group.command("pause")
@click.option("--reason", default="paused from the command line", help="Why, for the record.")
@pass_cli
def pause(cli: CliContext, reason: str) -> None:
    """Stop every deletion at the source now, in every process, until `source resume`."""
    from poller.adapters.sql.source_deletions import SqlSourceDeletions

    held = SqlSourceDeletions(cli.store.engine).pause_deletion(utcnow(), operator(), reason)
    click.echo(
        f"deletion at the source is paused (since {held.since.isoformat()}, by {shown(held.actor)})"
        "; running daemons stop before their next delete"
    )


@source_group.command("resume")
@pass_cli
def resume(cli: CliContext) -> None:
    """Let deletion at the source go on after `source pause`."""
    from poller.adapters.sql.source_deletions import SqlSourceDeletions

    ended = SqlSourceDeletions(cli.store.engine).resume_deletion()
    if ended is None:
        click.echo("deletion at the source was not paused")
        return
    click.echo(f"deletion at the source resumed (it was paused by {shown(ended.actor)})")


@source_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@pass_cli
def status(cli: CliContext, as_json: bool) -> None:
    """Whether deletion at the source is on, paused, and how many calls are in each state."""
    from poller.adapters.sql.source_deletions import SqlSourceDeletions
    from poller.wiring import source_deletion_params_from_settings

    params = source_deletion_params_from_settings(cli.settings)
    deletions = SqlSourceDeletions(cli.store.engine)
    pause = deletions.deletion_paused()
    counts = deletions.deletion_counts()
    if as_json:
        emit_json(
            {
                "enabled": params.enabled,
                "providers": {
                    name: grace.total_seconds() / 86400
                    for name, grace in params.grace_by_provider.items()
                },
                "paused": None
                if pause is None
                else {"since": pause.since, "actor": pause.actor, "reason": pause.reason},
                "counts": counts,
            }
        )
        return
    if not params.enabled:
        click.echo("deletion at the source: off ([source_deletion] enabled = false)")
    elif not params.grace_by_provider:
        click.echo("deletion at the source: off (no provider has delete_at_source = true)")
    else:
        providers = ", ".join(
            f"{name} (grace {grace.total_seconds() / 86400:g} days)"
            for name, grace in params.grace_by_provider.items()
        )
        click.echo(f"deletion at the source: on for {providers}")
    if pause is not None:
        click.echo(
            f"paused since {pause.since.isoformat()} by {shown(pause.actor)}: {shown(pause.reason)}"
        )
    for state in ("deleted", "pending", "refused", "failed"):
        click.echo(f"{state}: {counts.get(state, 0)}")


@source_group.command("purge")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Only list what would be deleted now, and why each other uploaded call would not.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: one JSON document.")
@pass_cli
def purge(cli: CliContext, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Delete now, at the phone system, every recording the safety rules let go.

    The rules are the daemon's: the provider opted in (delete_at_source), deletion is on and
    not paused, the call is uploaded, never replayed nor matched by title alone, its grace
    period has passed, and Siro, read back, holds the recording. --dry-run reads Siro but
    changes nothing.
    """
    job = _deletions(cli)
    if dry_run:
        planned = job.plan()
        if as_json:
            emit_json([_document(row) for row in planned])
            return
        _print_plan(planned)
        return
    if as_json:
        raise UserError("--json goes with --dry-run")
    if not job.params.enabled:
        raise UserError("[source_deletion] enabled is false: nothing is deleted")
    if not job.grace_by_provider():
        raise UserError("no provider has delete_at_source = true: nothing is deleted")
    if job.store.deletion_paused() is not None:
        raise UserError("deletion at the source is paused: `siro-poller source resume` first")
    if not yes:
        click.confirm(
            "Delete, at the phone system, every recording the rules let go? This cannot be undone",
            abort=True,
        )
    report = job.run_until_done()
    click.echo(f"deletion at the source: {report.summary()}")


def _document(row: PlannedRow) -> dict[str, object]:
    candidate, verdict = row.candidate, row.verdict
    return {
        "call_id": candidate.call_id,
        "provider": candidate.provider,
        "provider_call_id": candidate.provider_call_id,
        "siro_recording_id": candidate.siro_recording_id,
        "would_delete": verdict.eligible,
        "hold": verdict.hold.value if verdict.hold else None,
        "detail": verdict.detail,
    }


def _print_plan(planned: list[PlannedRow]) -> None:
    going = [row for row in planned if row.verdict.eligible]
    kept = [row for row in planned if not row.verdict.eligible]
    click.echo(f"{len(going)} recording(s) would be deleted now; {len(kept)} kept")
    for row in going:
        candidate = row.candidate
        click.echo(
            f"delete  call {candidate.call_id} ({candidate.provider} "
            f"{shown(candidate.provider_call_id)}): {shown(row.verdict.detail)}"
        )
    for row in kept:
        candidate, verdict = row.candidate, row.verdict
        hold = verdict.hold.value if verdict.hold else "?"
        click.echo(
            f"keep    call {candidate.call_id} ({candidate.provider} "
            f"{shown(candidate.provider_call_id)}): {hold}: {shown(verdict.detail)}"
        )
