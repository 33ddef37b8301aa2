"""Scale: claims at a million rows, the poll's ingest of 100,000 calls, the worker against a copy.

One command prints every figure, for SQLite and for PostgreSQL:

- **claims**: the median time of ``claim_due`` taking 8 rows, with 10,000 and 1,000,000 rows in
  the table, all of them due or 1% due (the rest uploaded history), and the plans of the
  claim's two lookups at the largest size, to show each follows its own index;
- **ingest**: one ``poll_once`` listing 10,000 and 100,000 new calls (pages of 100 from an
  in-process provider whose records go through the generic adapter's mapping, so no HTTP is
  timed), its time, the part of it spent in the store, and its process's peak RSS;
- **worker**: recordings through the whole worker (download, audio check, three-step upload,
  8 threads) against a plain 8-thread copy of the same bytes (GET from the provider fake, PUT
  to Siro's fake) through the same simulators, which run in a separate process.

Each measurement runs in a fresh process on a fresh database; PostgreSQL databases are
created on the given server and dropped afterwards. Run from the repository root::

    .venv/bin/python bench/bench_scale.py [--postgres URL] [--smoke]

The server URL defaults to ``POLLER_BENCH_POSTGRES_URL`` or ``POLLER_TEST_POSTGRES_URL``;
without one only SQLite is measured. ``--smoke`` runs every part on tiny inputs, the claims
with 1% of the rows due only and a median of 5, not 200. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's poller and its simulators, whatever is installed

MB = 1024 * 1024
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
CLAIM_LIMIT = 8


@dataclass(frozen=True)
class Sizes:
    claim_rows: tuple[int, ...]
    ingest_calls: tuple[int, ...]
    worker_files: int
    worker_mb: int
    claim_repeats: int
    # Every how many rows one is due, and its label: the same claim on other data.
    claim_due: tuple[tuple[int, str], ...]


FULL = Sizes(
    claim_rows=(10_000, 1_000_000),
    ingest_calls=(10_000, 100_000),
    worker_files=48,
    worker_mb=2,
    claim_repeats=200,  # a busy machine's noise needs many samples
    claim_due=((1, "all"), (100, "1%")),
)
# The smoke run checks that every part runs, not its figures: a few claims make a median, and
# one share of due rows (the one whose plans are shown) saves a process and a database each.
SMOKE = Sizes(
    claim_rows=(1_000, 5_000),
    ingest_calls=(500, 1_000),
    worker_files=4,
    worker_mb=1,
    claim_repeats=5,
    claim_due=((100, "1%"),),
)


# -- databases -------------------------------------------------------------------------------


@contextmanager
def fresh_database(backend: str, admin_url: str | None) -> Iterator[str]:
    """A migrated, empty state database of its own, removed afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from poller.adapters.sql import migrate
    from poller.adapters.sql.database import make_engine

    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.sqlite3"
            engine = make_engine(url)
            migrate.upgrade(engine)
            engine.dispose()
            yield url
        return
    assert admin_url is not None
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"siro_poller_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def child(*args: str) -> dict[str, Any]:
    """Run one measurement in a fresh process; its last output line is its figures."""
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"measurement {args} failed:\n{out.stderr[-4000:]}")
    figures: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


# -- claims ----------------------------------------------------------------------------------

# Bulk loading, in the database itself: ``rows`` calls, every ``every``-th one due and pending,
# the others uploaded history; one in a thousand held by a live worker.
_LOAD_POSTGRES = """
INSERT INTO calls (provider, provider_call_id, state, attempts, next_attempt_at, lease_owner,
                   lease_expires_at, recording_state, started_at, siro_recording_id,
                   uploaded_at, created_at, updated_at)
SELECT 'bench', 'call-' || g,
       CASE WHEN g % :every = 0 OR g % 1000 = 1 THEN 'pending' ELSE 'uploaded' END,
       1,
       CASE WHEN g % :every = 0 OR g % 1000 = 1 THEN :now - g * interval '1 second' END,
       CASE WHEN g % 1000 = 1 THEN 'busy-worker' END,
       CASE WHEN g % 1000 = 1 THEN :now + interval '1 hour' END,
       'ready', :now - g * interval '1 second',
       CASE WHEN g % :every = 0 OR g % 1000 = 1 THEN NULL ELSE 'rec-' || g END,
       CASE WHEN g % :every = 0 OR g % 1000 = 1 THEN NULL ELSE :now END,
       :now, :now
FROM generate_series(1, :rows) AS g
"""

