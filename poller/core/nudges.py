"""Webhook events turned into early polls: the nudge.

A verified event never brings a call in by itself; it only moves its provider's next poll
closer. The poll stays the one way calls come in, so a lost event costs latency, never a call,
and a forged but verified one can at most cause a poll.

Per provider, an event plans:

- one *nudged* poll (listing up to now, past the settle delay) ``debounce`` after the event,
  unless one is already planned by then: a burst of events is one poll;
- follow-up nudged polls at ``follow_ups`` after the event, and one plain poll at the
  provider's settle delay plus :data:`PLAIN_FOLLOW_UP_MARGIN`, for a call the call log shows
  only seconds (or a settle delay) after the event. A later event moves the follow-ups to its
  own time rather than adding more.

Two polls of a provider are never less than ``debounce`` apart. After its last follow-up,
each call id the events named that no poll has listed is logged once.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from poller.domain.clock import as_utc
from poller.domain.printable import printable
from poller.domain.records import Call
from poller.ports.webhooks import Verified

log = logging.getLogger(__name__)

# The plain follow-up comes this long after the settle delay has passed over the event.
PLAIN_FOLLOW_UP_MARGIN = timedelta(seconds=5)
# The announced call ids kept per provider until the follow-ups have run; beyond, the oldest
# are dropped (a flood of events must not grow memory).
MAX_ANNOUNCED_IDS = 1000
# Ids already warned about, so that one announced again is not warned about twice.
_WARNED_KEPT = 1000
# No provider call id is longer (the calls table's column): a longer one names no call.
MAX_CALL_ID_LENGTH = 255


class Timer(Protocol):
    """Runs ``action`` once at ``when`` on a thread of its own; a second call with the same
    ``key`` replaces the first if it has not started."""

    def call_at(self, key: str, when: datetime, action: Callable[[], None]) -> None: ...


# Polls ``provider`` now, nudged (``reach_now``) or plain, and returns once the poll has ended:
# whether this process polls that provider (False: another process holds its poll lock).
PollProvider = Callable[[str, bool], bool]
# Whether the store has a call of ``provider`` with this provider call id.
CallKnown = Callable[[str, str], bool]


@runtime_checkable
class CallFinder(Protocol):
    """A store that finds calls by their provider call id (the SQL store and its fake)."""

    def find_calls(self, reference: str) -> list[Call]: ...


def call_lookup(store: object) -> CallKnown | None:
    """Whether a call is in ``store``, if it can say (``None``: the check is left out)."""
    if not isinstance(store, CallFinder):
        return None
    finder = store

    def known(provider: str, call_id: str) -> bool:
        # find_calls also matches a row id equal to a numeric reference: compare both keys.
        return any(
            call.provider == provider and call.provider_call_id == call_id
            for call in finder.find_calls(call_id)
        )

    return known


def timer_key(provider: str) -> str:
    """The one timer (the daemon's one-off job id) of a provider's nudged polls."""
    return f"poll-now-{provider}"


@dataclass(slots=True)
class _Plan:
    """What is planned for one provider."""

    # The debounced poll an event asked for, until it runs.
    quick_at: datetime | None = None
    # (when, reach_now), anchored on the latest event.
    follow_ups: list[tuple[datetime, bool]] = field(default_factory=list)
    last_poll_at: datetime | None = None
    # Announced call id -> when the first event naming it arrived; oldest first.
    announced: OrderedDict[str, datetime] = field(default_factory=OrderedDict)
    dropped_ids: bool = False

    def earliest(self) -> datetime | None:
        times = [when for when, _reach in self.follow_ups]
        if self.quick_at is not None:
            times.append(self.quick_at)
        return min(times, default=None)


class Nudges:
    """The daemon's :class:`~poller.ports.webhooks.EventSink`: verified events to early polls.

    ``poll`` runs a provider's poll (the daemon runs it under that provider's poll lock and
    ignores it where another process polls); ``call_known`` looks a call up in the store;
    ``timer`` runs the planned polls; ``clock`` says the time. ``providers`` are the ones this
    process polls: an event of another is ignored.
    """

    def __init__(
        self,
        *,
        poll: PollProvider,
        call_known: CallKnown | None,
        timer: Timer,
        clock: Callable[[], datetime],
        providers: Collection[str],
        debounce: timedelta = timedelta(seconds=2),
        follow_ups: Sequence[timedelta] = (timedelta(seconds=10), timedelta(seconds=30)),
        settle_delays: Mapping[str, timedelta] | None = None,
        max_announced_ids: int = MAX_ANNOUNCED_IDS,
    ) -> None:
        self.poll = poll
        self.call_known = call_known
        self.timer = timer
        self.clock = clock
        self.providers = frozenset(providers)
        self.debounce = debounce
        self.follow_ups = tuple(sorted(follow_ups))
        self.settle_delays = dict(settle_delays or {})
        self.max_announced_ids = max_announced_ids
        self._plans: dict[str, _Plan] = {}
        self._warned: deque[tuple[str, str]] = deque(maxlen=_WARNED_KEPT)
        # Held only to read and change the plans and to set a timer: never across a poll or
        # a store lookup, so an event's thread never waits for either.
        self._lock = threading.Lock()
        # Nudged polls run, per provider (for status and tests; the metrics port has no
        # counter for them yet).
        self.polls_run: dict[str, int] = {}

    # -- EventSink -----------------------------------------------------------------------

    def event_arrived(self, provider: str, verified: Verified, at: datetime) -> None:
        """Plan the polls ``verified`` asks for. Returns at once and never raises: it runs on
        the receiver's thread after the answer went out."""
        try:
            self._event_arrived(provider, verified, as_utc(at))
        except Exception:
            log.exception("%s: a webhook event could not schedule a poll", provider)

    def _event_arrived(self, provider: str, verified: Verified, at: datetime) -> None:
        if not verified.nudge:
            return
        if provider not in self.providers:
            log.debug("%s: not polled by this process; its webhook event asks nothing", provider)
            return
        now = self.clock()
        with self._lock:
            plan = self._plans.setdefault(provider, _Plan())
            if plan.quick_at is None:
                plan.quick_at = now + self.debounce
            plan.follow_ups = [(now + offset, True) for offset in self.follow_ups]
            plain_at = now + self._settle_delay(provider) + PLAIN_FOLLOW_UP_MARGIN
            plan.follow_ups.append((plain_at, False))
            self._remember(provider, plan, verified.call_ids, at)
            self._arm(provider, plan)

    def _settle_delay(self, provider: str) -> timedelta:
        return self.settle_delays.get(provider, timedelta(0))

    def _remember(self, provider: str, plan: _Plan, call_ids: Sequence[str], at: datetime) -> None:
        for call_id in call_ids:
            if call_id in plan.announced or len(call_id) > MAX_CALL_ID_LENGTH:
                continue
            plan.announced[call_id] = at
            if len(plan.announced) > self.max_announced_ids:
                plan.announced.popitem(last=False)
                if not plan.dropped_ids:
                    plan.dropped_ids = True
                    log.warning(
                        "%s: more than %d call ids announced by webhook events await their "
                        "poll; the oldest are no longer checked against what the polls list",
                        provider,
                        self.max_announced_ids,
                    )

    def _arm(self, provider: str, plan: _Plan) -> None:
        """Set the provider's timer for its next planned poll (under ``_lock``)."""
        earliest = plan.earliest()
        if earliest is None:
            return
        if plan.last_poll_at is not None:
            earliest = max(earliest, plan.last_poll_at + self.debounce)
        self.timer.call_at(timer_key(provider), earliest, lambda: self.run_due(provider))

    # -- the timer's side ----------------------------------------------------------------

    def run_due(self, provider: str) -> None:
        """Run the provider's poll if one is due, then set the timer for the next; after the
        last one, check the announced call ids. Never raises (it runs on a scheduler thread)."""
        try:
            self._run_due(provider)
        except Exception:
            log.exception("%s: a nudged poll failed", provider)

    def _run_due(self, provider: str) -> None:
        with self._lock:
            plan = self._plans.get(provider)
            if plan is None:
                return
            now = self.clock()
            if plan.last_poll_at is not None and now < plan.last_poll_at + self.debounce:
                self._arm(provider, plan)  # early: a timer from before the last poll
                return
            reach_now = False
            due = False
            if plan.quick_at is not None and plan.quick_at <= now:
                plan.quick_at = None
                due = reach_now = True
            later: list[tuple[datetime, bool]] = []
            for when, nudged in plan.follow_ups:
                if when <= now:
                    due = True
                    reach_now = reach_now or nudged
                else:
                    later.append((when, nudged))
            plan.follow_ups = later
            if not due:
                self._arm(provider, plan)
                return
            plan.last_poll_at = now
        try:
            polled = self.poll(provider, reach_now)
        except Exception:
            log.exception("%s: a poll asked for by a webhook event failed", provider)
            polled = True
        if not polled:
            log.debug("%s: another process polls it; its webhook events are ignored", provider)
            with self._lock:
                self._plans.pop(provider, None)
            return
        with self._lock:
            if reach_now:
                self.polls_run[provider] = self.polls_run.get(provider, 0) + 1
            self._arm(provider, plan)
            if plan.earliest() is not None:
                return
            announced = list(plan.announced.items())
            plan.announced.clear()
            plan.dropped_ids = False
        self._check_announced(provider, announced)

    def _check_announced(self, provider: str, announced: Sequence[tuple[str, datetime]]) -> None:
        """Log each announced call that no poll listed; nothing comes in from an event."""
        if self.call_known is None or not announced:
            return
        for call_id, at in announced:
            if (provider, call_id) in self._warned:
                continue
            try:
                known = self.call_known(provider, call_id)
            except Exception:
                log.exception("%s: could not look up call %s", provider, printable(call_id))
                return
            if known:
                continue
            self._warned.append((provider, call_id))
            log.warning(
                "%s: an event announced call %s at %s, but no poll has listed it (the call "
                "log may lag, or [filters] exclude it); nothing is uploaded from an event alone",
                provider,
                printable(call_id),
                at.isoformat(),
            )
