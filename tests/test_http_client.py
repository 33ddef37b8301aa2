"""The guarded client over real sockets: deadlines, byte caps, retries, rate limits, auth."""

from __future__ import annotations

import base64
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from pydantic import SecretStr

from poller.adapters.http import (
    ApiKeyHeader,
    BasicAuth,
    BearerToken,
    BodyTooLarge,
    DeadlineExceeded,
    HostRules,
    HttpClient,
    HttpPermanent,
    HttpTransient,
    HttpUnauthorized,
    OAuthClientCredentials,
    OAuthJwtBearer,
    RateLimiter,
    RetryPolicy,
)
from poller.domain.call_record import host_key
from poller.simulators.http_server import LocalHTTPServer
from tests.http_fixtures import Reply, Script, ScriptedHandler, client, scripted_server


@pytest.fixture
def served() -> Iterator[tuple[LocalHTTPServer, Script]]:
    server, script = scripted_server()
    with server:
        yield server, script


def rules_for(server: LocalHTTPServer) -> HostRules:
    key = host_key(server.url)
    return HostRules.build(credential_hosts={key}, explicit_hosts={key})


# -- the total deadline -------------------------------------------------------------------------


def trickle(handler: ScriptedHandler) -> Reply | None:
    """Headers at once, then one byte every 0.2 s: each read succeeds, the whole never ends."""
    handler.send_response(200)
    handler.send_header("Content-Length", "1000")
    handler.end_headers()
    try:
        for _ in range(1000):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.2)
    except OSError:
        pass
    return None


def test_a_trickling_body_is_cut_at_the_total_deadline(
    served: tuple[LocalHTTPServer, Script], tmp_path: Path
) -> None:
    server, script = served
    script.routes["/slow.mp3"] = trickle
    script.routes["/slow.json"] = trickle
    api = client(rules_for(server), deadline=1.0, retry=RetryPolicy.once())

    started = time.monotonic()
    with pytest.raises(
        DeadlineExceeded, match=r"total deadline of 1 s \(provider.deadline_seconds"
    ):
        api.download(server.url + "/slow.mp3", tmp_path / "r", max_bytes=10_000, what="download")
    with pytest.raises(DeadlineExceeded):
        api.get_json(server.url + "/slow.json", what="listing")
    # Without the deadline each would take 200 s; the read timeout (5 s) never fires.
    assert time.monotonic() - started < 8
    assert list(tmp_path.iterdir()) == []


# -- byte caps, streamed ------------------------------------------------------------------------


def endless_chunks(handler: ScriptedHandler) -> Reply | None:
    """A chunked body with no declared length, far bigger than any cap: 200 MB if read whole."""
    handler.send_response(200)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.send_header("Content-Type", "application/json")
    handler.end_headers()
    chunk = b"[" + b"1," * 32_000
    try:
        for _ in range(3_000):
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    except OSError:
        pass
    return None


def test_a_huge_listing_page_is_refused_at_the_cap_without_reading_it_whole(
    served: tuple[LocalHTTPServer, Script],
) -> None:
    server, script = served
    script.routes["/calls"] = endless_chunks
    api = client(rules_for(server), max_body_bytes=1_000_000, retry=RetryPolicy.once())

    tracemalloc.start()
    try:
        with pytest.raises(HttpPermanent, match=r"over provider.max_page_bytes = 1000000"):
            api.get_json(server.url + "/calls", what="page 1")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8_000_000


def test_a_declared_oversize_page_is_refused_before_reading(
    served: tuple[LocalHTTPServer, Script],
) -> None:
    server, script = served
    script.routes["/calls"] = (200, {}, b"[" + b"1," * 1000 + b"1]")
    api = client(rules_for(server), max_body_bytes=100)
    with pytest.raises(HttpPermanent, match=r"is 2003 bytes, over provider\.max_page_bytes = 100"):
        api.get_json(server.url + "/calls", what="page 1")
    assert len(script.seen) == 1  # permanent: not retried


def test_a_huge_download_stops_at_max_bytes_with_flat_memory(
    served: tuple[LocalHTTPServer, Script], tmp_path: Path
) -> None:
    server, script = served
    script.routes["/r.mp3"] = endless_chunks
    api = client(rules_for(server))
    tracemalloc.start()
    try:
        with pytest.raises(BodyTooLarge, match=r"over worker\.max_download_bytes = 5000000"):
            api.download(server.url + "/r.mp3", tmp_path / "r", max_bytes=5_000_000, what="dl")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000
    assert list(tmp_path.iterdir()) == []