_LOAD_SQLITE = """
WITH RECURSIVE seq(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM seq WHERE g < :rows)
INSERT INTO calls (provider, provider_call_id, state, attempts, next_attempt_at, lease_owner,
                   lease_expires_at, recording_state, started_at, siro_recording_id,
                   uploaded_at, created_at, updated_at)
SELECT 'bench', 'call-' || g,
       CASE WHEN g % :every = 0 OR g % 1000 = 1 THEN 'pending' ELSE 'uploaded' END,
       1,
       CASE WHEN g % :every = 0 OR g % 1000 = 1
            THEN strftime('%Y-%m-%d %H:%M:%S.000000', :now, '-' || g || ' seconds') END,
       CASE WHEN g % 1000 = 1 THEN 'busy-worker' END,
       CASE WHEN g % 1000 = 1 THEN strftime('%Y-%m-%d %H:%M:%S.000000', :now, '+1 hours') END,
       'ready', strftime('%Y-%m-%d %H:%M:%S.000000', :now, '-' || g || ' seconds'),
       CASE WHEN g % :every = 0 OR g % 1000 = 1 THEN NULL ELSE 'rec-' || g END,
       CASE WHEN g % :every = 0 OR g % 1000 = 1 THEN NULL ELSE :now END,
       :now, :now
FROM seq
"""


def measure_claims(url: str, rows: int, every: int, repeats: int) -> dict[str, Any]:
    """Child process: load ``rows``, then time ``repeats`` claims of 8 (each given back,
    untimed)."""
    from sqlalchemy import text, update

    from poller.adapters.sql.database import make_engine
    from poller.adapters.sql.models import calls_table
    from poller.adapters.sql.store import SqlStore

    engine = make_engine(url)
    backend = engine.dialect.name
    started = time.perf_counter()
    with engine.begin() as connection:
        if backend == "sqlite":
            now: Any = NOW.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            connection.execute(text(_LOAD_SQLITE), {"rows": rows, "every": every, "now": now})
        else:
            connection.execute(text(_LOAD_POSTGRES), {"rows": rows, "every": every, "now": NOW})
    # No ANALYZE: the claim must not depend on statistics being fresh.
    load_seconds = time.perf_counter() - started

    store = SqlStore(engine)
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        claimed = store.claim_due("bench-worker", NOW, NOW + timedelta(minutes=2), CLAIM_LIMIT)
        timings.append(time.perf_counter() - began)
        assert len(claimed) == CLAIM_LIMIT, len(claimed)
        with engine.begin() as connection:  # give them back as they were, due
            connection.execute(
                update(calls_table)
                .where(calls_table.c.id.in_([call.id for call in claimed]))
                .values(lease_owner=None, lease_expires_at=None)
            )
    plans = []
    with engine.connect() as connection:
        for lookup in store.claim_lookups(NOW, CLAIM_LIMIT):
            sql = str(lookup.compile(engine, compile_kwargs={"literal_binds": True}))
            explain = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
            lines = connection.exec_driver_sql(explain + sql).all()
            plans.append(" / ".join(str(line[-1]).strip() for line in lines))
    engine.dispose()
    return {
        "median_ms": statistics.median(timings) * 1000,
        "load_seconds": load_seconds,
        "plans": plans,
    }


# -- ingest ----------------------------------------------------------------------------------


class SyntheticProvider:
    """``count`` calls, one a second from ``start``, listed a page of 100 at a time.

    Records go through the generic adapter's own ``normalise``, as listed ones do; pages are
    made as they are asked for, so the provider holds no more than one.
    """

    def __init__(self, count: int, start: datetime) -> None:
        from poller.adapters.providers.generic import GenericProvider, GenericSettings

        self.count = count
        self.start = start
        self.adapter = GenericProvider(GenericSettings(base_url="http://127.0.0.1:9"))

    @property
    def capabilities(self) -> Any:
        return self.adapter.capabilities

    def list_window(self, window: Any) -> Iterator[Any]:
        from poller.ports.provider import ListedPage, RecordPosition
        from poller.simulators.provider_server import quickstart_call

        first = max(0, int((window.start - self.start).total_seconds()))
        last = min(self.count, int((window.end - self.start).total_seconds()))
        for number, offset in enumerate(range(first, last, 100), start=1):
            records = []
            for index in range(offset, min(last, offset + 100)):
                at = self.start + timedelta(seconds=index)
                raw = quickstart_call(
                    f"call-{index:07d}",
                    at,
                    recording_url=f"http://127.0.0.1:9/recordings/{index}.mp3",
                    email=f"rep{index % 50}@example.com",
                    contact_name=f"Customer {index}",
                )
                records.append(self.adapter.normalise(raw, RecordPosition(window, number, index)))
            yield ListedPage(window=window, number=number, records=records, item_count=len(records))

    def normalise(self, raw: Mapping[str, Any], position: Any) -> Any:
        return self.adapter.normalise(raw, position)

    def resolve_download(self, call: Any) -> Any:
        raise NotImplementedError


