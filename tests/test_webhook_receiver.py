"""The webhook receiver over real sockets: what it answers, what reaches the sink, what it
counts and logs, and what a client cannot make it do (hold it, grow it, read past the cap)."""

from __future__ import annotations

import logging
import re
import select
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry

from poller import app
from poller.adapters.prometheus_metrics import PrometheusTelemetry
from poller.adapters.providers.memory import InMemoryProvider
from poller.adapters.webhooks.receiver import (
    REFUSAL_LOG_EVERY,
    Endpoint,
    ReceiverLimits,
    SourceBuckets,
    WebhookReceiver,
)
from poller.adapters.webhooks.replay import ReplayGuard
from poller.config import (
    ConfigError,
    Settings,
    credential_files,
    load_settings,
    requirements_for_daemon,
)
from poller.ports.webhooks import Refused, Reply, Verified, WebhookRequest
from tests.daemon_process import free_port

# Only a bound for waiting on something that must happen: the tests pass as soon as it does.
PATIENCE = 20.0
SECRET = "s3cret-token-never-logged"
BODY_TEXT = "body-text-never-logged"
MAX_BODY = 2048


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TokenVerifier:
    """Accepts a request whose X-Token header is the secret; the body's first line is its
    replay key, and a body of "echo" asks for a reply of its own."""

    def verify(self, request: WebhookRequest) -> Verified | Refused:
        if request.header("x-token") != SECRET:
            return Refused("bad_token")
        if request.body.startswith(b"raise"):
            raise ValueError(f"cannot read {request.body!r} with {request.header('x-token')}")
        key = request.body.split(b"\n")[0].decode()
        reply = Reply()
        if request.body.startswith(b"echo"):
            reply = Reply(202, b"echoed", "application/json", (("X-Echo", "yes"),))
        return Verified("call.ended", call_ids=("c1",), replay_key=key or None, reply=reply)


@dataclass
class RecordingSink:
    events: list[tuple[str, Verified, datetime]] = field(default_factory=list)
    # When set, the sink waits for it: the test sets it once it holds the answer.
    answered: threading.Event | None = None
    waited_for_answer: list[bool] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def event_arrived(self, provider: str, verified: Verified, at: datetime) -> None:
        if self.answered is not None:
            self.waited_for_answer.append(self.answered.wait(PATIENCE))
        self.events.append((provider, verified, at))
        self.arrived.set()


@dataclass
class Running:
    receiver: WebhookReceiver
    sink: RecordingSink
    registry: CollectorRegistry
    clock: FakeClock

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.receiver.port}"

    def count(self, provider: str, outcome: str) -> float:
        value = self.registry.get_sample_value(
            "siro_poller_webhook_requests_total", {"provider": provider, "outcome": outcome}
        )
        return value or 0.0

    def post(self, body: bytes, *, token: str = SECRET, path: str = "/webhooks/acme") -> int:
        answer = requests.post(
            self.url + path, data=body, headers={"X-Token": token}, timeout=PATIENCE
        )
        return answer.status_code


@pytest.fixture
def start() -> Iterator[Callable[..., Running]]:
    started: list[WebhookReceiver] = []

    def starting(**limits: float) -> Running:
        registry = CollectorRegistry()
        clock = FakeClock()
        sink = RecordingSink()
        receiver = WebhookReceiver(
            "127.0.0.1:0",
            {"acme": Endpoint(TokenVerifier()), "other": Endpoint(TokenVerifier())},
            sink,
            limits=ReceiverLimits(
                max_body_bytes=MAX_BODY,
                request_timeout=float(limits.get("request_timeout", PATIENCE)),
                max_connections=8,
                per_source_rate=float(limits.get("rate", 1000.0)),
                per_source_burst=int(limits.get("burst", 1000)),
            ),
            telemetry=PrometheusTelemetry(registry),
            monotonic=clock,
        )
        started.append(receiver)
        return Running(receiver, sink, registry, clock)

    yield starting
    for receiver in started:
        receiver.close()


def raw_exchange(port: int, data: bytes, *, source: str = "127.0.0.1") -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=PATIENCE, source_address=(source, 0)
    ) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_a_refused_request_gets_401_and_reaches_no_sink(start: Callable[..., Running]) -> None:
    running = start()
    answer = requests.post(
        running.url + "/webhooks/acme",
        data=b"forged",
        headers={"X-Token": "guess"},
        timeout=PATIENCE,
    )
    assert answer.status_code == 401
    assert answer.content == b"refused\n"
    assert running.sink.events == []
    assert running.count("acme", "refused") == 1


