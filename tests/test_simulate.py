"""`siro-poller simulate` and `config init`, as a user rehearses a setup: for every provider
kind, the minimal config `config init` writes plus the exports `simulate` prints passes
`config check` and `provider check` against that kind's running simulators.

`simulate` runs as a process, as a user leaves it running in a terminal and stops it with a
signal; the short commands run in this process (click's runner, with the environment they would
have in that user's shell): a process each would cost a second of start-up and prove nothing
more.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from poller.adapters.providers.registry import KINDS, adapter_class, build_provider
from poller.cli import main
from poller.ports.webhooks import Refused, Verified, WebhookRequest, WebhookVerifier
from tests.verifier_server import Endpoint, serve_verifier

CLI = [sys.executable, "-m", "poller"]


def clean_environment(tmp_path: Path) -> dict[str, str]:
    """This machine's environment less anything that would configure siro-poller."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith("SIRO_POLLER_") and name != "CREDENTIALS_DIRECTORY"
    }
    (tmp_path / "tmp").mkdir(parents=True)
    env["TMPDIR"] = str(tmp_path / "tmp")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    return env


def user_shell(tmp_path: Path) -> dict[str, str]:
    """What a user's shell adds for a command run in this process: its own temporary and state
    folders (the rest of the environment is the test's, with no ``SIRO_POLLER_*``)."""
    (tmp_path / "tmp").mkdir(parents=True)
    return {"TMPDIR": str(tmp_path / "tmp"), "XDG_STATE_HOME": str(tmp_path / "state")}


def run(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, args, env=env)


def exports_of(lines: list[str], after: str) -> dict[str, str]:
    """The variables of the ``export NAME=value`` lines that follow the line starting ``after``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    found = {}
    for line in lines[start + 1 :]:
        if not line.startswith("export "):
            break
        name, _, value = line.removeprefix("export ").partition("=")
        found[name] = shlex.split(value)[0]
    return found


@dataclass
class Simulate:
    """A running `siro-poller simulate`: its output up to "running", and once stopped, its
    standard error."""

    lines: list[str]
    stderr: str = ""


@contextmanager
def simulate_process(tmp_path: Path, *args: str) -> Iterator[Simulate]:
    """`siro-poller simulate ARGS` running until the block ends; then stopped with SIGTERM,
    as a person stops it, and required to exit 0."""
    process = subprocess.Popen(
        [*CLI, "simulate", *args],
        env=clean_environment(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    running = Simulate([])
    try:
        for line in process.stdout:
            running.lines.append(line.rstrip("\n"))
            if line.startswith("# Simulators running"):
                break
        yield running
    finally:
        process.send_signal(signal.SIGTERM)
        _, running.stderr = process.communicate(timeout=30)
    assert process.returncode == 0, running.stderr


@pytest.fixture
def simulated(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """`siro-poller simulate --provider KIND` running; its output up to "running"."""
    config_out = str(tmp_path / "sim.toml")
    with simulate_process(
        tmp_path, "--provider", request.param, "--config-out", config_out
    ) as running:
        lines = running.lines
        assert lines and lines[-1].startswith("# Simulators running"), lines
        yield lines
    assert "# Simulators stopped." in running.stderr


@pytest.mark.parametrize("simulated", list(KINDS), indirect=True)
def test_config_init_plus_the_secrets_passes_both_checks_against_simulate(
    simulated: list[str], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["simulated"]
    env = user_shell(tmp_path / "user")
    config = tmp_path / "config.toml"
    init = run(["config", "init", "--provider", kind, "--output", str(config)], env)
    assert init.exit_code == 0, init.stderr
    assert "export SIRO_POLLER_SIRO__API_TOKEN=" in init.stdout
    text = config.read_text(encoding="utf-8")
    secrets = exports_of(simulated, "# Its secrets")
    for value in secrets.values():
        assert value not in text
    env.update(exports_of(simulated, "# Or point your own config"))
    # A rotating OAuth refresh token lives in the state database: provider check needs it
    # upgraded, and says so otherwise.
    upgrade = ["db", "upgrade"] if "SIRO_POLLER_PROVIDER__REFRESH_TOKEN" in secrets else []
    for command in ([upgrade] if upgrade else []) + [["config", "check"], ["provider", "check"]]:
        result = run(["--config", str(config), *command], env)
        assert result.exit_code == 0, (command, result.stdout, result.stderr)
        for value in secrets.values():
            assert value not in result.stdout + result.stderr
    # The ready config and its secrets work as well, and without the overrides.
    ready = user_shell(tmp_path / "ready") | secrets
    if upgrade:
        upgraded = run(["--config", str(tmp_path / "sim.toml"), *upgrade], ready)
        assert upgraded.exit_code == 0, upgraded.stderr
    result = run(["--config", str(tmp_path / "sim.toml"), "provider", "check"], ready)
    assert result.exit_code == 0, (result.stdout, result.stderr)


def test_config_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("# mine\n", encoding="utf-8")
    env = user_shell(tmp_path)
    refused = run(["config", "init", "--output", str(config)], env)
    assert refused.exit_code == 2
    assert "exists; pass --force" in refused.stderr
    assert config.read_text(encoding="utf-8") == "# mine\n"
    forced = run(["config", "init", "--provider", "zoom", "--output", str(config), "--force"], env)
    assert forced.exit_code == 0, forced.stderr
    assert 'kind = "zoom"' in config.read_text(encoding="utf-8")


def free_port_pair() -> int:
    """A port that is free with the one after it, below the kernel's ephemeral range so that no
    other test's connections or port-0 servers take either between this check and the bind."""
    low, _ = (
        int(part) for part in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    )
    rng = random.Random(os.getpid())
    for _ in range(200):
        first = rng.randrange(max(1024, low - 12_000), low - 1)
        try:
            with socket.socket() as one, socket.socket() as two:
                one.bind(("127.0.0.1", first))
                two.bind(("127.0.0.1", first + 1))
        except OSError:
            continue
        return first
    raise AssertionError("no free pair of ports below the ephemeral range")