def measure_ingest(url: str, count: int) -> dict[str, Any]:
    """Child process: one poll cycle listing ``count`` new calls; its time and peak RSS."""
    from poller.adapters.sql.database import make_engine
    from poller.adapters.sql.store import SqlStore
    from poller.core.poll import poll_once
    from poller.core.poll_report import PollParams

    start = NOW - timedelta(seconds=count + 60)
    provider = SyntheticProvider(count, start)
    engine = make_engine(url)
    store = SqlStore(engine)
    in_store = 0.0
    ingest_page = store.ingest_page

    def timed_ingest_page(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_store
        began = time.perf_counter()
        try:
            return ingest_page(*args, **kwargs)
        finally:
            in_store += time.perf_counter() - began

    store.ingest_page = timed_ingest_page  # type: ignore[method-assign]
    params = PollParams(provider_key="bench", settle_delay=timedelta(0), start_at=start)
    began = time.perf_counter()
    report = poll_once(params, provider, store, NOW, keep_changes=0)  # as the daemon does
    seconds = time.perf_counter() - began
    assert report.ok and report.counts["inserted"] == count, report.counts
    engine.dispose()
    return {
        "seconds": seconds,
        "store_seconds": in_store,
        "per_second": count / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


# -- worker against a plain copy -------------------------------------------------------------


def measure_worker(files: int, size_mb: int) -> dict[str, Any]:
    """Child process: the worker's drain (8 threads), then a plain 8-thread copy."""
    import requests
    from bench_worker import STARTED, TOKEN

    from poller.adapters.providers.generic import GenericProvider, GenericSettings
    from poller.adapters.sql import migrate
    from poller.adapters.sql.database import make_engine
    from poller.adapters.sql.store import SqlStore
    from poller.app import build_siro_client, build_worker
    from poller.config import Settings
    from poller.core.poll import poll_once
    from poller.core.users_sync import sync_users
    from poller.domain.siro import AudioFormat
    from poller.wiring import poll_params_from_settings

    fakes = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_worker.py"),
            "--serve",
            f"{size_mb}",
            f"{files}",
        ],
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
                worker={"concurrency": 8, "max_file_bytes": 100 * MB},
                siro=where["siro"],
            )
            engine = make_engine(settings.database_url)
            migrate.upgrade(engine)
            store = SqlStore(engine)
            params = poll_params_from_settings(settings)
            assert isinstance(settings.provider, GenericSettings)
            poll_once(params, GenericProvider(settings.provider), store, datetime.now(UTC))
            urls = [c.recording_url for c in store.list_calls(limit=files) if c.recording_url]
            siro = build_siro_client(settings)
            worker = build_worker(settings, store, threading.Event(), siro=siro)
            sync_users(siro, store, datetime.now(UTC), default_region="US")
            began = time.perf_counter()
            report = worker.drain()
            worker_seconds = time.perf_counter() - began
            assert report.uploaded == files, report

            # The plain copy: the same recordings, GET to a file and PUT from it, 8 threads.
            targets = [siro.request_upload(AudioFormat.MP3, where["bytes"]) for _ in urls]
            session = requests.Session()
            session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))
            headers = {"Authorization": f"Bearer {TOKEN}"}
            spool = Path(state) / "copy"
            spool.mkdir()

            def copy(index: int) -> None:
                path = spool / f"{index}.mp3"
                with session.get(urls[index], headers=headers, stream=True, timeout=120) as got:
                    got.raise_for_status()
                    with path.open("wb") as out:
                        for chunk in got.iter_content(MB):
                            out.write(chunk)
                target = targets[index]
                put_headers = target.put_headers(AudioFormat.MP3, where["bytes"])
                with path.open("rb") as body:
                    session.put(
                        target.upload_url, data=body, headers=put_headers, timeout=120
                    ).raise_for_status()
                path.unlink()

            began = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(copy, range(len(urls))))
            copy_seconds = time.perf_counter() - began
        total_mb = files * where["bytes"] / MB
        return {
            "files": files,
            "file_mb": where["bytes"] / MB,
            "worker_per_second": files / worker_seconds,
            "worker_mb_per_second": total_mb / worker_seconds,
            "copy_per_second": files / copy_seconds,
            "copy_mb_per_second": total_mb / copy_seconds,
        }
    finally:
        if fakes.stdin is not None:
            fakes.stdin.close()
        fakes.wait(timeout=30)


