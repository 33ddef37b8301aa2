"""`siro-poller demo`: see one run of the daemon end to end, with nothing to set up."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import click

from poller.cli.root import EXIT_FAILURE, LazyChoice, emit_table, main_group

if TYPE_CHECKING:
    from poller.demo import DemoOutcome


def _demo_kinds() -> tuple[str, ...]:
    from poller.demo import DEMO_KINDS

    return DEMO_KINDS


# What the demo's SQLite command shows: each call's state and why.
AUDIT_QUERY = "SELECT id, provider_call_id, state, error_kind, attribution FROM calls"


@main_group.command("demo")
@click.option(
    "--provider",
    "kind",
    type=LazyChoice(_demo_kinds),
    default="generic",
    show_default=True,
    help="Which phone system to simulate, and so which adapter runs.",
)
@click.option("--keep", is_flag=True, help="Leave the state directory (config and database).")
def demo(kind: str, keep: bool) -> None:
    """Run the real daemon against simulated phone system and Siro servers on 127.0.0.1.

    Seeds calls that each show one case (good ones, a late recording, bad audio, a rep Siro
    does not know; a dozen for the generic adapter), runs until nothing is left to do (a
    minute at most), then shows what became of each call.
    Needs no config and no account: everything lives in a temporary directory.
    """
    from poller.demo import run_demo

    outcome = run_demo(kind, keep=keep, announce=click.echo)
    _print_outcome(outcome)
    if not outcome.succeeded:
        raise SystemExit(EXIT_FAILURE)


def _print_outcome(outcome: DemoOutcome) -> None:
    click.echo()
    counts = outcome.status.counts
    emit_table(
        [[state, count] for state, count in counts.items()] + [["total", sum(counts.values())]],
        headers=["state", "calls"],
    )
    click.echo(f"Siro (simulated) received {outcome.siro_recordings} recordings.")
    click.echo()
    rows: list[list[object]] = []
    for call in outcome.calls:
        row = outcome.rows.get(call.call_id)
        if row is None:
            rows.append(["", call.call_id, "never listed", "", call.shows])
            continue
        if row.state.value == "uploaded":
            rep = row.siro_user_id or row.rep_email or row.rep_phone
            result = f"to {rep} ({row.attribution})"
            if row.source_format and row.audio_format and row.source_format != row.audio_format:
                result += f"; {row.source_format} sent as {row.audio_format}"
        else:
            result = ": ".join(part for part in (row.error_kind, row.last_error) if part)
        rows.append([row.id, call.call_id, row.state.value, result, call.shows])
    emit_table(rows, headers=["id", "call", "state", "outcome", "what it shows"])
    click.echo()
    if not outcome.idle:
        click.echo("siro-poller: the demo did not settle within a minute", err=True)
    for call in outcome.unexpected:
        click.echo(f"siro-poller: {call.call_id} was expected to end {call.expected}", err=True)
    _print_next_steps(outcome)


def _print_next_steps(outcome: DemoOutcome) -> None:
    config = shlex.quote(str(outcome.config_path))
    database = shlex.quote(str(outcome.database_path))
    rows = list(outcome.rows.values())
    # A failed call has the most to show; a fallback attribution the most to explain.
    failed = next((row for row in rows if row.state.value == "failed"), None)
    fallback = next((row for row in rows if (row.attribution or "").startswith("fallback")), None)
    to_show, to_explain = failed or fallback, fallback or failed
    show_id = str(to_show.id) if to_show else "ID"
    explain_id = str(to_explain.id) if to_explain else "ID"
    commands = [
        f"siro-poller --config {config} status",
        f"siro-poller --config {config} calls list",
        f"siro-poller --config {config} calls show {show_id}",
        f"siro-poller --config {config} calls explain {explain_id}",
        f"sqlite3 {database} {shlex.quote(AUDIT_QUERY)}",
    ]
    if not outcome.kept:
        click.echo("To look further, run `siro-poller demo --keep`: it leaves its state directory")
        click.echo("and prints the commands that open it (calls show, calls explain, SQL).")
        return
    click.echo(f"The demo's state directory is kept: {outcome.state_dir}")
    click.echo("Look further with:")
    for command in commands:
        click.echo(f"  {command}")
    click.echo(
        "These read the kept database only: the simulators stopped with the demo, so its config "
        "points at closed ports."
    )
    click.echo(
        "To poll, run or check a provider against running simulators: "
        f"siro-poller simulate --provider {outcome.kind} --config-out sim.toml"
    )
    from poller.demo.runner import foreign_settings

    foreign = foreign_settings()
    if foreign:
        click.echo(
            f"Note: these commands also read {', '.join(foreign)} from your environment; "
            "unset them first."
        )
