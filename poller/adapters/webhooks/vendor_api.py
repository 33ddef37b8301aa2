"""How a subscription client reaches its vendor's API: through the provider adapter's own
guarded HTTP client (its credentials, host rules, deadline, bounded retries and rate limit), so
the client itself holds no credential and opens no connection of its own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from poller.adapters.http import HttpError
from poller.ports.provider import PermanentProviderError, ProviderError

if TYPE_CHECKING:
    from poller.adapters.http.client import HttpClient


class VendorApi(Protocol):
    def __call__(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        """One authenticated request to ``url`` (absolute), its JSON answer decoded (None for
        an empty body). Raises the adapter's ``ProviderError`` for any failure."""
        ...


def json_api(
    http: HttpClient,
    provider_error: Callable[[HttpError], ProviderError],
    *,
    headers: Mapping[str, str] | None = None,
) -> VendorApi:
    """A :class:`VendorApi` over an adapter's client; ``provider_error`` words its failures."""

    def call(
        method: str,
        url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        what = f"{method} {urlsplit(url).path}"
        try:
            answer = http.request(
                method,
                url,
                params=params,
                json=body,
                headers={"Accept": "application/json", **(headers or {})},
                what=what,
                # Creating twice would make two subscriptions: a POST is retried only when it
                # provably was not sent; the updates set a state and may be repeated.
                idempotent=method != "POST",
            )
        except HttpError as exc:
            raise provider_error(exc) from None
        if not answer.body.strip():
            return None
        try:
            return answer.json()
        except (ValueError, RecursionError):
            raise PermanentProviderError(f"{what}: the answer is not JSON") from None

    return call