# -- the report ------------------------------------------------------------------------------


def backends(admin_url: str | None) -> list[str]:
    return ["sqlite", "postgres"] if admin_url else ["sqlite"]


def report(sizes: Sizes, admin_url: str | None) -> None:
    import platform

    cpus = os.cpu_count()
    print(f"machine: {platform.machine()}, {cpus} CPU(s), Python {platform.python_version()}")
    if admin_url is None:
        print("no PostgreSQL server given (--postgres or POLLER_BENCH_POSTGRES_URL): SQLite only")

    print(f"\nclaim of {CLAIM_LIMIT} rows, median of {sizes.claim_repeats} (ms)")
    print(f"{'backend':<10} {'rows':>10} {'due':>6} {'claim ms':>9} {'load s':>7}")
    plans: dict[str, list[str]] = {}
    for backend in backends(admin_url):
        baseline: dict[int, float] = {}
        for every, label in sizes.claim_due:
            for rows in sizes.claim_rows:
                with fresh_database(backend, admin_url) as url:
                    figures = child(
                        "--claims", url, str(rows), str(every), str(sizes.claim_repeats)
                    )
                ratio = ""
                if rows == sizes.claim_rows[0]:
                    baseline[every] = figures["median_ms"]
                else:
                    ratio = f"  ({figures['median_ms'] / baseline[every]:.1f}x)"
                print(
                    f"{backend:<10} {rows:>10,} {label:>6} {figures['median_ms']:>9.2f} "
                    f"{figures['load_seconds']:>7.1f}{ratio}"
                )
                plans[backend] = figures["plans"]
    for backend, found in plans.items():
        print(f"\nplans of the claim's lookups at {sizes.claim_rows[-1]:,} rows, {backend}:")
        for name, plan in zip(("lease ran out", "due"), found, strict=True):
            print(f"  {name}: {plan}")

    print("\npoll ingesting new calls (pages of 100; 'in store': the part spent in ingest_page)")
    print(
        f"{'backend':<10} {'calls':>8} {'seconds':>8} {'in store':>9} {'calls/s':>8} "
        f"{'peak RSS MB':>12}"
    )
    for backend in backends(admin_url):
        rss: list[float] = []
        for count in sizes.ingest_calls:
            with fresh_database(backend, admin_url) as url:
                figures = child("--ingest", url, str(count))
            rss.append(figures["peak_rss_mb"])
            ratio = f"  ({rss[-1] / rss[0]:.2f}x RSS)" if len(rss) > 1 else ""
            print(
                f"{backend:<10} {count:>8,} {figures['seconds']:>8.1f} "
                f"{figures['store_seconds']:>9.1f} {figures['per_second']:>8.0f} "
                f"{figures['peak_rss_mb']:>12.1f}{ratio}"
            )

    figures = child("--worker", str(sizes.worker_files), str(sizes.worker_mb))
    print(
        f"\nworker vs plain copy, {figures['files']} files of {figures['file_mb']:.1f} MB, "
        "8 threads, fakes in their own process"
    )
    print(
        f"  worker: {figures['worker_per_second']:.1f} rec/s, "
        f"{figures['worker_mb_per_second']:.1f} MB/s"
    )
    print(
        f"  copy:   {figures['copy_per_second']:.1f} rec/s, "
        f"{figures['copy_mb_per_second']:.1f} MB/s"
    )
    share = figures["worker_mb_per_second"] / figures["copy_mb_per_second"]
    print(f"  the worker moves {share:.0%} of the plain copy's bytes per second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--postgres",
        default=os.environ.get("POLLER_BENCH_POSTGRES_URL")
        or os.environ.get("POLLER_TEST_POSTGRES_URL"),
        help="a PostgreSQL server URL whose user may create databases",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="every part, on tiny inputs (claims: 1%% due, 5 a median)",
    )
    parser.add_argument("--claims", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--ingest", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.claims:
        url, rows, every, repeats = args.claims
        print(json.dumps(measure_claims(url, int(rows), int(every), int(repeats))))
    elif args.ingest:
        url, count = args.ingest
        print(json.dumps(measure_ingest(url, int(count))))
    elif args.worker:
        print(json.dumps(measure_worker(*args.worker)))
    else:
        report(SMOKE if args.smoke else FULL, args.postgres)


if __name__ == "__main__":
    main()
