"""The growth attack: a hostile call log against the poll cycle and the retention job, per minute.

Every poll, the call log (the provider simulator, in this process) serves 200 malformed records
of about 60 KB that it never served before, and 100 calls whose metadata changes each time (a
``metadata changed`` event per call per poll). P17's report: such a log grew the database to
309 MB in 60 s, and polls per 15 s fell from 10 to 4 because every cycle re-mapped every
unresolved record. Here the poll cycle runs back to back, as fast as it goes, and the retention
pass on a thread of its own every ``--retention-interval`` seconds (as the daemon runs its
``retention`` job beside the ``poll`` job), with the ``[retention]`` settings below. Each minute
it prints the polls of that minute, the database's bytes (SQLite: the file's pages, and the WAL
beside it; PostgreSQL: the tables with their indexes) and rows per table. Run from the
repository root::

    .venv/bin/python bench/bench_growth.py [--seconds 600] [--postgres URL] [--no-retention]

Without ``--postgres`` (or ``POLLER_BENCH_POSTGRES_URL``) only SQLite is measured; with it,
only PostgreSQL. ``--no-retention`` leaves the job out (the re-mapping back-off stays), to show
what the settings hold back. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's poller and its simulators, whatever is installed

from bench_scale import fresh_database  # noqa: E402  (after the path is set)

MB = 1_000_000
MALFORMED_PER_POLL = 200
CHANGING_CALLS = 100
RECORD_BYTES = 60_000
# The [retention] settings of the run: tight enough to act within minutes, as the defaults act
# within days for a daemon polling every 5 minutes.
RETENTION = {
    "interval_seconds": 30,
    "personal_data_days": 1.0,
    "events_days": 2 / 1440,  # 2 minutes
    "unmapped_days": 5 / 1440,  # 5 minutes
    "unmapped_max_attempts": 5,
    "unmapped_max_kept": 1000,  # about 60 MB of raw text
    "unmapped_remap_base_seconds": 300.0,  # the default back-off
    "unmapped_remap_max_seconds": 21600.0,
    "batch_size": 500,
    "max_batches": 100,
}


class HostileLog:
    """What the call log serves: fresh malformed records and the same calls, changed."""

    def __init__(self, api: Any, at: datetime) -> None:
        from poller.simulators.provider_server import quickstart_call

        self.api = api
        self.at = at
        self.polls = 0
        for n in range(CHANGING_CALLS):
            record = quickstart_call(f"call-{n:03d}", at + timedelta(seconds=n))
            api.add_call({**record, "duration": 60}, at + timedelta(seconds=n))

    def next_poll(self) -> None:
        """Before each poll: new junk (none served before), every call changed."""
        self.polls += 1
        with self.api.lock:
            for key in [k for k in self.api.calls if k.startswith("junk-")]:
                del self.api.calls[key]
            for n in range(MALFORMED_PER_POLL):
                key = f"junk-{self.polls}-{n}"
                record = {
                    "call_id": key,
                    "started_at": f"not a time {self.polls}",
                    "blob": ("x" * RECORD_BYTES),
                }
                self.api.add_call(record, self.at + timedelta(seconds=200 + n), key=key)
            for n in range(CHANGING_CALLS):
                self.api.update_call(f"call-{n:03d}", duration=60 + self.polls)


def database_bytes(store: Any, url: str) -> tuple[int | None, int]:
    """The database's bytes as the store reports them, and SQLite's WAL file beside it."""
    sizes = store.table_sizes()
    wal = 0
    if url.startswith("sqlite"):
        path = Path(url.removeprefix("sqlite:///") + "-wal")
        wal = path.stat().st_size if path.exists() else 0
    return sizes.database_bytes, wal


def run(url: str, seconds: float, retention_on: bool, every: float) -> list[dict[str, Any]]:
    from poller.adapters.http import RetryPolicy
    from poller.adapters.providers.generic import GenericProvider, GenericSettings
    from poller.adapters.sql.database import make_engine
    from poller.adapters.sql.store import SqlStore
    from poller.config import Settings
    from poller.core.poll import poll_once
    from poller.core.retention import run_retention
    from poller.simulators.provider_server import FakeCallLog, serve
    from poller.wiring import poll_params_from_settings, retention_rules_from_settings

    store = SqlStore(make_engine(url))
    api = FakeCallLog(page_size=100)
    started_at = datetime.now(UTC)
    log = HostileLog(api, started_at - timedelta(minutes=20))
    stop = threading.Event()
    passes: list[float] = []
    # Passes that asked the database to reuse freed space (PostgreSQL: a plain VACUUM).
    reclaims: list[list[str]] = []
    minutes: list[dict[str, Any]] = []
    with serve(api) as server:
        settings = Settings(
            provider={"base_url": server.url, "fields": {"duration": "duration"}},
            poll={
                "start_at": started_at - timedelta(minutes=30),
                "lookback_minutes": 60,
                "settle_delay_seconds": 0,
            },
            retention=RETENTION,
        )
        assert isinstance(settings.provider, GenericSettings)
        provider = GenericProvider(settings.provider, retry=RetryPolicy(max_tries=1))
        params = poll_params_from_settings(settings)
        rules = retention_rules_from_settings(settings)

        def retention_job() -> None:
            while not stop.wait(RETENTION["interval_seconds"]):
                begun = time.monotonic()
                done = run_retention(rules, store, datetime.now(UTC))
                if done.reclaimed:
                    reclaims.append(done.reclaimed)
                passes.append(time.monotonic() - begun)

        job = threading.Thread(target=retention_job, daemon=True)
        if retention_on:
            job.start()
        begun = time.monotonic()
        next_report = begun + every
        polls = errors = 0
        poll_seconds: list[float] = []
        while time.monotonic() - begun < seconds:
            log.next_poll()
            one = time.monotonic()
            report = poll_once(params, provider, store, datetime.now(UTC), keep_changes=0)
            poll_seconds.append(time.monotonic() - one)
            polls += 1
            errors += 0 if report.ok else 1
            if time.monotonic() >= next_report:
                size, wal = database_bytes(store, url)
                rows = store.table_sizes().rows
                summary = store.status(datetime.now(UTC))
                figures = {
                    "minute": len(minutes) + 1,
                    "polls": polls,
                    "poll_errors": errors,
                    "slowest_poll_s": round(max(poll_seconds), 2),
                    "db_mb": round((size or 0) / MB, 1),
                    "wal_mb": round(wal / MB, 1),
                    "calls": rows["calls"],
                    "events": rows["call_events"],
                    "unmapped": rows["unmapped_records"],
                    "unmapped_live": sum(summary.unmapped.values()),
                    "unmapped_expired": sum(summary.unmapped_expired.values()),
                    "retention_passes": len(passes),
                    "slowest_pass_s": round(max(passes), 2) if passes else None,
                    "vacuums": len(reclaims),
                }
                minutes.append(figures)
                print(
                    f"min {figures['minute']:>2}: {polls:>3} polls ({errors} failed, slowest "
                    f"{figures['slowest_poll_s']} s), db {figures['db_mb']} MB + WAL "
                    f"{figures['wal_mb']} MB; rows: calls {figures['calls']}, events "
                    f"{figures['events']}, unmapped {figures['unmapped']} "
                    f"({figures['unmapped_live']} live, {figures['unmapped_expired']} expired); "
                    f"{len(passes)} retention passes, slowest {figures['slowest_pass_s']} s, "
                    f"{len(reclaims)} with a VACUUM",
                    flush=True,
                )
                polls = errors = 0
                poll_seconds = []
                next_report += every
        stop.set()
        if retention_on:
            job.join(timeout=120)
    store.engine.dispose()
    return minutes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("POLLER_BENCH_POSTGRES_URL"),
        help="a PostgreSQL server URL (a database is created and dropped there)",
    )
    parser.add_argument("--no-retention", action="store_true", help="leave the job out")
    parser.add_argument(
        "--every", type=float, default=60.0, help="seconds between two lines (a smoke run: 2)"
    )
    args = parser.parse_args()
    # The poll cycle logs each malformed record; the figures are what this prints.
    logging.basicConfig(level=logging.ERROR)
    backend = "postgres" if args.postgres else "sqlite"
    retention_on = not args.no_retention
    print(
        f"{backend}: {MALFORMED_PER_POLL} malformed records of {RECORD_BYTES // 1000} KB and "
        f"{CHANGING_CALLS} changing calls per poll for {args.seconds:g} s; retention "
        f"{json.dumps(RETENTION) if retention_on else 'off'}",
        flush=True,
    )
    with fresh_database(backend, args.postgres) as url:
        minutes = run(url, args.seconds, retention_on, args.every)
    print(json.dumps({"backend": backend, "retention": retention_on, "minutes": minutes}))


if __name__ == "__main__":
    main()
