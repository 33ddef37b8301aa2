"""Administration, for the CLI and where a body needs it: the organization, and OAuth apps."""

from __future__ import annotations

import threading

from poller.adapters.siro.auth import SiroAuth
from poller.adapters.siro.exchange import SiroExchange
from poller.adapters.siro.settings import SiroSettings
from poller.adapters.siro.wire import AppAnswer, data_object
from poller.domain.siro import OAuthAppCredentials
from poller.ports.siro import SiroPermanentError


class SiroAdmin:
    """The organization id (configured or looked up once) and OAuth app creation."""

    def __init__(self, settings: SiroSettings, *, exchange: SiroExchange, auth: SiroAuth) -> None:
        self._settings = settings
        self._exchange = exchange
        self._auth = auth
        self._identity_lock = threading.Lock()
        self._caller_organization_id: str | None = None

    def organization_id(self) -> str:
        """The configured organization, else the one the organization API token belongs to."""
        if self._settings.organization_id:
            return self._settings.organization_id
        step = "caller-identity"
        with self._identity_lock:
            if self._caller_organization_id is None:
                response = self._auth.external(step, "GET", "/v1/core/auth/caller-identity")
                found = data_object(self._exchange.json(response, step)).get("organizationId")
                if not isinstance(found, str) or not found:
                    raise SiroPermanentError(
                        f"Siro {step}: the answer names no organizationId", step=step
                    )
                self._caller_organization_id = found
            return self._caller_organization_id

    def create_oauth_app(self, name: str, owner: str) -> OAuthAppCredentials:
        """Create an OAuth app; the secret in the answer is shown by Siro this one time only."""
        step = "create-app"
        body = {"appName": name, "owner": owner, "organizationId": self.organization_id()}
        response = self._auth.external(
            step, "POST", "/v1/core/oauth/apps", body, not_idempotent=True
        )
        answer = self._exchange.parse(
            AppAnswer, data_object(self._exchange.json(response, step)), step
        )
        client_id = answer.client_id
        if not client_id:
            raise SiroPermanentError(
                f"Siro {step}: the answer names no clientID; look the app up in Siro", step=step
            )
        return OAuthAppCredentials(
            app_name=answer.app_name or name,
            client_id=client_id,
            client_secret=answer.client_secret,
        )
