"""The host judged is the host connected to: one URL parser for both (issue 20, break 1).

Measured before: hosts were judged with ``urllib.parse.urlsplit`` while requests connects where
urllib3 says, and urllib3 ends the host at a backslash. ``http://OTHER\\@credhost/x`` was judged
``credhost`` (a credential host) and connected to ``OTHER``. Each way that leaked is a test
below, with a server on another loopback address that records what reached it; then a property
test checks, over generated tricky URLs, that the host judged is the host requests would connect
to, and a few real sockets confirm it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from hypothesis import example, given
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter

from poller.adapters.downloader import Downloader
from poller.adapters.http import HostRules, HttpRefused, RetryPolicy
from poller.adapters.http.transport import GuardedAdapter, RequestDeadline, guarding
from poller.adapters.siro import SiroHttpClient
from poller.adapters.siro.settings import SIRO_STORAGE_HOSTS
from poller.adapters.siro.storage import StorageHosts
from poller.adapters.siro_fake import InMemorySiro
from poller.adapters.sql.store import SqlStore
from poller.config import ConfigError, load_settings
from poller.domain.call_record import host_key
from poller.domain.siro import AudioFormat, SiroUser
from poller.domain.states import CallState
from poller.domain.urls import UnsafeUrl, host_port_key, url_target
from poller.ports.provider import ProviderRefused
from poller.ports.siro import SiroPermanentError
from poller.simulators.audio import mp3_bytes
from poller.simulators.counting_listener import CountingListener
from poller.simulators.http_server import LocalHTTPServer, QuietHandler
from poller.simulators.siro_server import FakeSiro
from poller.simulators.zoom_server import recording_item
from tests.http_fixtures import client
from tests.provider_contract import T0, _StoredCall, listed
from tests.siro_settings import siro_settings
from tests.test_hostile_provider import (
    STARTED,
    TOKEN,
    Clock,
    HostileCallLog,
    HostileHandler,
    Resolutions,
    offer_audio,
    offer_url,
    poll,
    row,
    settings_for,
    worker_for,
)
from tests.test_provider_zoom import ZoomWorld
from tests.test_siro_storage_hosts import a_signed_url

# -- a host that must see no credentials -----------------------------------------------------


class Elsewhere:
    """What reached a server that is not the provider: each request's path and headers."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.lock = threading.Lock()

    def credentials_seen(self) -> list[str]:
        with self.lock:
            return [
                f"{path}: {name}"
                for path, headers in self.seen
                for name, value in headers.items()
                if name.lower() == "authorization" or TOKEN in value or "zat-" in value
            ]


