"""Catch-up cost: a first run from 11 months back over a quiet RingCentral account.

RingCentral caps no call-log query's span, so the poll sizes its spans by the calls they hold
rather than by the day. This runs one first poll cycle, ``poll.start_at`` 335 days back, over
an account of 30 calls, against the RingCentral simulator with its rate-limit groups at four
times the real limits (the call log is in the Heavy group: 40 requests a minute instead of 10)
on the real clock, and prints the call-log requests and the seconds the first run took. With
``--by-day`` it also lists the same first run in 24-hour windows (``max_window_hours = 24``), as
the poll did before, for comparison. That run exhausts the Heavy group: a cycle stops when the
limit asks for a longer pause than a request waits, and the next cycle (here: 30 s later, as
the scheduler might) goes on from the cursor, so it takes minutes.

Run from the repository root::

    .venv/bin/python bench/bench_catchup.py [--by-day]

Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's poller and its simulators, whatever is installed

from poller.adapters.providers.ringcentral import (  # noqa: E402
    RingCentralProvider,
    RingCentralSettings,
)
from poller.adapters.sql import migrate  # noqa: E402
from poller.adapters.sql.database import make_engine  # noqa: E402
from poller.adapters.sql.store import SqlStore  # noqa: E402
from poller.core.poll import poll_once  # noqa: E402
from poller.core.poll_report import PollParams  # noqa: E402
from poller.simulators.ringcentral_server import (  # noqa: E402
    DEFAULT_GROUPS,
    RingCentralState,
    call_record,
    recording_of,
    serve,
)

CALLS = 30
BACK = timedelta(days=335)
SETTLE = timedelta(minutes=2)
SECOND = timedelta(seconds=1)
RETRY_SECONDS = 30.0
MAX_CYCLES = 100


def first_run(max_window_hours: float | None) -> tuple[int, int, float, int]:
    """(call-log requests, cycles, seconds, calls stored) of a first run, in as many poll
    cycles as the rate limit makes it take."""
    groups = {
        name: (limit * 4, window, penalty)
        for name, (limit, window, penalty) in DEFAULT_GROUPS.items()
    }
    now = datetime.now(UTC)
    start = now - BACK
    with serve(RingCentralState(groups=groups)) as api, tempfile.TemporaryDirectory() as tmp:
        api.add_extension(400643091008, "101", "Alice Rep", "alice@example.com")
        for n in range(CALLS):
            at = start + timedelta(days=11 * n, hours=9, minutes=n)
            api.add_media(f"call-{n:02d}", b"ID3audio")
            recording = recording_of(api, f"call-{n:02d}")
            api.add_record(
                call_record(f"rec-{n:02d}", at, session=f"s-{n:02d}", recording=recording)
            )
        settings = RingCentralSettings.model_validate(
            api.settings_values(max_window_hours=max_window_hours)
        )
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate.upgrade(engine)
        store = SqlStore(engine)
        params = PollParams(provider_key="ringcentral", start_at=start, settle_delay=SETTLE)
        provider = RingCentralProvider(settings)
        began = time.monotonic()
        cycles = 0
        while True:
            cycles += 1
            report = poll_once(params, provider, store, now + (time.monotonic() - began) * SECOND)
            if report.ok:
                break
            if "rate limit" not in (report.error or "") or cycles == MAX_CYCLES:
                raise SystemExit(f"cycle {cycles} failed: {report.error}")
            time.sleep(RETRY_SECONDS)
        seconds = time.monotonic() - began
        calls = len(store.list_calls(limit=CALLS + 1))
        return len(api.listing_requests()), cycles, seconds, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--by-day", action="store_true", help="also list in 24-hour windows")
    args = parser.parse_args()
    runs = [("sized by records", None)] + ([("by the day", 24.0)] if args.by_day else [])
    print(f"first run from {BACK.days} days back, {CALLS} calls, Heavy group at 40 a minute")
    for name, hours in runs:
        requests, cycles, seconds, stored = first_run(hours)
        print(
            f"{name:>17}: {requests:4d} call-log requests in {cycles} cycle(s), "
            f"{seconds:7.1f} s, {stored} calls"
        )


if __name__ == "__main__":
    main()
