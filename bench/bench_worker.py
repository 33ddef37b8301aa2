"""Worker throughput: against a plain 8-thread copy, and peak memory by file size.

A child process plays the provider and Siro (real HTTP on 127.0.0.1), so the figures are the
worker's alone.

``--compare`` (the throughput target): the worker's drain (download, audio check, three-step
upload; ``worker.concurrency`` = 8) against a plain 8-thread copy of the same recordings (GET
to a file, then Siro's signed URL, PUT and create, as the worker does) through the same fakes,
every request delayed by ``--latency-ms`` as a network round trip would be (given several
values, the comparison runs at each). Worker and copy
alternate within each round (which goes first alternates too), so a busy machine slows both
alike; the figures are the medians over the rounds, for SQLite and, given a server,
PostgreSQL (a fresh database each round). For the worker it also prints, per call, the SQL
statements sent (counted by SQLAlchemy's ``before_cursor_execute``, BEGIN included), the
transactions committed (a statement run in autocommit counts as one) and the thread
hand-offs: each row handed from the drain loop to a pool thread, and each future completed
(a row's turn handed back, or the loop woken to claim because a row left the download side).
Those are counted in one more drain per backend, not timed: the counters (a listener on every
statement, a lock on every count) cost the drain about a tenth of its rate, which earlier
versions of this benchmark charged to the worker.
For both it prints the CPU time this process spent per recording (``time.process_time``,
all threads): when rate x CPU per recording is about the CPU the machine gives this
process, the run measures CPU, not waiting, and the ratio is about the ratio of CPU per
recording whatever the overlap.

Is the copy a fair yardstick? Both run in this process against the same fakes, with the same
Siro client for the three Siro steps and keep-alive sessions; per recording both make the
same four requests, one after the other (each needs the answer of the one before: Siro's
signed URL needs the exact size and type of the file, known only once it is downloaded and
checked). The copy's 8 threads each take a recording through all four, so it cannot pass
``8 / (4 x latency)`` recordings per second. The worker works 24 recordings at once in as many
threads, each request in a slot of its host (``poller/core/stages.py``): at most 8 downloads
from the provider, 8 requests to Siro's API (the signed URL and the create, two per
recording) and 8 PUTs to Siro's storage. Its busiest host, Siro's API, caps it at ``8 / (2 x
latency)``. Both ceilings are printed. Per host the worker sends no more requests at once than
the copy may: 8. (Here one fake plays Siro's API and its storage, which are two hosts for the
real Siro, api.siro.ai and Google Cloud Storage: that fake sees up to 16 at once.) Between its
requests it also claims its rows,
checks the audio and records each step (the state writes that make a restart resume without
loss or a second upload), which the copy does not. An earlier version of this benchmark
fetched the copy's signed URLs before timing it (two requests per recording in sequence
instead of four); the ratio of the issue (1.16x, 50.0 against 43.3 recordings/s) predates
this comparison.

Which limit a run meets decides what it shows. This process runs Python on one core at a time
(the GIL), so when the requests come back quickly (20 ms, on two cores shared with the fakes)
both are CPU-bound: the worker's rate is then about one over its CPU per recording, and the
work that makes it safe (the state writes, the audio check, the SHA-256) costs it several
milliseconds a recording the copy does not spend. When the network is the limit (30 ms a
request and more, as a real provider and Siro over TLS are), the overlap of downloads and
uploads shows. ``--latency-ms 20 40`` compares at both.

Without ``--compare``, for each file size a fresh process polls the fake call log into a SQLite
state database and drains the worker with the configured concurrency, then reports
recordings and megabytes per second and the process's peak resident set size
(``ru_maxrss``): peak RSS that stays flat from 1 MB to 50 MB files shows nothing holds a
recording in memory.

Run from the repository root::

    .venv/bin/python bench/bench_worker.py --compare [--postgres URL] [--rounds N]
        [--latency-ms MS ...]
    .venv/bin/python bench/bench_worker.py [--concurrency N]

The PostgreSQL server URL defaults to ``POLLER_BENCH_POSTGRES_URL`` or
``POLLER_TEST_POSTGRES_URL``. Figures only; nothing is asserted.
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
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's poller and its simulators, whatever is installed

MB = 1024 * 1024
# (file size in MB, how many recordings): enough work for a stable rate, bounded disk use.
RUNS = ((1, 60), (50, 6))
STARTED = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TOKEN = "bench-provider-token"  # noqa: S105  (the local fake's token)


def serve(size_mb: float, count: int, latency_ms: float = 0.0) -> None:
    """Child process: the provider with ``count`` recordings of ``size_mb``, and Siro, each
    request answered ``latency_ms`` late."""
    from poller.simulators.audio import MP3_FRAME_BYTES, mp3_bytes
    from poller.simulators.provider_server import FakeCallLog, quickstart_call
    from poller.simulators.provider_server import serve as serve_provider
    from poller.simulators.siro_server import FakeSiro

    if latency_ms:
        delay_every_request(latency_ms / 1000)
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


def delay_every_request(seconds: float) -> None:
    """Every request to the fakes waits ``seconds`` once its request line is in: the network
    round trip the loopback interface does not have."""
    from poller.simulators.http_server import QuietHandler

    parse = QuietHandler.parse_request

    def parse_late(handler: QuietHandler) -> bool:
        time.sleep(seconds)
        return parse(handler)

    QuietHandler.parse_request = parse_late  # type: ignore[method-assign,assignment]


@contextmanager
def fakes_serving(size_mb: float, count: int, latency_ms: float = 0.0) -> Iterator[dict[str, Any]]:
    """The fakes in a process of their own: where they listen, and the recordings' size."""
    fakes = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(size_mb), str(count), str(latency_ms)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert fakes.stdout is not None
        yield json.loads(fakes.stdout.readline())
    finally:
        if fakes.stdin is not None:
            fakes.stdin.close()
        fakes.wait(timeout=30)


