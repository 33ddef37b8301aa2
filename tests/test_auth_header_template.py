"""A custom auth header built from the configured secrets: CallRail's ``Token token="..."``,
JustCall's raw ``key:secret``, Freshcaller's ``X-Api-Auth``. Checked at config load; the
rendered value is a secret."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from poller.app import build_provider
from poller.config import ConfigError, Settings, load_settings
from poller.domain.windows import Window
from poller.logs import RedactionFilter, configured_secrets
from poller.ports.provider import ProviderAuthError, ProviderPort
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve

AT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
WINDOW = Window(AT - timedelta(hours=1), AT + timedelta(hours=1))


@pytest.fixture
def api() -> Iterator[tuple[FakeCallLog, LocalHTTPServer]]:
    log = FakeCallLog()
    with serve(log) as server:
        log.add_call(quickstart_call("call-1", AT), AT)
        yield log, server


def provider(server: LocalHTTPServer, **auth: Any) -> ProviderPort:
    table = {"base_url": server.url, "max_retries": 0, "auth": "header_template", **auth}
    return build_provider(Settings(provider=table))


def listed(adapter: ProviderPort) -> int:
    return sum(len(page.records) for page in adapter.list_window(WINDOW))


@pytest.mark.parametrize(
    ("auth", "header", "expected"),
    [
        (  # CallRail
            {"header_template": 'Token token="{api_key}"', "api_key": "cr-key-123"},
            "Authorization",
            'Token token="cr-key-123"',
        ),
        (  # JustCall: not Basic, the raw pair
            {"header_template": "{api_key}:{api_secret}", "api_key": "jc-k", "api_secret": "jc-s"},
            "Authorization",
            "jc-k:jc-s",
        ),
        (  # Freshcaller
            {"header_name": "X-Api-Auth", "header_template": "{api_key}", "api_key": "fc-key"},
            "X-Api-Auth",
            "fc-key",
        ),
        (  # literal braces around a secret
            {"header_template": "Key {{{token}}}", "token": "t-1"},
            "Authorization",
            "Key {t-1}",
        ),
    ],
)
def test_the_rendered_header_is_what_the_api_insists_on(
    api: tuple[FakeCallLog, LocalHTTPServer], auth: dict[str, str], header: str, expected: str
) -> None:
    log, server = api
    log.auth = ("api_key", header, expected)
    adapter = provider(server, **auth)

    assert listed(adapter) == 1
    assert expected in adapter.http.secrets()  # type: ignore[attr-defined]


def test_a_refused_header_is_a_credential_error_that_shows_no_secret(
    api: tuple[FakeCallLog, LocalHTTPServer],
) -> None:
    log, server = api
    log.auth = ("api_key", "Authorization", 'Token token="right"')
    with pytest.raises(ProviderAuthError) as caught:
        listed(provider(server, header_template='Token token="{api_key}"', api_key="wrong-key"))
    message = str(caught.value)
    assert "check provider.header_template, provider.api_key" in message
    assert "wrong-key" not in message


def test_the_secrets_of_a_template_are_redacted_from_logs() -> None:
    settings = Settings(
        provider={
            "base_url": "https://api.example.com",
            "auth": "header_template",
            "header_template": "{api_key}:{api_secret}",
            "api_key": "key-part-1",
            "api_secret": "secret-part-2",
        }
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactionFilter(configured_secrets(settings)))
    logger = logging.getLogger("test.header_template")
    logger.addHandler(handler)
    try:
        logger.warning("sent Authorization: %s", "key-part-1:secret-part-2")
    finally:
        logger.removeHandler(handler)
    assert "key-part-1" not in stream.getvalue() and "secret-part-2" not in stream.getvalue()


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Token token={apikey}", "header_template names {apikey}, which is not a secret"),
        ("{client_id}:{api_key}", "header_template names {client_id}, which is not a secret"),
        ("{api_key.upper}", "must be a plain name"),
        ("{0}", "must be a plain name"),
        ("{api_key!r}", "no conversion or format spec"),
        ("{api_key:>40}", "no conversion or format spec"),
        ("Token {api_key", "header_template: "),
        ("Token token", "names no secret"),
    ],
)
def test_a_template_naming_anything_but_a_secret_is_a_config_error(
    tmp_path: Path, template: str, expected: str
) -> None:
    config = write(
        tmp_path / "bad.toml",
        "[provider]\nbase_url = 'https://api.example.com'\nauth = 'header_template'\n"
        f"header_template = {template!r}\napi_key = 'k-123456'\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    (problem,) = caught.value.problems
    assert problem.startswith("provider")
    assert expected in problem
    assert "k-123456" not in problem


def test_a_template_needs_the_secrets_it_names() -> None:
    settings = Settings(
        provider={
            "base_url": "https://api.example.com",
            "auth": "header_template",
            "header_template": "{api_key}:{api_secret}",
            "api_key": "k",
        }
    )
    (entry,) = settings.configured_providers
    assert entry.requirements() == [
        "provider.api_secret: required for provider.auth = 'header_template'"
    ]


def test_a_secret_with_a_line_break_is_refused_before_it_reaches_a_header(tmp_path: Path) -> None:
    config = write(
        tmp_path / "bad.toml",
        "[provider]\nbase_url = 'https://api.example.com'\nauth = 'header_template'\n"
        "header_template = '{api_key}'\napi_key = \"k\\r\\nX-Injected: 1\"\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert "api_key holds a control character" in str(caught.value)
    assert "X-Injected" not in str(caught.value)