class AudioEverywhereHandler(QuietHandler):
    """Records every request and answers every GET with audio, as a hostile host would."""

    def do_GET(self) -> None:
        elsewhere: Elsewhere = self.server.state  # type: ignore[attr-defined]
        with elsewhere.lock:
            elsewhere.seen.append((self.path, dict(self.headers.items())))
        body = mp3_bytes(1)
        self.send_response(200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serving_elsewhere(host: str, port: int = 0) -> Iterator[tuple[LocalHTTPServer, Elsewhere]]:
    elsewhere = Elsewhere()
    try:
        server = LocalHTTPServer(AudioEverywhereHandler, elsewhere, host=host, port=port)
    except OSError:
        pytest.skip(f"cannot listen on {host}:{port} on this machine")
    with server:
        yield server, elsewhere


def key_of(server: LocalHTTPServer) -> str:
    return server.url.removeprefix("http://")


# -- the generic adapter through the poll and the worker -------------------------------------


@pytest.fixture
def api() -> HostileCallLog:
    return HostileCallLog(auth=("bearer", TOKEN))


@pytest.fixture
def server(api: HostileCallLog) -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer(HostileHandler, api) as running:
        api.base_url = running.url
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock(STARTED + timedelta(hours=1))


@pytest.fixture
def siro(clock: Clock) -> InMemorySiro:
    return InMemorySiro(clock=clock, users=[SiroUser(id="user-9", email="manager@example.com")])


def test_break_1_recording_url_with_a_backslash_sends_no_token_to_a_download_only_host(
    api: HostileCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    sql_store: SqlStore,
    siro: InMemorySiro,
    clock: Clock,
) -> None:
    # Port 80: the stored recording URL keeps no port before the backslash (one would read
    # as userinfo and be redacted), so the other host is reached on the default port.
    with serving_elsewhere("127.0.0.21", 80) as (_other, elsewhere):
        provider_key = key_of(server)
        offer_url(api, "backslash", f"http://127.0.0.21\\@{provider_key}/recordings/x", 1)
        offer_url(api, "download-only", "http://127.0.0.21/audio.mp3", minute=2)
        offer_audio(api, "good", minute=3)
        settings = settings_for(server, tmp_path, provider={"download_hosts": ["127.0.0.21"]})
        assert poll(settings, sql_store, clock).ok

        worker_for(settings, sql_store, siro, clock).drain()

    assert elsewhere.credentials_seen() == []
    # The download-only host still serves its own recordings, without the provider's token.
    assert [path for path, _headers in elsewhere.seen] == ["/audio.mp3"]
    call = row(sql_store, "backslash")
    assert (call.state, call.error_kind) == (CallState.FAILED, "download_refused")
    assert "backslash" in call.last_error
    assert row(sql_store, "download-only").state == CallState.UPLOADED
    assert row(sql_store, "good").state == CallState.UPLOADED
    assert len(siro.created) == 2


def test_break_1_redirect_location_with_a_backslash_sends_no_token_elsewhere(
    api: HostileCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    sql_store: SqlStore,
    siro: InMemorySiro,
    clock: Clock,
) -> None:
    with serving_elsewhere("127.0.0.22") as (other, elsewhere):
        location = f"{other.url}\\@{key_of(server)}/recordings/x"
        api.redirects["/recordings/away"] = location
        offer_url(api, "redirected", f"{api.base_url}/recordings/away", minute=1)
        offer_audio(api, "good", minute=2)
        settings = settings_for(server, tmp_path, provider={"download_hosts": [key_of(other)]})
        assert poll(settings, sql_store, clock).ok

        worker_for(settings, sql_store, siro, clock).drain()

    assert elsewhere.seen == []
    call = row(sql_store, "redirected")
    assert (call.state, call.error_kind) == (CallState.FAILED, "download_refused")
    assert "backslash" in call.last_error
    assert call.last_error.endswith(f"(redirected there by {api.base_url}/recordings/away)")
    assert TOKEN not in call.last_error
    assert row(sql_store, "good").state == CallState.UPLOADED
    assert len(siro.created) == 1


def test_break_1_next_page_url_with_a_backslash_sends_no_token_and_is_no_page(
    api: HostileCallLog,
    server: LocalHTTPServer,
    tmp_path: Path,
    sql_store: SqlStore,
    clock: Clock,
) -> None:
    forger = HostileCallLog(auth=None)
    with LocalHTTPServer(HostileHandler, forger, host="127.0.0.23") as other:
        forger.base_url = other.url
        for index in range(3):
            offer_url(forger, f"forged-{index}", f"{other.url}/recordings/f{index}", index)
        api.paging, api.page_size = "next_url", 1
        api.next_url_base = f"{other.url}\\@{key_of(server)}"
        offer_audio(api, "page-1", minute=1)
        offer_audio(api, "page-2", minute=2)
        settings = settings_for(
            server,
            tmp_path,
            provider={"download_hosts": [key_of(other)], "paging": {"mode": "next_url"}},
        )

        reports = [poll(settings, sql_store, clock) for _ in range(2)]

    assert forger.requests == []  # on every poll, nothing reached the other host
    for report in reports:
        assert not report.ok
        assert report.error is not None and "backslash" in report.error
        assert "refusing to send credentials" in report.error
    assert [c for index in range(3) for c in sql_store.find_calls(f"forged-{index}")] == []


def test_break_1_zoom_download_url_with_a_backslash_gets_no_minted_token(
    tmp_path: Path,
) -> None:
    with ZoomWorld() as world, serving_elsewhere("127.0.0.24") as (other, elsewhere):
        web = key_of(world.web)
        hostile = f"{other.url}\\@{web}/v2/phone/recording/download/file-plain"
        item = recording_item("rec-backslash", T0 + timedelta(minutes=1), download_url=hostile)
        world.phone.add_recording(item)
        provider = world.provider(download_hosts=[key_of(other)])
        [record] = [r for page in listed(provider) for r in page.records]

        refused: Exception | None = None
        try:
            request = provider.resolve_download(_StoredCall.of(record))
            Downloader(client(HostRules()), max_bytes=1 << 20).fetch(request, tmp_path / "rec")
        except ProviderRefused as exc:
            refused = exc

    assert elsewhere.seen == []
    assert refused is not None and "backslash" in str(refused)
    assert not any(token in str(refused) for token in world.phone.tokens_issued)


# -- the host rules and the storage hosts on their own ---------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://OTHER\\.cdn.vendor.test/",
        "http://other\\.cdn.vendor.test/audio.mp3",
        "https://evil.example\\@a.cdn.vendor.test/x",
    ],
)
def test_break_1_a_pattern_accepts_no_host_before_a_backslash(url: str) -> None:
    rules = HostRules.build(allowed={"*.cdn.vendor.test"})

    with pytest.raises(HttpRefused, match="backslash"):
        rules.check_url(url)
    assert rules.check_url("http://media.cdn.vendor.test/x") == "media.cdn.vendor.test"