def measure(size_mb: int, count: int, concurrency: int) -> dict[str, float]:
    """Child process: poll, drain, and report the rate and this process's peak RSS."""
    with fakes_serving(size_mb, count) as where, tempfile.TemporaryDirectory() as state:
        settings = bench_settings(where, Path(state), concurrency, database_url=None)
        worker = polled_worker(settings)
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


def bench_settings(
    where: dict[str, Any], state: Path, concurrency: int, database_url: str | None
) -> Any:
    from poller.config import Settings

    return Settings(
        state_dir=state,
        database={"url": database_url},
        provider={"base_url": where["provider"], "auth": "bearer", "token": TOKEN},
        poll={"start_at": STARTED - timedelta(minutes=1), "settle_delay_seconds": 0},
        worker={"concurrency": concurrency, "max_file_bytes": 100 * MB},
        siro=where["siro"],
    )


def polled_worker(settings: Any) -> Any:
    """A worker with every fake call listed and due, and Siro's users synced (as the daemon
    does before its first drain)."""
    from poller.adapters.providers.generic import GenericProvider
    from poller.adapters.sql import migrate
    from poller.adapters.sql.store import SqlStore
    from poller.app import build_engine, build_siro_client, build_worker
    from poller.core.poll import poll_once
    from poller.core.users_sync import sync_users
    from poller.wiring import poll_params_from_settings

    engine = build_engine(settings)
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
    return worker


# -- the worker against a plain copy -----------------------------------------------------------


