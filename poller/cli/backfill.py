"""`siro-poller backfill`: list a past range of the call log, apart from the poll cursor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from rich.console import Console

    from poller.core.backfill import BackfillPlan, BackfillResult
    from poller.domain.records import BackfillRun
    from poller.domain.windows import Window

SpanDone = Callable[["Window", "BackfillRun"], None]


@main_group.command("backfill")
@click.option(
    "--since", required=True, help="Start of the range: ISO 8601, or an age like 30d (inclusive)."
)
@click.option("--until", required=True, help="End of the range: ISO 8601, or an age (exclusive).")
@click.option(
    "--provider",
    "names",
    multiple=True,
    metavar="NAME",
    help="Backfill only this provider (repeatable); default: every configured one.",
)
@click.option("--json", "as_json", is_flag=True, help="The runs as one JSON document.")
@pass_cli
def backfill(
    cli: CliContext, since: str, until: str, names: tuple[str, ...], as_json: bool
) -> None:
    """List the call log from --since to --until and insert the calls not yet known.

    The range is listed in spans sized by the calls they hold, no longer than the provider
    accepts, through the same path as a poll (a known call stays one row; records that fail
    mapping are kept), without moving the poll cursor: the daemon may keep running.
    Interrupted (Ctrl-C, a provider error), the same command resumes where it stopped. This is
    how to bring in calls from before the cursor: poll.start_at counts on the very first poll
    only.
    """
    from poller.app import build_provider
    from poller.core.backfill import BackfillRangeError, plan_backfill, run_backfill
    from poller.wiring import poll_params_from_settings

    settings = cli.settings
    start, end = parse_when(since), parse_when(until)
    chosen = selected_providers(settings, names)
    providers = [(name, build_provider(settings, name)) for name in chosen]
    store = cli.store
    results: list[BackfillResult] = []
    for name, provider in providers:
        params = poll_params_from_settings(settings, name)
        now = utcnow()
        try:
            plan = plan_backfill(params, provider, store, start, end, now)
        except BackfillRangeError as exc:
            raise click.UsageError(str(exc)) from None
        if not as_json:
            _announce(plan)
        with progress_display(plan, quiet=as_json) as span_done:
            try:
                result = run_backfill(
                    plan, params, provider, store, now, span_done=span_done, clock=utcnow
                )
            except KeyboardInterrupt:
                # Progress is saved after each span: read where it got to.
                run = next((r for r in store.backfill_runs(name) if r.id == plan.run.id), plan.run)
                raise UserError(
                    f"backfill #{run.id} of {name} interrupted; listed up to "
                    f"{_when(run.listed_until)}. Run the same command again to resume."
                ) from None
        results.append(result)
        if not as_json:
            _summary(result)
    if as_json:
        documents = [_document(result) for result in results]
        emit_json(documents[0] if len(documents) == 1 else documents)
    failed = [result for result in results if result.error]
    if failed:
        raise UserError(
            "\n".join(
                f"backfill #{r.run.id} of {r.run.provider} stopped at {_when(r.run.listed_until)}: "
                f"{shown(r.error)}; run the same command again to resume"
                for r in failed
            )
        )


def _announce(plan: BackfillPlan) -> None:
    run = plan.run
    verb = "resuming" if plan.resumed else "starting"
    click.echo(
        f"{verb} backfill #{run.id} of {run.provider}: [{_when(run.since)}, {_when(run.until)})"
        + (f", listed up to {_when(run.listed_until)}" if plan.resumed else "")
        + f"; {len(plan.windows)} window(s) to list"
    )


@contextmanager
def progress_display(
    plan: BackfillPlan, *, quiet: bool, console: Console | None = None
) -> Iterator[SpanDone | None]:
    """A progress bar of the time range listed on a terminal; one plain line per span listed
    otherwise (a log, a pipe)."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    if quiet or not plan.windows:
        yield None
        return
    console = console or Console(stderr=True)
    if not console.is_terminal:

        def line(span: Window, run: BackfillRun) -> None:
            click.echo(f"window {span}: {run.listed} listed, {run.new_calls} new so far", err=True)

        yield line
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[found]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    # Spans are sized by the calls they hold, so their number is not known ahead: the bar
    # measures the stretch of time listed.
    start = plan.windows[0].start
    task = progress.add_task(
        f"backfill {plan.run.provider}",
        total=(plan.windows[-1].end - start).total_seconds(),
        found="",
        start=True,
    )

    def advance(span: Window, run: BackfillRun) -> None:
        progress.update(
            task,
            completed=(span.end - start).total_seconds(),
            found=f"{run.listed} listed, {run.new_calls} new",
        )

    with progress:
        yield advance


def _summary(result: BackfillResult) -> None:
    run = result.run
    for note in result.notes:
        click.echo(f"note: {shown(note)}")
    state = "done" if run.done else "stopped"
    click.echo(
        f"backfill #{run.id} of {run.provider} {state}: {run.windows} window(s), "
        f"{run.listed} listed, {run.new_calls} new call(s), {run.known} already known, "
        f"{run.unmapped} unmapped; the poll cursor was not moved"
    )


def _document(result: BackfillResult) -> dict[str, object]:
    return {
        **result.run.to_dict(),
        "done": result.run.done,
        "windows_listed_now": result.windows_listed,
        "error": result.error,
        "notes": result.notes,
    }


def _when(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")
