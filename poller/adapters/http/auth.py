"""How a request proves who sends it: one small class per scheme, one protocol.

The client asks :meth:`Authenticator.headers_for_request` before each request to a credential
host; after a 401/403 it calls :meth:`Authenticator.on_unauthorized` with the headers it sent,
and tries once more only if that answers True (a fresh token may help; a static key will not).

The OAuth authenticators mint through an :class:`~poller.adapters.http.client.HttpClient` whose
host rules list the token endpoint's host as a credential host, and keep their token in an
:class:`~poller.adapters.http.tokens.AccessTokenCache`: one mint under concurrency, refreshed
ahead of expiry, dropped on a 401 only if it is the token that was refused. The refresh-token
grant, whose rotating refresh token outlives the process in the state database, is in
:mod:`poller.adapters.http.oauth_refresh`.
"""

from __future__ import annotations

import base64
import logging
import re
import string
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import SecretStr

from poller.adapters.http.errors import (
    HttpError,
    HttpPermanent,
    HttpResponse,
    HttpUnauthorized,
)
from poller.adapters.http.tokens import AccessToken, AccessTokenCache
from poller.domain.clock import utcnow

log = logging.getLogger(__name__)

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_LIFETIME = timedelta(hours=1)


class Authenticator(Protocol):
    def headers_for_request(self) -> Mapping[str, str]:
        """The credential headers for the next request (may mint a token)."""
        ...

    def on_unauthorized(self, sent: Mapping[str, str]) -> bool:
        """The server refused ``sent``; True if one more try with fresh credentials makes sense."""
        ...

    def secrets(self) -> Sequence[str]:
        """Every secret value this authenticator may send, for redaction."""
        ...


class TokenEndpointClient(Protocol):
    """What an OAuth authenticator mints through: the HTTP client, which imports this module."""

    def request(
        self,
        method: str,
        url: str,
        *,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        credentials: Mapping[str, str] | None = None,
        what: str,
        authenticate: bool = True,
    ) -> HttpResponse: ...


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


_OAUTH_ERROR_CODE = re.compile(r"[a-z_]{1,40}")


def _oauth_error(exc: HttpError) -> str:
    """`` invalid_grant``: the RFC 6749 error code of a refused token request, if it gave one.

    Only a short code of the RFC's alphabet is shown; a description may echo what was sent.
    """
    try:
        code = exc.response.json().get("error") if exc.response is not None else None
    except (ValueError, AttributeError):
        return ""
    return f" {code}" if isinstance(code, str) and _OAUTH_ERROR_CODE.fullmatch(code) else ""


ClientAuth = Literal["basic", "body"]


class _ClientCredentials:
    """How an OAuth client proves itself at the token endpoint (RFC 6749 2.3.1): HTTP Basic,
    which every server must accept, or ``client_id``/``client_secret`` in the form."""

    def __init__(self, client_id: str, secret: SecretStr, mode: ClientAuth) -> None:
        self.client_id = client_id
        self._secret = secret
        self.mode = mode

    def headers(self) -> dict[str, str]:
        if self.mode != "basic":
            return {}
        return {"Authorization": _basic(self.client_id, self._secret.get_secret_value())}

    def form(self) -> dict[str, str]:
        if self.mode != "body":
            return {}
        return {"client_id": self.client_id, "client_secret": self._secret.get_secret_value()}

    def secrets(self) -> tuple[str, str]:
        secret = self._secret.get_secret_value()
        return (secret, _basic(self.client_id, secret).removeprefix("Basic "))


class NoAuth:
    def headers_for_request(self) -> Mapping[str, str]:
        return {}

    def on_unauthorized(self, sent: Mapping[str, str]) -> bool:
        return False

    def secrets(self) -> Sequence[str]:
        return ()


