"""OAuth refresh-token grant with rotating refresh tokens (Outreach, GoTo, Webex, HubSpot,
Salesloft OAuth apps), against a token endpoint that rotates and, like the Security BCP, takes
a replayed refresh token for theft and revokes the family.

The operator seeds one refresh token in config; after that the current one lives, sealed, in
the state database: it survives restarts, two processes refresh once between them, a changed
key is a clear credential error, a new seed wins, and a refused refresh pauses the provider.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, select, text

from poller.adapters.memory_store import MemoryOAuthTokenStore
from poller.adapters.providers.generic import GenericSettings
from poller.adapters.providers.registry import build_provider as build_adapter
from poller.adapters.sql.models import oauth_refresh_tokens_table
from poller.adapters.sql.oauth_tokens import SqlOAuthTokenStore
from poller.adapters.sql.store import SqlStore
from poller.app import build_provider
from poller.config import Settings
from poller.core.poll import poll_once
from poller.domain.pauses import provider_scope
from poller.domain.windows import Window
from poller.ports.provider import ProviderAuthError, ProviderPort
from poller.simulators.http_server import LocalHTTPServer
from poller.simulators.oauth_server import OAuthTokenIssuer
from poller.simulators.provider_server import FakeCallLog, quickstart_call, serve
from poller.wiring import poll_params_from_settings

AT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
WINDOW = Window(AT - timedelta(hours=1), AT + timedelta(hours=1))
CLIENT_SECRET = "client-secret-of-the-app"
NAME = "outreach"


class World:
    def __init__(self, log: FakeCallLog, issuer: OAuthTokenIssuer, server: LocalHTTPServer):
        self.log = log
        self.issuer = issuer
        self.server = server
        self.seed = issuer.seed_refresh_token()

    def provider_table(self, **changes: Any) -> dict[str, Any]:
        return {
            "kind": "generic",
            "name": NAME,
            "base_url": self.server.url,
            "max_retries": 0,
            "auth": "oauth_refresh_token",
            "token_url": self.server.url + "/oauth/token",
            "client_id": "client-1",
            "client_secret": CLIENT_SECRET,
            "refresh_token": self.seed,
            **changes,
        }

    def settings(self, engine: Engine, **changes: Any) -> Settings:
        return Settings(
            provider=self.provider_table(**changes),
            database={"url": engine.url.render_as_string(hide_password=False)},
        )

    def start(self, engine: Engine, **changes: Any) -> ProviderPort:
        """A process starting: the provider as `run` builds it, on the state database."""
        return build_provider(self.settings(engine, **changes), engine=engine)

    def refresh_forms(self) -> list[dict[str, str]]:
        return [r["form"] for r in self.issuer.requests]


@pytest.fixture
def world() -> Iterator[World]:
    issuer = OAuthTokenIssuer(client_id="client-1", client_secret=CLIENT_SECRET)
    log = FakeCallLog(auth=("issuer",), issuer=issuer)
    with serve(log) as server:
        log.base_url = server.url
        log.add_call(quickstart_call("call-1", AT), AT)
        yield World(log, issuer, server)


def listed(provider: ProviderPort) -> int:
    return sum(len(page.records) for page in provider.list_window(WINDOW))


def test_the_rotated_token_survives_two_restarts_and_the_spent_seed_is_never_replayed(
    world: World, engine: Engine
) -> None:
    assert listed(world.start(engine)) == 1
    assert world.issuer.refreshes == 1
    first_rotation = world.issuer.current_refresh_token()
    assert first_rotation != world.seed

    # Restart while the stored access token still works: it is reused, nothing refreshed.
    assert listed(world.start(engine)) == 1
    assert world.issuer.refreshes == 1

    # Restart after the access token lapsed: the stored (rotated) refresh token is used,
    # not the seed that config still holds and that the server now takes for theft.
    world.issuer.expire_access_tokens()
    assert listed(world.start(engine)) == 1
    world.issuer.expire_access_tokens()
    assert listed(world.start(engine)) == 1

    assert world.issuer.refreshes == 3 and world.issuer.replays == 0
    presented = [form["refresh_token"] for form in world.refresh_forms()]
    assert presented[0] == world.seed and presented[1] == first_rotation
    assert len(set(presented)) == 3


def test_the_database_holds_no_token_in_clear(world: World, engine: Engine) -> None:
    provider = world.start(engine)
    assert listed(provider) == 1
    access = next(iter(world.issuer._families[0].access))
    secrets = [world.seed, world.issuer.current_refresh_token() or "", access, CLIENT_SECRET]

    with engine.connect() as connection:
        (row,) = connection.execute(select(oauth_refresh_tokens_table)).mappings().all()
    stored = json.dumps({key: str(value) for key, value in row.items()})
    assert row["refresh_token"].startswith("v1.") and row["access_token"].startswith("v1.")
    if engine.dialect.name == "sqlite":
        database = Path(engine.url.database or "")
        # The write-ahead log too: a committed page sits there until the next checkpoint.
        stored += "".join(
            path.read_bytes().decode("latin-1")
            for path in database.parent.glob(database.name + "*")
        )
    else:
        with engine.connect() as connection:
            stored += connection.execute(
                text("SELECT CAST(t AS text) FROM oauth_refresh_tokens AS t")
            ).scalar_one()
    for secret in secrets:
        assert secret not in stored
    # The tokens this process sent are redacted from its messages.
    assert set(provider.http.secrets()) >= set(secrets)  # type: ignore[attr-defined]


_RACER = """
import json, sys
from datetime import datetime, timedelta
from poller.adapters.providers.generic import GenericSettings
from poller.adapters.providers.registry import build_provider
from poller.adapters.sql.database import make_engine
from poller.adapters.sql.oauth_tokens import SqlOAuthTokenStore
from poller.domain.windows import Window

