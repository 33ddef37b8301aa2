"""`siro-poller webhooks ...`: the vendors' webhook subscriptions that nudge early polls.

`webhooks subscribe` creates, renews or re-enables a provider's subscription where its vendor
has an API for it (RingCentral, Aircall, Dialpad), and prints the console steps where it has
none (Zoom, Twilio, the generic kind); `webhooks status` shows how each stands and when an
event last arrived. An event only ever nudges a poll: a lost subscription costs latency,
never a call.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import click

from poller.cli.output import shown
from poller.cli.root import (
    EXIT_FAILURE,
    CliContext,
    ConfigProblem,
    UserError,
    emit_json,
    emit_table,
    main_group,
    pass_cli,
    selected_providers,
)
from poller.domain.clock import human_age, utcnow

if TYPE_CHECKING:
    from pydantic import SecretStr

    from poller.adapters.providers.settings import ProviderSettingsBase
    from poller.config import Settings
    from poller.ports.store import SavedSubscription
    from poller.ports.webhooks import Subscription, WebhookSubscriptions

# Plain http only to this machine: the simulators. A vendor posts to the TLS proxy's https://.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@runtime_checkable
class ChoosesItsSecret(Protocol):
    """A vendor that chooses the webhook's secret itself (Aircall's token) and hands it over
    once, when the subscription is made or found."""

    def created_token(self) -> SecretStr | None: ...


@main_group.group("webhooks")
def webhooks_group() -> None:
    """Webhook subscriptions: create, renew or re-enable them; see how each stands."""


@webhooks_group.command("subscribe")
@click.option("--provider", "name", required=True, help="The provider (its name in the config).")
@click.option(
    "--url",
    help="The address the vendor posts to (default: the provider's webhook.public_url); "
    "https://, or http:// on 127.0.0.1 or localhost only (the simulators).",
)
@pass_cli
def subscribe(cli: CliContext, name: str, url: str | None) -> None:
    """Create the provider's webhook subscription, or renew or re-enable the one there is.

    Where the vendor has no subscription API, print the steps to take in its console. The
    state is saved for `webhooks status`, `status` and /healthz. Exits 1 when the vendor
    refused or left the subscription inactive, 2 on a config or usage problem.
    """
    from poller.core.webhook_subscriptions import (
        WORKING_STATES,
        advice,
        manual_subscription,
    )
    from poller.ports.provider import ProviderError

    settings = cli.settings
    (name,) = selected_providers(settings, (name,))
    entry = settings.provider_named(name)
    if not entry.webhook.enabled:
        raise ConfigProblem(
            f"{entry.config_key('webhook.enabled')} is false: the receiver would refuse this "
            "provider's events; set it to true (with [webhooks] listen) and restart, then "
            "subscribe"
        )
    address = url or entry.webhook.public_url
    if address is None:
        raise ConfigProblem(
            f"no address to subscribe: set {entry.config_key('webhook.public_url')} (the "
            "https:// address of the proxy in front of the receiver) or give --url"
        )
    check_address(address, "--url" if url else entry.config_key("webhook.public_url"))
    api = _subscriptions(settings, cli, name)
    steps = _generic_steps(entry, address) if api is None else api.console_steps(address)
    now = utcnow()
    if api is not None and steps is None:
        try:
            result = api.subscribe(address)
        except ProviderError as exc:
            raise UserError(f"{name}: no subscription was made: {exc}") from None
        cli.store.save_webhook_subscription(result, now)
        click.echo(_describe(result))
        if isinstance(api, ChoosesItsSecret):
            _show_chosen_secret(entry, api.created_token())
        if result.state not in WORKING_STATES:
            click.echo(f"  to do: {advice(name, result.state)}")
            raise SystemExit(EXIT_FAILURE)
        return
    click.echo(f"{name}: this vendor's webhook is set up in its console:")
    for number, step in enumerate(steps or (), start=1):
        # Some vendors' steps come numbered already: never "1. 1. ...".
        numbered = step if step.startswith(f"{number}. ") else f"{number}. {step}"
        click.echo(f"  {shown(numbered)}")
    cli.store.save_webhook_subscription(manual_subscription(name, address), now)
    click.echo("saved as manual; `siro-poller webhooks status` shows when an event arrives")


def _show_chosen_secret(entry: ProviderSettingsBase, chosen: SecretStr | None) -> None:
    """The secret the vendor chose, on this terminal only (never logged, never saved), unless
    webhook.secret holds it already."""
    import hmac

    if chosen is None:
        return
    key = entry.config_key("webhook.secret")
    configured = entry.webhook.secret
    if configured is not None and hmac.compare_digest(
        configured.get_secret_value().encode(), chosen.get_secret_value().encode()
    ):
        click.echo(f"  {key} holds the token the vendor gave this webhook")
        return
    click.echo(
        f"  the vendor chose this webhook's token; set {key} to it, then restart (shown "
        f"here only, kept nowhere): {chosen.get_secret_value()}"
    )
    click.echo(
        "  until then its events are refused (401) and calls arrive by the poll only; a "
        "vendor may switch off a webhook whose events keep failing"
    )


def check_address(url: str, source: str = "--url") -> None:
    """Refuse an address a vendor must not post to: no host, or plain http to another host;
    ``source`` names where it came from (the option or the config key)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        raise click.UsageError(f"{source} {url}: not an http(s) address with a host")
    if parts.scheme == "http" and host not in LOCAL_HOSTS:
        raise click.UsageError(
            f"{source} {url}: vendors must post over https:// (put a TLS proxy in front of "
            "the receiver); plain http:// is only for 127.0.0.1 or localhost (the simulators)"
        )


