"""Where the HTTP layer may go: proven with listeners that count every connection they get.

A refused destination must see nothing at all, whether it is named directly or reached
through a redirect from an allowed host, and whatever the name resolves to.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Set
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from poller.adapters.downloader import Downloader
from poller.adapters.http import (
    BearerToken,
    HostRules,
    HttpPermanent,
    HttpRefused,
)
from poller.domain.call_record import DownloadRequest, host_key
from poller.domain.failures import Disposition, StepFailure
from poller.simulators.http_server import LocalHTTPServer
from tests.http_fixtures import ConnectAttempts, CountingListener, Script, client, scripted_server

SECRET = "Bearer provider-secret"


@pytest.fixture
def provider() -> Iterator[tuple[LocalHTTPServer, Script]]:
    server, script = scripted_server()
    with server:
        yield server, script


@pytest.fixture
def loopback_2() -> Iterator[CountingListener]:
    try:
        listener = CountingListener("127.0.0.2")
    except OSError:
        pytest.skip("127.0.0.2 is not available on this machine")
    with listener:
        yield listener


def provider_rules(server: LocalHTTPServer, *allowed: str) -> HostRules:
    key = host_key(server.url)
    return HostRules.build(allowed=allowed, credential_hosts={key}, explicit_hosts={key})


def download(
    url: str, tmp_path: Path, *, explicit: set[str], allowed: Set[str] = frozenset()
) -> Any:
    request = DownloadRequest(
        url=url,
        headers={"Authorization": SECRET},
        credential_hosts=frozenset(explicit),
        explicit_hosts=frozenset(explicit),
        download_hosts=frozenset(allowed),
    )
    downloader = Downloader(client(HostRules()), max_bytes=1 << 20)
    return downloader.fetch(request, tmp_path / "call-1")


# -- the rules on their own ---------------------------------------------------------------------


def test_patterns_match_subdomains_on_the_default_port_only() -> None:
    rules = HostRules.build(allowed={"*.example.com", "media.other.net:8443"})
    assert rules.is_allowed("a.example.com")
    assert rules.is_allowed("deep.a.example.com")
    assert not rules.is_allowed("example.com")
    assert not rules.is_allowed("evil-example.com")
    assert not rules.is_allowed("a.example.com.evil.net")
    assert not rules.is_allowed("a.example.com:8443")
    assert rules.is_allowed("media.other.net:8443")
    assert not rules.is_allowed("media.other.net")


def test_credentials_go_only_to_credential_hosts_and_never_over_http_when_https_only() -> None:
    rules = HostRules.build(
        allowed={"*.cdn.example.com"},
        credential_hosts={"api.example.com"},
        explicit_hosts={"api.example.com"},
        https_only=True,
    )
    assert rules.may_send_credentials("https://api.example.com/r.wav")
    assert not rules.may_send_credentials("http://api.example.com/r.wav")
    assert not rules.may_send_credentials("https://a.cdn.example.com/r.wav")
    assert not rules.may_send_credentials("https://api.example.com:8443/r.wav")
    # Plain http is refused outright to a host that is not explicit.
    with pytest.raises(HttpRefused, match="plain http"):
        rules.check_url("http://a.cdn.example.com/r.wav")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("file:///etc/passwd", "only http and https"),
        ("ftp://files.example.com/r.mp3", "only http and https"),
        ("gopher://x/", "only http and https"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/", "cloud metadata address"),
        ("http://100.100.100.200/latest/", "cloud metadata address"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata name"),
        ("http://metadata.goog/", "cloud metadata name"),
        ("http://10.1.2.3/r.mp3", "private address"),
        ("http://[::1]:8080/r.mp3", "loopback address"),
        ("http://0.0.0.0/r.mp3", "unspecified address"),
        ("http://files.other.net/r.mp3", "not an allowed host"),
    ],
)
def test_refusals_name_the_host_and_the_key_to_change(url: str, words: str) -> None:
    rules = HostRules.build(allowed={"*.example.com", "files.example.com:8443"})
    with pytest.raises(HttpRefused, match=words) as caught:
        rules.check_url(url)
    if not url.startswith(("file:", "ftp:", "gopher:")):
        assert "provider.download_hosts" in str(caught.value)


def test_an_explicit_entry_may_be_private() -> None:
    rules = HostRules.build(explicit_hosts={"10.1.2.3", "metadata.google.internal"})
    assert rules.check_url("http://10.1.2.3/r.mp3") == "10.1.2.3"
    rules.check_addresses("10.1.2.3", 80, "http", ["10.1.2.3"])
    assert rules.check_url("http://metadata.google.internal/x") == "metadata.google.internal"


def test_a_name_with_any_private_address_is_refused() -> None:
    rules = HostRules.build(allowed={"files.example.com"})
    with pytest.raises(HttpRefused, match=r"files.example.com \(resolves to 10.1.2.3"):
        rules.check_addresses("files.example.com", 443, "https", ["93.184.216.34", "10.1.2.3"])
    rules.check_addresses("files.example.com", 443, "https", ["93.184.216.34"])


# -- over real sockets, counting connections ----------------------------------------------------


def test_another_loopback_address_sees_no_connection_directly_or_through_a_redirect(
    provider: tuple[LocalHTTPServer, Script], loopback_2: CountingListener, tmp_path: Path
) -> None:
    server, script = provider
    script.routes["/r.mp3"] = (302, {"Location": f"{loopback_2.url}/steal"}, b"")
    explicit = {host_key(server.url)}

    for url in (loopback_2.url + "/direct", server.url + "/r.mp3"):
        with pytest.raises(StepFailure) as caught:
            download(url, tmp_path, explicit=explicit, allowed={host_key(loopback_2.url)})
        assert caught.value.kind == "download_refused"
        assert caught.value.disposition == Disposition.FAIL
        assert "127.0.0.2" in caught.value.message
        assert "provider.download_hosts" in caught.value.message

    assert loopback_2.connections == 0
    assert list(tmp_path.iterdir()) == []


def test_another_port_of_the_provider_host_sees_no_connection(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path
) -> None:
    server, script = provider
    with CountingListener("127.0.0.1") as other_port:
        script.routes["/r.mp3"] = (302, {"Location": f"{other_port.url}/x"}, b"")
        for url in (other_port.url + "/x", server.url + "/r.mp3"):
            with pytest.raises(StepFailure) as caught:
                download(url, tmp_path, explicit={host_key(server.url)})
            assert caught.value.kind == "download_refused"
            assert f"127.0.0.1:{other_port.port}" in caught.value.message
        assert other_port.connections == 0


def test_an_allowed_name_that_resolves_to_loopback_is_refused_at_connect_time(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path
) -> None:
    """``localhost:port`` is allowed (not explicit): only the resolved address can refuse it."""
    server, script = provider
    with CountingListener("127.0.0.1") as target:
        name = f"localhost:{target.port}"
        script.routes["/r.mp3"] = (302, {"Location": f"http://{name}/x"}, b"")
        for url in (f"http://{name}/x", server.url + "/r.mp3"):
            with pytest.raises(StepFailure) as caught:
                download(url, tmp_path, explicit={host_key(server.url)}, allowed={name})
            assert caught.value.kind == "download_refused"
            assert "resolves to" in caught.value.message and "loopback" in caught.value.message
        assert target.connections == 0


def test_the_address_checked_is_the_address_connected_to(
    provider: tuple[LocalHTTPServer, Script],
    loopback_2: CountingListener,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name is resolved once per connection: a second, different answer is never asked for."""
    server, _script = provider
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example.com":
            lookups.append(host)
            # First answer private; a second lookup would be told something else.
            return real("127.0.0.2" if len(lookups) == 1 else "127.0.0.1", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    name = f"rebind.example.com:{loopback_2.port}"
    with pytest.raises(StepFailure, match=r"resolves to 127\.0\.0\.2"):
        download(f"http://{name}/x", tmp_path, explicit={host_key(server.url)}, allowed={name})
    assert lookups == ["rebind.example.com"]
    assert loopback_2.connections == 0


def test_metadata_destinations_see_no_connection_directly_or_through_a_redirect(
    provider: tuple[LocalHTTPServer, Script],
    loopback_2: CountingListener,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server, script = provider
    real = socket.getaddrinfo
    resolved: list[str] = []

    def metadata_is_local(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and "metadata" in host:
            resolved.append(host)
            return real("127.0.0.2", port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    # Were the name ever looked up and connected to, it would land on the counting listener.
    monkeypatch.setattr(socket, "getaddrinfo", metadata_is_local)
    targets = [
        f"http://169.254.169.254:{loopback_2.port}/latest/meta-data/",
        f"http://metadata.google.internal:{loopback_2.port}/computeMetadata/v1/",
    ]
    allowed = {f"169.254.169.254:{loopback_2.port}", f"metadata.google.internal:{loopback_2.port}"}
    with ConnectAttempts() as attempts:
        for target in targets:
            script.routes["/r.mp3"] = (302, {"Location": target}, b"")
            for url in (target, server.url + "/r.mp3"):
                with pytest.raises(StepFailure) as caught:
                    download(url, tmp_path, explicit={host_key(server.url)}, allowed=allowed)
                assert caught.value.kind == "download_refused"
                assert "cloud metadata" in caught.value.message
    assert resolved == []
    assert loopback_2.connections == 0
    assert not [a for a in attempts if isinstance(a, tuple) and a[0] == "169.254.169.254"]
    provider_port = int(server.url.rsplit(":", 1)[1])
    assert all(a[1] == provider_port for a in attempts if isinstance(a, tuple))


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/r.mp3"])
def test_other_schemes_fail_cleanly_and_are_not_retried(url: str, tmp_path: Path) -> None:
    with pytest.raises(StepFailure) as caught:
        download(url, tmp_path, explicit={"127.0.0.1"})
    assert (caught.value.kind, caught.value.disposition) == ("download_refused", Disposition.FAIL)
    assert "only http and https" in caught.value.message
    assert "Traceback" not in caught.value.message


@pytest.mark.parametrize("via_redirect", [False, True])
def test_file_urls_through_a_redirect_are_refused_too(
    provider: tuple[LocalHTTPServer, Script], tmp_path: Path, via_redirect: bool
) -> None:
    server, script = provider
    script.routes["/r.mp3"] = (302, {"Location": "file:///etc/passwd"}, b"")
    url = server.url + "/r.mp3" if via_redirect else "file:///etc/passwd"
    with pytest.raises(StepFailure, match="only http and https"):
        download(url, tmp_path, explicit={host_key(server.url)})


def test_credentials_are_dropped_when_a_redirect_changes_host(
    provider: tuple[LocalHTTPServer, Script],
) -> None:
    server, script = provider
    storage, storage_script = scripted_server()
    with storage:
        script.routes["/calls"] = (302, {"Location": f"{storage.url}/page.json?sig=abc"}, b"")
        storage_script.routes["/page.json"] = (200, {}, b'{"calls": []}')
        rules = HostRules.build(
            credential_hosts={host_key(server.url)},
            explicit_hosts={host_key(server.url), host_key(storage.url)},
        )
        api = client(rules, auth=BearerToken(_secret("tok-1")))

        page = api.get_json(server.url + "/calls", what="listing")

    assert page.body == {"calls": []}
    assert page.headers["content-length"] == page.headers["Content-Length"] == "13"
    assert script.seen[0][2]["Authorization"] == "Bearer tok-1"
    ((_method, _path, headers, _body),) = storage_script.seen
    assert "Authorization" not in headers


def test_too_many_redirects_end_permanently(provider: tuple[LocalHTTPServer, Script]) -> None:
    server, script = provider
    for hop in range(10):
        script.routes[f"/{hop}"] = (302, {"Location": f"/{hop + 1}"}, b"")
    api = client(provider_rules(server))
    with pytest.raises(HttpPermanent, match="more than 5 redirects"):
        api.get_json(server.url + "/0", what="listing")
    assert len(script.seen) == 6


def _secret(value: str) -> SecretStr:
    return SecretStr(value)
