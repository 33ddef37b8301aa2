"""`siro-poller calls export`: what an auditor gets, on SQLite and PostgreSQL.

Calls come in through the real poll cycle against the call-log simulator; one is then uploaded
(as the worker records it) and one forgotten.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, update

from poller.adapters.http import RetryPolicy
from poller.adapters.providers.generic import GenericProvider
from poller.adapters.sql.models import calls_table
from poller.adapters.sql.store import SqlStore
from poller.cli import main
from poller.config import Settings
from poller.core.erasure import forget
from poller.core.poll import poll_once
from poller.domain.erasure import ForgetSelection
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.wiring import poll_params_from_settings
from tests.conftest import database_url

STARTED = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SIGNATURE = "sig-5ecret-value"


def export(engine: Engine, *arguments: str) -> Result:
    env = {"SIRO_POLLER_DATABASE__URL": database_url(engine)}
    return CliRunner().invoke(main, ["calls", "export", *arguments], env=env)


@pytest.fixture
def store(engine: Engine, tmp_path: Path) -> SqlStore:
    """Three calls listed by the poll cycle: one uploaded, one forgotten, one pending; and a
    fourth a day later."""
    api = FakeCallLog()
    for index, (key, name) in enumerate(
        [("c-up", "Ann Lee"), ("c-gone", "Zelda Quintessa"), ("c-wait", "Bo Wait")]
    ):
        at = STARTED + timedelta(minutes=index)
        url = f"https://voip.example.com/rec/{key}.mp3?token={SIGNATURE}"
        record = quickstart_call(key, at, recording_url=url, contact_name=name)
        api.add_call(record, at)
    later = STARTED + timedelta(days=1)
    api.add_call(quickstart_call("c-later", later, contact_name="Cy Later"), later)
    store = SqlStore(engine)
    with serve(api) as server:
        settings = Settings(
            state_dir=tmp_path / "state",
            provider={"base_url": server.url},
            poll={"start_at": STARTED - timedelta(minutes=5), "settle_delay_seconds": 0},
        )
        provider = GenericProvider(
            settings.provider, retry=RetryPolicy(max_tries=1, base_delay=0, max_delay=0)
        )
        now = STARTED + timedelta(days=2)
        report = poll_once(poll_params_from_settings(settings), provider, store, now)
        assert report.ok, report.error
    (uploaded,) = store.find_calls("c-up")
    with engine.begin() as connection:
        connection.execute(
            update(calls_table)
            .where(calls_table.c.id == uploaded.id)
            .values(
                state="uploaded",
                siro_recording_id="rec-42",
                uploaded_at=STARTED + timedelta(hours=1),
                title="Phone call with Ann Lee [c-up]",
                siro_file_url=f"https://storage.example.com/f.mp3?X-Goog-Signature={SIGNATURE}",
                last_error="earlier: Ann Lee's number +15551234567 was busy",
            )
        )
    forget(
        store,
        ForgetSelection(references=("c-gone",)),
        STARTED + timedelta(days=2),
        actor="auditor test",
        default_region="US",
        remove_files=lambda _call, _path: 0,
    )
    return store


def lines_of(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_jsonl_has_each_call_with_its_events_and_nothing_personal_or_secret(
    store: SqlStore, engine: Engine
) -> None:
    result = export(engine, "--since", STARTED.isoformat(), "--until", "2026-11-21T00:00:00Z")

    documents = {d["provider_call_id"]: d for d in lines_of(result)}
    assert sorted(documents) == ["c-gone", "c-up", "c-wait"]  # c-later is after --until
    assert "exported 3 calls" in result.stderr
    up = documents["c-up"]
    assert (up["state"], up["siro_recording_id"]) == ("uploaded", "rec-42")
    assert up["events"][0]["step"] == "poll" and up["events"][0]["outcome"] == "listed"
    assert up["last_error"] == "earlier: [personal]'s number [personal] was busy"
    gone = documents["c-gone"]
    assert gone["forgotten"] is True and gone["forgotten_at"]
    assert [e["step"] for e in gone["events"]][-1] == "forget"
    text = result.stdout
    for absent in ("Ann Lee", "Zelda", "Bo Wait", "rep@yourcompany.com", SIGNATURE, '"raw"'):
        assert absent not in text


def test_personal_fields_only_when_asked_and_never_for_a_forgotten_call(
    store: SqlStore, engine: Engine
) -> None:
    result = export(engine, "--since", STARTED.isoformat(), "--include-personal")

    documents = {d["provider_call_id"]: d for d in lines_of(result)}
    assert len(documents) == 4
    assert documents["c-up"]["contact_name"] == "Ann Lee"
    assert documents["c-up"]["rep_email"] == "rep@yourcompany.com"
    assert documents["c-gone"]["contact_name"] is None
    assert "Zelda" not in result.stdout
    assert SIGNATURE not in result.stdout


def test_csv_is_a_row_per_call_with_the_events_as_json(
    store: SqlStore, engine: Engine, tmp_path: Path
) -> None:
    target = tmp_path / "audit.csv"

    result = export(engine, "--since", STARTED.isoformat(), "--format", "csv", "--output", target)

    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [row["provider_call_id"] for row in rows] == ["c-up", "c-gone", "c-wait", "c-later"]
    assert "contact_name" not in rows[0]
    events = json.loads(rows[1]["events"])
    assert events[-1]["step"] == "forget"
    assert rows[1]["forgotten"] == "True"
    assert SIGNATURE not in target.read_text(encoding="utf-8")


def test_the_store_streams_in_batches_and_misses_no_call(store: SqlStore) -> None:
    exported = list(store.export_calls(STARTED, None, batch=1))

    assert [call.provider_call_id for call, _ in exported] == [
        "c-up",
        "c-gone",
        "c-wait",
        "c-later",
    ]
    assert all(events for _, events in exported)


def test_a_window_the_wrong_way_round_is_refused(engine: Engine) -> None:
    result = export(engine, "--since", "2026-11-21T00:00:00Z", "--until", "2026-11-20T00:00:00Z")
    assert result.exit_code == 2
    assert "--until must be after --since" in result.stderr
