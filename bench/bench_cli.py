"""How fast the CLI answers what a person types most: wall time and peak RSS of each run.

Each command runs ``--runs`` times (20), after one warm-up run, as a fresh `siro-poller`
process, as a shell runs it:

- ``siro-poller --version``;
- ``siro-poller --help``;
- ``siro-poller calls --help`` (a command group's help);
- a TAB completion (``siro-poller calls re<TAB>``, as the bash completion script asks it).

Then ``siro-poller poll`` of a catch-up of ``--poll-calls`` calls (20,000) from a simulated
call log on 127.0.0.1 into a fresh SQLite state database, once printing its table and once
with ``--json`` (to /dev/null): the wall time and peak RSS of each. The table shows the first
changes and counts the rest, and --json is written as it goes, so the peak RSS should not grow
with the number of calls (an earlier version peaked at 222 MiB for 20,000 calls and 657 MiB
for 100,000).

For each it prints the median and the slowest wall time, the median CPU time (user and system:
less disturbed than the wall time by other work on the machine) and the largest peak resident
set size (``ru_maxrss`` of that process alone). The target is a median under 0.3 s: none of these
needs the database layer, the HTTP clients or the audio library, and the CLI imports them only
in the commands that do.

Run from the repository root, with the package installed in the venv::

    .venv/bin/python bench/bench_cli.py [--runs 20] [--poll-calls 20000]
    .venv/bin/python bench/bench_cli.py --smoke     # one run each (no warm-up), 100 calls

Figures only; nothing is asserted. The last line printed is the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's simulators, whatever is installed

TOKEN = "bench-provider-token"  # noqa: S105  (the local fake's token)

# (label, arguments, extra environment): what a person types, and a TAB completion.
COMMANDS: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
    ("--version", ("--version",), {}),
    ("--help", ("--help",), {}),
    ("calls --help", ("calls", "--help"), {}),
    (
        "completion (calls re<TAB>)",
        (),
        {
            "_SIRO_POLLER_COMPLETE": "bash_complete",
            "COMP_WORDS": "siro-poller calls re",
            "COMP_CWORD": "2",
        },
    ),
)


def command_line() -> list[str]:
    """The `siro-poller` script of the running interpreter's environment (as installed),
    else ``python -m poller``."""
    beside = Path(sys.executable).with_name("siro-poller")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("siro-poller")
    return [found] if found else [sys.executable, "-m", "poller"]


def run_once(arguments: list[str], environment: dict[str, str]) -> tuple[float, float, float]:
    """One process: its wall and CPU times in seconds and its own peak RSS in MiB."""
    started = time.perf_counter()
    process = subprocess.Popen(
        arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read().decode() if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(arguments)} exited {process.returncode}: {errors}")
    cpu = usage.ru_utime + usage.ru_stime
    return elapsed, cpu, usage.ru_maxrss / 1024  # Linux reports kilobytes


def poll_figures(base: list[str], environment: dict[str, str], calls: int) -> dict[str, Any]:
    """`siro-poller poll` of ``calls`` new calls, as a table and as --json, each into a fresh
    SQLite database: wall seconds and peak RSS."""
    from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve

    api = FakeCallLog(page_size=1000, auth=("bearer", TOKEN))
    # The CLI polls at the real "now": the calls fill the last hour.
    first = datetime.now(UTC) - timedelta(hours=1)
    step = timedelta(hours=1) / calls
    for n in range(calls):
        at = first + n * step
        api.add_call(quickstart_call(f"call-{n:06d}", at, recording_url=f"https://v/{n}"), at)
    figures: dict[str, Any] = {"calls": calls}
    with serve(api) as server, tempfile.TemporaryDirectory() as scratch:
        env = {
            **environment,
            "SIRO_POLLER_PROVIDER__BASE_URL": server.url,
            "SIRO_POLLER_PROVIDER__AUTH": "bearer",
            "SIRO_POLLER_PROVIDER__TOKEN": TOKEN,
            "SIRO_POLLER_POLL__START_AT": (first - timedelta(minutes=1)).isoformat(),
            "SIRO_POLLER_POLL__SETTLE_DELAY_SECONDS": "0",
            "SIRO_POLLER_LOGGING__LEVEL": "WARNING",
        }
        # One `db upgrade`, then a copy of its empty database for each poll, so that each
        # lists every call as new: an upgrade each would cost a second start of the CLI.
        empty = Path(scratch) / "empty.sqlite3"
        run_once(
            [*base, "db", "upgrade"], {**env, "SIRO_POLLER_DATABASE__URL": f"sqlite:///{empty}"}
        )
        for label, arguments in (("poll", ["poll"]), ("poll --json", ["poll", "--json"])):
            database = Path(scratch) / f"{label.replace(' ', '').replace('-', '')}.sqlite3"
            with (
                closing(sqlite3.connect(empty)) as source,
                closing(sqlite3.connect(database)) as copy,
            ):
                source.backup(copy)
            wall, _cpu, rss = run_once(
                [*base, *arguments], {**env, "SIRO_POLLER_DATABASE__URL": f"sqlite:///{database}"}
            )
            figures[label] = {"seconds": round(wall, 2), "peak_rss_mib": round(rss, 1)}
            print(f"{label:<28} {calls} calls: {wall:.2f} s, peak RSS {rss:.1f} MiB")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="Runs of each command.")
    parser.add_argument(
        "--poll-calls", type=int, default=20_000, help="Calls in the catch-up `poll` lists."
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="One run each, without the warm-up run, and 100 calls (for the tests).",
    )
    args = parser.parse_args()
    runs = 1 if args.smoke else args.runs
    base = command_line()
    # No config is read by any of these; a config in the environment must not change that.
    # Bytecode is written (by the warm-up run) as an installed package has it.
    environment = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SIRO_POLLER_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    figures: dict[str, dict[str, float]] = {}
    print(f"{runs} runs each of {' '.join(base)}")
    for label, arguments, extra in COMMANDS:
        if not args.smoke:  # a smoke run's figures are not compared with anything
            run_once([*base, *arguments], {**environment, **extra})  # warm-up: bytecode, cache
        results = [run_once([*base, *arguments], {**environment, **extra}) for _ in range(runs)]
        walls = [wall for wall, _, _ in results]
        figures[label] = {
            "median_s": round(statistics.median(walls), 4),
            "max_s": round(max(walls), 4),
            "median_cpu_s": round(statistics.median(cpu for _, cpu, _ in results), 4),
            "peak_rss_mib": round(max(rss for _, _, rss in results), 1),
        }
        shown = figures[label]
        print(
            f"{label:<28} median {shown['median_s']:.3f} s, slowest {shown['max_s']:.3f} s, "
            f"CPU {shown['median_cpu_s']:.3f} s, peak RSS {shown['peak_rss_mib']:.1f} MiB"
        )
    polled = poll_figures(base, environment, 100 if args.smoke else args.poll_calls)
    print(json.dumps({"runs": runs, "commands": figures, "poll": polled}))


if __name__ == "__main__":
    main()