def test_the_verifiers_reply_is_sent_whole_before_the_sink_hears_of_the_event(
    start: Callable[..., Running],
) -> None:
    running = start()
    running.sink.answered = threading.Event()
    answer = requests.post(
        running.url + "/webhooks/acme",
        data=b"echo-1",
        headers={"X-Token": SECRET},
        timeout=PATIENCE,
    )
    # The sink is still waiting for this moment: the answer came first.
    running.sink.answered.set()
    assert (answer.status_code, answer.content) == (202, b"echoed")
    assert answer.headers["X-Echo"] == "yes"
    assert answer.headers["Content-Type"] == "application/json"
    assert running.sink.arrived.wait(PATIENCE)
    assert running.sink.waited_for_answer == [True]
    [(provider, verified, at)] = running.sink.events
    assert (provider, verified.event, verified.call_ids) == ("acme", "call.ended", ("c1",))
    assert at.tzinfo is not None
    assert running.count("acme", "accepted") == 1


def test_a_body_over_the_cap_is_answered_413_without_being_read(
    start: Callable[..., Running],
) -> None:
    running = start()
    # Only the headers are sent: the answer cannot wait for a body that never comes.
    answer = raw_exchange(
        running.receiver.port,
        b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nX-Token: " + SECRET.encode() + b"\r\n"
        b"Content-Length: " + str(MAX_BODY + 1).encode() + b"\r\n\r\n",
    )
    assert status_of(answer) == 413
    assert running.count("acme", "too_large") == 1
    assert running.sink.events == []