def _subscriptions(settings: Settings, cli: CliContext, name: str) -> WebhookSubscriptions | None:
    from poller.app import build_provider
    from poller.core.webhook_subscriptions import subscriptions_of

    return subscriptions_of(
        build_provider(settings, name, engine=cli.store.engine, to_subscribe=True)
    )


def _generic_steps(entry: ProviderSettingsBase, url: str) -> list[str]:
    """For a kind with nothing to manage (generic, profiles): what to set in the vendor."""
    from poller.adapters.webhooks.settings import GenericWebhookSettings

    webhook = entry.webhook
    steps = [
        f"In the vendor's console, point its webhook for finished calls (or ready "
        f"recordings) at {url}",
    ]
    if isinstance(webhook, GenericWebhookSettings) and webhook.scheme == "hmac":
        steps.append(
            f"Have it sign the raw body with HMAC-{webhook.hmac_algorithm.upper()} "
            f"({webhook.hmac_encoding}) in the header {webhook.header}, with the key that "
            f"{entry.config_key('webhook.secret')} holds"
        )
    elif isinstance(webhook, GenericWebhookSettings):
        steps.append(
            f"Have it send the shared token in the header {webhook.header}; the same token "
            f"goes in {entry.config_key('webhook.secret')}"
        )
    else:
        steps.append(
            f"Set the secret the vendor shows (or you give it) in "
            f"{entry.config_key('webhook.secret')}"
        )
    steps.append(
        "Send a test event: `siro-poller webhooks status` shows when it arrived "
        "(nothing arrives: check the proxy and [webhooks] listen)"
    )
    return steps


def _describe(subscription: Subscription) -> str:
    parts = [f"{subscription.provider}: {subscription.state.value}"]
    if subscription.vendor_id:
        parts.append(f"id {shown(subscription.vendor_id)}")
    if subscription.expires_at:
        parts.append(f"expires {subscription.expires_at:%Y-%m-%d %H:%M:%SZ}")
    if subscription.detail:
        parts.append(shown(subscription.detail))
    return ", ".join(parts)


@webhooks_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
@click.option(
    "--offline",
    is_flag=True,
    help="Show the states saved in the database without asking the vendors.",
)
@pass_cli
def status(cli: CliContext, as_json: bool, offline: bool) -> None:
    """Each enabled webhook: the vendor's subscription state (asked live where it has an
    API, and saved), its expiry, when an event last arrived, and what to do when it is not
    active. Exits 1 when one needs action (blacklisted, deactivated, missing, never set up)
    or its vendor could not be asked."""
    from poller.wiring import webhook_providers

    settings = cli.settings
    names = webhook_providers(settings)
    now = utcnow()
    asked: set[str] = set()
    errors: dict[str, str] = {}
    if not offline:
        asked, errors = _check_live(settings, cli, names, now)
    saved = {row.provider: row for row in cli.store.webhook_subscription_states()}
    rows = [_row(name, saved.get(name), errors.get(name), live=name in asked) for name in names]
    if as_json:
        emit_json(rows)
    elif not names:
        click.echo("webhooks: no provider has webhook.enabled = true")
    else:
        _print(rows, now)
    if any(row["action"] for row in rows):
        raise SystemExit(EXIT_FAILURE)


def _check_live(
    settings: Settings, cli: CliContext, names: tuple[str, ...], now: datetime
) -> tuple[set[str], dict[str, str]]:
    """Ask each vendor with an API and save what it says; returns the providers asked and
    the errors by provider."""
    from poller.config import ConfigError
    from poller.core.webhook_subscriptions import check_subscriptions
    from poller.wiring import subscription_targets

    adapters: dict[str, object] = {}
    errors: dict[str, str] = {}
    for name in names:
        try:
            adapters[name] = _adapter(settings, cli, name)
        except ConfigError as exc:
            errors[name] = "; ".join(exc.problems)
    targets = subscription_targets(settings, adapters)
    for check in check_subscriptions(targets, cli.store, now):
        if check.error is not None:
            errors[check.provider] = check.error
    asked = {
        target.provider
        for target in targets
        if target.subscriptions.console_steps(target.url or "") is None
    }
    return asked, errors


def _adapter(settings: Settings, cli: CliContext, name: str) -> object:
    from poller.app import build_provider

    return build_provider(settings, name, engine=cli.store.engine)


def _row(
    name: str, saved: SavedSubscription | None, error: str | None, *, live: bool
) -> dict[str, Any]:
    from poller.core.webhook_subscriptions import WORKING_STATES, advice

    state = saved.state if saved is not None else None
    action = None if state in WORKING_STATES else advice(name, state)
    if state is None and saved is not None and saved.last_event_at is not None:
        action = None  # never checked, but its events arrive: set up in a console, and working
    if error is not None:
        action = f"the vendor could not be asked ({error}); the state shown is the last saved"
    return {
        "provider": name,
        "state": state.value if state is not None else None,
        "vendor_id": saved.vendor_id if saved else None,
        "url": saved.url if saved else None,
        "expires_at": saved.expires_at if saved else None,
        "detail": saved.detail if saved else "",
        "checked_at": saved.checked_at if saved else None,
        "last_event_at": saved.last_event_at if saved else None,
        # Whether the state shown is what the vendor said just now.
        "live": live and error is None,
        "error": error,
        "action": action,
    }


def _print(rows: list[dict[str, Any]], now: datetime) -> None:
    emit_table(
        [
            [
                row["provider"],
                row["state"] or "unknown",
                row["vendor_id"],
                row["expires_at"],
                _ago(row["last_event_at"], now),
                row["checked_at"],
            ]
            for row in rows
        ],
        headers=["provider", "state", "vendor id", "expires", "last event", "checked"],
    )
    for row in rows:
        if row["action"]:
            click.echo(f"{row['provider']}: {shown(row['action'])}")


def _ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    return f"{human_age(now - when)} ago"