def test_break_1_storage_hosts_accept_no_host_before_a_backslash(tmp_path: Path) -> None:
    url = "https://evil.example\\@storage.googleapis.com/bucket/object?X-Goog-Signature=abc"
    audio = tmp_path / "call.mp3"
    audio.write_bytes(mp3_bytes(1))
    with FakeSiro() as siro:
        siro_client = SiroHttpClient(siro_settings(siro, storage_hosts=list(SIRO_STORAGE_HOSTS)))
        signed = a_signed_url(url)

        with Resolutions() as lookups, pytest.raises(SiroPermanentError) as caught:
            siro_client.put_audio(signed, audio, AudioFormat.MP3, audio.stat().st_size)

    assert "backslash" in str(caught.value)
    assert "X-Goog-Signature" not in str(caught.value)
    assert not [name for name in lookups if "evil" in name]
    with pytest.raises(SiroPermanentError, match="backslash"):
        StorageHosts(SIRO_STORAGE_HOSTS).check(url, "put")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://OTHER\\@credhost/x", "holds a backslash"),
        ("http://cred\thost/x", "holds a control character"),
        ("http://other\n@credhost/x", "holds a control character"),
        ("http://other @credhost/x", "host part holds whitespace"),
        (" http://credhost/x", "starts or ends with whitespace"),
        ("http://cr\u00e9dhost/x", "non-ASCII characters"),
        ("http://[fe80::1%25eth0]/x", "percent sign"),
        ("http://credhost:0/x", "port is 0"),
    ],
)
def test_urls_that_parsers_read_differently_are_refused_with_the_reason(url: str, why: str) -> None:
    rules = HostRules.build(credential_hosts={"credhost"})

    with pytest.raises(HttpRefused, match=why) as caught:
        rules.check_url(url)

    assert str(caught.value).startswith("refused to fetch <unsafe URL>: ")
    assert not rules.may_send_credentials(url)


def test_a_configured_base_url_with_a_backslash_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[siro]\napi_base_url = 'https://evil.example\\@api.siro.ai'\n")

    with pytest.raises(ConfigError) as caught:
        load_settings(config)

    assert caught.value.problems == [
        "siro.api_base_url: must be a plain http:// or https:// URL: the URL's host part holds "
        "a backslash, which parsers read differently"
    ]


# -- the connection itself ----------------------------------------------------------------------


def test_a_connection_to_another_host_than_the_one_judged_is_refused_before_it_is_made() -> None:
    with CountingListener("127.0.0.1") as listener:
        rules = HostRules.build(explicit_hosts={key_of_listener(listener)})
        deadline = RequestDeadline(5)
        session = requests.Session()
        with guarding(rules, deadline) as guard:
            session.mount("http://", GuardedAdapter())
            guard.destination = "judged.example"
            with pytest.raises(HttpRefused, match=r"judged to lead to judged\.example"):
                session.get(f"{listener.url}/x", timeout=2)
        session.close()

    assert listener.connections == 0


def key_of_listener(listener: CountingListener) -> str:
    return f"{listener.host}:{listener.port}"


# -- the property: judged host == connected host -------------------------------------------------

_PIECES = [
    "127.0.0.2",
    "127.0.0.3:8080",
    "credhost",
    "OTHER",
    "CredHost.",
    "a.cdn.vendor.test",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "user",
    "user:pw",
    ":",
    ":80",
    ":443",
    ":0",
    "@",
    "\\",
    "/",
    "?",
    "#",
    ".",
    "%40",
    "%5C",
    "%2e",
    " ",
    "\t",
    "\n",
    "\r",
    "\x00",
    "\x7f",
    "\u00a0",
    "\u3002",
    "\uff0e",
    "\uff0f",
    "\uff20",
    "\uff43\uff52\uff45\uff44host",  # fullwidth "cred": IDNA maps it to ASCII
    "[",
    "]",
    ";",
    "0x7f.1",
    "2130706433",
]
_SCHEMES = ["http://", "https://", "HTTP://", "http:/", "http:\\\\", "//", "http:///", " http://"]
_TAILS = ["", "/", "/x", "?q=1", "#f", "\\x", "/a\\@b", "/%2e%2e/x"]

