"""The upload step: send a downloaded recording to Siro exactly once.

The plan (who the recording goes to, what goes with it) is read from Siro's user directory and
the CRM rules; the create call is recorded as sent before it goes out, so an attempt after a
lost answer first looks the recording up in Siro (the duplicate guard) instead of sending it
again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from poller.core.crm_connection import resolve_connection_id
from poller.core.spool_sweep import remove_spool_file, sha256_of
from poller.core.stages import Stages
from poller.domain.attribution import UserDirectory
from poller.domain.crm import UnresolvedConnection
from poller.domain.failures import StepFailure
from poller.domain.pauses import PausedService
from poller.domain.records import Call, EventDraft
from poller.domain.redaction import redact_url
from poller.domain.siro import AudioFormat, RecordingSummary
from poller.domain.transitions import AttributionNote
from poller.domain.upload_plan import UploadPlan, UploadRules, plan_upload
from poller.ports.siro import (
    SiroCreateOutcomeUnknown,
    SiroCreateUnconfirmed,
    SiroCredentialError,
    SiroError,
    SiroPermanentError,
    SiroPort,
    SiroTransientError,
)
from poller.ports.store import WorkQueue
from poller.ports.telemetry import Telemetry

log = logging.getLogger(__name__)

# How far around a call's start (sent as dateCreated) and around the moment the create call
# went out to look for a recording Siro may have made before its answer was lost.
RECONCILE_MARGIN = timedelta(minutes=5)
# The error kind of a row whose create Siro accepted without naming the recording: while a row
# holds it (with siro_create_sent_at set), attempts only look the recording up, never create.
CREATE_UNCONFIRMED = "siro_create_unconfirmed"
DIRECTORY_TTL = timedelta(minutes=1)
_SPOOL_MISSING = (
    "spool_missing",
    "the downloaded file is gone from the spool",
    "spool file missing",
)
_SPOOL_CORRUPT = (
    "spool_corrupt",
    "the downloaded file in the spool is not the one downloaded (its size or SHA-256 differ)",
    "spool file differs from the download",
)


class UploadStep:
    def __init__(
        self,
        *,
        store: WorkQueue,
        siro: SiroPort,
        stages: Stages,
        upload_rules: UploadRules,
        owner: str,
        clock: Callable[[], datetime],
        telemetry: Telemetry,
        on_lost_lease: Callable[[Call], None],
    ) -> None:
        self.store = store
        self.siro = siro
        # Each request to Siro takes a slot of its host (see stages): its API, or its storage.
        self.stages = stages
        self.upload_rules = upload_rules
        self.owner = owner
        self.clock = clock
        self.telemetry = telemetry
        # Told when the row's lease was found taken over: the result is not recorded here.
        self.on_lost_lease = on_lost_lease
        self._directory_lock = threading.Lock()
        self._directory: UserDirectory | None = None
        self._directory_read_at = clock()
        self._resolved_connection: str | None = None

    def upload(self, call: Call, *, downloaded_here: bool = False) -> bool:
        """Send a ``downloaded`` row's recording to Siro once: True when the row is now
        ``uploaded`` (False when it was rescheduled or its lease was lost); a problem of the call
        raises StepFailure. ``downloaded_here``: this process downloaded the file in this turn
        of the row (no power cut can have come in between)."""
        if call.siro_create_sent_at is not None and call.error_kind == CREATE_UNCONFIRMED:
            return self._reconcile_unconfirmed(call)
        unusable = _spool_file_unusable(call, downloaded_here=downloaded_here)
        if unusable is not None or call.spool_path is None or call.audio_format is None:
            kind, why, event = unusable or _SPOOL_MISSING
            self.store.schedule_retry(
                call.id,
                self.owner,
                self.clock(),
                self.clock(),
                kind,
                f"{why}; downloading again",
                EventDraft(step="upload", outcome="retry", message=event),
                back_to_pending=True,
            )
            return False
        audio_format = AudioFormat(call.audio_format)
        plan = self._plan(call, audio_format)
        # The attribution is written with the create call's record (one transaction fewer),
        # or on its own when no create goes out.
        attribution = _attribution_note(call, plan)
        if call.siro_create_sent_at is not None:
            adopted = self._find_existing(call, plan.title)
            if adopted is not None:
                if attribution is not None and not self._record_attribution(call, attribution):
                    return False
                return self._uploaded(call, adopted.id, None, outcome="adopted")
        size = call.size_bytes or Path(call.spool_path).stat().st_size
        started = time.monotonic()
        try:
            with self.stages.storage(call.id):
                with self.stages.siro():
                    signed = self.siro.request_upload(audio_format, size)
                used = self.siro.put_audio(signed, Path(call.spool_path), audio_format, size)
            body = plan.recording(used.download_url)
            # Marked sent once the create can go out at once: a row marked while it waited for
            # a slot would be looked up in Siro after a crash though it was never sent.
            with self.stages.siro():
                if not self.store.mark_create_sent(
                    call.id, self.owner, self.clock(), plan.title, attribution=attribution
                ):
                    self.on_lost_lease(call)
                    return False
                recording_id = self.siro.create_recording(body)
        except SiroCreateUnconfirmed as exc:
            raise StepFailure.retry(
                CREATE_UNCONFIRMED,
                f"{exc}; the next attempts only look for it in Siro by its title",
                http_status=exc.http_status,
            ) from None
        except SiroCreateOutcomeUnknown as exc:
            raise StepFailure.retry(
                "siro_create_unknown",
                f"{exc}; the next attempt looks the recording up in Siro before creating it",
                http_status=exc.http_status,
            ) from None
        except SiroError as exc:
            if exc.step == "create":
                # Siro answered the create with a refusal: nothing was made, so the duplicate
                # guard may forget that a create was sent.
                self.store.mark_create_sent(
                    call.id, self.owner, self.clock(), plan.title, sent=False
                )
            raise _siro_failure(exc) from None
        return self._uploaded(
            call,
            recording_id,
            used.download_url,
            outcome="ok",
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    def _plan(self, call: Call, audio_format: AudioFormat) -> UploadPlan:
        """Who the recording goes to and what goes with it."""
        return plan_upload(
            call,
            audio_format,
            directory=self._user_directory(),
            rules=self.upload_rules,
            connection_id=self._connection_id(),
        )

    def _record_attribution(self, call: Call, attribution: AttributionNote) -> bool:
        if self.store.record_attribution(
            call.id,
            self.owner,
            self.clock(),
            attribution.siro_user_id,
            attribution.method,
            attribution.detail,
        ):
            return True
        self.on_lost_lease(call)
        return False

    def _user_directory(self) -> UserDirectory:
        """``siro_users`` as a snapshot, read again at most every minute (or after a sync)."""
        with self._directory_lock:
            now = self.clock()
            if self._directory is None or now - self._directory_read_at > DIRECTORY_TTL:
                self._directory = self.store.user_directory()
                self._directory_read_at = now
            return self._directory

    def forget_user_directory(self) -> None:
        """Read ``siro_users`` afresh at the next upload (the daemon calls it after a sync)."""
        with self._directory_lock:
            self._directory = None

    def _connection_id(self) -> str | None:
        """The CRM connection's id: configured, or looked up once by its configured name."""
        rules = self.upload_rules.crm
        if not rules.enabled or rules.connection_name is None:
            return rules.connection_id
        with self._directory_lock:
            if self._resolved_connection is None:
                try:
                    with self.stages.siro():
                        self._resolved_connection = resolve_connection_id(self.siro, rules)
                except UnresolvedConnection as exc:
                    raise StepFailure.fail("crm_connection_unknown", str(exc)) from None
                except SiroError as exc:
                    raise _siro_failure(exc) from None
            return self._resolved_connection

    def _reconcile_unconfirmed(self, call: Call) -> bool:
        """Siro took this row's create but named no recording: look for it, never create it.

        The row keeps the error kind ``siro_create_unconfirmed`` across attempts and restarts;
        when the attempts run out it is parked as failed with it, for someone to look in Siro.
        """
        title = call.title or ""
        try:
            # No title, nothing to match by: an empty one would match any untitled recording.
            found = self._search_siro(call, title) if title.strip() else None
        except SiroCredentialError as exc:
            raise _siro_failure(exc) from None
        except SiroError as exc:
            raise StepFailure.retry(
                CREATE_UNCONFIRMED,
                f"Siro accepted the create without naming the recording, and looking for it "
                f"failed this time ({exc}); it is not sent again",
                http_status=exc.http_status,
                retry_after_seconds=getattr(exc, "retry_after", None),
            ) from None
        if found is not None:
            return self._uploaded(call, found.id, None, outcome="adopted")
        raise StepFailure.retry(
            CREATE_UNCONFIRMED,
            f"Siro accepted the create without naming the recording, and no recording titled "
            f"{title!r} has shown up in Siro; it is not sent again: look for it in Siro "
            "(`siro-poller calls retry` would send it once more)",
        )

    def _find_existing(self, call: Call, title: str) -> RecordingSummary | None:
        """The duplicate guard: did an earlier, unanswered create call make this recording?"""
        try:
            return self._search_siro(call, title)
        except SiroError as exc:
            raise _siro_failure(exc) from None

    def _search_siro(self, call: Call, title: str) -> RecordingSummary | None:
        """The recording titled ``title`` that Siro filed around the call or the create send."""
        assert call.siro_create_sent_at is not None
        # Siro files the recording under dateCreated (the call's start); look around the send
        # time too, should it have used that. Overlapping spans are asked for once.
        anchors = sorted(a for a in (call.started_at, call.siro_create_sent_at) if a)
        spans: list[list[datetime]] = []
        for anchor in anchors:
            if spans and anchor - RECONCILE_MARGIN <= spans[-1][1]:
                spans[-1][1] = anchor + RECONCILE_MARGIN
            else:
                spans.append([anchor - RECONCILE_MARGIN, anchor + RECONCILE_MARGIN])
        for start, end in spans:
            with self.stages.siro():
                found = self.siro.find_recordings(start, end)
            for recording in found:
                if (recording.title or "").strip() == title.strip() and not recording.deleted:
                    return recording
        return None

    def _uploaded(
        self,
        call: Call,
        recording_id: str,
        download_url: str | None,
        *,
        outcome: str,
        duration_ms: int | None = None,
    ) -> bool:
        message = (
            f"Siro recording {recording_id}"
            if outcome == "ok"
            else f"found Siro recording {recording_id} from an earlier attempt; not sent again"
        )
        done = self.store.mark_uploaded(
            call.id,
            self.owner,
            self.clock(),
            siro_recording_id=recording_id,
            # The download URL is signed: only its path, never its signature, is kept.
            siro_file_url=redact_url(download_url) if download_url else None,
            event=EventDraft(
                step="upload", outcome=outcome, duration_ms=duration_ms, message=message
            ),
        )
        if not done:
            self.on_lost_lease(call)
            return False
        remove_spool_file(call.spool_path)
        self.telemetry.step_finished(
            "upload", outcome, seconds=duration_ms / 1000 if duration_ms is not None else None
        )
        # One line a call would drown a backlog's log: the progress summary counts them instead.
        log.debug(
            "call %s (%s): uploaded as Siro recording %s",
            call.id,
            call.provider_call_id,
            recording_id,
        )
        return True


