"""`siro-poller webhooks subscribe` and `webhooks status`, the webhooks lines of `status` and
`doctor`, through the `siro-poller` command line over real SQLite and PostgreSQL databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from click.testing import CliRunner, Result

from poller.adapters.providers.zoom import ZoomProvider
from poller.adapters.sql import migrate
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.store import SqlStore
from poller.app import build_provider
from poller.cli import main
from poller.config import load_settings
from poller.core.doctor import judge_webhook
from poller.core.webhook_subscriptions import ArrivalRecorder
from poller.domain.records import PollCursor
from poller.ports.webhooks import Subscription, SubscriptionState, Verified
from poller.simulators.aircall_server import AircallSimulator
from poller.simulators.dialpad_server import DialpadServers
from poller.simulators.http_server import LocalHTTPServer, QuietHandler
from poller.simulators.ringcentral_server import RingCentralState
from poller.simulators.ringcentral_server import serve as serve_ringcentral
from poller.simulators.siro_server import FakeSiro
from poller.simulators.zoom_server import ZoomPhone, recording_item, serve_zoom
from tests.receiver_settings import LISTEN, receiver_section
from tests.seed import seed_cursor
from tests.verifier_server import Endpoint, serve_verifier

PUBLIC_URL = "https://calls.example.com/webhooks/generic"


@pytest.fixture
def database_url(state_database_url: str) -> str:
    engine = make_engine(state_database_url)
    migrate.upgrade(engine)
    engine.dispose()
    return state_database_url


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    engine = make_engine(database_url)
    yield SqlStore(engine)
    engine.dispose()


def write_provider_config(
    tmp_path: Path, database_url: str, provider: dict[str, Any], *, name: str, **extra: Any
) -> Path:
    """A config (mode 0600, as `config check` wants a file with secrets) for ``provider``, its
    state in ``database_url``, the receiver listening."""
    config: dict[str, Any] = {
        "state_dir": str(tmp_path / "state"),
        "database": {"url": database_url},
        "provider": provider,
        **receiver_section(),
        **extra,
    }
    path = tmp_path / name
    path.write_text(tomli_w.dumps(config))
    path.chmod(0o600)
    return path


def write_config(tmp_path: Path, database_url: str, *, enabled: bool = True, **extra: Any) -> Path:
    """A generic provider (no subscription API: its webhook is set up in the vendor's console)
    taking an HMAC-signed webhook."""
    provider = {
        "base_url": "https://api.example.com",
        "auth": "bearer",
        "token": "provider-token-0001",
        "webhook": {
            "enabled": enabled,
            "public_url": PUBLIC_URL,
            "secret": "webhook-secret-0001",
            "scheme": "hmac",
            "header": "X-Signature",
        },
    }
    return write_provider_config(tmp_path, database_url, provider, name="siro-poller.toml", **extra)


def cli(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["--config", str(config), *args])


def webhooks_status(config: Path, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = cli(config, "webhooks", "status", "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def test_subscribe_without_a_vendor_api_prints_the_steps_and_saves_manual(
    database_url: str, store: SqlStore, tmp_path: Path
) -> None:
    config = write_config(tmp_path, database_url)

    result = cli(config, "webhooks", "subscribe", "--provider", "generic")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "generic: this vendor's webhook is set up in its console:"
    assert (
        lines[1] == f"  1. In the vendor's console, point its webhook for finished calls "
        f"(or ready recordings) at {PUBLIC_URL}"
    )
    assert lines[2].startswith(
        "  2. Have it sign the raw body with HMAC-SHA256 (hex) in the header X-Signature"
    )
    assert lines[3].startswith("  3. Send a test event")
    assert "webhook-secret-0001" not in result.output
    (saved,) = store.webhook_subscription_states()
    assert (saved.provider, saved.state, saved.url) == (
        "generic",
        SubscriptionState.MANUAL,
        PUBLIC_URL,
    )

    code, rows = webhooks_status(config)
    assert code == 0
    (row,) = rows
    assert (row["provider"], row["state"], row["live"], row["action"]) == (
        "generic",
        "manual",
        False,
        None,
    )
    assert row["last_event_at"] is None


def test_status_reports_a_lost_subscription_and_when_the_last_event_came(
    database_url: str, store: SqlStore, tmp_path: Path
) -> None:
    config = write_config(tmp_path, database_url)
    now = datetime.now(UTC)
    store.webhook_event_arrived("generic", now - timedelta(hours=3))
    store.save_webhook_subscription(
        Subscription("generic", SubscriptionState.DEACTIVATED, detail="3 failed deliveries"), now
    )

    code, (row,) = webhooks_status(config, "--offline")
    assert code == 1
    assert row["state"] == "deactivated"
    assert datetime.fromisoformat(row["last_event_at"]) == now - timedelta(hours=3)
    assert "`siro-poller webhooks subscribe --provider generic` re-enables it" in row["action"]

    table = cli(config, "webhooks", "status")
    assert table.exit_code == 1
    assert "deactivated" in table.stdout and "3.0h ago" in table.stdout
    assert "generic: the vendor switched the webhook off" in table.stdout


def test_status_shows_a_lost_subscription_as_a_warning_and_stays_healthy(
    database_url: str, store: SqlStore, tmp_path: Path
) -> None:
    config = write_config(tmp_path, database_url)
    now = datetime.now(UTC)
    seed_cursor(store, PollCursor(provider="generic", last_success_at=now - timedelta(minutes=1)))
    store.beat("host:1:ab", now - timedelta(hours=1), now - timedelta(seconds=5))
    store.save_webhook_subscription(
        Subscription("generic", SubscriptionState.BLACKLISTED), now - timedelta(minutes=2)
    )

    result = cli(config, "status")

    assert result.exit_code == 0, result.output  # polling still brings every call
    assert "webhooks: generic subscription blacklisted, no event yet" in result.stdout
    assert "health: ok" in result.stdout
    assert "warning: the webhook subscription of generic is blacklisted" in result.stdout
    document = json.loads(cli(config, "status", "--json").stdout)
    assert [(w["provider"], w["state"]) for w in document["webhooks"]] == [
        ("generic", "blacklisted")
    ]
    assert document["health"]["healthy"] is True
    assert [w["subject"] for w in document["health"]["warnings"]] == ["generic"]


def test_subscribe_refuses_plain_http_off_this_machine_and_a_disabled_webhook(
    database_url: str, tmp_path: Path
) -> None:
    config = write_config(tmp_path, database_url)

    insecure = cli(
        config,
        "webhooks",
        "subscribe",
        "--provider",
        "generic",
        "--url",
        "http://calls.example.com/w",
    )
    assert insecure.exit_code == 2
    assert "vendors must post over https://" in insecure.output
    local = cli(
        config, "webhooks", "subscribe", "--provider", "generic", "--url", "http://127.0.0.1:8788/w"
    )
    assert local.exit_code == 0, local.output
    unknown = cli(config, "webhooks", "subscribe", "--provider", "nope")
    assert unknown.exit_code == 2 and "no provider of that name" in unknown.output

    disabled = cli(
        write_config(tmp_path, database_url, enabled=False),
        "webhooks",
        "subscribe",
        "--provider",
        "generic",
    )
    assert disabled.exit_code == 2
    assert "provider.webhook.enabled is false" in disabled.output


def test_doctor_checks_the_receiver_the_subscription_and_the_last_event(
    database_url: str, store: SqlStore, tmp_path: Path
) -> None:
    with FakeSiro() as siro:
        config = write_config(tmp_path, database_url, siro=siro.settings_values())
        store.save_webhook_subscription(
            Subscription("generic", SubscriptionState.MANUAL, url=PUBLIC_URL), datetime.now(UTC)
        )
        result = cli(config, "doctor", "--json", "--timeout", "10")

    (check,) = [c for c in json.loads(result.stdout) if c["check"] == "webhooks (generic)"]
    assert "last event: never" in check["details"]
    if receiver_section():
        assert (check["verdict"], check["summary"]) == ("ok", "subscription manual")
        assert f"receiver on {LISTEN}" in check["details"]
        assert any(detail.startswith("note: no event for more than") for detail in check["details"])
    else:  # no receiver can be configured: events could not arrive, while polling works on
        assert check["verdict"] == "warning"
        assert "[webhooks] listen is unset" in check["summary"]

    store.save_webhook_subscription(
        Subscription("generic", SubscriptionState.DEACTIVATED), datetime.now(UTC)
    )
    (row,) = store.webhook_subscription_states()
    lost = judge_webhook(
        "generic", receiver="127.0.0.1:8788", saved=row, live=None, now=datetime.now(UTC)
    )
    assert lost.verdict == "warning" and "deactivated" in lost.summary
    assert lost.fix is not None and "webhooks subscribe --provider generic" in lost.fix
    quiet = judge_webhook(
        "generic",
        receiver="127.0.0.1:8788",
        saved=None,
        live=lambda: Subscription("generic", SubscriptionState.ACTIVE),
        now=datetime.now(UTC),
    )
    assert quiet.verdict == "ok"
    assert any(detail.startswith("note: no event for more than") for detail in quiet.details)
    unheard = judge_webhook("generic", receiver=None, saved=row, live=None, now=datetime.now(UTC))
    assert unheard.verdict == "warning" and "[webhooks] listen is unset" in unheard.summary


# -- against a vendor's subscription API: RingCentral's simulator on 127.0.0.1 -----------------

RC_TOKEN = "rc-verification-token-cli-0001"
RC_LIMITS = {group: (10_000, 60, 60) for group in ("Heavy", "Medium", "Light", "Auth")}


class _EchoesValidationToken(QuietHandler):
    """The receiver's part in RingCentral's creation handshake: the token back, at once."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        token = self.headers.get("Validation-Token")
        if token is not None:
            self.send_header("Validation-Token", token)
        self.send_header("Content-Length", "0")
        self.end_headers()


def write_ringcentral_config(
    tmp_path: Path, database_url: str, api: RingCentralState, public_url: str
) -> Path:
    provider = api.settings_values(
        webhook={"enabled": True, "public_url": public_url, "secret": RC_TOKEN}
    )
    return write_provider_config(tmp_path, database_url, provider, name="ringcentral.toml")


def test_ringcentral_subscribe_then_status_through_a_blacklisting_and_back(
    database_url: str, store: SqlStore, tmp_path: Path
) -> None:
    with (
        serve_ringcentral(RingCentralState(groups=dict(RC_LIMITS))) as api,
        LocalHTTPServer(_EchoesValidationToken) as receiver,
    ):
        public_url = receiver.url + "/webhooks/ringcentral"
        config = write_ringcentral_config(tmp_path, database_url, api, public_url)

        created = cli(config, "webhooks", "subscribe", "--provider", "ringcentral")
        assert created.exit_code == 0, created.output
        (vendor_id,) = api.subscriptions
        assert created.stdout.startswith(f"ringcentral: active, id {vendor_id}, expires ")
        assert RC_TOKEN not in created.output
        assert api.handshakes == [(public_url, 200)]

        code, (row,) = webhooks_status(config)
        assert code == 0
        assert (row["state"], row["vendor_id"], row["live"], row["action"]) == (
            "active",
            vendor_id,
            True,
            None,
        )
        assert row["expires_at"] is not None and row["last_event_at"] is None

        api.blacklist(vendor_id)
        code, (row,) = webhooks_status(config)
        assert code == 1
        assert row["state"] == "blacklisted"
        assert "`siro-poller webhooks subscribe --provider ringcentral`" in row["action"]
        health = json.loads(cli(config, "status", "--json").stdout)["health"]
        assert [(w["check"], w["subject"]) for w in health["warnings"]] == [
            ("webhooks", "ringcentral")
        ]

        again = cli(config, "webhooks", "subscribe", "--provider", "ringcentral")
        assert again.exit_code == 0, again.output
        (new_id,) = api.subscriptions
        assert new_id != vendor_id
        code, (row,) = webhooks_status(config)
        assert (code, row["state"], row["vendor_id"]) == (0, "active", new_id)

    # Nothing kept in the database holds the verification token.
    (saved,) = store.webhook_subscription_states()
    assert RC_TOKEN not in repr(saved)


# -- a console-managed vendor: Zoom's simulator sends its signed events -----------------------

ZOOM_SECRET = "zoom-secret-token-cli-0001"


def test_zoom_subscribe_prints_the_marketplace_steps_and_status_shows_its_events(
    database_url: str, store: SqlStore, tmp_path: Path
) -> None:
    phone = ZoomPhone(webhook_secret=ZOOM_SECRET)
    with serve_zoom(phone):
        phone.add_recording(recording_item("rec-cli-1", datetime.now(UTC), call_id="70001"))
        provider = {
            "kind": "zoom",
            "base_url": f"{phone.api_url}/v2",
            "token_url": f"{phone.web_url}/oauth/token",
            "account_id": phone.account_id,
            "client_id": phone.client_id,
            "client_secret": phone.client_secret,
            "webhook": {
                "enabled": True,
                "secret": ZOOM_SECRET,
                "public_url": "https://calls.example.com/webhooks/zoom",
            },
        }
        config_path = write_provider_config(tmp_path, database_url, provider, name="zoom.toml")

        result = cli(config_path, "webhooks", "subscribe", "--provider", "zoom")
        assert result.exit_code == 0, result.output
        steps = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
        assert [step.split(" ", 1)[0] for step in steps] == [
            f"{n}." for n in range(1, len(steps) + 1)
        ]
        assert any("https://calls.example.com/webhooks/zoom" in step for step in steps)
        assert ZOOM_SECRET not in result.output

        adapter = build_provider(load_settings(config_path), "zoom")
        assert isinstance(adapter, ZoomProvider)
        verifier = adapter.webhook_verifier()
        assert verifier is not None
        recorder = ArrivalRecorder(store)
        with serve_verifier(Endpoint(verifier)) as endpoint:
            # The Marketplace's Validate button proves the address, not that events come.
            assert phone.validate_endpoint(endpoint.url) is True
            for outcome in endpoint.outcomes:
                assert isinstance(outcome, Verified)
                recorder.event_arrived("zoom", outcome, datetime.now(UTC))
            code, (row,) = webhooks_status(config_path)
            assert (code, row["state"], row["live"], row["last_event_at"]) == (
                0,
                "manual",
                False,
                None,
            )

            assert phone.announce("rec-cli-1") == [200]
            event = endpoint.outcomes[-1]
            assert isinstance(event, Verified)
            arrived = datetime.now(UTC)
            recorder.event_arrived("zoom", event, arrived)  # as the receiver does, after its 200

    code, (row,) = webhooks_status(config_path)
    assert (code, row["state"], row["action"]) == (0, "manual", None)
    assert datetime.fromisoformat(row["last_event_at"]) == arrived


# -- a vendor that chooses the webhook's token itself: Aircall's simulator --------------------


def write_aircall_config(
    tmp_path: Path, database_url: str, sim: AircallSimulator, token: str | None
) -> Path:
    webhook: dict[str, Any] = {"enabled": True, "public_url": "https://calls.example.com/w/aircall"}
    if token is not None:
        webhook["secret"] = token
    provider = {
        "kind": "aircall",
        "base_url": sim.url,
        "api_id": "aircall-api-id",
        "api_token": "aircall-api-token-0001",
        "download_hosts": [sim.media_host],
        "webhook": webhook,
    }
    return write_provider_config(tmp_path, database_url, provider, name="aircall.toml")


def test_aircall_subscribe_shows_its_chosen_token_once_and_re_enables(
    database_url: str, store: SqlStore, tmp_path: Path
) -> None:
    with AircallSimulator() as sim:
        # No webhook.secret yet: Aircall chooses the token when the webhook is made.
        config = write_aircall_config(tmp_path, database_url, sim, None)
        created = cli(config, "webhooks", "subscribe", "--provider", "aircall")
        assert created.exit_code == 0, created.output
        (hook,) = sim.api.webhooks.values()
        assert created.stdout.startswith(f"aircall: active, id {hook['webhook_id']}")
        assert "set provider.webhook.secret to it" in created.stdout
        assert created.stdout.count(hook["token"]) == 1
        (saved,) = store.webhook_subscription_states()
        assert hook["token"] not in repr(saved)

        config = write_aircall_config(tmp_path, database_url, sim, hook["token"])
        sim.api.deactivate(hook["webhook_id"])
        code, (row,) = webhooks_status(config)
        assert (code, row["state"], row["live"]) == (1, "deactivated", True)
        assert "`siro-poller webhooks subscribe --provider aircall` re-enables it" in row["action"]

        again = cli(config, "webhooks", "subscribe", "--provider", "aircall")
        assert again.exit_code == 0, again.output
        assert "holds the token the vendor gave this webhook" in again.stdout
        assert hook["token"] not in again.stdout
        assert len(sim.api.webhooks) == 1 and sim.api.webhooks[hook["webhook_id"]]["active"]
        code, (row,) = webhooks_status(config)
        assert (code, row["state"]) == (0, "active")


# -- a vendor given the secret we choose: Dialpad's simulator ---------------------------------

DIALPAD_KEY = "dialpad-api-key-cli-0001"
DIALPAD_SECRET = "dialpad-webhook-secret-cli-0001-long-random"


def write_dialpad_config(
    tmp_path: Path, database_url: str, servers: DialpadServers, secret: str | None
) -> Path:
    webhook: dict[str, Any] = {"enabled": True, "public_url": "https://calls.example.com/w/dialpad"}
    if secret is not None:
        webhook["secret"] = secret
    provider = {
        "kind": "dialpad",
        "base_url": servers.url,
        "api_key": DIALPAD_KEY,
        "download_hosts": [servers.media_host],
        "webhook": webhook,
    }
    return write_provider_config(tmp_path, database_url, provider, name="dialpad.toml")


def test_dialpad_subscribe_needs_our_secret_then_status_follows_a_disabling(
    database_url: str, store: SqlStore, tmp_path: Path
) -> None:
    with DialpadServers(DIALPAD_KEY) as servers:
        servers.state.retry_sleep = lambda _seconds: None
        unset = write_dialpad_config(tmp_path, database_url, servers, None)
        refused = cli(unset, "webhooks", "subscribe", "--provider", "dialpad")
        assert refused.exit_code == 1
        assert "provider.webhook.secret is required" in refused.output
        assert servers.state.subscriptions == {}

        config = write_dialpad_config(tmp_path, database_url, servers, DIALPAD_SECRET)
        made = cli(config, "webhooks", "subscribe", "--provider", "dialpad")
        assert made.exit_code == 0, made.output
        assert made.stdout.startswith("dialpad: active")
        assert DIALPAD_SECRET not in made.output
        (vendor_id,) = [row.vendor_id for row in store.webhook_subscription_states()]
        assert vendor_id is not None

        servers.state.disable_subscription(vendor_id)
        code, (row,) = webhooks_status(config)
        assert (code, row["state"], row["live"]) == (1, "deactivated", True)

        again = cli(config, "webhooks", "subscribe", "--provider", "dialpad")
        assert again.exit_code == 0, again.output
        code, (row,) = webhooks_status(config)
        assert (code, row["state"], row["vendor_id"]) == (0, "active", vendor_id)
    (saved,) = store.webhook_subscription_states()
    assert DIALPAD_SECRET not in repr(saved)
