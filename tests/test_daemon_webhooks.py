"""`siro-poller run` with its webhook receiver on: a real process, the generic simulator and
Siro's, events signed (or not) as a vendor would send them."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from poller.simulators.audio import mp3_bytes
from poller.simulators.provider_server import quickstart_call
from tests.daemon_process import free_port
from tests.test_daemon_e2e import World, open_world, siro_titles, stop, wait_for
from tests.webhook_e2e import webhook_outcomes

SECRET = "daemon-webhook-secret"
PATIENCE = 30.0


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with open_world(f"sqlite:///{tmp_path / 'state.sqlite3'}", tmp_path) as running:
        yield running


def signed(body: bytes) -> dict[str, str]:
    return {"X-Signature": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}


def test_a_daemon_answers_signed_events_refuses_forged_ones_and_stops_listening(
    world: World,
) -> None:
    hooks, metrics = free_port(), free_port()
    process = world.start(
        POLL__INTERVAL_SECONDS="300",
        PROVIDER__WEBHOOK__ENABLED="true",
        PROVIDER__WEBHOOK__SECRET=SECRET,
        PROVIDER__WEBHOOK__SCHEME="hmac",
        PROVIDER__WEBHOOK__HEADER="X-Signature",
        PROVIDER__WEBHOOK__HMAC_PREFIX="sha256=",
        WEBHOOKS__LISTEN=f"127.0.0.1:{hooks}",
        METRICS__LISTEN=f"127.0.0.1:{metrics}",
    )
    url = f"http://127.0.0.1:{hooks}/webhooks/generic"
    try:
        assert f"webhooks on 127.0.0.1:{hooks} for generic" in world.log()
        body = json.dumps({"call": {"id": "call-0001"}}).encode()
        assert requests.post(url, data=body, timeout=PATIENCE).status_code == 401
        forged = {"X-Signature": "sha256=" + "0" * 64}
        assert requests.post(url, data=body, headers=forged, timeout=PATIENCE).status_code == 401
        answer = requests.post(url, data=body, headers=signed(body), timeout=PATIENCE)
        assert answer.status_code == 200
        replayed = requests.post(url, data=body, headers=signed(body), timeout=PATIENCE)
        assert replayed.status_code == 401
        assert webhook_outcomes(f"http://127.0.0.1:{metrics}/metrics") == {
            "accepted": 1,
            "refused": 2,
            "replayed": 1,
        }
        assert "webhook from 127.0.0.1 for generic refused: no_signature" in world.log()
        assert SECRET not in world.log()
    finally:
        assert stop(process) == 0
    with pytest.raises(requests.ConnectionError):
        requests.post(url, data=b"{}", timeout=PATIENCE)


def test_a_signed_event_brings_a_call_to_siro_long_before_the_next_poll(world: World) -> None:
    hooks = free_port()
    process = world.start(
        # Neither the interval nor the settle delay would list the call within the test.
        POLL__INTERVAL_SECONDS="300",
        POLL__SETTLE_DELAY_SECONDS="120",
        PROVIDER__WEBHOOK__ENABLED="true",
        PROVIDER__WEBHOOK__SECRET=SECRET,
        PROVIDER__WEBHOOK__SCHEME="hmac",
        PROVIDER__WEBHOOK__HEADER="X-Signature",
        PROVIDER__WEBHOOK__HMAC_PREFIX="sha256=",
        PROVIDER__WEBHOOK__CALL_ID_PATH="call.id",
        WEBHOOKS__LISTEN=f"127.0.0.1:{hooks}",
        WEBHOOKS__DEBOUNCE_SECONDS="0.2",
    )
    url = f"http://127.0.0.1:{hooks}/webhooks/generic"
    try:
        # The poll at the start lists up to two minutes ago (the settle delay): not this call.
        ended = datetime.now(UTC) - timedelta(seconds=5)
        path = world.api.add_recording("/recordings/hooked-1", mp3_bytes(1))
        world.api.add_call(
            quickstart_call("hooked-1", ended, recording_url=world.provider.url + path), ended
        )
        body = json.dumps({"call": {"id": "hooked-1"}}).encode()
        forged = {"X-Signature": "sha256=" + "0" * 64}
        assert requests.post(url, data=body, headers=forged, timeout=PATIENCE).status_code == 401
        answer = requests.post(url, data=body, headers=signed(body), timeout=PATIENCE)
        assert answer.status_code == 200
        wait_for(
            lambda: any("[hooked-1]" in title for title in siro_titles(world)),
            PATIENCE,
            "the announced call in Siro",
            world,
        )
        # And `webhooks status` can tell when the provider's last event came.
        [saved] = world.store.webhook_subscription_states()
        assert saved.provider == "generic" and saved.last_event_at is not None
    finally:
        assert stop(process) == 0


def test_a_daemon_whose_receiver_cannot_listen_does_not_start(world: World) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "poller", "run"],
            env=world.env(
                PROVIDER__WEBHOOK__ENABLED="true",
                PROVIDER__WEBHOOK__SECRET=SECRET,
                WEBHOOKS__LISTEN=f"127.0.0.1:{port}",
            ),
            capture_output=True,
            text=True,
            timeout=PATIENCE,
            cwd=world.state_dir.parent,
        )
    assert result.returncode == 2
    assert f"webhooks.listen: cannot listen on '127.0.0.1:{port}'" in result.stderr