def _siro_failure(exc: SiroError) -> StepFailure:
    step = exc.step or "request"
    if isinstance(exc, SiroCredentialError):
        return StepFailure.pause(
            "siro_credentials", str(exc), PausedService.SIRO, http_status=exc.http_status
        )
    if isinstance(exc, SiroTransientError):
        return StepFailure.retry(
            f"siro_{step}_unavailable".replace("-", "_"),
            str(exc),
            http_status=exc.http_status,
            retry_after_seconds=exc.retry_after,
        )
    if isinstance(exc, SiroPermanentError):
        return StepFailure.fail(
            f"siro_{step}_rejected".replace("-", "_"), str(exc), http_status=exc.http_status
        )
    return StepFailure.retry(f"siro_{step}_error".replace("-", "_"), str(exc))


def _attribution_note(call: Call, plan: UploadPlan) -> AttributionNote | None:
    """The plan's attribution, to be written to the row's events unless the row has it."""
    attribution = plan.attribution
    if (call.siro_user_id, call.attribution) == (attribution.siro_user_id, attribution.method):
        return None
    return AttributionNote(attribution.siro_user_id, attribution.method.value, plan.audit_note())


def _spool_file_unusable(call: Call, *, downloaded_here: bool) -> tuple[str, str, str] | None:
    """Why the row's spool file must not be sent (error kind, reason, event), or None.

    The download is not flushed to disk (that cost a disk flush per call): a power cut may
    leave the file short or garbled while the row says ``downloaded``, so the file is checked
    against the size and SHA-256 the row recorded before any byte goes to Siro. A file this
    process downloaded in the row's current turn has seen no power cut: its size is checked,
    its SHA-256 (a read and a hash of the whole file) is not computed again.
    """
    if call.spool_path is None or not Path(call.spool_path).is_file():
        return _SPOOL_MISSING
    path = Path(call.spool_path)
    if (call.size_bytes is not None and path.stat().st_size != call.size_bytes) or (
        call.sha256 is not None and not downloaded_here and sha256_of(path) != call.sha256
    ):
        return _SPOOL_CORRUPT
    return None
