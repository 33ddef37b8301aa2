"""Deletion at the source: what one deletion turn's reads of the state database cost at scale.

A turn asks for the rows it may refuse (replayed or matched by title) and for the next batch
of due rows, both over every uploaded call of the opted-in providers. This seeds ROWS uploaded
calls, most of them deleted already (as after months of running), and prints the median time
of those two queries, on SQLite and, given a server, PostgreSQL::

    .venv/bin/python bench/bench_source_deletion.py [--rows 100000] [--postgres URL]

The server URL defaults to ``POLLER_BENCH_POSTGRES_URL`` or ``POLLER_TEST_POSTGRES_URL``.
Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.models import (
    call_events_table,
    calls_table,
    source_deletions_table,
)
from poller.adapters.sql.source_deletions import SqlSourceDeletions

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def seed(url: str, rows: int, done_share: float) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    uploaded = NOW - timedelta(days=30)
    with engine.begin() as conn:
        for start in range(0, rows, 10_000):
            batch = range(start, min(rows, start + 10_000))
            conn.execute(
                insert(calls_table),
                [
                    {
                        "provider": "rc",
                        "provider_call_id": f"rec-{n}",
                        "state": "uploaded",
                        "recording_id": f"rec-{n}",
                        "siro_recording_id": f"siro-{n}",
                        "uploaded_at": uploaded,
                        "created_at": uploaded,
                        "updated_at": uploaded,
                    }
                    for n in batch
                ],
            )
            conn.execute(
                insert(call_events_table),
                [
                    {
                        "call_id": n + 1,
                        "at": uploaded,
                        "step": "upload",
                        "outcome": "ok",
                    }
                    for n in batch
                ],
            )
            done = [n for n in batch if n < rows * done_share]
            if done:
                conn.execute(
                    insert(source_deletions_table),
                    [
                        {
                            "call_id": n + 1,
                            "provider": "rc",
                            "state": "deleted",
                            "attempts": 1,
                            "deleted_at": uploaded,
                            "created_at": uploaded,
                            "updated_at": uploaded,
                        }
                        for n in done
                    ],
                )
    engine.dispose()


def measure(url: str, rounds: int = 5) -> dict[str, float]:
    deletions = SqlSourceDeletions(make_engine(url))
    cutoffs = {"rc": NOW - timedelta(days=7)}
    figures: dict[str, float] = {}
    since = NOW - timedelta(days=8)  # as the job asks: the longest grace and a day
    for name, flagged in (("flagged_query_ms", True), ("due_batch_query_ms", False)):
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            deletions.deletion_candidates(
                cutoffs,
                NOW,
                20,
                flagged_only=flagged,
                changed_since=since if flagged else None,
            )
            times.append((time.perf_counter() - started) * 1000)
        figures[name] = round(statistics.median(times), 1)
    deletions.engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--done-share", type=float, default=0.99)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("POLLER_BENCH_POSTGRES_URL")
        or os.environ.get("POLLER_TEST_POSTGRES_URL"),
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/state.sqlite3"
        seed(url, args.rows, args.done_share)
        print(json.dumps({"backend": "sqlite", "rows": args.rows, **measure(url)}))
    if args.postgres:
        admin_url = make_url(args.postgres)
        name = f"bench_source_deletion_{uuid.uuid4().hex[:8]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        try:
            seed(url, args.rows, args.done_share)
            print(json.dumps({"backend": "postgresql", "rows": args.rows, **measure(url)}))
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
