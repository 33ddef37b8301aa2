"""A 20 MB listing page of 330,000 tiny records: one poll's peak RSS and time, per database.

The page is what P14's attack sent within ``provider.max_page_bytes``: records of about 60
bytes, each a call id and a start time, 19 MiB in all. The provider simulator serves it from
this process; one ``poll_once`` through the generic adapter (as the daemon runs it: changes
counted, not kept) reads it in a fresh process per database, which prints its peak RSS
(``VmHWM``), the RSS it had before polling (imports, the database driver), the poll's wall
time and the rows written.
Run from the repository root::

    .venv/bin/python bench/bench_big_page.py [--postgres URL] [--records N] [--smoke]

The server URL defaults to ``POLLER_BENCH_POSTGRES_URL`` or ``POLLER_TEST_POSTGRES_URL``;
without one only SQLite is measured. ``--smoke`` polls 5,000 records. Figures only; nothing is
asserted (the issue's target: under 300 MiB on both databases).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's poller and its simulators, whatever is installed

from bench_scale import fresh_database  # noqa: E402  (after the path is set)

MIB = 1024 * 1024
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
PAGE_BYTES = 20 * 1000 * 1000
RECORDS = 330_000


def page(records: int, size: int) -> bytes:
    """A listing page of ``records`` records of the same length, about ``size`` bytes in all
    (the call ids are as long as it takes)."""
    start = (NOW - timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    template = '{"call_id":"%s","started_at":"' + start + '"}'
    width = max(len(str(records)), size // records - len(template % "") - 1)
    body = ",".join(template % str(index).zfill(width) for index in range(records))
    return ('{"calls":[' + body + '],"next_page_token":null}').encode()


def peak_rss_mib() -> float:
    """The process's peak resident set (VmHWM), or getrusage's where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(*args: str) -> dict[str, Any]:
    """Run one measurement in a fresh process; its last output line is its figures."""
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"measurement failed:\n{out.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


def measure(base_url: str, database_url: str) -> dict[str, Any]:
    """One poll of the served page into ``database_url`` (in this fresh process)."""
    from sqlalchemy import func, select

    from poller.adapters.http import RetryPolicy
    from poller.adapters.providers.generic import GenericProvider, GenericSettings
    from poller.adapters.sql.database import make_engine
    from poller.adapters.sql.models import calls_table
    from poller.adapters.sql.store import SqlStore
    from poller.core.poll import poll_once
    from poller.core.poll_report import PollParams

    store = SqlStore(make_engine(database_url))
    settings = GenericSettings(base_url=base_url, read_timeout_seconds=120)
    provider = GenericProvider(settings, retry=RetryPolicy(max_tries=1))
    params = PollParams(
        provider_key="bench", start_at=NOW - timedelta(hours=1), settle_delay=timedelta(0)
    )
    store.get_cursor("bench")  # connect first: the driver is not the page's cost
    before = peak_rss_mib()
    started = time.monotonic()
    report = poll_once(params, provider, store, NOW, keep_changes=0)
    seconds = time.monotonic() - started
    peak = peak_rss_mib()
    with store.engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(calls_table)).scalar_one()
    return {
        "ok": report.ok,
        "error": (report.error or "")[:300],
        "listed": report.listed,
        "rows": rows,
        "seconds": round(seconds, 1),
        "rss_before_mib": round(before, 1),
        "peak_rss_mib": round(peak, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("POLLER_BENCH_POSTGRES_URL")
        or os.environ.get("POLLER_TEST_POSTGRES_URL"),
        help="a PostgreSQL server URL (databases are created and dropped there)",
    )
    parser.add_argument("--records", type=int, default=RECORDS)
    parser.add_argument("--smoke", action="store_true", help="5,000 records")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(*args.measure)))
        return

    from poller.simulators.http_server import LocalHTTPServer
    from poller.simulators.provider_server import FakeCallLog, FakeProviderHandler

    records = 5_000 if args.smoke else args.records
    body = page(records, PAGE_BYTES * records // RECORDS)
    print(f"one listing page: {records:,} records, {len(body) / MIB:.1f} MiB")
    api = FakeCallLog(answer_bytes_instead=body)
    backends = ["sqlite"] + (["postgres"] if args.postgres else [])
    results: dict[str, Any] = {"records": records, "page_mib": round(len(body) / MIB, 1)}
    with LocalHTTPServer(FakeProviderHandler, api) as server:
        for backend in backends:
            with fresh_database(backend, args.postgres) as url:
                figures = child("--measure", server.url, url)
            results[backend] = figures
            print(
                f"{backend:>8}: {'ok' if figures['ok'] else 'FAILED ' + figures['error']}, "
                f"{figures['rows']:,} rows in {figures['seconds']} s; peak RSS "
                f"{figures['peak_rss_mib']} MiB ({figures['rss_before_mib']} MiB before the poll)"
            )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
