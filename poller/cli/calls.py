"""`siro-poller calls ...`: list, inspect and requeue call rows.

`calls list` and `calls retry` take the same selectors (:func:`call_selectors`): --state,
--error-kind, --since and --attribution, each meaning the same on both.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from poller.cli.output import shown
from poller.cli.root import (
    CliContext,
    LazyChoice,
    UserError,
    emit_json,
    emit_table,
    main_group,
    parse_when,
    pass_cli,
)
from poller.domain.clock import utcnow
from poller.domain.states import REQUEUEABLE_STATES, CallState

if TYPE_CHECKING:
    from poller.domain.records import Call, UnmappedRecord
    from poller.domain.transitions import RequeueSelection

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
STATE_CHOICE = click.Choice([state.value for state in CallState])
REQUEUEABLE_CHOICE = click.Choice(sorted(state.value for state in REQUEUEABLE_STATES))


def _attribution_kinds() -> tuple[str, ...]:
    from poller.domain.attribution import ATTRIBUTION_KINDS

    return ATTRIBUTION_KINDS


ATTRIBUTION_CHOICE = LazyChoice(_attribution_kinds)


def call_selectors(states: click.Choice[str], state_help: str) -> Callable[[F], F]:
    """The options that choose calls, the same on `calls list` and `calls retry`."""

    def decorate(command: F) -> F:
        for option in reversed(
            [
                click.option("--state", type=states, help=state_help),
                click.option(
                    "--error-kind",
                    metavar="KIND",
                    help="Only calls with this error_kind (`calls list` shows them).",
                ),
                click.option(
                    "--since",
                    help="Only calls started at or after: ISO 8601, or an age like 6h, 2d.",
                ),
                click.option(
                    "--attribution",
                    type=ATTRIBUTION_CHOICE,
                    help="Only calls whose rep was found so (none: no attribution recorded).",
                ),
            ]
        ):
            command = option(command)
        return command

    return decorate


def check_error_kind(cli: CliContext, kind: str | None) -> None:
    """Exit 2 when ``kind`` is no error kind this version records and no call holds it: a typo,
    not an empty selection. Asked only once a selection came back empty, so a selection that
    matches costs no extra query."""
    from poller.domain.error_kinds import error_kind

    if kind is None or error_kind(kind) is not None:
        return
    held = cli.store.error_kinds()
    if kind in held:  # recorded by an earlier version
        return
    listed = ", ".join(f"{name} ({count})" for name, count in held.items())
    raise click.BadParameter(
        f"{kind!r} is no error kind siro-poller records; "
        + (f"the kinds calls have: {listed}" if held else "no call has an error kind yet"),
        param_hint="'--error-kind'",
    )


def listed_call(call: Call) -> dict[str, Any]:
    """A call as `calls list --json` prints it: every column except the bulky raw record."""
    document = call.to_dict()
    document.pop("raw")
    return document


@main_group.group("calls")
def calls_group() -> None:
    """Inspect and requeue calls."""


@calls_group.command("list")
@call_selectors(STATE_CHOICE, "Only calls in this state.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option(
    "--offset", type=click.IntRange(min=0), default=0, help="Pass over this many newest calls."
)
@click.option("--json", "as_json", is_flag=True, help="A JSON array (see README).")
@pass_cli
def list_calls(
    cli: CliContext,
    state: str | None,
    error_kind: str | None,
    since: str | None,
    attribution: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """The newest calls first, with how each one's rep was attributed."""
    rows = cli.store.list_calls(
        state=CallState(state) if state else None,
        error_kind=error_kind,
        since=parse_when(since) if since else None,
        attribution=attribution,
        limit=limit + 1,  # one more than shown tells whether more exist
        offset=offset,
    )
    if not rows:
        check_error_kind(cli, error_kind)
    rows = _within(
        rows,
        limit,
        "calls",
        "narrow with --state, --error-kind, --since or --attribution, or go on with "
        f"--offset {offset + limit}",
    )
    if as_json:
        emit_json([listed_call(row) for row in rows])
        return
    if not rows:
        click.echo("no calls" if offset == 0 else f"no calls after the first {offset}")
        return
    emit_table(
        [
            [
                row.id,
                row.provider,
                row.provider_call_id,
                row.state.value,
                row.attempts,
                row.started_at,
                row.rep_email or row.rep_phone or row.rep_provider_id,
                row.attribution,
                row.next_attempt_at if not row.state.is_terminal else None,
                _short(row.error_kind, row.last_error),
            ]
            for row in rows
        ],
        headers=[
            "id",
            "provider",
            "call",
            "state",
            "tries",
            "started",
            "rep",
            "found by",
            "next try",
            "error",
        ],
    )


