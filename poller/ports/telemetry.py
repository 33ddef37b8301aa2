"""What the worker and the poller report as they go, for metrics. No-ops unless wired."""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    def step_finished(
        self, step: str, outcome: str, *, seconds: float | None = None, kind: str | None = None
    ) -> None:
        """A download or upload step ended: ``outcome`` is ok, adopted, retry, fail or skip."""
        ...

    def bytes_downloaded(self, count: int) -> None: ...

    def poll_finished(self, *, ok: bool, listed: int) -> None: ...

    def webhook_request(self, provider: str, outcome: str) -> None:
        """The webhook receiver answered a request: ``outcome`` is accepted, refused,
        replayed, rate_limited, too_large or unknown_path; ``provider`` is "" for a path that
        names none."""
        ...


class NoTelemetry:
    def step_finished(
        self, step: str, outcome: str, *, seconds: float | None = None, kind: str | None = None
    ) -> None:
        pass

    def bytes_downloaded(self, count: int) -> None:
        pass

    def poll_finished(self, *, ok: bool, listed: int) -> None:
        pass

    def webhook_request(self, provider: str, outcome: str) -> None:
        pass
