"""OAuth password grant (Vonage Business Communications: an integration user's name and
password, the app's client id and secret by HTTP Basic), against a strict token endpoint."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poller.app import build_provider
from poller.config import Settings
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, ProviderPort
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.oauth_server import OAuthTokenIssuer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve

AT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
WINDOW = Window(AT - timedelta(hours=1), AT + timedelta(hours=1))
PASSWORD = "integration-user-password"


@pytest.fixture
def api() -> Iterator[tuple[OAuthTokenIssuer, LocalHTTPServer]]:
    issuer = OAuthTokenIssuer(
        client_id="vbc-app",
        client_secret="vbc-app-secret",
        grants=("password",),
        username="integration@example.com",
        password=PASSWORD,
    )
    log = FakeCallLog(auth=("issuer",), issuer=issuer)
    with serve(log) as server:
        log.add_call(quickstart_call("call-1", AT), AT)
        yield issuer, server


def provider(server: LocalHTTPServer, **changes: Any) -> ProviderPort:
    table = {
        "base_url": server.url,
        "max_retries": 0,
        "auth": "oauth_password",
        "token_url": server.url + "/oauth/token",
        "client_id": "vbc-app",
        "client_secret": "vbc-app-secret",
        "username": "integration@example.com",
        "password": PASSWORD,
        **changes,
    }
    return build_provider(Settings(provider=table))


def listed(adapter: ProviderPort) -> int:
    return sum(len(page.records) for page in adapter.list_window(WINDOW))


def test_the_password_grant_lists_with_the_client_by_basic_and_the_user_in_the_form(
    api: tuple[OAuthTokenIssuer, LocalHTTPServer],
) -> None:
    issuer, server = api
    assert listed(provider(server)) == 1

    (request,) = issuer.requests
    assert request["form"] == {
        "grant_type": "password",
        "username": "integration@example.com",
        "password": PASSWORD,
    }
    basic = base64.b64encode(b"vbc-app:vbc-app-secret").decode()
    assert request["headers"]["Authorization"] == f"Basic {basic}"


def test_an_expired_token_is_minted_again_with_the_same_grant(
    api: tuple[OAuthTokenIssuer, LocalHTTPServer],
) -> None:
    issuer, server = api
    adapter = provider(server)
    assert listed(adapter) == 1
    issuer.expire_access_tokens()
    assert listed(adapter) == 1
    assert [r["form"]["grant_type"] for r in issuer.requests] == ["password", "password"]


def test_the_client_may_be_sent_in_the_form_instead(
    api: tuple[OAuthTokenIssuer, LocalHTTPServer],
) -> None:
    issuer, server = api
    issuer.client_auth = "body"
    assert listed(provider(server, client_auth="body")) == 1
    (request,) = issuer.requests
    assert request["form"]["client_secret"] == "vbc-app-secret"
    assert "Authorization" not in request["headers"]


def test_a_wrong_password_is_a_credential_error_naming_the_keys_not_the_password(
    api: tuple[OAuthTokenIssuer, LocalHTTPServer],
) -> None:
    _, server = api
    with pytest.raises(ProviderAuthError) as caught:
        listed(provider(server, password="not-the-password"))
    message = str(caught.value)
    assert "HTTP 400 invalid_grant" in message
    assert message.endswith(
        "check provider.username, provider.password, provider.client_id, provider.client_secret"
    )
    assert "not-the-password" not in message


def test_the_scheme_names_every_key_it_needs() -> None:
    settings = Settings(provider={"base_url": "https://api.example.com", "auth": "oauth_password"})
    (entry,) = settings.configured_providers
    assert entry.requirements() == [
        f"provider.{key}: required for provider.auth = 'oauth_password'"
        for key in ("token_url", "client_id", "client_secret", "username", "password")
    ]
