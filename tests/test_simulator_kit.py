"""The simulator kit on real sockets: each behaviour a vendor simulator gets from it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from poller.simulators.kit import (
    Answer,
    BasicAuth,
    BearerAuth,
    CostBudget,
    HeaderAuth,
    MediaHost,
    OAuthTokens,
    Request,
    VendorApi,
    basic_header,
    cursor_page,
    page_of,
    serve,
    url_with,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def hello(request: Request, match: re.Match[str]) -> Answer:
    return Answer.json({"hello": match["name"], "q": request.param("q")})


@pytest.fixture
def api() -> Iterator[VendorApi]:
    vendor = VendorApi(BearerAuth({"good-token"}))
    vendor.route("GET", r"/hello/(?P<name>\w+)", hello)
    with serve(vendor):
        yield vendor


def get(api: VendorApi, path: str, token: str = "good-token", **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = kwargs.pop("timeout", 5)
    return requests.get(api.url + path, headers=headers, timeout=timeout, **kwargs)


def test_a_route_answers_and_every_request_is_counted(api: VendorApi) -> None:
    answer = get(api, "/hello/ann?q=1")
    assert (answer.status_code, answer.json()) == (200, {"hello": "ann", "q": "1"})
    assert get(api, "/nowhere").status_code == 404
    assert get(api, "/hello/bob", token="bad").status_code == 401
    assert (api.count("/hello/"), api.count(), api.count(method="POST")) == (2, 3, 0)
    assert api.statuses == [200, 404, 401]


def test_scripted_failures_come_in_order_then_stop(api: VendorApi) -> None:
    api.fail("status", status=429, retry_after=7)
    api.fail("status", status=429)
    api.fail("status", status=503, times=2, path="/hello/")
    api.fail("malformed")
    api.fail("redirect", location="http://elsewhere.invalid/x")
    first, second = get(api, "/hello/a"), get(api, "/hello/a")
    assert (first.status_code, first.headers.get("Retry-After")) == (429, "7")
    assert (second.status_code, second.headers.get("Retry-After")) == (429, None)
    assert [get(api, "/hello/a").status_code for _ in range(2)] == [503, 503]
    with pytest.raises(requests.JSONDecodeError):
        get(api, "/hello/a").json()
    moved = get(api, "/hello/a", allow_redirects=False)
    assert (moved.status_code, moved.headers["Location"]) == (302, "http://elsewhere.invalid/x")
    assert get(api, "/hello/a").status_code == 200


def test_a_scripted_timeout_and_a_dropped_connection_answer_nothing(api: VendorApi) -> None:
    api.fail("timeout", seconds=0.5)
    with pytest.raises(requests.ReadTimeout):
        get(api, "/hello/a", timeout=0.2)
    api.fail("drop")
    with pytest.raises(requests.ConnectionError):
        get(api, "/hello/a")
    assert get(api, "/hello/a").status_code == 200


@pytest.mark.parametrize(
    ("check", "good", "bad"),
    [
        (BasicAuth("u", "p"), basic_header("u", "p"), basic_header("u", "q")),
        (HeaderAuth("authorization", "Token token=k"), "Token token=k", "Token token=x"),
        (HeaderAuth("authorization", "key:secret"), "key:secret", "key:other"),
    ],
)
def test_basic_and_header_schemes(check: Any, good: str, bad: str) -> None:
    vendor = VendorApi(check)
    vendor.route("GET", r"/hello/(?P<name>\w+)", hello)
    with serve(vendor):
        for value, status in ((good, 200), (bad, 401)):
            sent = requests.get(
                vendor.url + "/hello/a", headers={"Authorization": value}, timeout=5
            )
            assert sent.status_code == status


def test_an_api_key_header_of_the_vendors_own_name() -> None:
    vendor = VendorApi(HeaderAuth("X-Api-Auth", "k1"))
    vendor.route("GET", r"/hello/(?P<name>\w+)", hello)
    with serve(vendor):
        assert requests.get(vendor.url + "/hello/a", timeout=5).status_code == 401
        sent = requests.get(vendor.url + "/hello/a", headers={"x-api-auth": "k1"}, timeout=5)
        assert sent.status_code == 200


def test_oauth_tokens_are_short_lived_and_can_be_revoked() -> None:
    clock = Clock()
    tokens = OAuthTokens("client", "secret", lifetime=60, clock=clock)
    vendor = VendorApi(tokens, clock=clock)
    vendor.route("POST", "/oauth/token", tokens.token_endpoint, public=True)
    vendor.route("GET", r"/hello/(?P<name>\w+)", hello)
    with serve(vendor):

        def mint(**form: str) -> requests.Response:
            data = {"grant_type": "client_credentials", **form}
            auth = None if "client_id" in form else ("client", "secret")
            return requests.post(vendor.url + "/oauth/token", data=data, auth=auth, timeout=5)

        minted = mint().json()
        assert (minted["token_type"], minted["expires_in"]) == ("bearer", 60)
        assert get(vendor, "/hello/a", token=minted["access_token"]).status_code == 200
        clock.now += 61
        assert get(vendor, "/hello/a", token=minted["access_token"]).status_code == 401
        again = mint(client_id="client", client_secret="secret").json()["access_token"]
        tokens.expire_all()
        assert get(vendor, "/hello/a", token=again).status_code == 401
        assert mint(client_id="client", client_secret="wrong").status_code == 401
        assert mint(grant_type="password").status_code == 400
        assert tokens.minted == 2


def test_paging_helpers_walk_every_item_once() -> None:
    items = list(range(7))
    assert page_of(items, 3, 3) == ([6], 3)
    assert page_of([], 1, 3) == ([], 1)
    seen: list[int] = []
    cursor: str | None = None
    while True:
        page, cursor = cursor_page(items, cursor, 3)
        seen += page
        if cursor is None:
            break
    assert seen == items
    url = url_with("http://h", "/calls", {"from": ["a"], "page": ["1"]}, page="2")
    assert url == "http://h/calls?from=a&page=2"


def test_a_cost_budget_refuses_past_its_limit_until_the_next_window() -> None:
    clock = Clock()
    budget = CostBudget(10, 60, clock)
    assert budget.charge(9)[:2] == (True, 1)
    assert budget.charge(3)[:2] == (False, 0)
    clock.now += 60
    assert budget.charge(1)[:2] == (True, 9)


def test_the_media_host_serves_signed_urls_until_they_expire_and_never_takes_credentials() -> None:
    clock = Clock()
    media = MediaHost(clock=clock)
    with serve(media):
        media.put("plain", b"audio-1", "audio/mpeg")
        media.put("signed", b"audio-2", signed_only=True)
        plain = requests.get(media.plain_url("plain"), timeout=5)
        assert (plain.content, plain.headers["Content-Type"]) == (b"audio-1", "audio/mpeg")
        assert requests.get(media.plain_url("signed"), timeout=5).status_code == 403
        url = media.signed_url("signed", ttl=60)
        assert requests.get(url, timeout=5).content == b"audio-2"
        with_key = requests.get(url, headers={"Authorization": "Bearer k"}, timeout=5)
        assert with_key.status_code == 400
        clock.now += 61
        assert requests.get(url, timeout=5).status_code == 403
        assert requests.get(media.plain_url("missing"), timeout=5).status_code == 404
        assert media.count("/media/") == 6
