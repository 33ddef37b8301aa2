"""Credential pauses: the work waits for a person to fix a credential, and no call pays for it.

A pause has a scope: ``siro`` (Siro refused the OAuth app or the token user), or
``provider:<name>`` (that phone system refused its credentials). While Siro is paused the
worker claims nothing; while a provider is paused only that provider's calls wait. Rows hit by
the refusal are given back as they were, with the attempt refunded. A pause ends by itself:
Siro's when a fresh token mint succeeds (the worker probes), a provider's when its call log
lists again (the poll cycle).

Pauses live in the state database (``credential_pauses``), so `status`, `/healthz` and every
worker sharing the database see the same ones. Reasons never hold a secret: they name the
config keys to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from poller.domain.clock import human_age

SIRO = "siro"
_PROVIDER_PREFIX = "provider:"


class PausedService(StrEnum):
    """Whose credentials a refusal was about, before it is tied to a scope."""

    SIRO = "siro"
    PROVIDER = "provider"  # the provider of the call at hand


def provider_scope(provider: str) -> str:
    """The scope of the provider whose calls are stored under ``provider``."""
    return f"{_PROVIDER_PREFIX}{provider}"


def provider_of(scope: str) -> str | None:
    """The provider a ``provider:<name>`` scope holds back; ``None`` for Siro's."""
    return scope.removeprefix(_PROVIDER_PREFIX) if scope.startswith(_PROVIDER_PREFIX) else None


def scope_for(service: PausedService, call_provider: str) -> str:
    return SIRO if service == PausedService.SIRO else provider_scope(call_provider)


@dataclass(frozen=True, slots=True)
class CredentialPause:
    """One row of ``credential_pauses``."""

    scope: str
    reason: str
    since: datetime
    # When the worker last asked Siro whether the credentials work again (Siro's pause only).
    last_probe_at: datetime | None = None

    @property
    def provider(self) -> str | None:
        return provider_of(self.scope)

    def age(self, now: datetime) -> timedelta:
        return max(timedelta(0), now - self.since)

    def holds_back(self, provider: str) -> bool:
        """Whether this pause keeps calls of ``provider`` from being worked."""
        return self.scope == SIRO or self.provider == provider

    def describe(self, now: datetime) -> str:
        return f"credential pause ({self.scope}) for {human_age(self.age(now))}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "reason": self.reason,
            "since": self.since,
            "last_probe_at": self.last_probe_at,
        }


def probe_due(pause: CredentialPause, now: datetime, every: timedelta) -> bool:
    """Whether Siro should be asked again: at most once per ``every``, shared by all workers."""
    last = pause.last_probe_at or pause.since
    return now - last >= every


@dataclass(frozen=True, slots=True)
class PauseView:
    """What the pauses in force mean for claiming work."""

    pauses: tuple[CredentialPause, ...] = ()

    @property
    def siro(self) -> CredentialPause | None:
        return next((pause for pause in self.pauses if pause.scope == SIRO), None)

    @property
    def paused_providers(self) -> frozenset[str]:
        return frozenset(p.provider for p in self.pauses if p.provider is not None)

    @property
    def claims_nothing(self) -> bool:
        return self.siro is not None
