"""Whether siro-poller is healthy: the one rule behind `/healthz` and `siro-poller status`.

Healthy means: every configured provider was listed successfully within a few poll intervals,
a worker's heartbeat is fresh, and no credential pause is in force. Anything else is degraded,
with one reason per problem, each saying what to look at; no reason holds a secret.

A warning is reported beside the verdict and never changes it: a webhook subscription the
vendor disabled (blacklisted, deactivated, missing) means calls arrive by the poll, minutes
later, instead of seconds; every call still comes. Failing the health check for it would have
a load balancer or an orchestrator restart a process that does its job, and page someone at
night for latency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from poller.domain.clock import human_age
from poller.domain.pauses import CredentialPause
from poller.domain.records import PollCursor, WorkerHeartbeat

# How long past its interval a poll or a worker may be before it counts as stalled: a cycle
# that lists a long backlog, or a busy host, should not flap the check.
GRACE = timedelta(seconds=60)
INTERVALS = 3


def stale_after(interval: timedelta) -> timedelta:
    """A few intervals, and at least one interval plus a minute."""
    return max(INTERVALS * interval, interval + GRACE)


@dataclass(frozen=True, slots=True)
class HealthRules:
    """What to check: the providers that must be polled and how often each job runs."""

    providers: tuple[str, ...]
    poll_interval: timedelta
    work_interval: timedelta
    check_polling: bool = True
    check_worker: bool = True
    # The providers whose webhook is enabled: their subscription state is reported.
    webhook_providers: tuple[str, ...] = ()


# The webhook subscription states in which the vendor sends nothing (poller.ports.webhooks).
DISABLED_SUBSCRIPTION_STATES = ("blacklisted", "deactivated", "missing")


@dataclass(frozen=True, slots=True)
class Problem:
    check: str  # credentials, polling, worker; webhooks (a warning)
    subject: str  # the pause scope, the provider, or "worker"
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"check": self.check, "subject": self.subject, "message": self.message}


@dataclass(frozen=True, slots=True)
class Health:
    checked_at: datetime
    problems: tuple[Problem, ...] = field(default_factory=tuple)
    # Worth a look, but the work goes on: never part of the verdict (see the module's text).
    warnings: tuple[Problem, ...] = field(default_factory=tuple)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "status": "ok" if self.healthy else "degraded",
            "checked_at": self.checked_at,
            "reasons": [problem.to_dict() for problem in self.problems],
            "warnings": [warning.to_dict() for warning in self.warnings],
        }


def assess(
    rules: HealthRules,
    now: datetime,
    *,
    pauses: Sequence[CredentialPause],
    cursors: Iterable[PollCursor],
    last_worker_beat: datetime | None,
    webhook_states: Mapping[str, str | None] | None = None,
) -> Health:
    """Judge the state read at ``now``; ``last_worker_beat`` is the freshest heartbeat known,
    ``webhook_states`` each provider's webhook subscription state as last saved."""
    problems = [
        Problem("credentials", pause.scope, pause.describe(now))
        for pause in sorted(pauses, key=lambda pause: pause.scope)
    ]
    if rules.check_polling:
        by_provider: Mapping[str, PollCursor] = {cursor.provider: cursor for cursor in cursors}
        limit = stale_after(rules.poll_interval)
        for provider in rules.providers:
            problem = _polling_problem(provider, by_provider.get(provider), now, limit)
            if problem is not None:
                problems.append(problem)
    if rules.check_worker:
        limit = stale_after(rules.work_interval)
        if last_worker_beat is None:
            problems.append(Problem("worker", "worker", "no worker has reported a heartbeat"))
        elif now - last_worker_beat > limit:
            problems.append(
                Problem(
                    "worker",
                    "worker",
                    f"the last worker heartbeat is {human_age(now - last_worker_beat)} old "
                    f"(more than {human_age(limit)}): no worker is running, or it is stuck",
                )
            )
    return Health(
        checked_at=now,
        problems=tuple(problems),
        warnings=tuple(subscription_warnings(rules.webhook_providers, webhook_states or {})),
    )


def subscription_warnings(
    providers: Iterable[str], states: Mapping[str, str | None]
) -> list[Problem]:
    """A warning per enabled webhook whose subscription the vendor disabled."""
    warnings = []
    for provider in providers:
        state = states.get(provider)
        if state in DISABLED_SUBSCRIPTION_STATES:
            warnings.append(
                Problem(
                    "webhooks",
                    provider,
                    f"the webhook subscription of {provider} is {state}: its calls arrive by "
                    "the poll only (later, none lost); `siro-poller webhooks subscribe "
                    f"--provider {provider}` re-enables it",
                )
            )
    return warnings


def _polling_problem(
    provider: str, cursor: PollCursor | None, now: datetime, limit: timedelta
) -> Problem | None:
    last_error = f"; last error: {cursor.last_error}" if cursor and cursor.last_error else ""
    if cursor is None or cursor.last_success_at is None:
        return Problem("polling", provider, f"polling {provider} never succeeded{last_error}")
    age = now - cursor.last_success_at
    if age > limit:
        return Problem(
            "polling",
            provider,
            f"polling {provider} last succeeded {human_age(age)} ago "
            f"(more than {human_age(limit)}){last_error}",
        )
    return None


def freshest(heartbeats: Iterable[WorkerHeartbeat]) -> datetime | None:
    return max((beat.beat_at for beat in heartbeats), default=None)
