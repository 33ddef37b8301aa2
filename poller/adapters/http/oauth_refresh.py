"""OAuth 2 refresh-token grant (RFC 6749 6) with rotating refresh tokens, kept in the state DB.

Outreach, GoTo Connect, Webex, HubSpot and Salesloft OAuth apps hand out a refresh token once,
when a person consents; after that the poller refreshes on its own. Many of these servers
rotate: each refresh answers a new refresh token and invalidates the old one, and replaying an
old one is refused with ``invalid_grant`` (the OAuth 2.0 Security BCP, RFC 9700 4.14.2, has the
server revoke the whole family then). So:

- The operator seeds the first refresh token in config (``refresh_token``, a secret like any
  other). After the first refresh the seed is spent; the current token lives in the state
  database (:class:`~poller.ports.token_store.OAuthTokenStore`), sealed with AES-GCM
  (:mod:`poller.adapters.http.sealing`), and survives restarts.
- The stored row remembers a fingerprint of the seed it descends from. A different seed in
  config means the operator started over (after a refused token, say): the seed wins.
- One refresh at a time, across processes: the refresh happens inside
  :meth:`OAuthTokenStore.exclusive`; a process that waited there re-reads the row and uses the
  token the other one stored. The access token is stored too (sealed, with its expiry), so
  every process shares it instead of each refreshing.
- A refused refresh (400 ``invalid_grant``, 401) is a credential error naming the keys to fix:
  the provider is paused like for any refused credential, and nothing is written.
- A stored token the key cannot open (the client secret or ``token_encryption_key`` changed)
  is a credential error too, asking for a new seed; a new seed replaces the row.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from pydantic import SecretStr

from poller.adapters.http.auth import (
    ClientAuth,
    TokenEndpointClient,
    _ClientCredentials,
    _OAuth,
    _oauth_error,
)
from poller.adapters.http.errors import HttpError, HttpTransient, HttpUnauthorized
from poller.adapters.http.sealing import SealBroken, TokenSealer, seed_fingerprint
from poller.adapters.http.tokens import AccessToken
from poller.domain.clock import utcnow
from poller.ports.token_store import OAuthTokenStore, SealedTokens, TokenStoreError

log = logging.getLogger(__name__)

REFRESH = "refresh_token"
ACCESS = "access_token"


class OAuthRefreshToken(_OAuth):
    """Bearer tokens from a refresh token that may rotate on every refresh."""

    what = "OAuth refresh-token grant"

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        refresh_token: SecretStr,
        store: OAuthTokenStore,
        store_key: str,
        sealer: TokenSealer,
        scope: str | None = None,
        extra_params: Mapping[str, str] | None = None,
        client_auth: ClientAuth = "basic",
        http: TokenEndpointClient | None = None,
        config_hint: str = "the provider's refresh_token, client_id and client_secret",
        seed_key: str = "provider.refresh_token",
        key_hint: str = "provider.client_secret",
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
        self._refresh_margin = refresh_margin
        self._seed = refresh_token
        self._store = store
        self._key = store_key
        self._sealer = sealer
        self._seed_key = seed_key
        self._key_hint = key_hint
        self.scope = scope
        self.extra_params = dict(extra_params or {})
        # Access tokens the API refused: the stored one is not handed out again, however
        # long its stated lifetime, and the next mint refreshes.
        self._refused: deque[str] = deque(maxlen=8)
        self._refresh_tokens: deque[str] = deque(maxlen=4)
        # How many refresh requests this authenticator sent (for `provider check` and tests).
        self.refreshes = 0

    # -- what the base class asks ----------------------------------------------------------

    def on_unauthorized(self, sent: Mapping[str, str]) -> bool:
        header = next((v for k, v in sent.items() if k.lower() == "authorization"), "")
        rejected = header.removeprefix("Bearer ")
        if rejected:
            self._refused.append(rejected)
        return super().on_unauthorized(sent)

    def _static_secrets(self) -> Sequence[str]:
        return (self._seed.get_secret_value(), *self.client.secrets(), *self._refresh_tokens)

    def _client_headers(self) -> dict[str, str]:
        return self.client.headers()

    def _refusal_advice(self, refusal: HttpError) -> str:
        code = _oauth_error(refusal).strip()
        if code == "invalid_grant" or (refusal.status == 400 and not code):
            return (
                "the refresh token was revoked, expired or already used (a rotated one "
                f"replayed?); seed a new one in {self._seed_key}"
            )
        return f"check {self._config_hint}"

    def _mint(self) -> AccessToken:
        try:
            return self._mint_shared()
        except TokenStoreError as exc:
            # The database, not the credentials: the poll fails and is tried again.
            raise HttpTransient(f"{self.what}: {exc}", url=self.token_url) from None

    # -- the shared row --------------------------------------------------------------------

    def _mint_shared(self) -> AccessToken:
        seed = self._seed.get_secret_value()
        fingerprint = seed_fingerprint(seed)
        stored = self._reusable(self._store.peek(self._key), fingerprint)
        if stored is not None:
            return stored
        with self._store.exclusive(self._key) as slot:
            row = slot.read()
            # Another process may have refreshed while this one waited for the lock.
            stored = self._reusable(row, fingerprint)
            if stored is not None:
                return stored
            if row is None or row.seed_fingerprint != fingerprint:
                if row is not None:
                    log.warning(
                        "%s: %s holds a refresh token other than the stored one's seed; "
                        "starting over from it",
                        self.what,
                        self._seed_key,
                    )
                current = seed
            else:
                current = self._open(REFRESH, row.refresh_token)
            minted_at = self._clock()
            self._refresh_tokens.append(current)
            self.refreshes += 1
            payload = self._request_token(self._refresh_form(current))
            token = self._access_token(payload, minted_at)
            rotated = payload.get("refresh_token")
            following = rotated if isinstance(rotated, str) and rotated else current
            self._refresh_tokens.append(following)
            slot.write(
                SealedTokens(
                    seed_fingerprint=fingerprint,
                    refresh_token=self._sealer.seal(REFRESH, following),
                    refreshed_at=minted_at,
                    access_token=self._sealer.seal(ACCESS, token.value),
                    access_expires_at=token.expires_at,
                )
            )
            if following != current:
                log.info("%s: the refresh token was rotated; the new one is stored", self.what)
            return token

    def _reusable(self, row: SealedTokens | None, fingerprint: str) -> AccessToken | None:
        """The stored access token, if it descends from this seed, is not about to expire and
        was not refused here; ``None`` otherwise (a refresh is due)."""
        if (
            row is None
            or row.seed_fingerprint != fingerprint
            or row.access_token is None
            or row.access_expires_at is None
            or self._clock() >= row.access_expires_at - self._refresh_margin
        ):
            return None
        try:
            value = self._sealer.open(ACCESS, row.access_token)
        except SealBroken:
            return None  # the refresh token will not open either; that says it plainly
        if value in self._refused:
            return None
        self._remember(value)
        return AccessToken(value=value, expires_at=row.access_expires_at)

    def _open(self, kind: str, sealed: str) -> str:
        try:
            value = self._sealer.open(kind, sealed)
        except SealBroken:
            raise HttpUnauthorized(
                f"{self.what}: the refresh token stored in the state database cannot be "
                f"decrypted: the key it was sealed with changed ({self._key_hint} or the "
                f"provider's name); seed a new refresh token in {self._seed_key}",
                url=self.token_url,
                status=None,
                check=self._seed_key,
            ) from None
        self._refresh_tokens.append(value)
        return value

    def _refresh_form(self, refresh_token: str) -> dict[str, str]:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            **self.extra_params,
            **self.client.form(),
        }
        if self.scope:
            form["scope"] = self.scope
        return form