# URLs shaped like real ones (userinfo, host, port, rest), each part sometimes tricky...
_USERINFO = ["", "user@", "user:pw@", "OTHER\\@", "a@b@", "%40@", "u:p:q@", ":@", "@", "a/b@"]
_HOSTS = [
    "credhost",
    "CredHost.",
    "127.0.0.2",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[fe80::1%25eth0]",
    "0x7f.1",
    "2130706433",
    "a.cdn.vendor.test",
    "OTHER\\.cdn.vendor.test",
    "xn--bcher-kva.example",
    "cred%68ost",
    "cred\u3002host",
    "a b",
    "[::1",
    "::1",
    "",
]
_PORTS = ["", ":80", ":443", ":8080", ":0", ":", ":65536", ":08080", ": 80", ":80\\"]
shaped_urls = st.builds(
    lambda *parts: "".join(parts),
    st.sampled_from(["http://", "https://", "HTTPS://", *_SCHEMES]),
    st.sampled_from(_USERINFO),
    st.sampled_from(_HOSTS),
    st.sampled_from(_PORTS),
    st.sampled_from(_TAILS),
)
# ...and runs of pieces in any order.
piled_urls = st.builds(
    lambda scheme, pieces, tail: scheme + "".join(pieces) + tail,
    st.sampled_from(_SCHEMES),
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=6),
    st.sampled_from(_TAILS),
)
tricky_urls = st.one_of(shaped_urls, piled_urls)


def connected_key(url: str) -> str | None:
    """The host key requests would open its connection to, or None if it would not connect."""
    try:
        prepared = requests.Request("GET", url).prepare()
        assert prepared.url is not None
        pool = HTTPAdapter().get_connection_with_tls_context(prepared, verify=True)
    except (requests.RequestException, ValueError):
        return None
    return host_port_key(pool.host, pool.port, pool.scheme)


@given(tricky_urls)
@example("http://OTHER\\@credhost/x")
@example("http://127.0.0.3:8000\\@127.0.0.2:9000/x")
@example("https://evil.example\\@storage.googleapis.com/b/o")
@example("http://OTHER\\.cdn.vendor.test/")
@example("http://user:pw@credhost:80/x")
@example("http://cred\thost/x")
def test_the_host_judged_is_the_host_requests_connects_to(url: str) -> None:
    try:
        judged = url_target(url)
    except UnsafeUrl:
        return  # refused before any decision: nothing is sent anywhere
    connected = connected_key(url)
    if connected is None or judged.scheme not in ("http", "https") or not judged.host:
        return  # requests would not connect, or the rules refuse it (no scheme, no host)
    assert judged.key == connected, url
    assert host_key(url) == connected


@pytest.mark.parametrize(
    "template",
    [
        "http://{other}\\@{cred}/x",
        "http://{cred}\\@{other}/x",
        "http://user:pw@{cred}/x",
        "http://{other}@{cred}/x",
        "http://{cred}/\\@{other}/x",
        "http://{cred}?@{other}/x",
        "http://{cred}#@{other}/x",
        "http://{other}\\\\{cred}/x",
    ],
)
def test_real_sockets_see_a_request_only_on_the_host_that_was_judged(template: str) -> None:
    with CountingListener("127.0.0.2") as cred, CountingListener("127.0.0.3") as other:
        keys = {"cred": key_of_listener(cred), "other": key_of_listener(other)}
        url = template.format(**keys)
        rules = HostRules.build(explicit_hosts=set(keys.values()))
        http = client(rules, retry=RetryPolicy(max_tries=1, base_delay=0.0, max_delay=0.0))
        try:
            judged: str | None = rules.check_url(url)
        except HttpRefused:
            judged = None
        with pytest.raises(Exception) as caught:  # the listeners never answer
            http.request("GET", url, what="probe")
        http.close()

    reached = {
        name for name, listener in (("cred", cred), ("other", other)) if listener.connections
    }
    if judged is None:
        assert isinstance(caught.value, HttpRefused)
        assert reached == set()
    else:
        assert reached == {next(name for name, key in keys.items() if key == judged)}
