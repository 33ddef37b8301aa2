"""Worker throughput and peak memory: recordings per second and peak RSS, by file size.

A child process plays the provider and Siro (real HTTP on 127.0.0.1), so the figures are the
worker's alone. For each size a fresh process polls the fake call log into a SQLite state
database and drains the worker (download, audio check, three-step upload) with the configured
concurrency, then reports:

- recordings per second and megabytes per second through the whole pipeline, and
- the peak resident set size of that process (``ru_maxrss``).

Peak RSS that stays flat from 1 MB to 50 MB files shows nothing holds a recording in memory.

Run from the repository root::

    .venv/bin/python bench/bench_worker.py [--concurrency N]

Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's poller and its simulators, whatever is installed

MB = 1024 * 1024
# (file size in MB, how many recordings): enough work for a stable rate, bounded disk use.
RUNS = ((1, 60), (50, 6))
STARTED = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TOKEN = "bench-provider-token"  # noqa: S105  (the local fake's token)


def serve(size_mb: int, count: int) -> None:
    """Child process: the provider with ``count`` recordings of ``size_mb``, and Siro."""
    from poller.simulators.audio import MP3_FRAME_BYTES, mp3_bytes
    from poller.simulators.provider_server import FakeCallLog, quickstart_call
    from poller.simulators.provider_server import serve as serve_provider
    from poller.simulators.siro_server import FakeSiro

    audio = mp3_bytes(size_mb * MB / MP3_FRAME_BYTES * 1152 / 44100)
    api = FakeCallLog(auth=("bearer", TOKEN), page_size=100)
    with serve_provider(api) as provider, FakeSiro() as siro:
        for index in range(count):
            call_id = f"bench-{index:04d}"
            at = STARTED + timedelta(seconds=index)
            path = api.add_recording(f"/recordings/{call_id}", audio)
            api.add_call(quickstart_call(call_id, at, recording_url=provider.url + path), at)
        print(
            json.dumps(
                {
                    "provider": provider.url,
                    "siro": siro.settings_values(read_timeout_seconds=120.0),
                    "bytes": len(audio),
                }
            ),
            flush=True,
        )
        sys.stdin.read()


def measure(size_mb: int, count: int, concurrency: int) -> dict[str, float]:
    """Child process: poll, drain, and report the rate and this process's peak RSS."""
    from poller.adapters.providers.generic import GenericProvider
    from poller.adapters.sql import migrate
    from poller.adapters.sql.database import make_engine
    from poller.adapters.sql.store import SqlStore
    from poller.app import build_siro_client, build_worker
    from poller.config import Settings
    from poller.core.poll import poll_once
    from poller.core.users_sync import sync_users
    from poller.wiring import poll_params_from_settings

    fakes = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(size_mb), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fakes.stdout is not None
        where = json.loads(fakes.stdout.readline())
        with tempfile.TemporaryDirectory() as state:
            settings = Settings(
                state_dir=Path(state),
                provider={"base_url": where["provider"], "auth": "bearer", "token": TOKEN},
                poll={"start_at": STARTED - timedelta(minutes=1), "settle_delay_seconds": 0},
                worker={"concurrency": concurrency, "max_file_bytes": 100 * MB},
                siro=where["siro"],
            )
            engine = make_engine(settings.database_url)
            migrate.upgrade(engine)
            store = SqlStore(engine)
            poll_once(
                poll_params_from_settings(settings),
                GenericProvider(settings.provider),
                store,
                datetime.now(UTC),
            )
            siro = build_siro_client(settings)
            worker = build_worker(settings, store, threading.Event(), siro=siro)
            sync_users(siro, store, datetime.now(UTC), default_region="US")
            started = time.perf_counter()
            report = worker.drain()
            elapsed = time.perf_counter() - started
            assert report.uploaded == count, report
        return {
            "size_mb": size_mb,
            "recordings": count,
            "seconds": elapsed,
            "per_second": count / elapsed,
            "mb_per_second": count * where["bytes"] / MB / elapsed,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }
    finally:
        if fakes.stdin is not None:
            fakes.stdin.close()
        fakes.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(*args.serve)
        return
    if args.measure:
        print(json.dumps(measure(*args.measure, concurrency=args.concurrency)))
        return
    print(f"worker concurrency {args.concurrency}; fakes in a separate process")
    print(
        f"{'file MB':>8} {'files':>6} {'seconds':>8} {'rec/s':>8} {'MB/s':>8} {'peak RSS MB':>12}"
    )
    for size_mb, count in RUNS:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--measure",
                str(size_mb),
                str(count),
                "--concurrency",
                str(args.concurrency),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{row['size_mb']:>8} {row['recordings']:>6} {row['seconds']:>8.2f} "
            f"{row['per_second']:>8.1f} {row['mb_per_second']:>8.1f} {row['peak_rss_mb']:>12.1f}"
        )


if __name__ == "__main__":
    main()