def test_simulate_port_puts_the_simulators_on_that_port_and_the_next(tmp_path: Path) -> None:
    from poller.demo.simulation import simulate

    first = free_port_pair()
    with simulate("zoom", tmp_path, first_port=first) as simulation:
        assert simulation.config["siro"]["api_base_url"] == f"http://127.0.0.1:{first}"
        assert simulation.config["provider"]["base_url"].startswith(f"http://127.0.0.1:{first + 1}")
        assert "SIRO_POLLER_PROVIDER__CLIENT_SECRET" in simulation.secrets
        assert "client_secret" not in simulation.config["provider"]


class _Deferred:
    """The endpoint's verifier, once `simulate` has printed what its events are signed with."""

    def __init__(self) -> None:
        self.inner: WebhookVerifier | None = None

    def verify(self, request: WebhookRequest) -> Verified | Refused:
        return Refused("not_ready") if self.inner is None else self.inner.verify(request)


def provider_table(config: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
    """The ready config's [provider] table with its secrets put back from their exports."""
    table = json.loads(json.dumps(config["provider"]))
    for name, value in secrets.items():
        path = name.removeprefix("SIRO_POLLER_").lower().split("__")
        if path[0] != "provider":
            continue
        node = table
        for key in path[1:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return table


@pytest.mark.parametrize("kind", ["ringcentral", "zoom", "aircall", "dialpad", "twilio"])
def test_simulate_events_to_sends_new_calls_events_the_ready_config_verifies(
    kind: str, tmp_path: Path
) -> None:
    deferred = _Deferred()
    with serve_verifier(Endpoint(deferred)) as endpoint:
        endpoint.public_url = endpoint.url
        config_path = tmp_path / "sim.toml"
        with simulate_process(
            tmp_path,
            "--provider",
            kind,
            "--config-out",
            str(config_path),
            "--events-to",
            endpoint.url,
            "--new-call-every",
            "0.5",
        ) as running:
            lines = running.lines
            config = tomllib.loads(config_path.read_text(encoding="utf-8"))
            secrets = exports_of(lines, "# Its secrets")
            settings = adapter_class(kind).settings_model.model_validate(
                provider_table(config, secrets)
            )
            deferred.inner = build_provider(settings).webhook_verifier()
            assert deferred.inner is not None, "the ready config takes no events"
            deadline = time.monotonic() + 30
            while not any(isinstance(o, Verified) and o.nudge for o in endpoint.outcomes):
                assert time.monotonic() < deadline, (lines, endpoint.outcomes)
                time.sleep(0.1)
    port = endpoint.url.split(":")[2].split("/")[0]
    assert config["webhooks"] == {"listen": f"127.0.0.1:{port}"}
    assert config["provider"]["webhook"]["enabled"] is True
    # The events name the new calls by the ids the polls list.
    verified = [o for o in endpoint.outcomes if isinstance(o, Verified) and o.nudge]
    assert all(o.call_ids for o in verified)
