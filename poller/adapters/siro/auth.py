"""Siro's two credentials, where each goes, and when a refusal is about them.

Two surfaces, two credentials, never crossed: the organization API token goes only to the
external API (``Authorization: Bearer``), the user-scoped access token only to the API gateway
(``x-siro-auth-token``). The access token is minted from the OAuth app (client id and secret)
for one Siro user, shared by every thread and renewed ahead of its expiry or after a 401.

A refusal of the credentials is a :class:`SiroCredentialError`, whose message names the
settings to check: a rejected mint, a 401 that a freshly minted token gets too, a 401 to the
organization token, a 403 from either surface, or a credential setting that is not set. It
says nothing about the call being uploaded, so the worker pauses instead of failing calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from poller.adapters.http import HttpResponse
from poller.adapters.http.tokens import AccessToken, AccessTokenCache
from poller.adapters.siro.exchange import SiroExchange
from poller.adapters.siro.settings import SiroSettings
from poller.adapters.siro.wire import MintAnswer, TokenInfo, as_utc, data_object
from poller.ports.siro import SiroCredentialError, SiroError, SiroPermanentError

logger = logging.getLogger(__name__)

ACCESS_TOKEN_HEADER = "x-siro-auth-token"  # noqa: S105  (a header name, not a secret)
# The mint answer carries no expiry; the phone quickstart says tokens last 16 hours.
DEFAULT_TOKEN_LIFETIME = timedelta(hours=16)
MINT_STEP = "mint-token"
# What a refused mint can be about: the organization token that authorizes the mint, the OAuth
# app's id and secret, and the user the token is minted for.
MINT_KEYS = "siro.client_id, siro.client_secret, siro.token_user_id and siro.api_token"
# Statuses with which the mint refuses the credentials it was given (404: no such app).
MINT_REFUSALS = (400, 401, 403, 404)


class SiroAuth:
    """The access-token cache and the organization token, attached to each surface's calls."""

    def __init__(
        self, settings: SiroSettings, exchange: SiroExchange, *, clock: Callable[[], datetime]
    ) -> None:
        self._settings = settings
        self._exchange = exchange
        self._clock = clock
        self._tokens = AccessTokenCache(
            self._mint_access_token,
            clock=clock,
            refresh_margin=timedelta(seconds=settings.token_refresh_margin_seconds),
        )

    # -- the two surfaces --------------------------------------------------------------------

    def gateway(
        self,
        step: str,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        not_idempotent: bool = False,
    ) -> HttpResponse:
        """A call to the API gateway with the access token; one fresh token after a 401."""
        url = self._exchange.api_base + path
        refreshed = False
        while True:
            token = self._tokens.get()
            headers = {ACCESS_TOKEN_HEADER: token.value}
            try:
                return self._exchange.send(
                    step,
                    method,
                    url,
                    headers,
                    params=params,
                    json_body=json_body,
                    not_idempotent=not_idempotent,
                )
            except SiroPermanentError as exc:
                if exc.http_status == 403:
                    raise SiroCredentialError(
                        f"{exc}; the access token's user may not do this: check "
                        'siro.token_user_id and siro.token_scope (uploads need "write")',
                        step=step,
                        http_status=403,
                    ) from None
                if exc.http_status != 401:
                    raise
                if refreshed:
                    raise SiroCredentialError(
                        f"Siro {step}: a freshly minted access token was refused too (HTTP 401); "
                        "check siro.client_id, siro.token_user_id and siro.token_scope",
                        step=step,
                        http_status=401,
                    ) from None
            # Siro refused the token before acting on the request, so sending again is safe.
            logger.info("Siro refused the access token on %s (HTTP 401); minting a new one", step)
            self._tokens.invalidate(token)
            refreshed = True

    def external(
        self,
        step: str,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        not_idempotent: bool = False,
    ) -> HttpResponse:
        """A call to the external API with the organization token."""
        headers = self._org_auth(step)
        try:
            return self._exchange.send(
                step,
                method,
                self._exchange.external_base + path,
                headers,
                params=params,
                json_body=json_body,
                not_idempotent=not_idempotent,
            )
        except SiroPermanentError as exc:
            if exc.http_status not in (401, 403) or isinstance(exc, SiroCredentialError):
                raise
            hint = MINT_KEYS if step == MINT_STEP else "siro.api_token"
            raise SiroCredentialError(
                f"{exc}; check {hint}", step=step, http_status=exc.http_status
            ) from None

    def _org_auth(self, step: str) -> dict[str, str]:
        token = self._settings.api_token.get_secret_value() if self._settings.api_token else ""
        return {"Authorization": f"Bearer {required(token, 'siro.api_token', step)}"}

    # -- the access token --------------------------------------------------------------------

    def verify_credentials(self) -> None:
        """Mint a fresh access token now, whatever is cached; raises while Siro refuses."""
        cached = self._tokens.current_value()
        if cached is not None:
            self._tokens.invalidate_value(cached)
        self._tokens.get()

    def _mint_access_token(self) -> AccessToken:
        step = MINT_STEP
        settings = self._settings
        client_id = required(settings.client_id, "siro.client_id", step)
        secret = settings.client_secret.get_secret_value() if settings.client_secret else ""
        secret = required(secret, "siro.client_secret", step)
        user_id = required(settings.token_user_id, "siro.token_user_id", step)
        minted_at = self._clock()
        try:
            response = self.external(
                step,
                "POST",
                f"/v1/core/oauth/apps/{quote(client_id, safe='')}/access-token",
                {"clientSecret": secret, "userId": user_id, "scope": settings.token_scope},
            )
        except SiroPermanentError as exc:
            if isinstance(exc, SiroCredentialError) or exc.http_status not in MINT_REFUSALS:
                raise
            raise SiroCredentialError(
                f"{exc}; Siro refused to mint an access token: check {MINT_KEYS}",
                step=step,
                http_status=exc.http_status,
            ) from None
        answer = self._exchange.parse(
            MintAnswer, data_object(self._exchange.json(response, step)), step
        )
        value = answer.access_token.get_secret_value()
        if not value:
            raise SiroPermanentError(f"Siro {step}: the answer holds no accessToken", step=step)
        self._exchange.remember_secret(value)
        expires_at = self._token_expiry(client_id, answer.access_token_id, minted_at)
        logger.info(
            "minted a Siro access token for user %s (scope %s), valid until %s",
            user_id,
            settings.token_scope,
            expires_at.isoformat(),
        )
        return AccessToken(value=value, expires_at=expires_at, token_id=answer.access_token_id)

    def _token_expiry(self, client_id: str, token_id: str | None, minted_at: datetime) -> datetime:
        assumed = minted_at + DEFAULT_TOKEN_LIFETIME
        if not token_id:
            return assumed
        step = "token-expiry"
        path = (
            f"/v1/core/oauth/apps/{quote(client_id, safe='')}"
            f"/access-token/{quote(token_id, safe='')}"
        )
        try:
            # One try only: the expiry is a refinement, the 16 hours are a sound fallback.
            response = self._exchange.exchange(
                step, "GET", self._exchange.external_base + path, headers=self._org_auth(step)
            )
            info = self._exchange.parse(
                TokenInfo, data_object(self._exchange.json(response, step)), step
            )
        except SiroError as exc:
            logger.info("could not read the access token's expiry, assuming 16 hours: %s", exc)
            return assumed
        expires_at = as_utc(info.expires_at)
        if expires_at is None or expires_at <= minted_at:
            return assumed
        return expires_at


def required(value: str | None, key: str, step: str) -> str:
    """A credential setting's value; its absence is a credential problem, named by its key."""
    if not value:
        raise SiroCredentialError(f"Siro {step}: {key} is not set", step=step)
    return value
