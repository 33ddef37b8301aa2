"""`siro-poller calls forget` and `calls export`: erasure and the audit export.

The rules are in poller/domain/erasure.py and poller/core/audit_export.py; these commands
choose, confirm and print. docs/operations/data-lifecycle.md says when to use which.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import click

from poller.cli.calls import calls_group, operator
from poller.cli.output import shown
from poller.cli.root import CliContext, UserError, emit_table, parse_when, pass_cli

if TYPE_CHECKING:
    from poller.domain.erasure import ForgetOutcome, ForgetSelection


@calls_group.command("forget")
@click.option(
    "--call-id",
    "references",
    multiple=True,
    metavar="ID|PROVIDER_CALL_ID",
    help="Forget this call (repeatable).",
)
@click.option(
    "--contact-phone",
    metavar="PHONE",
    help="Forget every call with this contact number, in any spelling "
    "(read with siro.phone_default_region).",
)
@click.option(
    "--email",
    metavar="EMAIL",
    help="Forget every call whose provider record holds this contact email (not the rep's).",
)
@click.option(
    "--before",
    metavar="WHEN",
    help="Forget every call started before: ISO 8601, or an age like 90d.",
)
@click.option(
    "--replay-ledger",
    "ledger",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Forget again every forgotten call of this `calls export --format jsonl` file "
    "(after restoring a backup); a call with no row gets a tombstone.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be erased, change nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--by", "actor", metavar="NAME", help="Who asked, for the audit log (default: you).")
@pass_cli
def forget(
    cli: CliContext,
    references: tuple[str, ...],
    contact_phone: str | None,
    email: str | None,
    before: str | None,
    ledger: Path | None,
    dry_run: bool,
    yes: bool,
    actor: str | None,
) -> None:
    """Erase a data subject's personal data from the state database, for good.

    The contact's name and number, the title, the raw provider record and the recording's
    URLs are erased, with the spool file, and every mention in the call's events; the call
    stays as a tombstone, so it is never listed or uploaded again. What Siro still holds is
    printed: it must be deleted there.
    """
    from poller.core.erasure import forget as run_forget
    from poller.core.erasure import missing_keys, plan_forget
    from poller.core.spool_sweep import remove_call_files
    from poller.domain.clock import utcnow
    from poller.domain.erasure import (
        ForgetSelection,
        ledger_keys,
        siro_instructions,
        source_instructions,
    )
    from poller.domain.phones import to_e164
    from poller.wiring import source_deletion_params_from_settings

    region = cli.settings.siro.phone_default_region
    phone = None
    if contact_phone is not None:
        phone = to_e164(contact_phone, region)
        if phone is None:
            raise click.BadParameter(
                f"{contact_phone!r} is not a phone number (siro.phone_default_region is {region})",
                param_hint="'--contact-phone'",
            )
    if email is not None and "@" not in email.strip("@"):
        raise click.BadParameter(f"{email!r} is not an email address", param_hint="'--email'")
    keys: tuple[tuple[str, str], ...] = ()
    if ledger is not None:
        try:
            with ledger.open(encoding="utf-8") as lines:
                keys = ledger_keys(lines)
        except ValueError as exc:
            raise click.BadParameter(f"{ledger}: {exc}", param_hint="'--replay-ledger'") from None
    selection = ForgetSelection(
        references=references,
        contact_phone=phone,
        email=email.strip() if email else None,
        before=parse_when(before) if before else None,
        keys=keys,
    )
    if selection.empty:
        if ledger is not None:
            click.echo(f"{ledger} holds no forgotten call: nothing to forget")
            return
        raise click.UsageError(
            "choose calls: --call-id, --contact-phone, --email, --before or --replay-ledger"
        )
    store = cli.store
    planned = plan_forget(store, selection, region)
    _check_references(selection, planned)
    # Records that failed mapping and quote the subject, with no call of theirs.
    unmapped = store.forget_unmapped(selection, utcnow(), region, dry_run=True)
    absent = missing_keys(selection, planned)
    if not planned and not unmapped and not absent:
        click.echo("no call matches: nothing to forget")
        return
    if planned:
        _show_plan(planned)
    what = _calls(len(planned)) + (f" and empty {_records(unmapped)}" if unmapped else "")
    if absent:
        what += f" and add {len(absent)} tombstones for ledger calls with no row"
    if dry_run:
        click.echo(f"would forget {what}; dry run: nothing changed")
        return
    if not yes:
        click.confirm(f"Forget {what}? This cannot be undone.", abort=True)
    spool = cli.settings.spool_dir
    report = run_forget(
        store,
        selection,
        utcnow(),
        actor=actor or operator(),
        default_region=region,
        remove_files=lambda call_id, path: remove_call_files(spool, call_id, path),
        planned=planned,
    )
    click.echo(
        f"forgot {_calls(len(report.outcomes))}; spool files removed: "
        f"{report.spool_files_removed}; other unmapped records emptied: "
        f"{report.unmapped_emptied}"
        + (f"; tombstones added: {report.tombstones_added}" if selection.keys else "")
    )
    if report.compaction:
        click.echo(f"database: {report.compaction}")
    instructions = [line for o in report.outcomes for line in siro_instructions(o)]
    if instructions:
        click.echo("\nwhat Siro still holds:")
        for line in instructions:
            click.echo(f"  {shown(line)}")
    deletion = source_deletion_params_from_settings(cli.settings)
    at_source = source_instructions(
        report.outcomes, enabled=deletion.enabled, grace_by_provider=deletion.grace_by_provider
    )
    if at_source:
        click.echo("\nwhat the phone system still holds:")
        for line in at_source:
            click.echo(f"  {shown(line)}")


def _calls(count: int) -> str:
    return f"{count} call{'s' if count != 1 else ''}"


def _records(count: int) -> str:
    return f"{count} unmapped record{'s' if count != 1 else ''} that quote the subject"


def _check_references(selection: ForgetSelection, planned: list[ForgetOutcome]) -> None:
    found = {str(o.call_id) for o in planned} | {o.provider_call_id for o in planned}
    unknown = [ref for ref in selection.references if ref not in found]
    if unknown:
        raise UserError(
            "no call with id or provider call id "
            + ", ".join(repr(ref) for ref in unknown)
            + ": nothing was forgotten"
        )


def _show_plan(planned: list[ForgetOutcome]) -> None:
    emit_table(
        [
            [
                o.call_id,
                o.provider,
                o.provider_call_id,
                o.state_before.value,
                "yes" if o.already_forgotten else "",
                ", ".join(o.erased_columns) or "-",
                o.siro_recording_id or ("maybe" if o.siro_may_hold else ""),
            ]
            for o in planned
        ],
        headers=["id", "provider", "call", "state", "forgotten", "erases", "in Siro"],
    )


@calls_group.command("export")
@click.option("--since", required=True, help="Calls started at or after: ISO 8601 or an age.")
@click.option("--until", help="Calls started before: ISO 8601 or an age (default: now).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="jsonl: a call a line, events nested; csv: a call a row, events as JSON in a column.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    help="Write to this file (created private to you); default: standard output.",
)
@click.option(
    "--include-personal",
    is_flag=True,
    help="Also the contact's and the rep's names, numbers and emails, and the titles.",
)
@pass_cli
def export(
    cli: CliContext,
    since: str,
    until: str | None,
    output_format: str,
    output: str | None,
    include_personal: bool,
) -> None:
    """The calls of a period with their states, attempts, errors, Siro recording ids and
    events, for an audit; streamed, never a secret or a signed URL.

    Personal fields are left out unless --include-personal: an export leaves the database's
    access control behind, and an audit of what happened to each call needs none of them.
    """
    from poller.core.audit_export import export_lines

    start = parse_when(since)
    end = parse_when(until) if until else None
    if end is not None and end <= start:
        raise click.BadParameter("--until must be after --since", param_hint="'--until'")
    rows = cli.store.export_calls(start, end)
    lines = export_lines(
        rows,
        output_format,
        include_personal=include_personal,
        default_region=cli.settings.siro.phone_default_region,
    )
    count = 0
    with _opened(output) as out:
        for line in lines:
            out.write(line)
            count += 1
    calls = count - (1 if output_format == "csv" else 0)
    click.echo(f"exported {_calls(calls)}" + (f" to {output}" if output else ""), err=True)


class _opened:
    """``path`` opened for writing, readable by its owner only; standard output without one."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.file: TextIO | None = None

    def __enter__(self) -> TextIO:
        if self.path is None:
            return sys.stdout
        descriptor = os.open(Path(self.path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self.file = os.fdopen(descriptor, "w", encoding="utf-8", newline="")
        return self.file

    def __exit__(self, *_: object) -> None:
        if self.file is not None:
            self.file.close()
