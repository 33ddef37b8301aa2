"""Latency: from the end of a call (its recording ready) to the recording in Siro, by polling
alone and nudged by the vendor's webhook event.

A real `siro-poller run` process works against one native vendor's simulator (``--provider``,
Zoom by default, or RingCentral) and the Siro simulator, on a fresh SQLite state database, with
every setting at its default: the poll every 300 s, the settle delays (120 s, or the adapter's
own where longer), the worker's interval, and for the nudges the receiver's debounce and
follow-ups. ``--calls`` calls end at random moments over ``--span`` seconds; each one's latency
runs from the moment it is added to the simulator (ended, recording ready) to the moment its
recording is in Siro.

- ``polling``: the vendor's events are lost (the simulator drops them); a call waits for the
  first poll whose window, which ends a settle delay before the poll, reaches past its start.
  This mode takes the span and up to a poll interval plus the settle delay more (about 17
  minutes with the defaults).
- ``nudged``: the simulator announces each call, signed, as it ends; the receiver verifies it
  and the daemon polls early. Quick: its span defaults to 120 s.

Run from the repository root::

    .venv/bin/python bench/bench_latency.py [--mode both|polling|nudged] [--provider zoom]
        [--calls 12] [--span SECONDS] [--seed 16]

Prints each call as it reaches Siro, then one JSON line of figures (p50 and p95 in seconds,
per mode). Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's poller and its simulators, whatever is installed

from poller.simulators.fresh_calls import (  # noqa: E402  (after the path is set)
    REP_EMAIL,
    RINGCENTRAL_REP,
    ZOOM_USER,
    VendorEvents,
    fresh_call,
)
from poller.simulators.siro_server import FakeSiro  # noqa: E402

STARTED_LINE = "siro-poller running as"
# In the line each poll cycle logs, whether it listed calls or failed.
POLLED_LINE = " call(s) listed"
POLL_INTERVAL = 300.0
SETTLE_DELAY = 120.0
# Beyond the last call: a poll interval, the settle delay and the upload's own time.
DRAIN = POLL_INTERVAL + SETTLE_DELAY + 120.0
SECRET = "bench-latency-webhook-secret"  # noqa: S105  (the local simulator's)


@dataclass
class Vendor:
    kind: str
    events: VendorEvents
    settings: dict[str, str]


@contextmanager
def zoom() -> Iterator[Vendor]:
    from poller.simulators.zoom_server import (
        ACCOUNT_ID,
        CLIENT_ID,
        CLIENT_SECRET,
        ZoomPhone,
        serve_zoom,
    )

    phone = ZoomPhone()
    with serve_zoom(phone):
        phone.add_user(ZOOM_USER, REP_EMAIL)
        yield Vendor(
            "zoom",
            phone,
            {
                "PROVIDER__KIND": "zoom",
                "PROVIDER__BASE_URL": f"{phone.api_url}/v2",
                "PROVIDER__TOKEN_URL": f"{phone.web_url}/oauth/token",
                "PROVIDER__ACCOUNT_ID": ACCOUNT_ID,
                "PROVIDER__CLIENT_ID": CLIENT_ID,
                "PROVIDER__CLIENT_SECRET": CLIENT_SECRET,
            },
        )


@contextmanager
def ringcentral() -> Iterator[Vendor]:
    from poller.simulators.ringcentral_server import RingCentralState, serve

    unlimited = {group: (10_000, 60, 60) for group in ("Heavy", "Medium", "Light", "Auth")}
    with serve(RingCentralState(groups=unlimited)) as api:
        extension_id, number, _ = RINGCENTRAL_REP
        api.add_extension(extension_id, number, "Rep One", REP_EMAIL)
        yield Vendor(
            "ringcentral",
            api,
            {
                "PROVIDER__KIND": "ringcentral",
                "PROVIDER__BASE_URL": api.base_url,
                "PROVIDER__MEDIA_BASE_URL": api.media_url,
                "PROVIDER__CLIENT_ID": api.client_id,
                "PROVIDER__CLIENT_SECRET": api.client_secret,
                "PROVIDER__JWT": api.jwt,
            },
        )


VENDORS = {"zoom": zoom, "ringcentral": ringcentral}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def migrate_state(folder: Path) -> None:
    """The daemon's state database, created here: `siro-poller db upgrade` would do the same
    in a process of its own, a second of CPU for what is not measured."""
    from poller.adapters.sql import migrate
    from poller.adapters.sql.database import make_engine

    engine = make_engine(f"sqlite:///{folder / 'state.sqlite3'}")
    migrate.upgrade(engine)
    engine.dispose()


def daemon_env(vendor: Vendor, siro: FakeSiro, folder: Path, receiver_port: int) -> dict[str, str]:
    """Only what reaches the simulators, the webhook's on-switch and a quiet start; every other
    setting at its default."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIRO_POLLER_")}
    env.pop("STATE_DIRECTORY", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    values = {
        "STATE_DIR": str(folder / "state"),
        "DATABASE__URL": f"sqlite:///{folder / 'state.sqlite3'}",
        # The first poll lists only the last hour: the bench's calls, not a backlog.
        "POLL__START_AT": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
        "LOGGING__FORMAT": "human",
        "WEBHOOKS__LISTEN": f"127.0.0.1:{receiver_port}",
        "PROVIDER__WEBHOOK__ENABLED": "true",
        "PROVIDER__WEBHOOK__SECRET": SECRET,
        **vendor.settings,
    }
    for key, value in siro.settings_values().items():
        text = json.dumps(value) if isinstance(value, list | dict) else str(value)
        values[f"SIRO__{key.upper()}"] = text
    env.update({f"SIRO_POLLER_{key}": value for key, value in values.items()})
    return env


def in_siro(siro: FakeSiro) -> set[str]:
    with siro.state.lock:
        titles = [str(r.get("title")) for r in siro.state.recordings.values()]
    return {title.rsplit("[", 1)[-1].rstrip("]") for title in titles if "[" in title}


def percentile(values: list[float], fraction: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def measure(mode: str, provider: str, calls: int, span: float, seed: int) -> dict[str, object]:
    """One daemon, one simulator, ``calls`` calls over ``span`` seconds; their latencies."""
    chooser = random.Random(seed)
    offsets = sorted(chooser.uniform(0, span) for _ in range(calls))
    ended: dict[str, float] = {}
    arrived: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-latency-") as name,
        VENDORS[provider]() as vendor,
        FakeSiro(verify_audio_type=True) as siro,
    ):
        folder = Path(name)
        port = free_port()
        vendor.events.send_events_to(f"http://127.0.0.1:{port}/webhooks/{provider}", SECRET)
        vendor.events.drop_events = mode == "polling"
        migrate_state(folder)
        log_path = folder / "daemon.log"
        with log_path.open("ab") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "poller", "run"],
                env=daemon_env(vendor, siro, folder, port),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
            )
        try:
            wait_for_line(daemon, log_path, STARTED_LINE, "the daemon did not start")
            # Its first poll, of an empty hour, over before the first call ends: no call's
            # latency includes the daemon's start.
            wait_for_line(daemon, log_path, POLLED_LINE, "the daemon did not poll")
            start = time.monotonic()
            print(f"{mode}: {calls} calls over {span:.0f} s against {provider}", flush=True)
            for n, offset in enumerate(offsets, 1):
                wait_until(start + offset, ended, arrived, siro)
                call_id = fresh_call(vendor.events, n)
                ended[call_id] = time.monotonic()
                vendor.events.announce(call_id)
            last = time.monotonic() + DRAIN
            while len(arrived) < calls and time.monotonic() < last:
                wait_until(time.monotonic() + 1, ended, arrived, siro)
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    latencies = [arrived[call] - ended[call] for call in ended if call in arrived]
    figures: dict[str, object] = {"calls": calls, "arrived": len(latencies), "span_s": span}
    if latencies:
        figures |= {
            "p50_s": round(percentile(latencies, 0.50), 1),
            "p95_s": round(percentile(latencies, 0.95), 1),
            "max_s": round(max(latencies), 1),
        }
    return figures


