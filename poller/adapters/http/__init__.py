"""The one guarded HTTP layer: every outbound call, provider and Siro alike, goes through it.

The client and its transport (requests, urllib3) are imported when one of their names is first
asked for: the config imports every provider kind's settings, the authenticators among them,
and a command that only reads the state database never sends a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from poller.adapters.http.auth import (
    ApiKeyHeader,
    Authenticator,
    BasicAuth,
    BearerToken,
    HeaderTemplate,
    NoAuth,
    OAuthClientCredentials,
    OAuthJwtBearer,
    OAuthPassword,
)
from poller.adapters.http.destinations import HostRules
from poller.adapters.http.errors import (
    HostUnresolved,
    HttpError,
    HttpPermanent,
    HttpRefused,
    HttpResponse,
    HttpTransient,
    HttpUnauthorized,
    url_for_humans,
)
from poller.adapters.http.ratelimit import RateLimiter
from poller.adapters.http.retry import RetryPolicy, parse_retry_after
from poller.adapters.http.tokens import AccessToken, AccessTokenCache
from poller.ports.download import Downloaded

if TYPE_CHECKING:
    from poller.adapters.http.client import (
        BodyEmpty,
        BodyTooLarge,
        BodyTruncated,
        DeadlineExceeded,
        HttpClient,
        Interrupted,
        JsonPage,
        Limits,
        TooManyRedirects,
    )

_CLIENT_NAMES = frozenset(
    {
        "BodyEmpty",
        "BodyTooLarge",
        "BodyTruncated",
        "DeadlineExceeded",
        "HttpClient",
        "Interrupted",
        "JsonPage",
        "Limits",
        "TooManyRedirects",
    }
)

__all__ = [
    "AccessToken",
    "AccessTokenCache",
    "ApiKeyHeader",
    "Authenticator",
    "BasicAuth",
    "BearerToken",
    "BodyEmpty",
    "BodyTooLarge",
    "BodyTruncated",
    "DeadlineExceeded",
    "Downloaded",
    "HeaderTemplate",
    "HostRules",
    "HostUnresolved",
    "HttpClient",
    "HttpError",
    "HttpPermanent",
    "HttpRefused",
    "HttpResponse",
    "HttpTransient",
    "HttpUnauthorized",
    "Interrupted",
    "JsonPage",
    "Limits",
    "NoAuth",
    "OAuthClientCredentials",
    "OAuthJwtBearer",
    "OAuthPassword",
    "RateLimiter",
    "RetryPolicy",
    "TooManyRedirects",
    "parse_retry_after",
    "url_for_humans",
]


def __getattr__(name: str) -> object:
    if name in _CLIENT_NAMES:
        from poller.adapters.http import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
