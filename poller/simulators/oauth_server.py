"""An OAuth 2 token endpoint (RFC 6749) for the simulators: password and rotating
refresh-token grants, as strict as the specification reads.

- The form must be ``application/x-www-form-urlencoded`` (RFC 6749 4.3.2, 6).
- The client authenticates by HTTP Basic or, when told so, by ``client_id``/``client_secret``
  in the form; both at once is refused (2.3: "MUST NOT use more than one method").
- Refresh tokens rotate: each refresh issues a new one and invalidates the old one and the
  access tokens issued with it. Presenting a refresh token that was already rotated away is
  taken as theft (OAuth 2.0 Security BCP, RFC 9700 4.14.2): ``400 invalid_grant``, and the
  whole family is revoked, the current refresh token and its access token included. So two
  pollers that both refresh with the same token end with none that works.
- Bad resource-owner credentials or refresh tokens answer ``400 invalid_grant``; bad client
  credentials ``401 invalid_client``.
- With ``redirect_uri`` set, a refresh naming another one is ``400 invalid_grant`` (the
  strictest reading of RFC 6749 6 for servers that ask for it).

:meth:`OAuthTokenIssuer.endpoint` is the token endpoint as a simulator kit route, and
:class:`OAuthApi` a kit API whose bearer tokens the issuer issues.
"""

from __future__ import annotations

import base64
import itertools
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from poller.simulators.kit import Answer, Handler, Request, VendorApi

Grant = Literal["password", "refresh_token"]


@dataclass
class _Family:
    """The tokens descending from one seed or one password grant."""

    current_refresh: str | None
    spent_refresh: set[str] = field(default_factory=set)
    access: set[str] = field(default_factory=set)
    revoked: bool = False