def test_a_body_that_is_not_json_is_permanent(served: tuple[LocalHTTPServer, Script]) -> None:
    server, script = served
    script.routes["/calls?token=s3cret"] = (200, {}, b"<html>maintenance</html>")
    with pytest.raises(HttpPermanent, match="is not JSON") as caught:
        client(rules_for(server)).get_json(server.url + "/calls?token=s3cret", what="page 1")
    assert "s3cret" not in str(caught.value)
    assert len(script.seen) == 1


# -- retries and Retry-After --------------------------------------------------------------------


class Waits:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def test_transient_answers_are_retried_honouring_retry_after_in_both_forms(
    served: tuple[LocalHTTPServer, Script],
) -> None:
    server, script = served
    answers: list[Reply] = [
        (503, {"Retry-After": "2"}, b""),
        (
            429,
            {
                "Retry-After": (datetime.now(UTC) + timedelta(seconds=30)).strftime(
                    "%a, %d %b %Y %H:%M:%S GMT"
                )
            },
            b"",
        ),
        (200, {}, b'{"ok": true}'),
    ]
    script.routes["/calls"] = lambda _handler: answers.pop(0)
    sleep = Waits()
    retry = RetryPolicy(max_tries=3, base_delay=0.5, max_delay=60.0, sleep=sleep)

    page = client(rules_for(server), retry=retry).get_json(server.url + "/calls", what="page")

    assert page.body == {"ok": True}
    assert sleep.waits[0] == 2
    assert 27 <= sleep.waits[1] <= 31


def test_a_retry_after_longer_than_the_policy_allows_goes_back_at_once(
    served: tuple[LocalHTTPServer, Script],
) -> None:
    server, script = served
    script.routes["/calls"] = (429, {"Retry-After": "900"}, b"")
    sleep = Waits()
    retry = RetryPolicy(max_tries=5, base_delay=0.5, max_delay=30.0, sleep=sleep)
    with pytest.raises(HttpTransient) as caught:
        client(rules_for(server), retry=retry).get_json(server.url + "/calls", what="page")
    assert caught.value.retry_after == 900 and caught.value.status == 429
    assert sleep.waits == [] and len(script.seen) == 1


def test_retries_are_bounded(served: tuple[LocalHTTPServer, Script]) -> None:
    server, script = served
    script.routes["/calls"] = (502, {}, b"")
    retry = RetryPolicy(max_tries=3, base_delay=0.0, max_delay=1.0, sleep=Waits())
    with pytest.raises(HttpTransient, match="HTTP 502"):
        client(rules_for(server), retry=retry).get_json(server.url + "/calls", what="page")
    assert len(script.seen) == 3


def test_a_request_that_is_not_idempotent_is_not_resent_after_a_5xx(
    served: tuple[LocalHTTPServer, Script],
) -> None:
    server, script = served
    script.routes["/create"] = (500, {}, b"")
    retry = RetryPolicy(max_tries=4, base_delay=0.0, max_delay=1.0, sleep=Waits())
    with pytest.raises(HttpTransient) as caught:
        client(rules_for(server), retry=retry).request(
            "POST", server.url + "/create", json={"a": 1}, what="create", idempotent=False
        )
    assert caught.value.may_have_been_sent
    assert len(script.seen) == 1


# -- the rate limiter ---------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(fake: FakeTime, **kwargs: float) -> RateLimiter:
    return RateLimiter(monotonic=fake.monotonic, sleep=fake.sleep, **kwargs)  # type: ignore[arg-type]


def test_a_429_pauses_every_sender_until_retry_after() -> None:
    fake = FakeTime()
    limit = limiter(fake, max_wait=60)
    limit.observe(429, {"Retry-After": "12"})
    limit.acquire()
    assert fake.slept == [12]
    limit.acquire()
    assert fake.slept == [12]  # the penalty is over


def test_an_exhausted_window_waits_for_its_reset() -> None:
    fake = FakeTime()
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    limit = RateLimiter(
        max_wait=60, monotonic=fake.monotonic, sleep=fake.sleep, wall_clock=lambda: now
    )
    limit.observe(200, {"X-RateLimit-Remaining": "5", "X-RateLimit-Reset": "20"})
    limit.acquire()
    assert fake.slept == []
    limit.observe(200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "20"})
    limit.acquire()
    assert fake.slept == [20]


