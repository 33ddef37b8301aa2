"""Deletion at the source: the safety rules, and the job over a real database (SQLite and
PostgreSQL) with an in-memory Siro and a scripted vendor.

What an operator would notice: which recordings go and which stay (and why), that a 404 is
done, that failures are retried with back-off and then given up with an event, that a pause
stops deletes already planned, and that two processes never delete one recording both.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from poller.adapters.siro_fake import InMemorySiro
from poller.adapters.sql.source_deletions import SqlSourceDeletions
from poller.adapters.sql.store import SqlStore
from poller.core.source_deletion import SourceDeletionJob, SourceDeletionParams
from poller.domain.call_record import RecordingLocator
from poller.domain.siro import RecordingSummary
from poller.domain.source_deletion import (
    DeletionCandidate,
    DeletionPolicy,
    Hold,
    local_verdict,
    retry_delay,
    siro_disagreement,
)
from poller.domain.states import CallState
from poller.ports.provider import (
    PermanentProviderError,
    SourceDeletion,
    TransientProviderError,
)
from poller.ports.siro import SiroTransientError
from tests.seed import seed_call, seed_event

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
GRACE = timedelta(days=7)
POLICY = DeletionPolicy(enabled=True, paused=False, grace_by_provider={"rc": GRACE})


def candidate(**changes: Any) -> DeletionCandidate:
    values: dict[str, Any] = {
        "call_id": 1,
        "provider": "rc",
        "provider_call_id": "rec-1",
        "state": "uploaded",
        "recording_id": "rec-1",
        "siro_recording_id": "siro-1",
        "uploaded_at": NOW - GRACE - timedelta(minutes=1),
        "audio_duration_seconds": 95.0,
        "replayed": False,
        "reconciled": False,
        **changes,
    }
    return DeletionCandidate(**values)


def summary(**changes: Any) -> RecordingSummary:
    values: dict[str, Any] = {
        "id": "siro-1",
        "processing_status": "complete",
        "deleted": False,
        **changes,
    }
    return RecordingSummary(**values)


# -- the rules -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "policy", "hold"),
    [
        ({}, DeletionPolicy(enabled=False, paused=False, grace_by_provider={"rc": GRACE}), "off"),
        ({}, DeletionPolicy(enabled=True, paused=False), "provider_off"),
        ({}, DeletionPolicy(enabled=True, paused=True, grace_by_provider={"rc": GRACE}), "paused"),
        ({"state": "failed", "uploaded_at": None}, POLICY, "not_uploaded"),
        ({"state": "skipped", "uploaded_at": None}, POLICY, "not_uploaded"),
        ({"siro_recording_id": None}, POLICY, "no_ids"),
        ({"replayed": True}, POLICY, "replayed"),
        ({"reconciled": True}, POLICY, "reconciled_by_title"),
        ({"uploaded_at": NOW - GRACE + timedelta(minutes=1)}, POLICY, "grace"),
        ({"deletion_state": "deleted"}, POLICY, "deleted"),
        ({"deletion_state": "refused", "deletion_reason": "replayed"}, POLICY, "refused"),
        ({"deletion_state": "failed"}, POLICY, "gave_up"),
    ],
)
def test_a_recording_stays_while_any_rule_says_so(
    changes: dict[str, Any], policy: DeletionPolicy, hold: str
) -> None:
    verdict = local_verdict(candidate(**changes), policy, NOW)
    assert not verdict.eligible
    assert verdict.hold == Hold(hold)
    assert verdict.detail


def test_an_uploaded_recording_past_its_grace_may_go_once_siro_agrees() -> None:
    assert local_verdict(candidate(), POLICY, NOW).eligible
    assert local_verdict(candidate(uploaded_at=NOW - GRACE), POLICY, NOW).eligible
    assert siro_disagreement(candidate(), summary()) is None
    # Siro's length, where it gives one, within two seconds of ours.
    assert siro_disagreement(candidate(), summary(duration_in_milliseconds=96_500)) is None


@pytest.mark.parametrize(
    ("found", "words", "may_change"),
    [
        (None, "does not know", False),
        (summary(id="siro-2"), "not siro-1", False),
        (summary(deleted=True), "deleted", False),
        (summary(processing_status="error"), "error", False),
        (summary(processing_status="in-progress"), "not finished", True),
        (summary(processing_status=None), "not finished", True),
        (summary(duration_in_milliseconds=40_000), "40.0s", False),
    ],
)
def test_siro_read_back_that_disagrees_keeps_the_recording(
    found: RecordingSummary | None, words: str, may_change: bool
) -> None:
    disagreement = siro_disagreement(candidate(), found)
    assert disagreement is not None
    reason, changes = disagreement
    assert words in reason
    assert changes is may_change


def test_retries_back_off_doubling_up_to_the_cap() -> None:
    base, cap = timedelta(minutes=5), timedelta(hours=1)
    assert [retry_delay(n, base, cap) for n in (1, 2, 3, 4, 5)] == [
        timedelta(minutes=5),
        timedelta(minutes=10),
        timedelta(minutes=20),
        timedelta(minutes=40),
        timedelta(hours=1),
    ]


# -- the job over a real database --------------------------------------------------------------


@dataclass
class ScriptedVendor:
    """A SourceDeleter whose answers a test scripts: what it was asked is kept in order."""

    answers: deque[SourceDeletion | Exception] = field(default_factory=deque)
    asked: list[str] = field(default_factory=list)

    def delete_recording(self, call: RecordingLocator) -> SourceDeletion:
        self.asked.append(call.recording_id or call.provider_call_id)
        answer = self.answers.popleft() if self.answers else SourceDeletion("deleted", 204, "ok")
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class World:
    store: SqlStore
    siro: InMemorySiro
    vendor: ScriptedVendor
    clock: list[datetime]

    def job(self, owner: str = "test-owner", **params: Any) -> SourceDeletionJob:
        values: dict[str, Any] = {
            "enabled": True,
            "grace_by_provider": {"rc": GRACE},
            "batch_size": 10,
            "max_attempts": 3,
            "retry_base": timedelta(minutes=5),
            "retry_max": timedelta(hours=1),
            **params,
        }
        return SourceDeletionJob(
            params=SourceDeletionParams(**values),
            store=SqlSourceDeletions(self.store.engine),
            siro=self.siro,
            deleters={"rc": self.vendor},
            owner=owner,
            clock=lambda: self.clock[0],
        )

    def uploaded(self, reference: str, *, siro_status: str = "complete", **fields: Any) -> int:
        siro_id = f"siro-{reference}"
        call = seed_call(
            self.store,
            reference,
            provider="rc",
            state=CallState.UPLOADED,
            recording_id=reference,
            siro_recording_id=siro_id,
            **{"uploaded_at": NOW - GRACE - timedelta(hours=1), **fields},
        )
        self.siro.add_recording(
            RecordingSummary(id=siro_id, processing_status=siro_status, deleted=False)
        )
        return call.id

    def events(self, call_id: int) -> list[tuple[str, int | None]]:
        return [
            (e.outcome, e.http_status)
            for e in self.store.events_for(call_id)
            if e.step == "source_delete"
        ]


@pytest.fixture
def world(sql_store: SqlStore) -> World:
    return World(sql_store, InMemorySiro(), ScriptedVendor(), [NOW])


def test_a_404_counts_as_done_and_the_recording_is_never_asked_for_again(world: World) -> None:
    call_id = world.uploaded("rec-1")
    world.vendor.answers.append(SourceDeletion("gone", 404, "not found"))
    report = world.job().run_once()
    assert report.gone == 1
    assert world.events(call_id) == [("gone", 404)]
    world.clock[0] += timedelta(days=30)
    assert world.job().run_once().candidates == 0
    assert world.vendor.asked == ["rec-1"]


def test_failures_are_retried_with_back_off_then_given_up_with_an_event(world: World) -> None:
    call_id = world.uploaded("rec-1")
    world.vendor.answers.extend(
        [
            TransientProviderError("HTTP 503", status=503),
            PermanentProviderError("HTTP 400", status=400),
            TransientProviderError("HTTP 503", status=503),
        ]
    )
    job = world.job()
    assert job.run_once().retried == 1
    assert job.run_once().candidates == 0  # not due again yet
    world.clock[0] += timedelta(minutes=5)
    assert job.run_once().retried == 1
    world.clock[0] += timedelta(minutes=9)
    assert job.run_once().candidates == 0  # the second wait is ten minutes
    world.clock[0] += timedelta(minutes=1)
    assert job.run_once().failed == 1
    world.clock[0] += timedelta(days=1)
    assert job.run_once().candidates == 0
    assert world.vendor.asked == ["rec-1"] * 3
    assert world.events(call_id) == [("retry", 503), ("retry", 400), ("failed", 503)]
    [last] = [e for e in world.store.events_for(call_id) if e.outcome == "failed"]
    assert "gave up after 3 attempts" in (last.message or "")


def test_what_siro_has_not_finished_waits_and_what_it_lost_is_refused(world: World) -> None:
    processing = world.uploaded("rec-1", siro_status="in-progress")
    lost = world.uploaded("rec-2")
    del world.siro.recordings["siro-rec-2"]
    report = world.job().run_once()
    assert (report.waiting, report.refused, report.done) == (1, 1, 0)
    assert world.vendor.asked == []
    world.siro.add_recording(
        RecordingSummary(id="siro-rec-1", processing_status="complete", deleted=False)
    )
    world.clock[0] += timedelta(minutes=5)
    assert world.job().run_once().deleted == 1
    assert world.vendor.asked == ["rec-1"]
    assert world.events(processing) == [("waiting", None), ("deleted", 204)]
    assert world.events(lost) == [("refused", None)]


def test_siro_unavailable_deletes_nothing_and_tries_again_later(world: World) -> None:
    call_id = world.uploaded("rec-1")
    world.siro.fail_next("get_recording", SiroTransientError("HTTP 503", http_status=503))
    assert world.job().run_once().retried == 1
    assert world.vendor.asked == []
    world.clock[0] += timedelta(minutes=5)
    assert world.job().run_once().deleted == 1
    assert world.events(call_id) == [("retry", 503), ("deleted", 204)]


def test_replayed_and_title_matched_calls_are_refused_for_good(world: World) -> None:
    replayed = world.uploaded("rec-1")
    seed_event(world.store, replayed, step="replay", outcome="requeued")
    adopted = world.uploaded("rec-2")
    seed_event(world.store, adopted, step="upload", outcome="adopted")
    plain = world.uploaded("rec-3")
    report = world.job().run_once()
    assert (report.refused, report.deleted) == (2, 1)
    assert world.vendor.asked == ["rec-3"]
    assert world.events(replayed) == [("refused", None)]
    assert world.events(adopted) == [("refused", None)]
    assert world.events(plain) == [("deleted", 204)]


def test_a_pause_stops_every_delete_until_resumed(world: World) -> None:
    world.uploaded("rec-1")
    deletions = SqlSourceDeletions(world.store.engine)
    deletions.pause_deletion(NOW, "ops", "audit")
    assert world.job().run_once().paused
    assert world.vendor.asked == []
    assert deletions.resume_deletion() is not None
    assert world.job().run_once().deleted == 1


def test_a_pause_that_comes_in_mid_batch_stops_the_next_delete(world: World) -> None:
    world.uploaded("rec-1")
    world.uploaded("rec-2")
    deletions = SqlSourceDeletions(world.store.engine)
    original = world.vendor.delete_recording

    def delete_then_pause(call: RecordingLocator) -> SourceDeletion:
        deletions.pause_deletion(NOW, "ops", "stop now")
        return original(call)

    world.vendor.delete_recording = delete_then_pause  # type: ignore[method-assign]
    report = world.job().run_once()
    assert report.deleted == 1 and report.paused
    assert world.vendor.asked == ["rec-1"]


def test_two_processes_never_claim_one_recording(world: World) -> None:
    call_id = world.uploaded("rec-1")
    deletions = SqlSourceDeletions(world.store.engine)
    lease = NOW + timedelta(hours=1)
    assert deletions.claim_deletion(call_id, "rc", "host-a", NOW, lease)
    assert not deletions.claim_deletion(call_id, "rc", "host-b", NOW, lease)
    # Host a's process died: once its lease runs out, host b takes the row over.
    later = lease + timedelta(seconds=1)
    assert deletions.claim_deletion(call_id, "rc", "host-b", later, later + timedelta(hours=1))
    assert world.job(owner="host-c").run_once().candidates == 0


def test_the_dry_run_lists_what_would_go_and_why_the_rest_stays(world: World) -> None:
    world.uploaded("rec-1")
    world.uploaded("rec-2", siro_status="error")
    recent = world.uploaded("rec-3")
    replayed = world.uploaded("rec-4")
    seed_event(world.store, replayed, step="replay", outcome="requeued")
    seed_call(world.store, "rec-5", provider="rc", state=CallState.FAILED)
    from sqlalchemy import update

    from poller.adapters.sql.models import calls_table

    with world.store.engine.begin() as conn:
        conn.execute(update(calls_table).where(calls_table.c.id == recent).values(uploaded_at=NOW))
    plan = {row.candidate.provider_call_id: row.verdict for row in world.job().plan()}
    assert set(plan) == {"rec-1", "rec-2", "rec-3", "rec-4"}  # uploaded rows only
    assert plan["rec-1"].eligible
    assert plan["rec-2"].hold is Hold.NOT_VERIFIED
    assert plan["rec-3"].hold is Hold.GRACE
    assert plan["rec-4"].hold is Hold.REPLAYED
    assert world.vendor.asked == []  # a dry run deletes nothing
    assert world.events(recent) == []


def test_purge_dry_run_prints_each_row_and_its_reason(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import poller.app as app
    from poller.cli import main

    world.uploaded("rec-1")
    world.uploaded("rec-2", siro_status="in-progress")
    monkeypatch.setattr(app, "build_source_deletion", lambda settings, store: world.job())
    url = world.store.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("SIRO_POLLER_DATABASE__URL", url)
    result = CliRunner().invoke(main, ["source", "purge", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "1 recording(s) would be deleted now; 1 kept"
    assert lines[1].startswith("delete  call ") and "(rc rec-1)" in lines[1]
    assert lines[2].startswith("keep    call ") and "(rc rec-2): not_verified:" in lines[2]
    assert "not finished processing" in lines[2]
    assert world.vendor.asked == []


# -- the configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "why"),
    [
        ("dialpad", "Dialpad documents no endpoint that deletes a call recording"),
        ("generic", "the generic kind knows no delete request"),
    ],
)
def test_a_kind_that_cannot_delete_refuses_delete_at_source_at_load(
    kind: str, why: str, tmp_path: Path
) -> None:
    from poller.config import ConfigError, load_settings

    path = tmp_path / "config.toml"
    path.write_text(f'[provider]\nkind = "{kind}"\ndelete_at_source = true\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(str(path))
    [problem] = [p for p in raised.value.problems if "delete_at_source" in p]
    assert problem.startswith("provider.delete_at_source: cannot be true for kind")
    assert why in problem


def test_the_supported_kinds_take_delete_at_source_with_their_grace(tmp_path: Path) -> None:
    from poller.config import load_settings
    from poller.wiring import source_deletion_params_from_settings

    path = tmp_path / "config.toml"
    path.write_text(
        '[[providers]]\nkind = "ringcentral"\nname = "rc"\ndelete_at_source = true\n'
        "delete_grace_days = 2.5\n"
        '[[providers]]\nkind = "twilio"\nname = "tw"\n'
        "[source_deletion]\nenabled = false\n",
        encoding="utf-8",
    )
    params = source_deletion_params_from_settings(load_settings(str(path)))
    assert params.grace_by_provider == {"rc": timedelta(days=2.5)}  # tw did not opt in
    assert not params.enabled and not params.active


def test_a_replayed_call_is_marked_refused_even_within_its_grace_and_while_paused(
    world: World,
) -> None:
    replayed = world.uploaded("rec-1", uploaded_at=NOW - timedelta(hours=1))
    seed_event(world.store, replayed, step="replay", outcome="requeued")
    SqlSourceDeletions(world.store.engine).pause_deletion(NOW, "ops", "audit")
    report = world.job().run_once()
    assert report.refused == 1 and report.paused
    assert world.events(replayed) == [("refused", None)]
    # Its events may be pruned later: the mark stays, and the call is never deleted.
    SqlSourceDeletions(world.store.engine).resume_deletion()
    world.clock[0] += GRACE * 2
    assert world.job().run_once().candidates == 0
    assert world.vendor.asked == []


def test_source_status_pause_and_resume_from_the_command_line(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from poller.cli import main

    world.uploaded("rec-1")
    world.job().run_once()
    config = tmp_path / "config.toml"
    url = world.store.engine.url.render_as_string(hide_password=False)
    config.write_text(
        f'[database]\nurl = "{url}"\n[[providers]]\nkind = "twilio"\nname = "rc"\n'
        "delete_at_source = true\ndelete_grace_days = 3\n",
        encoding="utf-8",
    )
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(main, ["--config", str(config), "source", *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert run("status").splitlines() == [
        "deletion at the source: on for rc (grace 3 days)",
        "deleted: 1",
        "pending: 0",
        "refused: 0",
        "failed: 0",
    ]
    assert "deletion at the source is paused" in run("pause", "--reason", "audit week")
    assert "by " in run("status").splitlines()[1] and "audit week" in run("status")
    assert world.job().run_once().paused
    assert "resumed" in run("resume")
    assert "was not paused" in run("resume")