class _StaticHeader:
    def __init__(self, header: str, value: SecretStr) -> None:
        self._header = header
        self._value = value

    def headers_for_request(self) -> Mapping[str, str]:
        return {self._header: self._value.get_secret_value()}

    def on_unauthorized(self, sent: Mapping[str, str]) -> bool:
        return False  # the same static credential would be refused again

    def secrets(self) -> Sequence[str]:
        return (self._value.get_secret_value(),)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._header}: **********)"


class BearerToken(_StaticHeader):
    def __init__(self, token: SecretStr) -> None:
        super().__init__("Authorization", SecretStr(f"Bearer {token.get_secret_value()}"))
        self._token = token

    def secrets(self) -> Sequence[str]:
        return (self._token.get_secret_value(),)


class BasicAuth(_StaticHeader):
    def __init__(self, username: str, password: SecretStr) -> None:
        super().__init__("Authorization", SecretStr(_basic(username, password.get_secret_value())))
        self._password = password

    def secrets(self) -> Sequence[str]:
        header = self._value.get_secret_value()
        return (self._password.get_secret_value(), header.removeprefix("Basic "))


class ApiKeyHeader(_StaticHeader):
    def __init__(self, header: str, key: SecretStr) -> None:
        super().__init__(header, key)


# RFC 9110 5.1: a field name is a token.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def template_fields(template: str) -> list[str]:
    """The placeholders of a header template (``Token token="{api_key}"``), in order.

    Raises ``ValueError`` for a template str.format would misread: an unmatched brace, a
    positional ``{}``, an attribute or index (``{api_key.x}``), a conversion or format spec.
    ``{{`` and ``}}`` stand for literal braces.
    """
    names: list[str] = []
    for _literal, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier():
            raise ValueError(f"placeholder {{{name}}} must be a plain name such as {{api_key}}")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} may carry no conversion or format spec")
        names.append(name)
    return names


class HeaderTemplate(_StaticHeader):
    """One header whose value is a template over the configured secrets, rendered once:
    ``Authorization: Token token="{api_key}"`` (CallRail), ``Authorization: {api_key}:{api_secret}``
    (JustCall), ``X-Api-Auth: {api_key}`` (Freshcaller). The whole rendered value is a secret."""

    def __init__(self, header: str, template: str, values: Mapping[str, SecretStr]) -> None:
        names = template_fields(template)
        missing = sorted({name for name in names if name not in values})
        if missing:
            raise ValueError(f"header template names unset values: {', '.join(missing)}")
        rendered = template.format_map({name: values[name].get_secret_value() for name in names})
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in rendered):
            raise ValueError("the rendered header holds a control character (a line break?)")
        super().__init__(header, SecretStr(rendered))
        self._parts = tuple(values[name].get_secret_value() for name in names)

    def secrets(self) -> Sequence[str]:
        return (self._value.get_secret_value(), *self._parts)


