"""The data lifecycle commands at size: `calls export`, `db backup` and `calls forget`.

A fresh SQLite state database gets ``--calls`` calls (default 20,000; each with a 2 KB raw
record and three events), then, each as a fresh `siro-poller` process, the wall time and peak
RSS of:

- ``calls export --format jsonl`` of every call, and of a tenth of them (the export streams a
  batch at a time, so its peak RSS should not grow with the number of calls);
- ``db backup`` of the database;
- ``calls forget --contact-phone`` of one subject (it reads every call's raw record, a batch at
  a time) and ``calls forget --before`` of half the calls.

Run from the repository root, with the package installed in the venv::

    .venv/bin/python bench/bench_data_lifecycle.py [--calls 20000]
    .venv/bin/python bench/bench_data_lifecycle.py --calls 50     # for the tests

Figures only; nothing is asserted. The last line printed is the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.models import call_events_table, calls_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def seed(url: str, count: int) -> None:
    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as connection:
        for start in range(0, count, 1000):
            rows = []
            for n in range(start, min(start + 1000, count)):
                at = T0 + timedelta(minutes=n)
                rows.append(
                    {
                        "provider": "generic",
                        "provider_call_id": f"call-{n}",
                        "state": "uploaded",
                        "siro_recording_id": f"rec-{n}",
                        "uploaded_at": at,
                        "started_at": at,
                        "contact_name": f"Contact {n}",
                        "contact_phone": f"+1415555{n % 10000:04d}",
                        "raw": {"id": f"call-{n}", "notes": "x" * 2000},
                        "created_at": at,
                        "updated_at": at,
                    }
                )
            ids = connection.execute(
                insert(calls_table).returning(calls_table.c.id), rows
            ).scalars()
            events = [
                {"call_id": call_id, "at": T0, "step": step, "outcome": "ok"}
                for call_id in ids
                for step in ("poll", "download", "upload")
            ]
            connection.execute(insert(call_events_table), events)
    engine.dispose()


def run(arguments: list[str], env: dict[str, str]) -> dict[str, float]:
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "poller", *arguments],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"siro-poller {' '.join(arguments)} failed")
    return {"seconds": round(elapsed, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    options = parser.parse_args()
    figures: dict[str, object] = {"calls": options.calls}
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "state.sqlite3"
        url = f"sqlite:///{database}"
        seed(url, options.calls)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SIRO_POLLER_DATABASE__URL": url,
            "SIRO_POLLER_STATE_DIR": folder,
        }
        tenth = (T0 + timedelta(minutes=options.calls // 10)).isoformat()
        since = T0.isoformat()
        figures["export_all"] = run(
            ["calls", "export", "--since", since, "--output", os.devnull], env
        )
        figures["export_tenth"] = run(
            ["calls", "export", "--since", since, "--until", tenth, "--output", os.devnull], env
        )
        figures["backup"] = run(["db", "backup", str(Path(folder) / "copy.sqlite3")], env)
        figures["forget_phone"] = run(
            ["calls", "forget", "--contact-phone", "+14155550007", "--yes"], env
        )
        half = (T0 + timedelta(minutes=options.calls // 2)).isoformat()
        figures["forget_before_half"] = run(["calls", "forget", "--before", half, "--yes"], env)
    for name, value in figures.items():
        print(f"{name:>20}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