class Counts:
    """What the drain sends the database, and how often work changes threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statements = 0
        self.commits = 0
        self.handoffs = 0

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


@contextmanager
def counting(engine: Any) -> Iterator[Counts]:
    """Count statements and commits on ``engine``, and hand-offs between the drain loop and its
    pool (a row submitted to a pool thread; a future completed: a row's turn handed back, or
    the loop woken to claim)."""
    from sqlalchemy import event

    counts = Counts()

    def on_statement(connection: Any, *_args: Any) -> None:
        counts.add("statements")
        if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            counts.add("commits")  # a statement that is its own transaction commits alone

    def on_commit(*_args: Any) -> None:
        counts.add("commits")

    submit = ThreadPoolExecutor.submit
    set_result = Future.set_result

    def counted_submit(pool: ThreadPoolExecutor, *args: Any, **kwargs: Any) -> Any:
        counts.add("handoffs")
        return submit(pool, *args, **kwargs)

    def counted_set_result(future: Future[Any], result: Any) -> None:
        counts.add("handoffs")
        set_result(future, result)

    event.listen(engine, "before_cursor_execute", on_statement)
    event.listen(engine, "commit", on_commit)
    ThreadPoolExecutor.submit = counted_submit  # type: ignore[method-assign,assignment]
    Future.set_result = counted_set_result  # type: ignore[method-assign,assignment]
    try:
        yield counts
    finally:
        Future.set_result = set_result  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
        event.remove(engine, "before_cursor_execute", on_statement)
        event.remove(engine, "commit", on_commit)


@contextmanager
def fresh_worker(where: dict[str, Any], database_url: str | None) -> Iterator[Any]:
    """A worker (concurrency 8) with every recording listed and due, on a state database of its
    own; its engine is disposed of afterwards."""
    with tempfile.TemporaryDirectory() as state:
        worker = polled_worker(bench_settings(where, Path(state), 8, database_url))
        try:
            yield worker
        finally:
            worker.store.engine.dispose()


def drain_worker(where: dict[str, Any], files: int, database_url: str | None) -> dict[str, float]:
    """The worker's drain of every recording, timed: recordings per second, and this
    process's CPU milliseconds per recording."""
    with fresh_worker(where, database_url) as worker:
        began, cpu_began = time.perf_counter(), time.process_time()
        report = worker.drain()
        seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu_began
    assert report.uploaded == files, report
    return {"per_second": files / seconds, "cpu_ms": cpu_seconds * 1000 / files}


def count_worker(where: dict[str, Any], files: int, database_url: str | None) -> dict[str, float]:
    """The same drain, counted and not timed: statements, commits and hand-offs per call.
    Counting costs the drain about a tenth of its rate (a listener on every statement, a
    lock on every count), so the timed drains run without it."""
    with fresh_worker(where, database_url) as worker, counting(worker.store.engine) as counts:
        report = worker.drain()
    assert report.uploaded == files, report
    return {
        "statements": counts.statements / files,
        "commits": counts.commits / files,
        "handoffs": counts.handoffs / files,
    }


def plain_copy(where: dict[str, Any], files: int) -> tuple[float, float]:
    """The same job done plainly by 8 threads: each recording fetched to a file (GET), then the
    three Siro steps the worker makes (signed URL, PUT, create), with no state database, audio
    check or retry. Recordings per second, and CPU milliseconds per recording."""
    import requests

    from poller.app import build_siro_client
    from poller.domain.siro import AudioFormat, RecordingCreate

    with tempfile.TemporaryDirectory() as state:
        siro = build_siro_client(bench_settings(where, Path(state), 8, database_url=None))
    urls = [f"{where['provider']}/recordings/bench-{index:04d}" for index in range(files)]
    session = requests.Session()
    session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=8))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with tempfile.TemporaryDirectory() as spool:

        def copy(index: int) -> None:
            path = Path(spool) / f"{index}.mp3"
            with session.get(urls[index], headers=headers, stream=True, timeout=120) as got:
                got.raise_for_status()
                with path.open("wb") as out:
                    for chunk in got.iter_content(MB):
                        out.write(chunk)
            size = path.stat().st_size
            signed = siro.request_upload(AudioFormat.MP3, size)
            used = siro.put_audio(signed, path, AudioFormat.MP3, size)
            siro.create_recording(
                RecordingCreate(
                    file_url=used.download_url,
                    file_type=AudioFormat.MP3,
                    title=f"copy {index}",
                    user_email="rep@example.com",
                )
            )
            path.unlink()

        began = time.perf_counter()
        cpu_began = time.process_time()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(copy, range(files)))
        seconds = time.perf_counter() - began
        cpu_seconds = time.process_time() - cpu_began
    session.close()
    return files / seconds, cpu_seconds * 1000 / files


