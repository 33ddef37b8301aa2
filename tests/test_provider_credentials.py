"""A provider refusing its credentials is a ProviderAuthError wherever it shows: a refused token
mint, a 401 that persists, a 403; on a listing and on the way to a recording download. The
worker pauses on that error instead of failing calls (tests/test_credential_pause.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from poller.app import build_provider
from poller.config import Settings
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, ProviderPort
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve

AT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
WINDOW = Window(AT - timedelta(hours=1), AT + timedelta(hours=1))


class Locator:
    provider_call_id = "call-1"
    recording_id = None
    raw = None

    def __init__(self, url: str) -> None:
        self.recording_url = url


@pytest.fixture
def api() -> Iterator[tuple[FakeCallLog, LocalHTTPServer]]:
    log = FakeCallLog(auth=("oauth", "client-1", "the-right-secret"))
    with serve(log) as server:
        log.base_url = server.url
        log.add_call(quickstart_call("call-1", AT, recording_url=server.url + "/r/1.mp3"), AT)
        yield log, server


def provider(server: LocalHTTPServer, **auth: Any) -> ProviderPort:
    return build_provider(Settings(provider={"base_url": server.url, "max_retries": 0, **auth}))


def oauth(server: LocalHTTPServer, secret: str) -> dict[str, Any]:
    return {
        "auth": "oauth_client_credentials",
        "token_url": server.url + "/oauth/token",
        "client_id": "client-1",
        "client_secret": secret,
    }


def test_a_refused_token_mint_fails_the_listing_and_the_download_as_an_auth_error(
    api: tuple[FakeCallLog, LocalHTTPServer],
) -> None:
    _, server = api
    refused = provider(server, **oauth(server, "a-wrong-secret"))

    with pytest.raises(ProviderAuthError) as listing:
        list(refused.list_window(WINDOW))
    with pytest.raises(ProviderAuthError) as download:
        refused.resolve_download(Locator(server.url + "/r/1.mp3"))

    for caught in (listing, download):
        message = str(caught.value)
        assert message.endswith("check provider.client_id, provider.client_secret")
        assert message.count("check ") == 1 and "a-wrong-secret" not in message
    accepted = provider(server, **oauth(server, "the-right-secret"))
    assert [len(page.records) for page in accepted.list_window(WINDOW)] == [1]


@pytest.mark.parametrize("status", [401, 403])
def test_a_refusal_that_a_fresh_token_gets_too_is_an_auth_error(
    api: tuple[FakeCallLog, LocalHTTPServer], status: int
) -> None:
    log, server = api
    log.fail_page(1, status, times=None)

    with pytest.raises(ProviderAuthError) as caught:
        list(provider(server, **oauth(server, "the-right-secret")).list_window(WINDOW))

    assert caught.value.status == status
    assert len(log.tokens_issued) == 2  # the first token, and the one fresh try