@dataclass
class OAuthTokenIssuer:
    client_id: str
    client_secret: str
    grants: tuple[Grant, ...] = ("refresh_token",)
    client_auth: Literal["basic", "body"] = "basic"
    # The password grant's resource owner.
    username: str | None = None
    password: str | None = None
    # Seconds an access token is said to live (its expires_in).
    expires_in: int = 3600
    # Whether refreshes rotate the refresh token (most servers named in the docs do).
    rotate: bool = True
    # Seconds to take before answering (a slow token endpoint widens a race between pollers).
    answer_delay: float = 0.0
    # The registered redirect URI a refresh must repeat (None: not asked for).
    redirect_uri: str | None = None
    # Counters a test reads.
    refreshes: int = 0
    refused: int = 0
    replays: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    _families: list[_Family] = field(default_factory=list)
    _numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.RLock = field(default_factory=threading.RLock)

    # -- scripting -------------------------------------------------------------------------

    def seed_refresh_token(self, value: str | None = None) -> str:
        """A refresh token as a person's consent would give it: the operator's seed."""
        with self.lock:
            token = value or f"refresh-seed-{next(self._numbers)}"
            self._families.append(_Family(current_refresh=token))
            return token

    def current_refresh_token(self) -> str | None:
        with self.lock:
            live = [f.current_refresh for f in self._families if not f.revoked]
            return live[-1] if live else None

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (as if its lifetime ran out)."""
        with self.lock:
            for family in self._families:
                family.access.clear()

    def accepts(self, access_token: str) -> bool:
        with self.lock:
            return any(
                access_token in family.access for family in self._families if not family.revoked
            )

    # -- answering -------------------------------------------------------------------------

    def answer(
        self, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        lowered = {name.lower(): value for name, value in headers.items()}
        if self.answer_delay:
            time.sleep(self.answer_delay)
        with self.lock:
            self.requests.append({"form": dict(form), "headers": dict(headers)})
            content_type = lowered.get("content-type", "").split(";")[0].strip()
            if content_type != "application/x-www-form-urlencoded":
                return self._refuse(400, "invalid_request")
            client = self._client_error(form, lowered)
            if client is not None:
                return client
            grant = form.get("grant_type")
            if grant not in self.grants:
                return self._refuse(400, "unsupported_grant_type")
            if grant == "password":
                return self._password(form)
            return self._refresh(form)

    def endpoint(self, extra: Callable[[], dict[str, Any]] = dict) -> Handler:
        """The token endpoint as a kit route; ``extra``: what the vendor adds to a grant."""

        def token(request: Request, _match: re.Match[str]) -> Answer:
            form = request.form()
            if (
                self.redirect_uri is not None
                and form.get("grant_type") == "refresh_token"
                and form.get("redirect_uri") != self.redirect_uri
            ):
                with self.lock:
                    self.refused += 1
                return Answer.json({"error": "invalid_grant"}, 400)
            status, body = self.answer(form, request.headers)
            return Answer.json(body | extra() if status == 200 else body, status)

        return token

    def _client_error(
        self, form: Mapping[str, str], headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]] | None:
        basic = headers.get("authorization")
        in_body = "client_secret" in form or "client_id" in form
        if basic is not None and in_body:
            return self._refuse(400, "invalid_request")
        if self.client_auth == "basic":
            pair = f"{self.client_id}:{self.client_secret}".encode()
            if basic != "Basic " + base64.b64encode(pair).decode():
                return self._refuse(401, "invalid_client")
            return None
        if form.get("client_id") != self.client_id or form.get("client_secret") != (
            self.client_secret
        ):
            return self._refuse(401, "invalid_client")
        return None

    def _password(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        if (
            self.username is None
            or form.get("username") != self.username
            or form.get("password") != self.password
        ):
            return self._refuse(400, "invalid_grant")
        family = _Family(current_refresh=None)
        self._families.append(family)
        return 200, self._issue(family, with_refresh=False)

    def _refresh(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        presented = form.get("refresh_token")
        if not presented:
            return self._refuse(400, "invalid_request")
        for family in self._families:
            if family.revoked:
                if presented == family.current_refresh or presented in family.spent_refresh:
                    return self._refuse(400, "invalid_grant")
                continue
            if presented == family.current_refresh:
                self.refreshes += 1
                if self.rotate:
                    family.spent_refresh.add(presented)
                    family.current_refresh = f"refresh-{next(self._numbers)}"
                # The previous access tokens of this family stop working.
                family.access.clear()
                return 200, self._issue(family, with_refresh=True)
            if presented in family.spent_refresh:
                # A rotated-away token replayed: revoke the family (RFC 9700 4.14.2).
                self.replays += 1
                family.revoked = True
                family.access.clear()
                return self._refuse(400, "invalid_grant")
        return self._refuse(400, "invalid_grant")

    def _issue(self, family: _Family, *, with_refresh: bool) -> dict[str, Any]:
        access = f"access-{next(self._numbers)}"
        family.access.add(access)
        body: dict[str, Any] = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        if with_refresh and family.current_refresh is not None:
            body["refresh_token"] = family.current_refresh
        return body

    def _refuse(self, status: int, error: str) -> tuple[int, dict[str, Any]]:
        self.refused += 1
        return status, {"error": error}


class IssuedBearer:
    """A simulated API's auth check (:class:`poller.simulators.kit.AuthCheck`): a bearer token
    that ``issuer`` issued and has not revoked."""

    def __init__(self, issuer: OAuthTokenIssuer) -> None:
        self.issuer = issuer

    def accepts(self, request: Any) -> bool:
        sent = request.header("authorization") or ""
        return sent.startswith("Bearer ") and self.issuer.accepts(sent.removeprefix("Bearer "))


class OAuthApi(VendorApi):
    """A simulated API that accepts the bearer tokens ``issuer`` issues, with the issuer's token
    endpoint at ``token_path`` (``extra``: what the vendor adds to a grant)."""

    def __init__(
        self,
        issuer: OAuthTokenIssuer,
        token_path: str,
        extra: Callable[[], dict[str, Any]] = dict,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(IssuedBearer(issuer), clock=clock)
        self.issuer = issuer
        self.route("POST", token_path, issuer.endpoint(extra), public=True)

    def seed_refresh_token(self, value: str | None = None) -> str:
        """A refresh token as a person's consent to the app gives it (the operator's seed)."""
        return self.issuer.seed_refresh_token(value)