def wait_for_line(daemon: subprocess.Popen[bytes], log_path: Path, line: str, why: str) -> None:
    deadline = time.monotonic() + 60
    while line not in log_path.read_text(errors="replace"):
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{why}:\n{log_path.read_text()[-4000:]}")
        time.sleep(0.1)


def wait_until(
    moment: float, ended: dict[str, float], arrived: dict[str, float], siro: FakeSiro
) -> None:
    """Watch Siro until ``moment``, noting (and printing) each call as it arrives."""
    while True:
        now = time.monotonic()
        for call_id in in_siro(siro) - arrived.keys():
            if call_id in ended:
                arrived[call_id] = now
                print(f"  {call_id}: in Siro {now - ended[call_id]:.1f} s after it ended")
                sys.stdout.flush()
        if now >= moment:
            return
        time.sleep(min(0.1, moment - now))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("both", "polling", "nudged"), default="both")
    parser.add_argument("--provider", choices=sorted(VENDORS), default="zoom")
    parser.add_argument("--calls", type=int, default=12)
    parser.add_argument(
        "--span", type=float, help="seconds the calls end over (600; 120 with --mode nudged)"
    )
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args()
    span = args.span if args.span is not None else (120.0 if args.mode == "nudged" else 600.0)
    modes = ("polling", "nudged") if args.mode == "both" else (args.mode,)
    figures = {mode: measure(mode, args.provider, args.calls, span, args.seed) for mode in modes}
    print(json.dumps({"provider": args.provider, **figures}))


if __name__ == "__main__":
    main()
