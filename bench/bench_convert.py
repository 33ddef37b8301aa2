"""Conversion speed and peak memory: seconds of audio per wall second, and peak RSS, by length.

Each conversion runs in a fresh process (so its ``ru_maxrss`` is its own) on a WAV of the
given length, encoded to mp3 as the worker does for any WAV over Siro's size limit; a
10-minute M4A is also repackaged as ADTS aac. The ratio of the peak RSS converting the 2-hour
WAV to that converting the 1-minute WAV shows whether memory stays flat in file size (the
target is at most 1.5).

Then an audio bomb: a FLAC whose header says 60 s but which decodes to ``--bomb-hours`` (20)
hours of silence, converted within the limits the worker derives from the default settings:
its wall time, CPU time and bytes written (the target: under 10 s and 50 MB). With
``--unbounded`` it runs with no effective limits, as conversions did before they had any.

Run from the repository root::

    .venv/bin/python bench/bench_convert.py [--rate 8000] [--channels 2] [--bitrate 64]
    .venv/bin/python bench/bench_convert.py --smoke     # seconds-long inputs, for the tests
    .venv/bin/python bench/bench_convert.py --bomb-only [--bomb-hours 20] [--unbounded]

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
from typing import Any

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
BOMB_DECLARED_SECONDS = 60
SMOKE_BOMB_HOURS = 0.5


def convert(source: str, target: str, kind: str, bitrate: int, *, unbounded: bool) -> None:
    """Child process: one conversion within the limits the worker would set; prints its
    figures as JSON."""
    from poller.adapters.audio import PyAvAudio
    from poller.domain.audio import (
        ConversionKind,
        ConversionLimits,
        ConversionRules,
        ConvertMode,
        conversion_limits,
    )
    from poller.ports.audio import AudioError

    audio = PyAvAudio()
    facts = audio.probe(Path(source))
    conversion = ConversionKind.REMUX_AAC if kind == "m4a" else ConversionKind.ENCODE_MP3
    limits = conversion_limits(
        facts,
        ConversionRules(ConvertMode.AUTO, 100 * 2**20, bitrate, 16),  # the default settings
        kind=conversion,
        bitrate_kbps=bitrate,
        source_bytes=Path(source).stat().st_size,
        provider_seconds=None,
    )
    if unbounded:
        limits = ConversionLimits(facts.duration_seconds, 1e12, 2**62, 1e12)
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    outcome = "converted"
    try:
        if conversion == ConversionKind.REMUX_AAC:
            audio.remux_to_adts(
                Path(source), Path(target), limits=limits, should_stop=lambda: False
            )
        else:
            audio.encode_mp3(
                Path(source),
                Path(target),
                bitrate_kbps=bitrate,
                limits=limits,
                should_stop=lambda: False,
            )
    except AudioError as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    wall = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "audio_seconds": facts.duration_seconds,
                "wall_seconds": wall,
                "cpu_seconds": _cpu_seconds() - cpu_before,
                "source_bytes": Path(source).stat().st_size,
                "target_bytes": Path(target).stat().st_size,
                "baseline_rss_mb": baseline_kb / 1024,
                "peak_rss_mb": peak_kb / 1024,
                "outcome": outcome,
            }
        )
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return usage.ru_utime + usage.ru_stime


def make_source(directory: Path, kind: str, seconds: float, rate: int, channels: int) -> Path:
    from poller.simulators.audio import encoded, flac_bomb, write_wav

    path = directory / f"source-{kind}-{seconds:g}.{kind}"
    if kind == "wav":
        write_wav(path, 44 + int(seconds * rate) * channels * 2, rate=rate, channels=channels)
    elif kind == "flac":
        path.write_bytes(flac_bomb(BOMB_DECLARED_SECONDS, seconds, rate=rate))
    else:
        path.write_bytes(encoded(kind, float(seconds), channels))
    return path


def run_child(args: argparse.Namespace, kind: str, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as scratch:
        source = make_source(Path(scratch), kind, seconds, args.rate, args.channels)
        target = Path(scratch) / ("out.aac" if kind == "m4a" else "out.mp3")
        command = [sys.executable, __file__, "--bitrate", str(args.bitrate)]
        if args.unbounded:
            command.append("--unbounded")
        child = subprocess.run(
            [*command, "--child", str(source), str(target), kind],
            capture_output=True,
            text=True,
            check=True,
        )
    figures: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=8000, help="WAV sample rate (phone: 8000)")
    parser.add_argument("--channels", type=int, default=2, help="1, or 2 (one per speaker)")
    parser.add_argument("--bitrate", type=int, default=64, help="mp3 kbit/s")
    parser.add_argument("--smoke", action="store_true", help="seconds-long inputs")
    parser.add_argument("--bomb-hours", type=float, default=20.0, help="what the bomb holds")
    parser.add_argument("--bomb-only", action="store_true", help="only the audio bomb")
    parser.add_argument("--unbounded", action="store_true", help="convert without limits")
    parser.add_argument("--child", nargs=3, metavar=("SOURCE", "TARGET", "KIND"))
    args = parser.parse_args()
    if args.child:
        source, target, kind = args.child
        convert(source, target, kind, bitrate=args.bitrate, unbounded=args.unbounded)
        return

    report: dict[str, Any] = {}
    if not args.bomb_only:
        report |= speed_and_memory(args)
    hours = SMOKE_BOMB_HOURS if args.smoke else args.bomb_hours
    bomb = run_child(args, "flac", hours * 3600)
    bounds = "no limits" if args.unbounded else "the default limits"
    print(
        f"audio bomb, {bomb['source_bytes'] / 1000:.0f} KB FLAC declaring "
        f"{BOMB_DECLARED_SECONDS} s, holding {hours:g} h, with {bounds}: "
        f"wall {bomb['wall_seconds']:.2f} s, CPU {bomb['cpu_seconds']:.2f} s, "
        f"{bomb['target_bytes'] / 2**20:.2f} MB written, peak RSS {bomb['peak_rss_mb']:.1f} MB "
        "(target: under 10 s and 50 MB)"
    )
    print(f"  outcome: {bomb['outcome']}")
    report["audio_bomb"] = {"hours": hours, "unbounded": args.unbounded, **bomb}
    print(json.dumps(report))


def speed_and_memory(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, dict[str, Any]] = {}
    print(f"WAV: {args.rate} Hz, {args.channels} channel(s), 16-bit; mp3 at {args.bitrate} kbit/s")
    print(
        f"{'case':<20} {'audio s':>9} {'wall s':>8} {'x realtime':>11} {'in MB':>9} "
        f"{'out MB':>8} {'peak RSS MB':>12}"
    )
    for label, kind, seconds in SMOKE_CASES if args.smoke else CASES:
        figures = run_child(args, kind, seconds)
        figures["realtime_factor"] = figures["audio_seconds"] / max(figures["wall_seconds"], 1e-9)
        results[label] = figures
        print(
            f"{label:<20} {figures['audio_seconds']:>9.0f} {figures['wall_seconds']:>8.2f} "
            f"{figures['realtime_factor']:>11.1f} {figures['source_bytes'] / 2**20:>9.1f} "
            f"{figures['target_bytes'] / 2**20:>8.2f} {figures['peak_rss_mb']:>12.1f}"
        )
    ratio = results["2 h WAV -> mp3"]["peak_rss_mb"] / results["1 min WAV -> mp3"]["peak_rss_mb"]
    print(f"peak RSS, 2 h WAV / 1 min WAV: {ratio:.3f} (target <= 1.5)")
    return {"rss_ratio_2h_to_1min": ratio, "cases": results}


if __name__ == "__main__":
    main()
