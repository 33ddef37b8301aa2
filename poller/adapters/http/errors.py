"""What can go wrong with one outbound HTTP call, sorted by what the caller should do next.

Messages are safe to log and to store: they name a URL only as :func:`url_for_humans` renders
it (no query string, no userinfo) and never carry a header or a body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from poller.domain.urls import UnsafeUrl, url_target


def url_for_humans(url: str) -> str:
    """``scheme://host[:port]/path``: what a message may say about a URL (queries sign).

    The host is the one a connection would go to; a URL parsers read differently is not shown.
    """
    try:
        target = url_target(url)
    except UnsafeUrl:
        return "<unsafe URL>"
    host = f"[{target.host}]" if ":" in target.host else target.host
    shown_port = f":{target.port}" if target.port is not None else ""
    return f"{target.scheme}://{host}{shown_port}{target.path}"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An answer whose body has been read (under a byte cap)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str
    reason: str = ""
    elapsed_ms: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` if it is not."""
        return json.loads(self.body)


class HttpError(Exception):
    """One HTTP call failed. ``status`` is the HTTP status if an answer came at all."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        response: HttpResponse | None = None,
        may_have_been_sent: bool = True,
        detail: str | None = None,
        check: str | None = None,
    ) -> None:
        super().__init__(message)
        # What went wrong in a few words, without the URL: for callers that word it their way.
        self.detail = detail if detail is not None else message
        self.status = status
        self.retry_after = retry_after
        self.url_for_humans = url_for_humans(url) if url else ""
        # The answer (body read under the cap) for callers that classify further, e.g. by
        # the body's error code. Never part of the message.
        self.response = response
        # False only when no byte of the request can have reached the server (no connection
        # was made, or a policy refused it first): a non-idempotent request may then be resent.
        self.may_have_been_sent = may_have_been_sent
        # The setting the operator should look at (``provider.base_url``), when one is to blame.
        self.check = check


class HttpTransient(HttpError):
    """Worth trying again later: no connection, a timeout, the deadline, 408, 429 or 5xx."""


class HostUnresolved(HttpTransient):
    """The URL's host name does not resolve. Not tried again within the call: a name that
    does not resolve now will not in a few seconds either (a typo, an example host). Still
    transient for the caller, which tries again at its next turn: DNS outages end."""


class HttpPermanent(HttpError):
    """Trying again will not help until something changes: other 4xx, too big, not JSON."""


class HttpRefused(HttpPermanent):
    """The destination is not allowed by policy; nothing was sent to it."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message, url=url, may_have_been_sent=False)


class HttpUnauthorized(HttpPermanent):
    """401 or 403, even after the authenticator's one fresh credential. ``check`` is set when
    the message already names the settings to check (a refused token mint does)."""