class _OAuth:
    """A bearer token from a token endpoint, cached and shared by all threads."""

    what = "OAuth token"

    def __init__(
        self,
        *,
        token_url: str,
        http: TokenEndpointClient | None,
        config_hint: str,
        clock: Callable[[], datetime] = utcnow,
        refresh_margin: timedelta = timedelta(seconds=60),
    ) -> None:
        self.token_url = token_url
        self._http = http
        self._config_hint = config_hint
        self._clock = clock
        self.tokens = AccessTokenCache(self._mint, clock=clock, refresh_margin=refresh_margin)
        self._minted: list[str] = []
        self.granted_scope: str | None = None

    def bind(self, http: TokenEndpointClient) -> None:
        """Mint through ``http`` (it may be the client this authenticator serves)."""
        self._http = http

    def headers_for_request(self) -> Mapping[str, str]:
        return {"Authorization": f"Bearer {self.tokens.get().value}"}

    def on_unauthorized(self, sent: Mapping[str, str]) -> bool:
        header = next((v for k, v in sent.items() if k.lower() == "authorization"), "")
        rejected = header.removeprefix("Bearer ")
        # Only the refused token is dropped; one another thread minted meanwhile stays.
        self.tokens.invalidate_value(rejected)
        return bool(rejected)

    def secrets(self) -> Sequence[str]:
        return (*self._static_secrets(), *self._minted[-4:])

    def _static_secrets(self) -> Sequence[str]:
        return ()

    def _form(self) -> dict[str, str]:
        raise NotImplementedError

    def _client_headers(self) -> dict[str, str]:
        return {}

    def _mint(self) -> AccessToken:
        minted_at = self._clock()
        return self._access_token(self._request_token(self._form()), minted_at)

    def _request_token(self, form: Mapping[str, str]) -> dict[str, Any]:
        """POST ``form`` to the token endpoint; its JSON answer, or the refusal as
        :class:`HttpUnauthorized` naming the keys to check."""
        if self._http is None:
            raise HttpPermanent(f"{self.what}: no HTTP client to mint with")
        try:
            answer = self._http.request(
                "POST",
                self.token_url,
                data=dict(form),
                credentials=self._client_headers(),
                headers={"Accept": "application/json"},
                what=self.what,
                authenticate=False,
            )
        except HttpUnauthorized as exc:
            raise HttpUnauthorized(
                f"{self.what}: the token endpoint refused the credentials (HTTP {exc.status}"
                f"{_oauth_error(exc)}); {self._refusal_advice(exc)}",
                url=self.token_url,
                status=exc.status,
                check=self._config_hint,
            ) from None
        except HttpPermanent as exc:
            if exc.status in (400,):
                raise HttpUnauthorized(
                    f"{self.what}: the token endpoint refused the grant (HTTP 400"
                    f"{_oauth_error(exc)}); {self._refusal_advice(exc)}",
                    url=self.token_url,
                    status=exc.status,
                    check=self._config_hint,
                ) from None
            raise
        try:
            payload: Any = answer.json()
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            raise HttpPermanent(
                f"{self.what}: the token endpoint's answer is not a JSON object",
                url=self.token_url,
                status=answer.status,
            )
        return payload

    def _refusal_advice(self, refusal: HttpError) -> str:
        return f"check {self._config_hint}"

    def _access_token(self, payload: Mapping[str, Any], minted_at: datetime) -> AccessToken:
        value = payload.get("access_token")
        if not isinstance(value, str) or not value:
            raise HttpPermanent(
                f"{self.what}: the token endpoint's answer holds no access_token",
                url=self.token_url,
            )
        lifetime = DEFAULT_LIFETIME
        expires_in = payload.get("expires_in")
        if isinstance(expires_in, str) and expires_in.strip().isdigit():
            # 8x8's token endpoint writes it as a string ("1799"); read as the default hour,
            # the token would be used for half an hour after it expired.
            expires_in = int(expires_in)
        if (
            isinstance(expires_in, int | float)
            and not isinstance(expires_in, bool)
            and 0 < expires_in < 10 * 365 * 86400
        ):
            lifetime = timedelta(seconds=float(expires_in))
        # What the provider granted (RingCentral lists the app's permissions): for checks.
        scope = payload.get("scope")
        self.granted_scope = scope if isinstance(scope, str) else None
        self._remember(value)
        log.info(
            "minted an access token at %s, valid for %d s", self.what, lifetime.total_seconds()
        )
        return AccessToken(value=value, expires_at=minted_at + lifetime)

    def _remember(self, value: str) -> None:
        """Keep ``value`` among the secrets messages are redacted of (the last few)."""
        self._minted.append(value)
        del self._minted[:-4]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(token_url={self.token_url!r})"


