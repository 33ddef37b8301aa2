"""Webhook events from the simulators, to rehearse the nudges (`siro-poller simulate
--events-to`): the ready config takes the events, and a new call ends and is announced by its
simulated phone system, signed as its vendor signs, every few seconds."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

import requests

from poller.config import env_name
from poller.demo.simulation import Simulation
from poller.simulators.fresh_calls import VendorEvents, fresh_call

# The kinds whose vendor announces a finished call with a webhook event.
EVENT_KINDS = ("ringcentral", "zoom", "aircall", "dialpad", "twilio")


def send_events(simulation: Simulation, url: str, secret: str | None) -> VendorEvents:
    """Point the simulator's events at ``url``, and the ready config's receiver and webhook
    at them (``secret`` among its secrets, a new random one by default); the simulator's
    event side."""
    events = cast("VendorEvents", simulation.seeded.events)
    if secret is None and simulation.kind != "twilio":
        secret = secrets.token_urlsafe(24)
    # Twilio signs with the Auth Token unless a Webhook Rule's key (the secret) is given.
    events.send_events_to(url, secret)
    parts = urlsplit(url)
    listen = f"{parts.hostname or '127.0.0.1'}:{parts.port or 80}"
    webhook: dict[str, object] = {"enabled": True}
    plain: dict[tuple[str, ...], str] = {
        ("webhooks", "listen"): listen,
        ("provider", "webhook", "enabled"): "true",
    }
    if simulation.kind == "twilio":
        # Twilio signs the URL it posts to: here the receiver's own, with no proxy between.
        webhook["public_url"] = plain[("provider", "webhook", "public_url")] = url
    simulation.config["webhooks"] = {"listen": listen}
    simulation.config["provider"]["webhook"] = webhook
    simulation.overrides.update({env_name(path): value for path, value in plain.items()})
    if secret is not None:
        name = env_name(("provider", "webhook", "secret"))
        simulation.secrets[name] = simulation.overrides[name] = secret
    return events


def announce_new_calls(
    events: VendorEvents, every: float, stop: threading.Event, echo: Callable[[str], None]
) -> None:
    """A call ends every ``every`` seconds and the simulator announces it, until ``stop``;
    ``echo`` tells what the receiver answered."""
    n = 0
    while not stop.wait(every):
        n += 1
        call_id = fresh_call(events, n)
        try:
            statuses = events.announce(call_id)
        except requests.RequestException as exc:
            echo(f"# new call {call_id}: its event was not delivered ({type(exc).__name__})")
            continue
        answered = ", ".join(str(status) for status in statuses) or "none"
        echo(f"# new call {call_id}: its event answered {answered}")