args = json.loads(sys.argv[1])
store = SqlOAuthTokenStore(make_engine(args.pop("database_url")))
provider = build_provider(GenericSettings(**args.pop("table")), token_store=store)
at = datetime.fromisoformat(args["at"])
window = Window(at - timedelta(hours=1), at + timedelta(hours=1))
print("ready", flush=True)
sys.stdin.readline()  # both processes built: go together
print(sum(len(page.records) for page in provider.list_window(window)))
"""


def test_two_processes_racing_to_refresh_refresh_once_and_both_get_a_working_token(
    world: World, engine: Engine
) -> None:
    # A slow token endpoint: the second process asks while the first one's refresh is out.
    world.issuer.answer_delay = 0.5
    table = world.provider_table()
    del table["kind"]
    argument = json.dumps(
        {
            "database_url": engine.url.render_as_string(hide_password=False),
            "table": table,
            "at": AT.isoformat(),
        }
    )
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", _RACER, argument],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for racer in racers:
        assert racer.stdout is not None and racer.stdout.readline().strip() == "ready"
    for racer in racers:
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    outcomes = [racer.communicate(timeout=120) for racer in racers]

    results = [(r.returncode, out.strip()) for r, (out, _) in zip(racers, outcomes, strict=True)]
    assert results == [(0, "1"), (0, "1")], [err[-2000:] for _, err in outcomes]
    assert world.issuer.refreshes == 1
    assert world.issuer.replays == 0 and world.issuer.refused == 0
    # And the token they share is the live one: a third process goes on from it.
    world.issuer.expire_access_tokens()
    assert listed(world.start(engine)) == 1 and world.issuer.refreshes == 2


def test_threads_of_one_process_refresh_once(world: World) -> None:
    world.issuer.answer_delay = 0.3
    store = MemoryOAuthTokenStore()
    providers = [
        build_adapter(GenericSettings(**world.provider_table()), token_store=store)
        for _ in range(3)
    ]
    barrier = threading.Barrier(len(providers))
    counts: list[int] = []

    def run(provider: ProviderPort) -> None:
        barrier.wait()
        counts.append(listed(provider))

    threads = [threading.Thread(target=run, args=(p,)) for p in providers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert counts == [1, 1, 1]
    assert world.issuer.refreshes == 1 and world.issuer.replays == 0


def test_a_changed_key_is_a_clear_credential_error_and_a_new_seed_mends_it(
    world: World, engine: Engine
) -> None:
    assert listed(world.start(engine, token_encryption_key="k" * 32)) == 1
    world.issuer.expire_access_tokens()

    with pytest.raises(ProviderAuthError) as caught:
        listed(world.start(engine, token_encryption_key="another-key-" + "x" * 24))
    message = str(caught.value)
    assert "cannot be decrypted" in message
    assert "provider.token_encryption_key" in message
    assert "seed a new refresh token in provider.refresh_token" in message
    assert world.issuer.refreshes == 1  # nothing was sent with a token it could not read

    fresh = world.issuer.seed_refresh_token()
    provider = world.start(
        engine, token_encryption_key="another-key-" + "x" * 24, refresh_token=fresh
    )
    assert listed(provider) == 1


def test_a_new_seed_in_config_wins_over_the_stored_token(world: World, engine: Engine) -> None:
    assert listed(world.start(engine)) == 1
    world.issuer.expire_access_tokens()
    fresh = world.issuer.seed_refresh_token()

    assert listed(world.start(engine, refresh_token=fresh)) == 1
    assert world.refresh_forms()[-1]["refresh_token"] == fresh

    # From then on the stored token descends from the new seed, and restarts go on from it.
    rotated = world.issuer.current_refresh_token()
    world.issuer.expire_access_tokens()
    assert listed(world.start(engine, refresh_token=fresh)) == 1
    assert world.refresh_forms()[-1]["refresh_token"] == rotated
    assert world.issuer.replays == 0


@pytest.mark.parametrize(
    ("change", "refusal", "advice"),
    [
        (
            {"refresh_token": "a-refresh-token-the-server-never-issued"},
            "HTTP 400 invalid_grant",
            "seed a new one in provider.refresh_token",
        ),
        (
            {"client_secret": "a-client-secret-that-is-wrong"},
            "HTTP 401 invalid_client",
            "check provider.client_id, provider.client_secret, provider.refresh_token",
        ),
    ],
)
def test_a_refused_refresh_pauses_the_provider_and_names_the_key(
    world: World, engine: Engine, change: dict[str, str], refusal: str, advice: str
) -> None:
    settings = world.settings(engine, **change)
    store = SqlStore(engine)

    report = poll_once(
        poll_params_from_settings(settings),
        build_provider(settings, engine=engine),
        store,
        AT + timedelta(hours=2),
    )

    assert report.credentials_refused
    (pause,) = store.pauses()
    assert pause.scope == provider_scope(NAME)
    assert refusal in pause.reason and advice in pause.reason
    assert next(iter(change.values())) not in pause.reason
    with engine.connect() as connection:
        assert connection.execute(select(oauth_refresh_tokens_table)).all() == []


def test_the_store_refuses_to_be_skipped() -> None:
    table = {
        "base_url": "https://api.example.com",
        "auth": "oauth_refresh_token",
        "token_url": "https://api.example.com/oauth/token",
        "client_id": "c",
        "client_secret": "s",
        "refresh_token": "r",
    }
    with pytest.raises(Exception, match="keeps the rotated refresh token in the state database"):
        build_adapter(GenericSettings(**table))


def test_the_sql_store_locks_across_connections(engine: Engine) -> None:
    """While one connection holds a provider's row, another waits, then sees what it wrote."""
    first = SqlOAuthTokenStore(engine)
    second = SqlOAuthTokenStore(engine, lock_timeout_seconds=30)
    inside = threading.Event()
    release = threading.Event()
    seen: list[str | None] = []

    def hold() -> None:
        from poller.ports.token_store import SealedTokens

        with first.exclusive(NAME) as slot:
            inside.set()
            release.wait(10)
            slot.write(SealedTokens("fp", "v1.sealed", datetime.now(UTC)))

    def wait_then_read() -> None:
        with second.exclusive(NAME) as slot:
            row = slot.read()
            seen.append(row.refresh_token if row else None)

    holder = threading.Thread(target=hold)
    holder.start()
    assert inside.wait(10)
    waiter = threading.Thread(target=wait_then_read)
    waiter.start()
    release.set()
    holder.join(10)
    waiter.join(30)
    assert seen == ["v1.sealed"]


