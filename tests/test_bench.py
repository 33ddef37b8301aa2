"""The benchmarks still run (on tiny inputs); their figures are for people, not assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import postgres_admin_url

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_the_worker_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_worker.py"), "--measure", "1", "3"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["recordings"] == 3 and figures["peak_rss_mb"] > 0


def test_the_worker_against_a_plain_copy_runs_and_counts_statements() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_worker.py"),
            "--compare",
            "--files",
            "3",
            "--rounds",
            "1",
            "--latency-ms",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["sqlite"]["statements"] > 0 and figures["sqlite"]["ratio"] > 0
    assert "SQL/call" in result.stdout


def test_the_siro_upload_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_siro_upload.py"), "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "put_audio (streamed)" in result.stdout


def test_the_conversion_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_convert.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["rss_ratio_2h_to_1min"] > 0
    assert "peak RSS, 2 h WAV / 1 min WAV" in result.stdout


def test_the_scale_benchmark_runs_on_both_backends() -> None:
    """Every part on tiny inputs; PostgreSQL from the test server (the bench makes and drops
    its own databases there)."""
    server = postgres_admin_url()
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_scale.py"), "--smoke", "--postgres", server],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "postgres" in result.stdout and "sqlite" in result.stdout
    assert "ix_calls_due" in result.stdout and "ix_calls_leased" in result.stdout
    assert "of the plain copy's bytes per second" in result.stdout


def test_the_big_page_benchmark_runs_on_both_backends() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_big_page.py"),
            "--smoke",
            "--postgres",
            postgres_admin_url(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for backend in ("sqlite", "postgres"):
        assert figures[backend]["ok"] and figures[backend]["rows"] == figures["records"]
        assert figures[backend]["peak_rss_mib"] > 0


def test_the_cli_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_cli.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["commands"]["--version"]["median_s"] > 0
    assert figures["poll"]["calls"] == 100 and figures["poll"]["poll --json"]["peak_rss_mib"] > 0


def test_the_source_deletion_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_source_deletion.py"), "--rows", "50", "--postgres", ""],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["rows"] == 50 and figures["due_batch_query_ms"] >= 0


def test_the_growth_attack_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_growth.py"), "--seconds", "1", "--every", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["backend"] == "sqlite" and figures["minutes"]
    assert figures["minutes"][0]["polls"] > 0 and figures["minutes"][0]["unmapped"] > 0


def test_the_data_lifecycle_benchmark_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "bench_data_lifecycle.py"), "--calls", "20"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["calls"] == 20 and figures["export_all"]["peak_rss_mb"] > 0


def test_the_latency_benchmark_runs_nudged() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_latency.py"),
            "--mode",
            "nudged",
            "--calls",
            "2",
            "--span",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["provider"] == "zoom"
    assert figures["nudged"]["arrived"] == 2 and figures["nudged"]["p95_s"] >= 0


def test_the_webhook_garbage_benchmark_runs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench_webhook_garbage.py"),
            "--seconds",
            "2",
            "--baseline-seconds",
            "1",
            "--rate",
            "50",
            "--warmup-seconds",
            "0.5",
            "--row-seconds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    assert "garbage: " in result.stdout and "uploads/s on average" in result.stdout
    assert 'outcome="accepted"' in result.stdout
