"""`siro-poller siro ...`: set up the Siro side and look up the ids the config needs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from poller.cli.output import shown
from poller.cli.root import (
    CliContext,
    ConfigProblem,
    UserError,
    config_problem,
    emit_json,
    emit_table,
    main_group,
    pass_cli,
)
from poller.domain.clock import utcnow

if TYPE_CHECKING:
    from poller.adapters.siro import SiroHttpClient

# The settings `create-app` sends or needs. siro.client_id and siro.client_secret are what it
# creates, so their placeholders are expected at this point and not refused.
CREATE_APP_KEYS = (
    "siro.api_token",
    "siro.external_api_base_url",
    "siro.organization_id",
    "siro.token_user_id",
)
# `--owner USER_ID` as the help and the errors write it, pasted as it is.
OWNER_METAVAR = "USER_ID"
LISTS_IDS = " (`siro-poller siro users` lists the ids)"

# The credential path is the one systemd/install.sh writes and its unit drop-in loads.
SHOWN_ONCE_WARNING = (
    "warning: Siro shows this client secret only once. Store it now: for the systemd service, "
    "`systemd/install.sh credential siro.client_secret` (in the source checkout) encrypts it "
    "into /etc/siro-poller/credentials/siro.client_secret; elsewhere set "
    "SIRO_POLLER_SIRO__CLIENT_SECRET. Then set siro.client_id."
)


@main_group.group("siro")
def siro_group() -> None:
    """Talk to Siro: create the OAuth app, list and sync users, connections, conversation types."""


@contextmanager
def siro_client(cli: CliContext) -> Iterator[SiroHttpClient]:
    """A client for one command; Siro's errors become one-line messages, no traceback."""
    from poller.app import build_siro_client
    from poller.ports.siro import SiroError

    if cli.settings.siro.api_token is None:
        raise ConfigProblem(
            "siro.api_token (the organization API token) is not set; "
            "set SIRO_POLLER_SIRO__API_TOKEN or the credential file siro.api_token",
        )
    client = build_siro_client(cli.settings)
    try:
        yield client
    except SiroError as exc:
        raise UserError(str(exc)) from None
    finally:
        client.close()


@siro_group.command("create-app")
@click.option("--name", required=True, help="Name of the OAuth app in Siro.")
@click.option(
    "--owner",
    metavar=OWNER_METAVAR,
    help="Siro user id that owns the app (default: siro.token_user_id).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
@pass_cli
def create_app(cli: CliContext, name: str, owner: str | None, as_json: bool) -> None:
    """Create the OAuth app the daemon mints its upload tokens with.

    Prints the client id and the client secret. Siro shows the secret this one time only.
    """
    from poller.ports.siro import SiroCreateOutcomeUnknown

    refuse_placeholders(cli, owner)
    owner = owner or cli.settings.siro.token_user_id
    if not owner:
        raise ConfigProblem(
            f"no owner for the app: pass --owner {OWNER_METAVAR} or set siro.token_user_id"
            + LISTS_IDS,
        )
    with siro_client(cli) as client:
        try:
            app = client.create_oauth_app(name, owner)
        except SiroCreateOutcomeUnknown as exc:
            raise UserError(
                f"{exc}. The app may exist now: look for {name!r} among the OAuth apps in Siro "
                "before creating another."
            ) from None
    secret = app.client_secret.get_secret_value()
    if as_json:
        emit_json({"app_name": app.app_name, "client_id": app.client_id, "client_secret": secret})
    else:
        click.echo(f"client_id: {app.client_id}")
        click.echo(f"client_secret: {secret}")
    click.echo(SHOWN_ONCE_WARNING, err=True)


def refuse_placeholders(cli: CliContext, owner: str | None) -> None:
    """Exit 2 naming each setting `create-app` would send while still the example's
    placeholder: Siro would refuse it or, worse, make an app owned by no real user."""
    from poller.config_checks import is_placeholder, placeholder_findings

    problems = []
    for finding in placeholder_findings(cli.settings):
        if finding.key == "siro.token_user_id":
            if not owner:  # --owner replaces it
                problems.append(f"{finding.line()}, or pass --owner {OWNER_METAVAR}{LISTS_IDS}")
        elif finding.key in CREATE_APP_KEYS:
            problems.append(finding.line())
    if owner and (is_placeholder(owner) or owner.strip().upper() == OWNER_METAVAR):
        problems.append(f"--owner {owner!r} is a placeholder, not a Siro user id{LISTS_IDS}")
    if problems:
        raise config_problem(problems)


@siro_group.command("users")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_cli
def users(cli: CliContext, as_json: bool) -> None:
    """List the organization's Siro users: the ids for siro.token_user_id and rep mapping."""
    with siro_client(cli) as client:
        found = client.list_users()
    if as_json:
        emit_json([user.model_dump() for user in found])
        return
    emit_table(
        [
            (u.id, u.full_name, u.email, u.phone_number, "disabled" if u.disabled else "")
            for u in found
        ],
        headers=["id", "name", "email", "phone", "status"],
    )


@siro_group.command("connections")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_cli
def connections(cli: CliContext, as_json: bool) -> None:
    """List CRM integration connections: the ids to send as integrationConnectionId."""
    with siro_client(cli) as client:
        found = client.list_connections()
    if as_json:
        emit_json([connection.model_dump() for connection in found])
        return
    emit_table(
        [(c.id, c.name, c.integration_platform, c.is_active) for c in found],
        headers=["id", "name", "platform", "active"],
    )


@siro_group.command("conversation-types")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@pass_cli
def conversation_types(cli: CliContext, as_json: bool) -> None:
    """List conversation types: the values for siro.conversation_type."""
    with siro_client(cli) as client:
        found = client.list_conversation_configurations()
    if as_json:
        emit_json([configuration.model_dump() for configuration in found])
        return
    emit_table(
        [(c.conversation_type, c.display_name, c.id) for c in found],
        headers=["conversation_type", "name", "id"],
    )


@siro_group.command("sync-users")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@pass_cli
def sync_users_command(cli: CliContext, as_json: bool) -> None:
    """Copy Siro's users into the siro_users table now.

    The daemon does this on start and every siro.users_refresh_minutes. Users Siro no longer
    lists are kept and marked (missing_since); disabled users are kept with disabled = true.
    """
    from poller.core.users_sync import UsersSyncError, sync_users

    store = cli.store  # first, so a database that needs `db upgrade` is named before any call
    with siro_client(cli) as client:
        try:
            result = sync_users(
                client, store, utcnow(), default_region=cli.settings.siro.phone_default_region
            )
        except UsersSyncError as exc:
            raise UserError(str(exc)) from None
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(shown(result.summary()))
