"""Garbage at the webhook receiver: does the daemon's work go on, and does its memory stay flat?

A real `siro-poller run` (a subprocess, SQLite) polls the generic simulator and uploads to the
Siro simulator, both in this process, while a steady stream of small calls arrives (several a
second, each with a short mp3). Its receiver takes the provider's events (HMAC-signed). The
run has two phases:

- **baseline**: no garbage, ``--baseline-seconds``;
- **garbage**: a separate process sends ``--rate`` requests a second for ``--seconds``, each on
  a fresh connection (a fresh source port) from one of ``--sources`` loopback addresses: random
  bytes, a huge Content-Length, unsigned JSON to the provider's path, wrong paths, and
  slowloris half-requests that are held open until the receiver closes them.

Every 5 s (``--row-seconds``) it prints the daemon's RSS and threads, the garbage sent and
the answers by status ("closed": the connection ended without an answer, "error": no
connection), the calls the daemon uploaded per second with the backlog (calls offered and not
yet in Siro), and how many of the signed events sent meanwhile (one a second, from an address
of their own) were answered 200, with the slowest answer; at the end the mean uploads per
second of each phase and the receiver's metric by outcome. Run from the repository root::

    .venv/bin/python bench/bench_webhook_garbage.py [--seconds 60] [--rate 1000]

Figures only; nothing is asserted. On a shared machine the load average (printed) matters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import json
import multiprocessing
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's poller and its simulators, whatever is installed

# The garbage process is spawned: it imports this module again before it sends anything, and
# needs none of the poller's modules (the database's alone cost it half a second of CPU). They
# are imported where this process uses them.
if TYPE_CHECKING:
    from poller.simulators.provider_server import FakeCallLog
    from poller.simulators.siro_server import FakeSiro

PROVIDER = "legacy"
PROVIDER_TOKEN = "bench-provider-token"  # noqa: S105 (the simulator's)
WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105
# Half-requests held open at once by the garbage process (each until the receiver closes it).
SLOWLORIS_HELD = 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def proc_status(pid: int) -> tuple[float, int]:
    """The process's RSS in MB and its thread count."""
    text = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    threads = int(re.search(r"Threads:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
    return rss / 1024, threads


# -- the garbage process ----------------------------------------------------------------------


def garbage_payloads(port: int) -> list[tuple[str, bytes]]:
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    unsigned = b'{"event": "call.completed", "call": {"id": "forged"}}'
    return [
        ("random", os.urandom(256)),
        (
            "huge",
            b"POST /webhooks/"
            + PROVIDER.encode()
            + b" HTTP/1.1\r\n"
            + host
            + b"Content-Length: 1073741824\r\n\r\n"
            + os.urandom(512),
        ),
        (
            "unsigned",
            b"POST /webhooks/"
            + PROVIDER.encode()
            + b" HTTP/1.1\r\n"
            + host
            + b"Content-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(unsigned)}\r\n\r\n".encode()
            + unsigned,
        ),
        (
            "wrong-path",
            b"POST /webhooks/../../etc/passwd HTTP/1.1\r\n"
            + host
            + b"Content-Length: 2\r\nConnection: close\r\n\r\n{}",
        ),
        ("wrong-method", b"GET /webhooks/" + PROVIDER.encode() + b" HTTP/1.1\r\n" + host + b"\r\n"),
    ]


def garbage_main(
    port: int, rate: float, seconds: float, sources: int, results: Any, stop_at: float
) -> None:
    asyncio.run(_garbage(port, rate, seconds, sources, results, stop_at))


async def _garbage(
    port: int, rate: float, seconds: float, sources: int, results: Any, stop_at: float
) -> None:
    payloads = garbage_payloads(port)
    addresses = [f"127.0.{1 + n // 250}.{1 + n % 250}" for n in range(sources)]
    answers: Counter[str] = Counter()
    sent = 0
    held = 0
    in_flight: set[asyncio.Task[None]] = set()

    async def one(kind: str, payload: bytes) -> None:
        nonlocal held
        source = random.choice(addresses)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0)), 5
            )
        except (OSError, TimeoutError):
            answers["error"] += 1
            return
        try:
            if kind == "slowloris":
                held += 1
                writer.write(b"POST /webhooks/" + PROVIDER.encode() + b" HTTP/1.1\r\nHost: x\r\n")
                await writer.drain()
                for _ in range(60):  # a header line now and then, never the blank line
                    await asyncio.sleep(0.5)
                    writer.write(b"X-Slow: 1\r\n")
                    await writer.drain()
                answers["held-60s"] += 1
                return
            writer.write(payload)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), 20)
            match = re.match(rb"HTTP/1\.[01] (\d{3})", line)
            answers[match.group(1).decode() if match else "closed"] += 1
        except (OSError, TimeoutError):
            answers["closed"] += 1
        finally:
            if kind == "slowloris":
                held -= 1
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    started = time.monotonic()
    next_row = started + 1.0
    tick = 0.01
    while time.monotonic() - started < seconds and time.time() < stop_at:
        due = int(rate * (time.monotonic() - started)) - sent
        for _ in range(max(0, due)):
            if held < SLOWLORIS_HELD and random.random() < 0.05:
                kind, payload = "slowloris", b""
            else:
                kind, payload = random.choice(payloads)
            task = asyncio.create_task(one(kind, payload))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            sent += 1
        if time.monotonic() >= next_row:
            results.put(("row", sent, dict(answers)))
            next_row += 1.0
        await asyncio.sleep(tick)
    results.put(("row", sent, dict(answers)))
    for task in in_flight:
        task.cancel()