@contextmanager
def fresh_database(backend: str, admin_url: str | None) -> Iterator[str | None]:
    """None for SQLite (the state directory's own file), else a PostgreSQL database of its
    own, dropped afterwards."""
    if backend == "sqlite":
        yield None
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    assert admin_url is not None
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"siro_poller_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def compare(
    files: int, size_mb: float, latency_ms: float, rounds: int, admin_url: str | None
) -> dict[str, dict[str, float]]:
    """Worker and plain copy, alternating, ``rounds`` times per backend: the medians."""
    backends = ["sqlite", "postgres"] if admin_url else ["sqlite"]
    samples: dict[str, list[dict[str, float]]] = {backend: [] for backend in backends}
    counted: dict[str, dict[str, float]] = {}
    with fakes_serving(size_mb, files, latency_ms) as where:
        for backend in backends:
            with fresh_database(backend, admin_url) as url:
                counted[backend] = count_worker(where, files, url)
        for round_number in range(rounds):
            for backend in backends:
                figures: dict[str, float] = {}
                with fresh_database(backend, admin_url) as url:
                    parts = ["worker", "copy"]
                    for part in parts if round_number % 2 == 0 else reversed(parts):
                        if part == "worker":
                            figures.update(drain_worker(where, files, url))
                        else:
                            figures["copy_per_second"], figures["copy_cpu_ms"] = plain_copy(
                                where, files
                            )
                figures["ratio"] = figures["per_second"] / figures["copy_per_second"]
                samples[backend].append(figures)
                print(
                    f"  round {round_number + 1} {backend:<8} worker {figures['per_second']:6.1f}"
                    f"  copy {figures['copy_per_second']:6.1f}  ratio {figures['ratio']:.2f}"
                    f"  CPU ms/rec {figures['cpu_ms']:.1f} / {figures['copy_cpu_ms']:.1f}",
                    file=sys.stderr,
                    flush=True,
                )
    return {
        backend: {name: statistics.median(sample[name] for sample in found) for name in found[0]}
        | counted[backend]
        for backend, found in samples.items()
    } | {"file": {"mb": where["bytes"] / MB, "files": files, "latency_ms": latency_ms}}


def print_comparison(figures: dict[str, dict[str, float]], rounds: int) -> None:
    about = figures.pop("file")
    print(
        f"worker (8 threads) vs plain 8-thread copy: {about['files']:.0f} files of "
        f"{about['mb']:.1f} MB, {about['latency_ms']:.0f} ms per request; median of {rounds} "
        "alternating rounds"
    )
    if about["latency_ms"]:
        latency = about["latency_ms"] / 1000
        print(
            "both make 4 requests per recording one after the other: the copy's 8 threads at "
            f"most {8 / (4 * latency):.0f} rec/s, the worker's 8 requests at once to Siro's API "
            f"(2 per recording) at most {8 / (2 * latency):.0f} rec/s (the ceilings)"
        )
    print(
        f"{'backend':<10} {'worker rec/s':>12} {'copy rec/s':>11} {'ratio':>6} "
        f"{'SQL/call':>9} {'commits/call':>13} {'hand-offs/call':>15} "
        f"{'CPU ms/rec worker':>18} {'copy':>5}"
    )
    for backend, row in figures.items():
        print(
            f"{backend:<10} {row['per_second']:>12.1f} {row['copy_per_second']:>11.1f} "
            f"{row['ratio']:>5.2f}x {row['statements']:>9.1f} {row['commits']:>13.1f} "
            f"{row['handoffs']:>15.1f} {row['cpu_ms']:>18.1f} {row['copy_cpu_ms']:>5.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--compare", action="store_true", help="the worker against a plain copy")
    parser.add_argument("--files", type=int, default=480, help="with --compare")
    parser.add_argument("--mb", type=float, default=1.0, help="with --compare: file size")
    parser.add_argument(
        "--latency-ms",
        type=float,
        nargs="+",
        default=[20.0],
        help="with --compare: the delay of every request; several values compare at each",
    )
    parser.add_argument("--rounds", type=int, default=5, help="with --compare")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("POLLER_BENCH_POSTGRES_URL")
        or os.environ.get("POLLER_TEST_POSTGRES_URL"),
        help="with --compare: a PostgreSQL server URL whose user may create databases",
    )
    # size in MB, recordings, and optionally the latency in ms (bench_scale passes two)
    parser.add_argument("--serve", nargs="+", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        size_mb, count, *latency_ms = args.serve
        serve(size_mb, int(count), *latency_ms)
        return
    if args.measure:
        size_mb, count = args.measure
        print(json.dumps(measure(size_mb, count, concurrency=args.concurrency)))
        return
    if args.compare:
        for latency_ms in args.latency_ms:
            figures = compare(args.files, args.mb, latency_ms, args.rounds, args.postgres)
            print_comparison(dict(figures), args.rounds)
            print(json.dumps(figures), flush=True)
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