def _within(rows: list[T], limit: int, what: str, narrow: str) -> list[T]:
    """The first ``limit`` rows; when there were more, says so on stderr (stdout, table or
    JSON, stays what a script reads)."""
    if len(rows) <= limit:
        return rows
    click.echo(
        f"siro-poller: showing the first {limit} {what}; more exist: raise --limit or {narrow}",
        err=True,
    )
    return rows[:limit]


def _short(kind: str | None, message: str | None, width: int = 60) -> str:
    text = ": ".join(part for part in (kind, message) if part)
    return text if len(text) <= width else text[: width - 1] + "…"


def resolve(cli: CliContext, reference: str) -> Call:
    matches = cli.store.find_calls(reference)
    if not matches:
        raise UserError(f"no call with id or provider call id {reference!r}")
    if len(matches) > 1:
        listed = ", ".join(f"{c.id} ({c.provider})" for c in matches)
        raise UserError(f"{reference!r} matches several calls: {listed}; give the numeric id")
    return matches[0]


@calls_group.command("show")
@click.argument("reference", metavar="ID|PROVIDER_CALL_ID")
@click.option("--json", "as_json", is_flag=True, help="The row and its events as JSON.")
@pass_cli
def show(cli: CliContext, reference: str, as_json: bool) -> None:
    """One call: every column, then its audit log."""
    call = resolve(cli, reference)
    events = cli.store.events_for(call.id)
    if as_json:
        emit_json({"call": call.to_dict(), "events": [event.to_dict() for event in events]})
        return
    document = call.to_dict()
    raw = document.pop("raw")
    emit_table([[key, value] for key, value in document.items()], headers=["column", "value"])
    if raw is not None:
        import json

        click.echo("\nraw provider record:")
        click.echo(json.dumps(raw, indent=2, sort_keys=True))
    click.echo(f"\nevents ({len(events)}):")
    if events:
        emit_table(
            [
                [
                    e.at,
                    e.step,
                    e.outcome,
                    e.from_state,
                    e.to_state,
                    e.http_status,
                    e.duration_ms,
                    e.message,
                ]
                for e in events
            ],
            headers=["at", "step", "outcome", "from", "to", "http", "ms", "message"],
        )


@calls_group.command("retry")
@click.argument("reference", metavar="ID|PROVIDER_CALL_ID", required=False)
@call_selectors(REQUEUEABLE_CHOICE, "Only calls in this state (default: failed or skipped).")
# The spellings before --state, kept for the scripts that use them.
@click.option("--failed", is_flag=True, hidden=True, help="Same as --state failed.")
@click.option("--skipped", is_flag=True, hidden=True, help="Same as --state skipped.")
@click.option("--dry-run", is_flag=True, help="List what would be requeued, change nothing.")
@pass_cli
def retry(
    cli: CliContext,
    reference: str | None,
    state: str | None,
    error_kind: str | None,
    since: str | None,
    attribution: str | None,
    failed: bool,
    skipped: bool,
    dry_run: bool,
) -> None:
    """Put a failed or skipped call, or every one the selectors match, back in the queue.

    The selectors combine as on `calls list`: --state chooses failed or skipped calls (both
    without it), --error-kind, --since and --attribution narrow them. Requeued calls are due
    now, with a fresh attempt budget.
    """
    from poller.domain.transitions import RequeueSelection
    from poller.ports.store import NotRequeueable

    chosen_states = {CallState(state)} if state else set()
    chosen_states |= {CallState.FAILED} if failed else set()
    chosen_states |= {CallState.SKIPPED} if skipped else set()
    narrowing = (error_kind, since, attribution)
    selecting = bool(chosen_states) or any(value is not None for value in narrowing)
    if bool(reference) == selecting:
        raise click.UsageError(
            "give either one call ID or selectors (--state, --error-kind, --since, --attribution)"
        )
    if reference is None:
        selection = RequeueSelection(
            states=frozenset(chosen_states) or REQUEUEABLE_STATES,
            error_kind=error_kind,
            since=parse_when(since) if since else None,
            attribution=attribution,
        )
        _retry_selected(cli, selection, dry_run)
        return
    call = resolve(cli, reference)
    if dry_run:
        if call.state not in REQUEUEABLE_STATES:
            raise UserError(
                f"call {call.id} is {call.state}; only failed or skipped calls can be retried"
            )
        click.echo(f"would requeue call {call.id} ({call.provider} {shown(call.provider_call_id)})")
        return
    try:
        cli.store.requeue(call.id, utcnow(), actor=operator())
    except NotRequeueable as exc:
        raise UserError(str(exc)) from None
    click.echo(
        f"requeued call {call.id} ({call.provider} {shown(call.provider_call_id)}), "
        f"was {call.state}"
    )