# -- the daemon and its world -------------------------------------------------------------------


class CallStream:
    """Adds ``per_second`` small calls a second to the call log, dated now."""

    def __init__(self, api: FakeCallLog, provider_url: str, per_second: float) -> None:
        from poller.simulators.audio import mp3_bytes

        self.api = api
        self.provider_url = provider_url
        self.per_second = per_second
        self.offered = 0
        self.recording = mp3_bytes(1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from poller.simulators.provider_server import quickstart_call

        began = time.monotonic()
        while not self._stop.wait(0.05):
            due = int(self.per_second * (time.monotonic() - began)) - self.offered
            for _ in range(due):
                call_id = f"bench-{self.offered:06d}"
                at = datetime.now(UTC) - timedelta(seconds=1)
                path = self.api.add_recording(f"/recordings/{call_id}", self.recording)
                self.api.add_call(
                    quickstart_call(call_id, at, recording_url=self.provider_url + path), at
                )
                self.offered += 1


class SignedEvents:
    """One signed event a second, as the vendor would send it, from an address of its own:
    how many the receiver answers 200 while garbage arrives, and how fast."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/webhooks/{PROVIDER}"
        self.outcomes: Counter[str] = Counter()
        self.seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sent = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def take(self) -> tuple[Counter[str], list[float]]:
        outcomes, seconds = self.outcomes, self.seconds
        self.outcomes, self.seconds = Counter(), []
        return outcomes, seconds

    def _run(self) -> None:
        import requests

        while not self._stop.wait(1.0):
            self._sent += 1
            body = json.dumps({"call": {"id": f"signed-{self._sent}"}}).encode()
            signature = hmac.new(WEBHOOK_SECRET.encode(), body, "sha256").hexdigest()
            began = time.monotonic()
            try:
                answer = requests.post(
                    self.url, data=body, headers={"X-Signature": signature}, timeout=15
                )
                self.outcomes[str(answer.status_code)] += 1
                if answer.status_code == 200:
                    self.seconds.append(time.monotonic() - began)
            except requests.RequestException as exc:
                self.outcomes[type(exc).__name__] += 1


def daemon_env(
    state_dir: Path, provider_url: str, siro: FakeSiro, ports: dict[str, int]
) -> dict[str, str]:
    from tests.daemon_process import daemon_environment

    return daemon_environment(
        state_dir=state_dir,
        database_url=f"sqlite:///{state_dir / 'bench.sqlite3'}",
        siro=siro,
        start_at=datetime.now(UTC) - timedelta(minutes=1),
        settings={
            "PROVIDER__NAME": PROVIDER,
            "PROVIDER__BASE_URL": provider_url,
            "PROVIDER__AUTH": "bearer",
            "PROVIDER__TOKEN": PROVIDER_TOKEN,
            "PROVIDER__WEBHOOK__ENABLED": "true",
            "PROVIDER__WEBHOOK__SECRET": WEBHOOK_SECRET,
            "PROVIDER__WEBHOOK__SCHEME": "hmac",
            "PROVIDER__WEBHOOK__HEADER": "X-Signature",
            "WEBHOOKS__LISTEN": f"127.0.0.1:{ports['webhooks']}",
            "METRICS__LISTEN": f"127.0.0.1:{ports['metrics']}",
            "WORKER__CONCURRENCY": "4",
            "LOGGING__LEVEL": "INFO",
        },
    )


def uploaded(siro: FakeSiro) -> int:
    with siro.state.lock:
        return len(siro.state.recordings)


def webhook_metric(port: int) -> dict[str, float]:
    import requests

    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    found = {}
    for line in text.splitlines():
        if line.startswith("siro_poller_webhook_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            found[labels.removeprefix("siro_poller_webhook_requests_total")] = float(value)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds of garbage")
    parser.add_argument("--rate", type=float, default=1000.0, help="garbage requests a second")
    parser.add_argument("--baseline-seconds", type=float, default=30.0)
    parser.add_argument("--calls-per-second", type=float, default=4.0)
    parser.add_argument("--warmup-seconds", type=float, default=5.0)
    parser.add_argument("--row-seconds", type=float, default=5.0, help="seconds a row covers")
    parser.add_argument(
        "--sources", type=int, default=200, help="loopback addresses the garbage comes from"
    )
    args = parser.parse_args()

    from poller.adapters.sql import migrate
    from poller.adapters.sql.database import make_engine
    from poller.simulators.provider_server import FakeCallLog, serve
    from poller.simulators.siro_server import FakeSiro

    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    ports = {"webhooks": free_port(), "metrics": free_port()}
    api = FakeCallLog(auth=("bearer", PROVIDER_TOKEN), page_size=100)
    with (
        tempfile.TemporaryDirectory() as scratch,
        serve(api) as provider,
        FakeSiro() as siro,
    ):
        api.base_url = provider.url
        state_dir = Path(scratch) / "state"
        state_dir.mkdir()
        engine = make_engine(f"sqlite:///{state_dir / 'bench.sqlite3'}")
        migrate.upgrade(engine)
        engine.dispose()
        log_path = Path(scratch) / "daemon.log"
        with log_path.open("wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "poller", "run"],
                env=daemon_env(state_dir, provider.url, siro, ports),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=scratch,
            )
        try:
            deadline = time.monotonic() + 60
            while "siro-poller running as" not in log_path.read_text(errors="replace"):
                if daemon.poll() is not None or time.monotonic() > deadline:
                    sys.exit("the daemon did not start:\n" + log_path.read_text()[-4000:])
                time.sleep(0.2)
            stream = CallStream(api, provider.url, args.calls_per_second)
            stream.start()
            signed = SignedEvents(ports["webhooks"])
            signed.start()
            signed_all: dict[str, Counter[str]] = {"baseline": Counter(), "garbage": Counter()}
            signed_times: dict[str, list[float]] = {"baseline": [], "garbage": []}
            time.sleep(args.warmup_seconds)  # the first calls through: a steady state
            print(
                f"{'t':>5} {'phase':8} {'RSS MB':>7} {'thr':>4} {'sent/s':>7} "
                f"{'uploads/s':>9} {'backlog':>7}  answers in the row"
            )
            # Spawned, not forked: this process runs the simulators' threads.
            context = multiprocessing.get_context("spawn")
            results: Any = context.Queue()
            rates: dict[str, list[float]] = {"baseline": [], "garbage": []}
            began = time.monotonic()
            last_uploaded, last_sent, last_answers = uploaded(siro), 0, Counter[str]()
            garbage: Any = None
            total = args.baseline_seconds + args.seconds
            while (elapsed := time.monotonic() - began) < total + 0.5:
                phase = "baseline" if elapsed < args.baseline_seconds else "garbage"
                if phase == "garbage" and garbage is None:
                    garbage = context.Process(
                        target=garbage_main,
                        args=(
                            ports["webhooks"],
                            args.rate,
                            args.seconds,
                            args.sources,
                            results,
                            time.time() + args.seconds + 5,
                        ),
                        daemon=True,
                    )
                    garbage.start()
                time.sleep(args.row_seconds)
                sent, answers = last_sent, last_answers
                while not results.empty():
                    _, sent, seen = results.get()
                    answers = Counter(seen)
                now_uploaded = uploaded(siro)
                rss, threads = proc_status(daemon.pid)
                per_second = (now_uploaded - last_uploaded) / args.row_seconds
                rates[phase].append(per_second)
                row = answers - last_answers
                shown = ", ".join(f"{k} {v}" for k, v in sorted(row.items())) or "-"
                signed_outcomes, signed_seconds = signed.take()
                signed_all[phase] += signed_outcomes
                signed_times[phase] += signed_seconds
                slowest = f"{max(signed_seconds) * 1000:.0f} ms" if signed_seconds else "-"
                shown = (
                    f"signed: {signed_outcomes.get('200', 0)}/{signed_outcomes.total()} "
                    f"(slowest {slowest}); garbage: {shown}"
                )
                print(
                    f"{time.monotonic() - began:5.0f} {phase:8} {rss:7.1f} {threads:4d} "
                    f"{(sent - last_sent) / args.row_seconds:7.0f} {per_second:9.1f} "
                    f"{stream.offered - now_uploaded:7d}  {shown}",
                    flush=True,
                )
                last_uploaded, last_sent, last_answers = now_uploaded, sent, answers
            stream.stop()
            signed.stop()
            if garbage is not None:
                garbage.join(timeout=30)
            for phase, values in rates.items():
                if values:
                    print(f"{phase}: {sum(values) / len(values):.2f} uploads/s on average")
            for phase, outcomes in signed_all.items():
                times = sorted(signed_times[phase])
                median = f"{times[len(times) // 2] * 1000:.0f} ms" if times else "-"
                print(
                    f"{phase}: signed events answered 200: {outcomes.get('200', 0)} of "
                    f"{outcomes.total()} (median {median}); {dict(outcomes)}"
                )
            print(f"calls offered {stream.offered}, uploaded {uploaded(siro)}")
            print("siro_poller_webhook_requests_total:")
            for labels, value in sorted(webhook_metric(ports["metrics"]).items()):
                print(f"  {labels} {value:.0f}")
            print(f"load average at the end: {os.getloadavg()[0]:.2f}")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()


if __name__ == "__main__":
    main()
