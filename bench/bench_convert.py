"""Conversion speed and peak memory: seconds of audio per wall second, and peak RSS, by length.

Each conversion runs in a fresh process (so its ``ru_maxrss`` is its own) on a WAV of the
given length, encoded to mp3 as the worker does for any WAV over Siro's size limit; a
10-minute M4A is also repackaged as ADTS aac. The ratio of the peak RSS converting the 2-hour
WAV to that converting the 1-minute WAV shows whether memory stays flat in file size (the
target is at most 1.5).

Run from the repository root::

    .venv/bin/python bench/bench_convert.py [--rate 8000] [--channels 2] [--bitrate 64]
    .venv/bin/python bench/bench_convert.py --smoke     # seconds-long inputs, for the tests

Figures only; nothing is asserted. The last line printed is the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's poller and its simulators, whatever is installed

# (label, kind, seconds): the WAVs are encoded to mp3, the M4A repackaged.
CASES = (
    ("1 min WAV -> mp3", "wav", 60),
    ("10 min WAV -> mp3", "wav", 600),
    ("2 h WAV -> mp3", "wav", 7200),
    ("10 min M4A -> aac", "m4a", 600),
)
SMOKE_CASES = (
    ("1 min WAV -> mp3", "wav", 1),
    ("10 min WAV -> mp3", "wav", 2),
    ("2 h WAV -> mp3", "wav", 3),
    ("10 min M4A -> aac", "m4a", 2),
)


def convert(source: str, target: str, kind: str, bitrate: int) -> None:
    """Child process: one conversion; prints its figures as JSON."""
    from poller.adapters.audio import PyAvAudio

    audio = PyAvAudio()
    facts = audio.probe(Path(source))
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if kind == "m4a":
        audio.remux_to_adts(Path(source), Path(target), should_stop=lambda: False)
    else:
        audio.encode_mp3(
            Path(source), Path(target), bitrate_kbps=bitrate, should_stop=lambda: False
        )
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "audio_seconds": facts.duration_seconds,
                "wall_seconds": wall,
                "source_bytes": Path(source).stat().st_size,
                "target_bytes": Path(target).stat().st_size,
                "baseline_rss_mb": baseline_kb / 1024,
                "peak_rss_mb": peak_kb / 1024,
            }
        )
    )


def make_source(directory: Path, kind: str, seconds: int, rate: int, channels: int) -> Path:
    from poller.simulators.audio import encoded, write_wav

    path = directory / f"source-{kind}-{seconds}.{kind}"
    if kind == "wav":
        write_wav(path, 44 + seconds * rate * channels * 2, rate=rate, channels=channels)
    else:
        path.write_bytes(encoded(kind, float(seconds), channels))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=8000, help="WAV sample rate (phone: 8000)")
    parser.add_argument("--channels", type=int, default=2, help="1, or 2 (one per speaker)")
    parser.add_argument("--bitrate", type=int, default=64, help="mp3 kbit/s")
    parser.add_argument("--smoke", action="store_true", help="seconds-long inputs")
    parser.add_argument("--child", nargs=3, metavar=("SOURCE", "TARGET", "KIND"))
    args = parser.parse_args()
    if args.child:
        convert(*args.child, bitrate=args.bitrate)
        return

    results: dict[str, dict[str, float]] = {}
    print(f"WAV: {args.rate} Hz, {args.channels} channel(s), 16-bit; mp3 at {args.bitrate} kbit/s")
    print(
        f"{'case':<20} {'audio s':>9} {'wall s':>8} {'x realtime':>11} {'in MB':>9} "
        f"{'out MB':>8} {'peak RSS MB':>12}"
    )
    for label, kind, seconds in SMOKE_CASES if args.smoke else CASES:
        with tempfile.TemporaryDirectory(prefix="bench-convert-") as scratch:
            source = make_source(Path(scratch), kind, seconds, args.rate, args.channels)
            target = Path(scratch) / ("out.aac" if kind == "m4a" else "out.mp3")
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--bitrate",
                    str(args.bitrate),
                    "--child",
                    str(source),
                    str(target),
                    kind,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        figures["realtime_factor"] = figures["audio_seconds"] / max(figures["wall_seconds"], 1e-9)
        results[label] = figures
        print(
            f"{label:<20} {figures['audio_seconds']:>9.0f} {figures['wall_seconds']:>8.2f} "
            f"{figures['realtime_factor']:>11.1f} {figures['source_bytes'] / 2**20:>9.1f} "
            f"{figures['target_bytes'] / 2**20:>8.2f} {figures['peak_rss_mb']:>12.1f}"
        )
    ratio = results["2 h WAV -> mp3"]["peak_rss_mb"] / results["1 min WAV -> mp3"]["peak_rss_mb"]
    print(f"peak RSS, 2 h WAV / 1 min WAV: {ratio:.3f} (target <= 1.5)")
    print(json.dumps({"rss_ratio_2h_to_1min": ratio, "cases": results}))


if __name__ == "__main__":
    main()
