"""The one guarded HTTP layer: every outbound call, provider and Siro alike, goes through it."""

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