def test_a_chunked_body_or_one_without_a_length_is_answered_411(
    start: Callable[..., Running],
) -> None:
    running = start()
    chunked = raw_exchange(
        running.receiver.port,
        b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n",
    )
    no_length = raw_exchange(
        running.receiver.port, b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert status_of(chunked) == status_of(no_length) == 411
    assert running.count("acme", "too_large") == 2


def test_a_source_over_its_rate_gets_429_while_another_source_is_served(
    start: Callable[..., Running],
) -> None:
    running = start(rate=0.5, burst=3)
    request = (
        b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"X-Token: " + SECRET.encode() + b"\r\nContent-Length: 0\r\n\r\n"
    )
    statuses = [status_of(raw_exchange(running.receiver.port, request)) for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = raw_exchange(running.receiver.port, request)
    assert b"\r\nRetry-After: 2\r\n" in limited
    assert status_of(raw_exchange(running.receiver.port, request, source="127.0.0.2")) == 200
    running.clock.now += 2.0  # one token back at 0.5 a second
    assert status_of(raw_exchange(running.receiver.port, request)) == 200
    assert running.count("acme", "rate_limited") == 2


def test_a_delivery_sent_again_is_refused_as_replayed(start: Callable[..., Running]) -> None:
    running = start()
    assert running.post(b"delivery-7") == 200
    assert running.post(b"delivery-7") == 401
    assert running.post(b"delivery-8") == 200
    # The same key is another provider's own.
    assert running.post(b"delivery-7", path="/webhooks/other") == 200
    assert running.sink.arrived.wait(PATIENCE)
    assert running.count("acme", "replayed") == 1
    assert running.count("acme", "accepted") == 2


def test_unknown_paths_get_404_and_other_methods_405(start: Callable[..., Running]) -> None:
    running = start()
    assert running.post(b"x", path="/webhooks/nobody") == 404
    assert running.post(b"x", path="/metrics") == 404
    answer = requests.get(running.url + "/webhooks/acme", timeout=PATIENCE)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert running.count("", "unknown_path") == 2
    assert running.count("acme", "unknown_path") == 1
    assert running.sink.events == []


@pytest.mark.parametrize(
    "half",
    [
        b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\n",  # headers never end
        b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly-part",
    ],
    ids=["headers", "body"],
)
def test_a_half_sent_request_is_closed_at_its_deadline(
    start: Callable[..., Running], half: bytes
) -> None:
    running = start(request_timeout=0.3)
    assert raw_exchange(running.receiver.port, half) == b""
    assert running.sink.events == []
    assert running.post(b"after") == 200  # and the receiver still serves


@pytest.mark.parametrize("part", ["header", "body"])
def test_a_request_trickled_a_byte_at_a_time_is_closed_at_its_deadline(
    start: Callable[..., Running], part: str
) -> None:
    running = start(request_timeout=0.5)
    head = b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\n"
    if part == "header":
        trickled = b"X-Token: " + b"t" * 400 + b"\r\n\r\n"
    else:
        head += b"X-Token: " + SECRET.encode() + b"\r\nContent-Length: 400\r\n\r\n"
        trickled = b"b" * 400
    closed_after = None
    with socket.create_connection(("127.0.0.1", running.receiver.port), timeout=PATIENCE) as sock:
        sock.sendall(head)
        # 400 bytes a fortieth of a second apart: ten seconds, twenty times the deadline.
        for sent, byte in enumerate(trickled):
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed_after = sent
                break
            if select.select([sock], [], [], 0.025)[0]:
                closed_after = sent
                break
    assert closed_after is not None and closed_after < len(trickled)
    assert running.sink.events == []


def test_a_kept_alive_connection_serves_several_events(start: Callable[..., Running]) -> None:
    running = start()
    with requests.Session() as session:
        for n in range(3):
            answer = session.post(
                running.url + "/webhooks/acme",
                data=f"ka-{n}".encode(),
                headers={"X-Token": SECRET},
                timeout=PATIENCE,
            )
            assert answer.status_code == 200
    assert running.count("acme", "accepted") == 3


def test_a_verifier_that_raises_is_a_401_and_the_receiver_keeps_serving(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    running = start()
    with caplog.at_level(logging.DEBUG):
        assert running.post(b"raise " + BODY_TEXT.encode()) == 401
        assert running.post(b"raise again") == 401
        assert running.post(b"fine") == 200
    assert running.count("acme", "refused") == 2
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert "ValueError" in errors[0].getMessage()


def test_logs_never_hold_a_header_value_or_the_body(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    running = start()
    with caplog.at_level(logging.DEBUG):
        running.post(b"raise " + BODY_TEXT.encode())
        running.post(BODY_TEXT.encode(), token=SECRET + "-wrong")
        running.clock.now += REFUSAL_LOG_EVERY
        running.post(BODY_TEXT.encode(), token="Bearer " + SECRET[:-1])
        running.post(b"x" * (MAX_BODY + 1))
    text = caplog.text + "".join(str(r.exc_info) for r in caplog.records)
    assert "refused: bad_token" in text
    assert SECRET not in text
    assert SECRET[:-1] not in text
    assert BODY_TEXT not in text


def test_refusals_are_logged_once_per_provider_every_ten_seconds_with_a_count(
    start: Callable[..., Running], caplog: pytest.LogCaptureFixture
) -> None:
    running = start()
    with caplog.at_level(logging.INFO, logger="poller.adapters.webhooks.receiver"):
        for _ in range(5):
            running.post(b"garbage", token="wrong")
        running.post(b"garbage", token="wrong", path="/webhooks/other")
        running.clock.now += REFUSAL_LOG_EVERY
        running.post(b"garbage", token="wrong")
    lines = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 3
    assert "for acme refused: bad_token (7 body bytes)" in lines[0]
    assert "for other refused" in lines[1]
    assert lines[2].endswith("4 more refused since the last line")
    assert running.count("acme", "refused") == 6


def test_the_rate_limit_buckets_keep_only_the_newest_sources() -> None:
    clock = FakeClock()
    buckets = SourceBuckets(1.0, 1, max_sources=100, monotonic=clock)
    for n in range(1000):
        assert buckets.take(f"10.0.{n // 256}.{n % 256}") is None
    assert len(buckets) == 100
    assert buckets.take("10.0.3.231") is not None  # among the newest: still limited


def test_the_replay_guard_forgets_after_its_ttl_and_stays_within_its_cap() -> None:
    clock = FakeClock()
    guard = ReplayGuard(60.0, max_keys=50, monotonic=clock)
    assert guard.first_time("acme", "k")
    assert not guard.first_time("acme", "k")
    assert guard.first_time("other", "k")
    clock.now += 61.0
    assert guard.first_time("acme", "k")
    for n in range(500):
        guard.first_time("acme", str(n))
    assert len(guard) == 50


# -- the configuration and the wiring ------------------------------------------------------


def generic(webhook: dict[str, object], **extra: object) -> dict[str, object]:
    return {"base_url": "http://127.0.0.1:9", "auth": "none", "webhook": webhook, **extra}


def test_a_provider_with_events_but_no_listener_is_refused_naming_both_keys() -> None:
    with pytest.raises(ValueError) as refused:
        Settings(provider=generic({"enabled": True, "secret": "x"}))
    assert "provider.webhook.enabled: true, but webhooks.listen is unset" in str(refused.value)


def test_a_listen_address_must_be_host_and_port() -> None:
    with pytest.raises(ValueError, match=re.escape("must be host:port, e.g. 127.0.0.1:8788")):
        Settings(webhooks={"listen": "8788"})


def test_events_enabled_without_a_secret_stop_the_start_naming_the_key(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        providers=[
            {**generic({"enabled": True}), "name": "legacy"},
            {**generic({"enabled": True, "secret": "x"}), "name": "fine"},
        ],
        webhooks={"listen": "127.0.0.1:8788"},
    )
    assert requirements_for_daemon(settings)[-1] == (
        "providers.legacy.webhook.secret: required with providers.legacy.webhook.enabled = "
        "true (the shared token the events are checked with); set it, or set "
        "providers.legacy.webhook.enabled = false; set "
        "SIRO_POLLER_PROVIDERS__LEGACY__WEBHOOK__SECRET or the credential file "
        "providers.legacy.webhook.secret"
    )
    with pytest.raises(ConfigError) as refused:
        app.webhook_endpoints(settings, app.build_providers(settings))
    [problem] = refused.value.problems
    assert problem.startswith("providers.legacy.webhook.secret: required with ")


def test_a_providers_tables_webhook_secret_comes_from_its_credential_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "providers.legacy.webhook.secret").write_text(SECRET + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = tmp_path / "config.toml"
    config.write_text(
        '[webhooks]\nlisten = "127.0.0.1:8788"\n'
        '[[providers]]\nname = "legacy"\nbase_url = "http://127.0.0.1:9"\nauth = "none"\n'
        "[providers.webhook]\nenabled = true\n"
    )
    settings = load_settings(config)
    secret = settings.provider_named("legacy").webhook.secret
    assert secret is not None and secret.get_secret_value() == SECRET
    assert [key for key, _ in credential_files(settings, tmp_path)] == [
        "providers.legacy.webhook.secret"
    ]


def test_a_provider_whose_kind_takes_no_events_stops_the_start(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        provider=generic({"enabled": True, "secret": "x"}),
        webhooks={"listen": "127.0.0.1:8788"},
    )
    with pytest.raises(ConfigError) as refused:
        app.webhook_endpoints(settings, {"generic": InMemoryProvider()})
    [problem] = refused.value.problems
    assert problem.startswith(
        "provider.webhook.enabled: nothing can check the events of this generic provider"
    )
    assert problem.endswith("set it, or set provider.webhook.enabled = false")


def test_an_address_the_receiver_cannot_listen_on_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = Settings(
            state_dir=tmp_path,
            provider=generic({"enabled": True, "secret": "x"}),
            webhooks={"listen": f"127.0.0.1:{port}"},
        )
        with pytest.raises(ConfigError) as refused:
            app.serve_webhooks(settings, app.build_providers(settings), RecordingSink())
    [problem] = refused.value.problems
    assert problem.startswith(f"webhooks.listen: cannot listen on '127.0.0.1:{port}': ")


def test_the_start_up_line_says_where_events_are_taken_and_for_whom(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        providers=[
            {**generic({"enabled": True, "secret": "x"}), "name": "legacy"},
            {**generic({}), "name": "quiet"},
        ],
        webhooks={"listen": "127.0.0.1:8788"},
    )
    assert app.startup_summary(settings).endswith(
        "metrics off, webhooks on 127.0.0.1:8788 for legacy"
    )
    worker_only = settings.model_copy(
        update={"worker": settings.worker.model_copy(update={"role": "worker"})}
    )
    assert app.startup_summary(worker_only).endswith("metrics off")


def test_the_receiver_is_given_each_enabled_providers_verifier_and_public_url(
    tmp_path: Path,
) -> None:
    settings = Settings(
        state_dir=tmp_path,
        providers=[
            {
                **generic(
                    {
                        "enabled": True,
                        "secret": SECRET,
                        "public_url": "https://hooks.example.com/webhooks/legacy",
                    }
                ),
                "name": "legacy",
            },
            {**generic({}), "name": "quiet"},
        ],
        webhooks={"listen": f"127.0.0.1:{free_port()}"},
    )
    sink = RecordingSink()
    receiver = app.serve_webhooks(settings, app.build_providers(settings), sink)
    try:
        assert list(receiver.endpoints) == ["legacy"]
        assert receiver.endpoints["legacy"].public_url == (
            "https://hooks.example.com/webhooks/legacy"
        )
        answer = requests.post(
            f"http://127.0.0.1:{receiver.port}/webhooks/legacy",
            data=b"{}",
            headers={"Authorization": f"Bearer {SECRET}"},
            timeout=PATIENCE,
        )
        assert answer.status_code == 200
        assert sink.arrived.wait(PATIENCE)
        quiet = requests.post(
            f"http://127.0.0.1:{receiver.port}/webhooks/quiet", data=b"{}", timeout=PATIENCE
        )
        assert quiet.status_code == 404
    finally:
        receiver.close()
