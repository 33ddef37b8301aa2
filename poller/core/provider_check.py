"""`provider check`: one read-only listing that says whether polling would work, and if not, why.

It reads the first page of a window and sorts the outcome into what a person fixes: the
credentials (``auth``), the address or the network (``host``), the answer's shape
(``listing``), or the field mapping (``mapping``, with the reasons and the keys the records
do have, so a wrong dotted path is found at once).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

from poller.domain.raw_record import load_raw
from poller.domain.windows import Window
from poller.ports.provider import (
    ListedPage,
    ProviderAuthError,
    ProviderError,
    ProviderPort,
    ProviderRefused,
    TransientProviderError,
)


class CheckVerdict(StrEnum):
    OK = "ok"
    AUTH = "auth"
    HOST = "host"
    LISTING = "listing"
    MAPPING = "mapping"


@dataclass
class ProviderCheck:
    provider: str
    window: Window
    verdict: CheckVerdict = CheckVerdict.OK
    records: int = 0
    mapped: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    record_keys: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is CheckVerdict.OK

    @property
    def summary(self) -> str:
        if self.error is not None:
            return f"{self.verdict.value}: {self.error}"
        if self.records == 0:
            return (
                f"ok: the provider answered, with no calls in {self.window}; "
                "widen the window to see records mapped"
            )
        mapped = f"{self.mapped} of {self.records} records mapped"
        if not self.reasons:
            return f"ok: {mapped}"
        reasons = "; ".join(
            f"{reason}" + (f" ({count} records)" if count > 1 else "")
            for reason, count in self.reasons.most_common(3)
        )
        keys = f"; the records have keys: {', '.join(self.record_keys)}" if self.record_keys else ""
        return f"{self.verdict.value}: {mapped}: {reasons}{keys}"

    def to_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "window": {"start": self.window.start, "end": self.window.end},
            "ok": self.ok,
            "verdict": self.verdict.value,
            "records": self.records,
            "mapped": self.mapped,
            "reasons": dict(self.reasons),
            "record_keys": self.record_keys,
            "error": self.error,
            "summary": self.summary,
        }


def check_provider(name: str, provider: ProviderPort, window: Window) -> ProviderCheck:
    """List the first page of ``window``; never raises a :class:`ProviderError`."""
    check = ProviderCheck(provider=name, window=window)
    pages = provider.list_window(window)
    try:
        page: ListedPage | None = next(iter(pages), None)
    except ProviderAuthError as exc:
        return _failed(check, CheckVerdict.AUTH, exc)
    except (ProviderRefused, TransientProviderError) as exc:
        return _failed(check, CheckVerdict.HOST, exc)
    except ProviderError as exc:
        return _failed(check, CheckVerdict.LISTING, exc)
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()
    if page is None:
        return check
    check.records = page.item_count
    check.mapped = len(page.records)
    check.reasons.update(error.reason for error in page.malformed)
    for error in page.malformed:
        raw = load_raw(error.raw) if error.raw else None
        if isinstance(raw, dict):
            check.record_keys = sorted(str(key) for key in raw)[:30]
            break
    if check.records and check.mapped == 0:
        check.verdict = CheckVerdict.MAPPING
    return check


def _failed(check: ProviderCheck, verdict: CheckVerdict, exc: ProviderError) -> ProviderCheck:
    check.verdict = verdict
    check.error = str(exc)
    return check