class OAuthClientCredentials(_OAuth):
    """OAuth 2 client credentials grant (RFC 6749 4.4)."""

    what = "OAuth client-credentials token"

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        scope: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        client_auth: Literal["basic", "body"] = "basic",
        http: TokenEndpointClient | None = None,
        config_hint: str = "the provider's client_id and client_secret",
        clock: Callable[[], datetime] = utcnow,
        refresh_margin: timedelta = timedelta(seconds=60),
    ) -> None:
        super().__init__(
            token_url=token_url,
            http=http,
            config_hint=config_hint,
            clock=clock,
            refresh_margin=refresh_margin,
        )
        self.client_id = client_id
        self._client_secret = client_secret
        self.scope = scope
        self.extra_params = dict(extra_params or {})
        self.client_auth = client_auth

    def _static_secrets(self) -> Sequence[str]:
        secret = self._client_secret.get_secret_value()
        return (secret, _basic(self.client_id, secret).removeprefix("Basic "))

    def _form(self) -> dict[str, str]:
        form = {"grant_type": "client_credentials", **self.extra_params}
        if self.scope:
            form["scope"] = self.scope
        if self.client_auth == "body":
            form["client_id"] = self.client_id
            form["client_secret"] = self._client_secret.get_secret_value()
        return form

    def _client_headers(self) -> dict[str, str]:
        if self.client_auth != "basic":
            return {}
        return {"Authorization": _basic(self.client_id, self._client_secret.get_secret_value())}


class OAuthJwtBearer(_OAuth):
    """OAuth 2 JWT bearer grant (RFC 7523), RingCentral style: Basic ``client_id:secret``."""

    what = "OAuth JWT-bearer token"

    def __init__(
        self,
        *,
        token_url: str,
        assertion: SecretStr,
        client_id: str | None = None,
        client_secret: SecretStr | None = None,
        extra_params: Mapping[str, str] | None = None,
        http: TokenEndpointClient | None = None,
        config_hint: str = "the provider's JWT credential, client_id and client_secret",
        clock: Callable[[], datetime] = utcnow,
        refresh_margin: timedelta = timedelta(seconds=60),
    ) -> None:
        super().__init__(
            token_url=token_url,
            http=http,
            config_hint=config_hint,
            clock=clock,
            refresh_margin=refresh_margin,
        )
        self._assertion = assertion
        self.client_id = client_id
        self._client_secret = client_secret
        self.extra_params = dict(extra_params or {})

    def _static_secrets(self) -> Sequence[str]:
        values = [self._assertion.get_secret_value()]
        if self.client_id and self._client_secret is not None:
            secret = self._client_secret.get_secret_value()
            values += [secret, _basic(self.client_id, secret).removeprefix("Basic ")]
        return values

    def _form(self) -> dict[str, str]:
        return {
            "grant_type": JWT_BEARER_GRANT,
            "assertion": self._assertion.get_secret_value(),
            **self.extra_params,
        }

    def _client_headers(self) -> dict[str, str]:
        if not self.client_id or self._client_secret is None:
            return {}
        return {"Authorization": _basic(self.client_id, self._client_secret.get_secret_value())}


class OAuthPassword(_OAuth):
    """OAuth 2 resource owner password grant (RFC 6749 4.3), Vonage VBC style: an integration
    user's name and password in the form, the client's id and secret by HTTP Basic."""

    what = "OAuth password-grant token"

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        username: str,
        password: SecretStr,
        scope: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        client_auth: ClientAuth = "basic",
        http: TokenEndpointClient | None = None,
        config_hint: str = "the provider's username, password, client_id and client_secret",
        clock: Callable[[], datetime] = utcnow,
        refresh_margin: timedelta = timedelta(seconds=60),
    ) -> None:
        super().__init__(
            token_url=token_url,
            http=http,
            config_hint=config_hint,
            clock=clock,
            refresh_margin=refresh_margin,
        )
        self.client = _ClientCredentials(client_id, client_secret, client_auth)
        self.username = username
        self._password = password
        self.scope = scope
        self.extra_params = dict(extra_params or {})

    def _static_secrets(self) -> Sequence[str]:
        return (self._password.get_secret_value(), *self.client.secrets())

    def _form(self) -> dict[str, str]:
        form = {
            "grant_type": "password",
            "username": self.username,
            "password": self._password.get_secret_value(),
            **self.extra_params,
            **self.client.form(),
        }
        if self.scope:
            form["scope"] = self.scope
        return form

    def _client_headers(self) -> dict[str, str]:
        return self.client.headers()