def test_the_simulator_revokes_the_family_when_a_rotated_token_is_replayed(
    world: World,
) -> None:
    url = world.server.url + "/oauth/token"
    auth = ("client-1", CLIENT_SECRET)

    def refresh(token: str) -> requests.Response:
        return requests.post(
            url, data={"grant_type": "refresh_token", "refresh_token": token}, auth=auth, timeout=5
        )

    first = refresh(world.seed)
    assert first.status_code == 200
    rotated = first.json()["refresh_token"]
    replay = refresh(world.seed)
    assert (replay.status_code, replay.json()) == (400, {"error": "invalid_grant"})
    # The family is gone: the token the legitimate holder has is refused too.
    assert refresh(rotated).status_code == 400
    assert not world.issuer.accepts(first.json()["access_token"])


def test_provider_check_uses_and_keeps_the_stored_token(world: World, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from poller.cli import main

    recent = datetime.now(UTC) - timedelta(hours=2)
    world.log.add_call(quickstart_call("call-recent", recent), recent)
    env = {
        f"SIRO_POLLER_PROVIDER__{key.upper()}": str(value)
        for key, value in world.provider_table().items()
    }
    env["SIRO_POLLER_DATABASE__URL"] = f"sqlite:///{tmp_path / 'state.sqlite3'}"

    def check() -> Any:
        return CliRunner().invoke(main, ["provider", "check"], env=env)

    before_upgrade = check()
    assert before_upgrade.exit_code == 1
    assert "run `siro-poller db upgrade` first" in before_upgrade.output
    assert world.issuer.refreshes == 0

    assert CliRunner().invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    first = check()
    assert first.exit_code == 0, first.output
    assert world.issuer.refreshes == 1
    world.issuer.expire_access_tokens()
    second = check()
    assert second.exit_code == 0, second.output
    assert world.issuer.refreshes == 2 and world.issuer.replays == 0
    for secret in (world.seed, CLIENT_SECRET):
        assert secret not in first.output + second.output


def test_the_client_in_the_form_and_fixed_token_params(world: World) -> None:
    world.issuer.client_auth = "body"
    table = world.provider_table(
        client_auth="body", token_params={"redirect_uri": "https://poller.example.com/cb"}
    )
    provider = build_adapter(GenericSettings(**table), token_store=MemoryOAuthTokenStore())

    assert listed(provider) == 1
    (request,) = world.issuer.requests
    assert request["form"] == {
        "grant_type": "refresh_token",
        "refresh_token": world.seed,
        "redirect_uri": "https://poller.example.com/cb",
        "client_id": "client-1",
        "client_secret": CLIENT_SECRET,
    }
    assert "Authorization" not in request["headers"]


def test_a_sealed_token_opens_only_as_what_and_whose_it_is() -> None:
    from poller.adapters.http.sealing import SealBroken, TokenSealer

    sealer = TokenSealer(CLIENT_SECRET, context="outreach")
    sealed = sealer.seal("access_token", "the-access-token")
    assert sealed != sealer.seal("access_token", "the-access-token")  # a fresh nonce each time
    assert sealer.open("access_token", sealed) == "the-access-token"
    for other, kind in [
        (sealer, "refresh_token"),  # passed off as the other token
        (TokenSealer(CLIENT_SECRET, context="webex"), "access_token"),  # another provider's
        (TokenSealer("another-secret", context="outreach"), "access_token"),  # another key
    ]:
        with pytest.raises(SealBroken):
            other.open(kind, sealed)
    with pytest.raises(SealBroken):
        sealer.open("access_token", sealed[:-4] + "AAAA")