def _retry_selected(cli: CliContext, selection: RequeueSelection, dry_run: bool) -> None:
    chosen = cli.store.requeue_matching(selection, utcnow(), actor=operator(), dry_run=dry_run)
    if not chosen:
        check_error_kind(cli, selection.error_kind)
    described = " or ".join(sorted(state.value for state in selection.states))
    if selection.error_kind:
        described += f", error kind {selection.error_kind}"
    if selection.since:
        described += f", started since {_minute(selection.since)}"
    if selection.attribution:
        described += f", found by {selection.attribution}"
    counted = f"{len(chosen)} call{'s' if len(chosen) != 1 else ''} ({described})"
    if not dry_run:
        click.echo(f"requeued {counted}")
        return
    click.echo(f"would requeue {counted}; dry run: nothing changed")
    if chosen:
        emit_table(
            [
                [
                    c.id,
                    c.provider,
                    c.provider_call_id,
                    c.state.value,
                    c.started_at,
                    _short(c.error_kind, c.last_error),
                ]
                for c in chosen
            ],
            headers=["id", "provider", "call", "state", "started", "error"],
        )


def operator() -> str:
    """Who runs the command, for the call's events."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        user = f"uid {os.getuid()}"
    return f"{user} (cli)"


@calls_group.command("replay")
@click.argument("reference", metavar="ID|PROVIDER_CALL_ID")
@click.option(
    "--allow-duplicate",
    is_flag=True,
    help="Yes, upload it again: Siro will hold the call twice.",
)
@pass_cli
def replay(cli: CliContext, reference: str, allow_duplicate: bool) -> None:
    """Upload an uploaded call again, on purpose, as a second Siro recording.

    The call goes back in the queue, due now; the worker downloads the recording again and
    uploads it. The call's events keep who asked, when, and the previous Siro recording id.
    """
    from poller.ports.store import NotReplayable

    call = resolve(cli, reference)
    if call.state is not CallState.UPLOADED:
        raise UserError(
            f"call {call.id} is {call.state}, not uploaded: nothing to replay"
            + ("; `siro-poller calls retry` requeues it" if call.state.is_terminal else "")
        )
    if not allow_duplicate:
        raise UserError(
            f"call {call.id} ({call.provider} {shown(call.provider_call_id)}) is already in Siro "
            f"as recording {shown(call.siro_recording_id)}; replaying uploads it again as a second "
            "recording, and Siro keeps both. Run again with --allow-duplicate to do that"
        )
    try:
        cli.store.replay(call.id, utcnow(), actor=operator())
    except NotReplayable as exc:  # it changed state since it was read
        raise UserError(str(exc)) from None
    click.echo(
        f"call {call.id} ({call.provider} {shown(call.provider_call_id)}) is queued to be "
        f"uploaded again; the previous Siro recording {shown(call.siro_recording_id)} stays in "
        "Siro"
    )


def _minute(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def unmapped_document(row: UnmappedRecord) -> dict[str, Any]:
    """An unmapped record as `calls unmapped --json` prints it."""
    return row.to_dict()


@calls_group.command("unmapped")
@click.option("--provider", help="Only records of this provider (provider.name).")
@click.option("--resolved", "show_resolved", is_flag=True, help="Also records that map now.")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="A JSON array (see README).")
@pass_cli
def unmapped(
    cli: CliContext, provider: str | None, show_resolved: bool, limit: int, as_json: bool
) -> None:
    """Listed records the field mapping could not read, oldest first.

    Each poll maps them again with the current mapping, with back-off; once it reads them they
    become calls (shown with --resolved). One that retention expired shows why instead of its
    raw text, which is gone.
    """
    rows = cli.store.unmapped_records(
        provider, resolved=None if show_resolved else False, limit=limit + 1
    )
    rows = _within(rows, limit, "records", "narrow with --provider")
    if as_json:
        emit_json([unmapped_document(row) for row in rows])
        return
    if not rows:
        click.echo("no unmapped records")
        return
    emit_table(
        [
            [
                row.id,
                row.provider,
                f"{_minute(row.window_start)} - {_minute(row.window_end)}",
                row.page,
                row.item_index,
                row.times_seen,
                row.last_seen_at,
                row.resolved_call_id if row.resolved_at else None,
                _short(None, row.reason),
                _short(None, row.raw, 50)
                if row.expired_at is None
                else f"[expired: {row.expired_reason}]",
            ]
            for row in rows
        ],
        headers=[
            "id",
            "provider",
            "window",
            "page",
            "item",
            "seen",
            "last seen",
            "call",
            "reason",
            "raw",
        ],
    )
