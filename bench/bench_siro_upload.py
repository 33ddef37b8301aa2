"""Peak memory of the Siro client's streaming PUT, for growing file sizes.

The fake Siro runs in a child process, so the figures are the client's alone. For each size the
script uploads a file of random bytes through ``SiroHttpClient.put_audio`` and reports:

- the Python heap peak during the PUT (tracemalloc), and
- how far the process's resident-set high-water mark rose (``ru_maxrss``) during it.

A control row does what the client must not: read the whole file and PUT the bytes. Its peak
grows with the file, which shows the measurement would catch a client that did the same.

Run from the repository root::

    .venv/bin/python bench/bench_siro_upload.py [SIZE_MB ...]     # default: 1 10 50

Figures only; nothing is asserted, and timings are informative, not a test.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's poller and its simulators, whatever is installed

import requests  # noqa: E402

from poller.adapters.siro import SiroHttpClient  # noqa: E402
from poller.adapters.siro.settings import SiroSettings  # noqa: E402
from poller.domain.siro import AudioFormat  # noqa: E402

MB = 1024 * 1024


def serve() -> None:
    """Child process: run the fake Siro until stdin closes."""
    from poller.simulators.siro_server import FakeSiro

    with FakeSiro() as siro:
        print(json.dumps(siro.settings_values(read_timeout_seconds=120.0)), flush=True)
        sys.stdin.read()


def write_random_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for _ in range(size // MB):
            out.write(os.urandom(MB))
        out.write(os.urandom(size % MB))


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(upload: Callable[[], object]) -> tuple[float, float, float]:
    """Heap peak (MB), rise of the RSS high-water mark (MB), and seconds taken."""
    rss_before = max_rss_mb()
    tracemalloc.start()
    started = time.perf_counter()
    upload()
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / MB, max_rss_mb() - rss_before, elapsed


def main(sizes_mb: list[int]) -> None:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        settings = SiroSettings(**json.loads(child.stdout.readline()))
        client = SiroHttpClient(settings)
        print(f"{'what':<28}{'file MB':>8}{'heap peak MB':>14}{'RSS rise MB':>13}{'MB/s':>8}")
        with tempfile.TemporaryDirectory() as scratch:
            for size_mb in sorted(sizes_mb):
                size = size_mb * MB
                path = Path(scratch) / f"call-{size_mb}.wav"
                write_random_file(path, size)
                signed = client.request_upload(AudioFormat.WAV, size)
                peak, rss, seconds = measure(
                    lambda: client.put_audio(signed, path, AudioFormat.WAV, size)  # noqa: B023
                )
                print(
                    f"{'put_audio (streamed)':<28}{size_mb:>8}{peak:>14.2f}{rss:>13.1f}"
                    f"{size_mb / seconds:>8.0f}"
                )
                path.unlink()
            # The control: the same PUT with the whole file in memory, as the client must not.
            size_mb = max(sizes_mb)
            size = size_mb * MB
            path = Path(scratch) / "control.wav"
            write_random_file(path, size)
            signed = client.request_upload(AudioFormat.WAV, size)

            def whole_file_put() -> None:
                headers = signed.put_headers(AudioFormat.WAV, size)
                requests.put(
                    signed.upload_url, data=path.read_bytes(), headers=headers, timeout=120
                )

            peak, rss, seconds = measure(whole_file_put)
            print(
                f"{'control: whole file in RAM':<28}{size_mb:>8}{peak:>14.2f}{rss:>13.1f}"
                f"{size_mb / seconds:>8.0f}"
            )
        client.close()
    finally:
        child.stdin.close()
        child.wait(timeout=10)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main([int(arg) for arg in sys.argv[1:]] or [1, 10, 50])
