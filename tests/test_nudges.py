"""Webhook events to early polls: debounced, followed up, never trusted as data.

The clock and the timer are fakes that the tests move by hand, so every plan is checked to the
second without waiting for one.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from poller.core.nudges import Nudges, timer_key
from poller.ports.webhooks import Verified

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SETTLE = timedelta(seconds=120)
ENDED = Verified(event="call.ended", call_ids=("call-1",))


class FakeTimer:
    """A clock and a timer table: :meth:`advance` runs what falls due, in time order."""

    def __init__(self) -> None:
        self.now = T0
        self.pending: dict[str, tuple[datetime, Callable[[], None]]] = {}

    def clock(self) -> datetime:
        return self.now

    def call_at(self, key: str, when: datetime, action: Callable[[], None]) -> None:
        self.pending[key] = (when, action)

    def advance(self, seconds: float) -> None:
        until = self.now + timedelta(seconds=seconds)
        while self.pending:
            key, (when, action) = min(self.pending.items(), key=lambda item: item[1][0])
            if when > until:
                break
            del self.pending[key]
            self.now = max(self.now, when)
            action()
        self.now = until


class World:
    def __init__(self, *, known: set[str] | None = None, polls_here: bool = True) -> None:
        self.timer = FakeTimer()
        # (seconds after T0, provider, nudged)
        self.polls: list[tuple[float, str, bool]] = []
        self.known = known or set()
        self.polls_here = polls_here
        self.failing = False
        self.nudges = Nudges(
            poll=self.poll,
            call_known=lambda provider, call_id: call_id in self.known,
            timer=self.timer,
            clock=self.timer.clock,
            providers={"zoom", "aircall"},
            settle_delays={"zoom": SETTLE},
        )

    def poll(self, provider: str, reach_now: bool) -> bool:
        self.polls.append(((self.timer.now - T0).total_seconds(), provider, reach_now))
        if self.failing:
            raise RuntimeError("the provider is down")
        return self.polls_here

    def event(self, provider: str = "zoom", verified: Verified = ENDED) -> None:
        self.nudges.event_arrived(provider, verified, self.timer.now)


def test_the_first_event_of_a_quiet_period_polls_after_the_debounce_then_follows_up() -> None:
    world = World()
    world.event()
    assert world.polls == []  # the receiver's thread returns at once
    world.timer.advance(600)
    assert world.polls == [
        (2, "zoom", True),
        (10, "zoom", True),
        (30, "zoom", True),
        (125, "zoom", False),  # the settle delay has passed over the event: a plain poll
    ]


def test_a_burst_of_events_is_one_early_poll() -> None:
    world = World()
    for _ in range(20):
        world.event()
        world.timer.advance(0.05)
    world.timer.advance(1.5)
    assert world.polls == [(2, "zoom", True)]


def test_new_events_move_the_follow_ups_rather_than_adding_more() -> None:
    world = World()
    world.event()
    world.timer.advance(5)
    world.event()
    world.timer.advance(600)
    assert world.polls == [
        (2, "zoom", True),
        (7, "zoom", True),
        (15, "zoom", True),
        (35, "zoom", True),
        (130, "zoom", False),
    ]


def test_two_polls_of_a_provider_are_never_closer_than_the_debounce() -> None:
    world = World()
    for _ in range(60):  # an event every 0.7 s for 42 s
        world.event()
        world.timer.advance(0.7)
    world.timer.advance(600)
    times = [at for at, _provider, _nudged in world.polls]
    assert len(times) > 10
    assert all(later - earlier >= 2 for earlier, later in itertools.pairwise(times))


def test_each_provider_has_its_own_plan_and_timer() -> None:
    world = World()
    world.event("zoom")
    world.timer.advance(1)
    world.event("aircall")
    assert set(world.timer.pending) == {timer_key("zoom"), timer_key("aircall")}
    world.timer.advance(600)
    assert [(at, nudged) for at, p, nudged in world.polls if p == "aircall"] == [
        (3, True),
        (6, False),  # no settle delay known for it: five seconds after the event
        (11, True),
        (31, True),
    ]
    assert world.nudges.polls_run == {"zoom": 3, "aircall": 3}


def test_events_that_ask_for_no_poll_or_name_another_provider_plan_nothing() -> None:
    world = World()
    world.event(verified=Verified(event="endpoint.url_validation", nudge=False))
    world.event("dialpad")  # not polled by this process
    world.timer.advance(600)
    assert world.polls == []
    assert world.timer.pending == {}


def test_an_announced_call_no_poll_listed_is_logged_once_after_the_last_follow_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="poller.core.nudges")
    world = World(known={"listed"})
    world.event(verified=Verified(event="call.ended", call_ids=("listed", "missing")))
    world.timer.advance(60)
    assert caplog.records == []  # the plain follow-up has not run yet: the log may lag
    world.timer.advance(600)
    [record] = caplog.records
    assert record.getMessage() == (
        "zoom: an event announced call missing at 2026-12-01T09:00:00+00:00, but no poll has "
        "listed it (the call log may lag, or [filters] exclude it); nothing is uploaded from "
        "an event alone"
    )
    world.event(verified=Verified(event="call.ended", call_ids=("missing",)))
    world.timer.advance(600)
    assert len(caplog.records) == 1  # once per call


def test_a_hostile_call_id_cannot_forge_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="poller.core.nudges")
    world = World()
    world.event(verified=Verified(event="call.ended", call_ids=("x\nINFO forged", "y" * 300)))
    world.timer.advance(600)
    [record] = caplog.records  # the id longer than any call id names no call: not kept
    assert "call x\\nINFO forged at" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_the_announced_ids_kept_are_bounded_and_dropping_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="poller.core.nudges")
    world = World()
    world.nudges.max_announced_ids = 3
    for n in range(5):
        world.event(verified=Verified(event="call.ended", call_ids=(f"c{n}", f"d{n}")))
    dropped = [r for r in caplog.records if "no longer checked" in r.getMessage()]
    assert len(dropped) == 1
    caplog.clear()
    world.timer.advance(600)
    unlisted = sorted(r.getMessage().split()[5] for r in caplog.records)
    assert unlisted == ["c4", "d3", "d4"]  # the newest three


def test_a_failing_poll_never_raises_and_the_follow_ups_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = World()
    world.failing = True
    world.event()
    world.timer.advance(600)
    assert [at for at, _provider, _nudged in world.polls] == [2, 10, 30, 125]
    assert "a poll asked for by a webhook event failed" in caplog.text


def test_an_event_never_raises_into_the_receiver(caplog: pytest.LogCaptureFixture) -> None:
    world = World()

    def broken_timer(key: str, when: datetime, action: Callable[[], None]) -> None:
        raise RuntimeError("the scheduler is shut down")

    world.timer.call_at = broken_timer  # type: ignore[method-assign]
    world.event()
    assert "could not schedule a poll" in caplog.text


def test_a_process_that_does_not_poll_the_provider_drops_its_plan(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="poller.core.nudges")
    world = World(polls_here=False)
    world.event()
    world.timer.advance(600)
    assert world.polls == [(2, "zoom", True)]  # asked once; another process polls it
    assert caplog.records == []  # nor is its announced call checked here
