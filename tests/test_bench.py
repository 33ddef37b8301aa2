"""The benchmarks still run (on tiny inputs); their figures are for people, not assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import postgres_admin_url

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``bench/<script>`` with ``args`` as a person would; fails on a non-zero exit."""
    return subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )


def last_json(result: subprocess.CompletedProcess[str]) -> Any:
    """The figures a benchmark prints as JSON on its last line."""
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_worker_benchmark_runs() -> None:
    result = run_bench("bench_worker.py", "--measure", "1", "3")
    figures = last_json(result)
    assert figures["recordings"] == 3 and figures["peak_rss_mb"] > 0


def test_the_worker_against_a_plain_copy_runs_and_counts_statements() -> None:
    result = run_bench(
        "bench_worker.py", "--compare", "--files", "3", "--rounds", "1", "--latency-ms", "1"
    )
    figures = last_json(result)
    assert figures["sqlite"]["statements"] > 0 and figures["sqlite"]["ratio"] > 0
    assert "SQL/call" in result.stdout


def test_the_siro_upload_benchmark_runs() -> None:
    result = run_bench("bench_siro_upload.py", "1")
    assert "put_audio (streamed)" in result.stdout


def test_the_conversion_benchmark_runs() -> None:
    result = run_bench("bench_convert.py", "--smoke")
    figures = last_json(result)
    assert figures["rss_ratio_2h_to_1min"] > 0
    assert "peak RSS, 2 h WAV / 1 min WAV" in result.stdout


def test_the_scale_benchmark_runs_on_both_backends() -> None:
    """Every part on tiny inputs; PostgreSQL from the test server (the bench makes and drops
    its own databases there)."""
    server = postgres_admin_url()
    result = run_bench("bench_scale.py", "--smoke", "--postgres", server, timeout=300)
    assert "postgres" in result.stdout and "sqlite" in result.stdout
    assert "ix_calls_due" in result.stdout and "ix_calls_leased" in result.stdout
    assert "of the plain copy's bytes per second" in result.stdout


def test_the_big_page_benchmark_runs_on_both_backends() -> None:
    result = run_bench(
        "bench_big_page.py", "--smoke", "--postgres", postgres_admin_url(), timeout=300
    )
    figures = last_json(result)
    for backend in ("sqlite", "postgres"):
        assert figures[backend]["ok"] and figures[backend]["rows"] == figures["records"]
        assert figures[backend]["peak_rss_mib"] > 0


def test_the_cli_benchmark_runs() -> None:
    result = run_bench("bench_cli.py", "--smoke", timeout=300)
    figures = last_json(result)
    assert figures["commands"]["--version"]["median_s"] > 0
    assert figures["poll"]["calls"] == 100 and figures["poll"]["poll --json"]["peak_rss_mib"] > 0


def test_the_source_deletion_benchmark_runs() -> None:
    result = run_bench("bench_source_deletion.py", "--rows", "50", "--postgres", "")
    figures = last_json(result)
    assert figures["rows"] == 50 and figures["due_batch_query_ms"] >= 0


def test_the_growth_attack_benchmark_runs() -> None:
    result = run_bench("bench_growth.py", "--seconds", "1", "--every", "1")
    figures = last_json(result)
    assert figures["backend"] == "sqlite" and figures["minutes"]
    assert figures["minutes"][0]["polls"] > 0 and figures["minutes"][0]["unmapped"] > 0


def test_the_data_lifecycle_benchmark_runs() -> None:
    result = run_bench("bench_data_lifecycle.py", "--calls", "20", timeout=300)
    figures = last_json(result)
    assert figures["calls"] == 20 and figures["export_all"]["peak_rss_mb"] > 0


def test_the_latency_benchmark_runs_nudged() -> None:
    result = run_bench("bench_latency.py", "--mode", "nudged", "--calls", "2", "--span", "1")
    figures = last_json(result)
    assert figures["provider"] == "zoom"
    assert figures["nudged"]["arrived"] == 2 and figures["nudged"]["p95_s"] >= 0


def test_the_webhook_garbage_benchmark_runs() -> None:
    result = run_bench(
        "bench_webhook_garbage.py",
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
        timeout=180,
    )
    assert "garbage: " in result.stdout and "uploads/s on average" in result.stdout
    assert 'outcome="accepted"' in result.stdout
