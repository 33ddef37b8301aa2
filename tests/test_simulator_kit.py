"""The simulator kit on real sockets: each behaviour a vendor simulator gets from it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from poller.simulators.kit import (
    EARLIEST,
    LATEST,
    Answer,
    BasicAuth,
    BearerAuth,
    CostBudget,
    Fiql,
    HeaderAuth,
    LinkHost,
    MediaHost,
    OAuthTokens,
    Refused,
    Request,
    Simulator,
    VendorApi,
    basic_header,
    cursor_page,
    page_of,
    serve,
    strict_time,
    time_range,
    url_with,
    zulu,
)
from poller.simulators.oauth_server import OAuthApi, OAuthTokenIssuer


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


class Strict(VendorApi):
    """A vendor with its own error body and refusal status, as a simulator declares them."""

    invalid_status = 422
    unknown_parameter = "no parameter {} here"

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock=clock)
        self.budget = CostBudget(2, 60, clock)
        self.route("GET", r"/calls", self._calls, params={"per_page", "page", "since"})

    def error(self, status: int, message: str) -> Answer:
        return Answer.json({"problem": message}, status)

    def before_route(self, request: Request) -> Answer | None:
        names = ("X-Limit", "X-Remaining", "X-Reset")
        return self.spend(self.budget, retry_after=True, headers=names)

    def _calls(self, request: Request, _match: re.Match[str]) -> Answer:
        per_page, page = self.paging(request, "per_page", 10, 50)
        since = request.param("since")
        if since is not None and since != "now":
            raise Refused(400, "since is 'now'")
        return Answer.json({"per_page": per_page, "page": page})


def test_refusals_come_in_the_vendors_body_and_a_budget_answers_429_with_its_headers() -> None:
    clock = Clock()
    with serve(Strict(clock)) as vendor:

        def call(query: str) -> requests.Response:
            return requests.get(f"{vendor.url}/calls?{query}", timeout=5)

        unknown = call("per_page=5&sort=id")
        assert (unknown.status_code, unknown.json()) == (422, {"problem": "no parameter sort here"})
        assert unknown.headers["X-Remaining"] == "1"
        assert unknown.headers["X-Reset"] == str(1_000_020)
        assert unknown.headers["X-Limit"] == "2"
        assert call("per_page=51").status_code == 422
        over = call("per_page=5")
        assert (over.status_code, over.headers["Retry-After"]) == (429, "20")
        assert over.json() == {"problem": "rate limit exceeded"}
        clock.now += 60
        assert call("per_page=5&page=2").json() == {"per_page": 5, "page": 2}
        refused = call("since=yesterday")
        assert (refused.status_code, refused.json()) == (400, {"problem": "since is 'now'"})
        clock.now += 60
        for bad in ("per_page=0", "page=0", "per_page=x", "page=1.5"):
            assert call(bad).status_code == 422
            clock.now += 60


def test_a_budget_may_send_its_headers_only_with_the_429() -> None:
    clock = Clock()

    class Quiet(VendorApi):
        def before_route(self, request: Request) -> Answer | None:
            names = ("X-Limit", "X-Remaining", "X-Reset")
            return self.spend(budget, headers=names, headers_on="refusal")

    budget = CostBudget(1, 60, clock)
    vendor = Quiet(clock=clock)
    vendor.route("GET", r"/hello/(?P<name>\w+)", hello)
    with serve(vendor):
        first = requests.get(vendor.url + "/hello/a", timeout=5)
        assert first.status_code == 200 and "X-Limit" not in first.headers
        over = requests.get(vendor.url + "/hello/a", timeout=5)
        assert (over.status_code, over.headers["X-Remaining"], over.headers["X-Limit"]) == (
            429,
            "0",
            "1",
        )


def test_times_are_taken_only_as_the_vendor_writes_them() -> None:
    utc = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    zulu_form = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z"
    assert strict_time("2026-03-01T12:30:00Z", zulu_form) == utc
    for refused in ("2026-03-01T12:30:00+00:00", "2026-03-01 12:30:00Z", "2026-02-30T12:30:00Z"):
        with pytest.raises(ValueError):
            strict_time(refused, zulu_form)
    new_york = ZoneInfo("America/New_York")
    local = strict_time("2026-03-01 07:30:00", r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", new_york)
    assert local == utc
    with pytest.raises(ValueError, match="without a zone"):
        strict_time("2026-03-01 07:30:00", r".*")
    assert zulu(utc) == "2026-03-01T12:30:00.000Z"
    assert zulu(utc.astimezone(timezone(timedelta(hours=-5))), "seconds") == "2026-03-01T12:30:00Z"


def test_a_time_range_is_inclusive_open_at_either_end_and_zoned() -> None:
    at = datetime(2026, 3, 1, tzinfo=UTC)
    assert time_range("2026-03-01T00:00:00Z..inf") == (at, LATEST)
    assert time_range("neginf..2026-03-01T00:00:00+00:00") == (EARLIEST, at)
    assert time_range(None) == (EARLIEST, LATEST)
    for refused in ("2026-03-01T00:00:00Z", "2026-03-01T00:00:00..inf", "x..inf"):
        with pytest.raises(ValueError):
            time_range(refused)


def test_a_fiql_filter_ands_its_terms_ors_its_groups_and_refuses_what_it_cannot_read() -> None:
    fields = {"type": str, "created": int}
    query = Fiql.parse("type==call;(created=ge=10,created=lt=3)", fields)
    assert query.names() == {"type", "created"}
    assert query.passes({"type": "call", "created": 10})
    assert query.passes({"type": "call", "created": 2})
    assert not query.passes({"type": "call", "created": 5})
    assert not query.passes({"type": "fax", "created": 10})
    assert Fiql.parse("type!=fax", fields).passes({"type": "call"})
    for refused in ("type=~call", "colour==red", "created=gt=soon", "(type==call", "type==a;"):
        with pytest.raises(ValueError):
            Fiql.parse(refused, fields)


def test_a_link_host_redirects_to_a_signed_url_and_takes_no_credentials() -> None:
    media = MediaHost()
    links = LinkHost(media, r"/calls/\w+/recording", ttl=60)
    with serve(media), serve(links):
        media.put("rec-1", b"audio", signed_only=True)
        link = links.link("/calls/c1/recording", "rec-1")
        moved = requests.get(link, allow_redirects=False, timeout=5)
        assert moved.status_code == 302
        assert moved.headers["Location"].startswith(media.plain_url("rec-1") + "?")
        assert requests.get(link, timeout=5).content == b"audio"
        with_key = requests.get(link, headers={"Authorization": "Token k"}, timeout=5)
        assert with_key.status_code == 400
        wrong = link.replace("access_key=", "access_key=0")
        assert requests.get(wrong, allow_redirects=False, timeout=5).status_code == 403


def test_a_simulator_serves_its_api_and_each_other_host_until_the_block_ends() -> None:
    api = VendorApi()
    api.route("GET", r"/hello/(?P<name>\w+)", hello)
    api.hosts = [MediaHost(), MediaHost()]
    with Simulator(api) as sim:
        assert requests.get(sim.url + "/hello/a", timeout=5).status_code == 200
        assert sim.extra_hosts == [host.url.removeprefix("http://") for host in api.hosts]
        assert sim.media_host == sim.extra_hosts[0]
    with pytest.raises(requests.ConnectionError):
        requests.get(api.url + "/hello/a", timeout=5)


def test_url_with_leaves_out_a_parameter_changed_to_none() -> None:
    url = url_with(
        "http://h", "/calls", {"from": ["a"], "page[after]": ["c"]}, **{"page[after]": None}
    )
    assert url == "http://h/calls?from=a"


def test_a_strict_token_endpoint_takes_basic_auth_and_a_form_only() -> None:
    tokens = OAuthTokens("client", "secret", basic_only=True, form_only=True)
    vendor = VendorApi(tokens)
    vendor.route("POST", "/token", tokens.token_endpoint, public=True)
    form = {"grant_type": "client_credentials"}
    with serve(vendor):
        url = vendor.url + "/token"
        in_body = {**form, "client_id": "client", "client_secret": "secret"}
        assert requests.post(url, data=in_body, timeout=5).status_code == 401
        as_json = requests.post(url, json=form, auth=("client", "secret"), timeout=5)
        assert as_json.status_code == 400
        assert requests.post(url, data=form, auth=("client", "secret"), timeout=5).ok


def test_an_oauth_api_takes_the_issuers_tokens_and_checks_the_redirect_uri() -> None:
    issuer = OAuthTokenIssuer("client", "secret", client_auth="body", redirect_uri="https://r")
    api = OAuthApi(issuer, "/oauth/token", lambda: {"scope": "calls"})
    api.route("GET", r"/hello/(?P<name>\w+)", hello)
    seed = api.seed_refresh_token()
    with serve(api):

        def refresh(redirect_uri: str) -> requests.Response:
            form = {"grant_type": "refresh_token", "refresh_token": seed}
            form |= {"client_id": "client", "client_secret": "secret"}
            return requests.post(
                api.url + "/oauth/token", data=form | {"redirect_uri": redirect_uri}, timeout=5
            )

        refused = refresh("https://elsewhere")
        assert (refused.status_code, refused.json()) == (400, {"error": "invalid_grant"})
        granted = refresh("https://r").json()
        assert granted["scope"] == "calls"
        assert get(api, "/hello/a", token=granted["access_token"]).status_code == 200
        assert get(api, "/hello/a", token="made-up").status_code == 401
    assert (issuer.refreshes, issuer.refused) == (1, 1)
