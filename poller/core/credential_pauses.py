"""The worker's view of the credential pauses: read, probed, recorded when credentials fail.

A refused credential pauses its scope (Siro, or one provider) instead of failing the call: the
row goes back exactly as it was, and the drain loop claims nothing the pause holds back until a
probe finds that the credentials work again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from poller.domain.clock import human_age
from poller.domain.failures import StepFailure
from poller.domain.pauses import (
    SIRO,
    CredentialPause,
    PausedService,
    PauseView,
    probe_due,
    scope_for,
)
from poller.domain.records import Call, EventDraft
from poller.ports.siro import SiroCredentialError, SiroError, SiroPort
from poller.ports.store import WorkQueue
from poller.ports.telemetry import Telemetry

log = logging.getLogger(__name__)

# How often the drain loop reads the pauses again (another process may have recorded one).
PAUSES_TTL = timedelta(seconds=5)


class CredentialPauses:
    def __init__(
        self,
        *,
        store: WorkQueue,
        siro: SiroPort,
        owner: str,
        probe_every: timedelta,
        clock: Callable[[], datetime],
        telemetry: Telemetry,
        on_lost_lease: Callable[[Call], None],
    ) -> None:
        self.store = store
        self.siro = siro
        self.owner = owner
        self.probe_every = probe_every
        self.clock = clock
        self.telemetry = telemetry
        self.on_lost_lease = on_lost_lease
        self._lock = threading.Lock()
        self._view = PauseView()
        self._read_at: datetime | None = None
        # Called when a probe ends Siro's pause, before any upload (the daemon syncs Siro's
        # users then: the sync that ran while the credentials were refused found none).
        self.on_siro_resumed: Callable[[], object] | None = None

    def check(self, *, probe_now: bool = False) -> PauseView:
        """Read the credential pauses in force; ask Siro again whether its credentials work
        when its pause's probe is due (``probe_now``: at once), and end the pause if they do.

        Every worker sharing the database shares one probe schedule (``last_probe_at``)."""
        now = self.clock()
        pauses = self.store.pauses()
        siro = next((pause for pause in pauses if pause.scope == SIRO), None)
        probing = siro is not None and (probe_now or probe_due(siro, now, self.probe_every))
        if probing and siro is not None and self._probe_siro(siro, now):
            pauses = [pause for pause in pauses if pause.scope != SIRO]
        view = PauseView(tuple(pauses))
        with self._lock:
            self._view = view
            self._read_at = now
        return view

    def _probe_siro(self, pause: CredentialPause, now: datetime) -> bool:
        """One fresh token mint: True (and the pause ended) when Siro accepts it."""
        try:
            self.siro.verify_credentials()
        except SiroCredentialError as exc:
            self.store.record_pause(SIRO, str(exc), now)
            self.store.note_pause_probe(SIRO, now)
            log.info("Siro still refuses the credentials: %s", exc)
            return False
        except SiroError as exc:
            # Siro could not be asked (down, slow): that says nothing about the credentials.
            self.store.note_pause_probe(SIRO, now)
            log.info("could not ask Siro whether the credentials work again: %s", exc)
            return False
        ended = self.store.end_pause(SIRO)
        log.warning(
            "Siro accepts the credentials again; resuming the work after a pause of %s",
            human_age((ended or pause).age(now)),
        )
        if self.on_siro_resumed is not None:
            self.on_siro_resumed()
        return True

    def current(self) -> PauseView:
        """The pauses as last read, read again once PAUSES_TTL old (no probe here)."""
        now = self.clock()
        with self._lock:
            read_at = self._read_at
            if read_at is not None and now - read_at < PAUSES_TTL:
                return self._view
        try:
            view = PauseView(tuple(self.store.pauses()))
        except Exception:
            log.exception("could not read the credential pauses; keeping the last known")
            with self._lock:
                return self._view
        with self._lock:
            self._view = view
            self._read_at = now
        return view

    def give_back(self, call: Call, failure: StepFailure, step: str) -> None:
        """The credentials were refused, not the call: pause their scope first (so no other
        worker claims the row meanwhile), then give the row back exactly as it was."""
        now = self.clock()
        scope = scope_for(failure.paused_service or PausedService.SIRO, call.provider)
        pause = self.store.record_pause(scope, failure.message, now)
        given = self.store.give_back(
            call.id,
            self.owner,
            now,
            EventDraft(
                step=step,
                outcome="paused",
                http_status=failure.http_status,
                message=f"credential pause ({scope}); given back as it was, no attempt spent: "
                f"{failure.message}",
            ),
        )
        if not given:
            self.on_lost_lease(call)
        with self._lock:
            known = {p.scope: p for p in self._view.pauses}
            new = scope not in known
            known[scope] = pause
            self._view = PauseView(tuple(known[key] for key in sorted(known)))
        if new:
            waiting = "every call" if scope == SIRO else f"the calls of {pause.provider}"
            log.warning(
                "credential pause (%s): %s; %s wait, none fails and no attempt is spent; "
                "the work resumes by itself once the credentials work again",
                scope,
                failure.message,
                waiting,
            )
        self.telemetry.step_finished(step, "paused", kind=failure.kind)