def test_a_429_that_names_its_windows_reset_waits_for_it_and_not_the_penalty() -> None:
    fake = FakeTime()
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    limit = RateLimiter(
        max_wait=60, penalty=5, monotonic=fake.monotonic, sleep=fake.sleep, wall_clock=lambda: now
    )
    reset = str(int(now.timestamp()) + 2)
    limit.observe(429, {"X-AircallApi-Remaining": "0", "X-AircallApi-Reset": reset})
    limit.acquire()
    assert fake.slept == [2]


def test_a_pause_longer_than_the_bound_is_handed_back() -> None:
    fake = FakeTime()
    limit = limiter(fake, max_wait=30)
    limit.observe(429, {"Retry-After": "600"})
    with pytest.raises(HttpTransient) as caught:
        limit.acquire()
    assert caught.value.retry_after == pytest.approx(600)
    assert fake.slept == []


def test_a_steady_rate_spaces_requests() -> None:
    fake = FakeTime()
    limit = limiter(fake, max_wait=30, rate=2, period=1.0)
    for _ in range(5):
        limit.acquire()
    assert sum(fake.slept) == pytest.approx(2.0)


def test_while_a_penalty_runs_no_thread_sends(served: tuple[LocalHTTPServer, Script]) -> None:
    """A 429 seen by one thread holds back the others: the server gets nothing meanwhile."""
    server, script = served
    arrivals: list[float] = []
    first = threading.Event()

    def rate_limited_once(_handler: ScriptedHandler) -> Reply:
        arrivals.append(time.monotonic())
        if not first.is_set():
            first.set()
            return (429, {"Retry-After": "1"}, b"")
        return (200, {}, b"{}")

    script.routes["/calls"] = rate_limited_once
    limit = RateLimiter(max_wait=10)
    retry = RetryPolicy(max_tries=3, base_delay=0.0, max_delay=5.0)
    api = client(rules_for(server), retry=retry, rate_limiter=limit)
    api.get_json(server.url + "/calls", what="first")  # 429, waits 1 s, then 200

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: api.get_json(server.url + "/calls", what="more"), range(4)))
    assert len(arrivals) == 6
    assert all(later - arrivals[0] >= 0.9 for later in arrivals[1:])


# -- authenticators -----------------------------------------------------------------------------


class TokenEndpoint:
    """A local OAuth token endpoint and an API that accepts only the latest token."""

    def __init__(self, script: Script) -> None:
        self.mints = 0
        self.forms: list[dict[str, list[str]]] = []
        self.authorizations: list[str] = []
        self.lock = threading.Lock()
        self.reject_all = False
        script.routes["/oauth/token"] = self.token
        script.routes["/api"] = self.api

    def token(self, handler: ScriptedHandler) -> Reply:
        script: Script = handler.server.state  # type: ignore[attr-defined]
        _method, _path, headers, body = script.seen[-1]
        with self.lock:
            self.mints += 1
            number = self.mints
            self.forms.append(parse_qs(body.decode()))
            self.authorizations.append(headers.get("Authorization", ""))
        time.sleep(0.05)  # widens the window in which other threads would mint too
        answer = {"access_token": f"at-{number}", "token_type": "bearer", "expires_in": 3600}
        return (200, {"Content-Type": "application/json"}, json.dumps(answer).encode())

    def api(self, handler: ScriptedHandler) -> Reply:
        sent = handler.headers.get("Authorization", "")
        if self.reject_all or sent != f"Bearer at-{self.mints}":
            return (401, {}, b'{"error": "invalid_token"}')
        return (200, {}, b'{"calls": []}')


def oauth_client(
    server: LocalHTTPServer, auth: OAuthClientCredentials | OAuthJwtBearer
) -> HttpClient:
    api = client(rules_for(server), auth=auth)
    auth.bind(api)
    return api


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_client_credentials_with_basic_client_auth(served: tuple[LocalHTTPServer, Script]) -> None:
    server, script = served
    endpoint = TokenEndpoint(script)
    auth = OAuthClientCredentials(
        token_url=server.url + "/oauth/token",
        client_id="cid",
        client_secret=SecretStr("csecret"),
        scope="calls:read",
    )
    api = oauth_client(server, auth)
    assert api.get_json(server.url + "/api", what="listing").body == {"calls": []}
    assert endpoint.forms == [{"grant_type": ["client_credentials"], "scope": ["calls:read"]}]
    assert endpoint.authorizations == [basic("cid", "csecret")]
    assert "csecret" not in repr(auth) and "at-1" not in repr(auth.tokens.get())
    assert "at-1" in api.secrets() and "csecret" in api.secrets()


def test_client_credentials_with_the_secret_in_the_body(
    served: tuple[LocalHTTPServer, Script],
) -> None:
    server, script = served
    endpoint = TokenEndpoint(script)
    auth = OAuthClientCredentials(
        token_url=server.url + "/oauth/token",
        client_id="cid",
        client_secret=SecretStr("csecret"),
        client_auth="body",
        extra_params={"audience": "calls"},
    )
    oauth_client(server, auth).get_json(server.url + "/api", what="listing")
    assert endpoint.forms[0]["client_secret"] == ["csecret"]
    assert endpoint.forms[0]["audience"] == ["calls"]
    assert endpoint.authorizations == [""]


def test_jwt_bearer_grant(served: tuple[LocalHTTPServer, Script]) -> None:
    server, script = served
    endpoint = TokenEndpoint(script)
    auth = OAuthJwtBearer(
        token_url=server.url + "/oauth/token",
        assertion=SecretStr("eyJ.jwt.sig"),
        client_id="rc-id",
        client_secret=SecretStr("rc-secret"),
    )
    oauth_client(server, auth).get_json(server.url + "/api", what="listing")
    assert endpoint.forms == [
        {
            "grant_type": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "assertion": ["eyJ.jwt.sig"],
        }
    ]
    assert endpoint.authorizations == [basic("rc-id", "rc-secret")]


def test_sixteen_threads_share_one_mint(served: tuple[LocalHTTPServer, Script]) -> None:
    server, script = served
    endpoint = TokenEndpoint(script)
    auth = OAuthClientCredentials(
        token_url=server.url + "/oauth/token", client_id="c", client_secret=SecretStr("s")
    )
    api = oauth_client(server, auth)
    with ThreadPoolExecutor(16) as pool:
        pages = list(pool.map(lambda _: api.get_json(server.url + "/api", what="l"), range(16)))
    assert len(pages) == 16 and endpoint.mints == 1


def test_a_401_re_mints_once_and_a_second_401_is_unauthorized(
    served: tuple[LocalHTTPServer, Script],
) -> None:
    server, script = served
    endpoint = TokenEndpoint(script)
    auth = OAuthClientCredentials(
        token_url=server.url + "/oauth/token", client_id="c", client_secret=SecretStr("s")
    )
    api = oauth_client(server, auth)
    api.get_json(server.url + "/api", what="listing")
    endpoint.mints += 1  # the server revokes at-1; the next token it mints is at-3

    api.get_json(server.url + "/api", what="listing")
    assert endpoint.mints == 3

    endpoint.reject_all = True
    api_calls_before = sum(1 for path in script.paths() if path == "/api")
    with pytest.raises(HttpUnauthorized, match="also with fresh credentials"):
        api.get_json(server.url + "/api", what="listing")
    assert sum(1 for path in script.paths() if path == "/api") - api_calls_before == 2


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        (BearerToken(SecretStr("tok")), "Authorization", "Bearer tok"),
        (BasicAuth("u", SecretStr("p")), "Authorization", basic("u", "p")),
        (ApiKeyHeader("X-API-Key", SecretStr("k-1")), "X-API-Key", "k-1"),
    ],
)
def test_static_credentials_are_sent_and_never_re_sent_after_a_401(
    served: tuple[LocalHTTPServer, Script],
    auth: BearerToken | BasicAuth | ApiKeyHeader,
    header: str,
    value: str,
) -> None:
    server, script = served
    script.routes["/ok"] = (200, {}, b"{}")
    script.routes["/no"] = (401, {}, b"{}")
    api = client(rules_for(server), auth=auth)
    api.get_json(server.url + "/ok", what="listing")
    assert script.seen[0][2][header] == value
    with pytest.raises(HttpUnauthorized):
        api.get_json(server.url + "/no", what="listing")
    assert script.paths().count("/no") == 1
    assert value.split()[-1] not in repr(auth)


def test_a_refused_mint_names_the_settings_to_check(
    served: tuple[LocalHTTPServer, Script],
) -> None:
    server, script = served
    script.routes["/oauth/token"] = (401, {}, b'{"error": "invalid_client"}')
    auth = OAuthClientCredentials(
        token_url=server.url + "/oauth/token", client_id="c", client_secret=SecretStr("s3cret")
    )
    with pytest.raises(HttpUnauthorized, match="check the provider's client_id") as caught:
        oauth_client(server, auth).get_json(server.url + "/api", what="listing")
    assert "s3cret" not in str(caught.value)
