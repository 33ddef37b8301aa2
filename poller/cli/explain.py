"""`siro-poller calls explain`: how a call's rep was attributed and its CRM link decided.

It shows what the row says (``calls.attribution``, ``calls.siro_user_id``), what resolution
would choose now against ``siro_users`` as last synced, whether the two differ, the CRM link
and contact that would be sent, and for a parked call the fix of its error kind
(:mod:`poller.domain.error_kinds`). Nothing is written and nothing is sent to Siro, except
that a connection configured by name is looked up there (as the daemon does on start).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from poller.cli.calls import calls_group, resolve
from poller.cli.root import CliContext, emit_json, emit_table, pass_cli

if TYPE_CHECKING:
    from poller.adapters.siro.settings import SiroSettings
    from poller.domain.attribution import RepRules, UserDirectory
    from poller.domain.crm import CrmRules
    from poller.domain.records import Call


@calls_group.command("explain")
@click.argument("reference", metavar="ID|PROVIDER_CALL_ID")
@click.option("--json", "as_json", is_flag=True, help="The explanation as one JSON document.")
@pass_cli
def explain(cli: CliContext, reference: str, as_json: bool) -> None:
    """How a call was attributed to a rep and linked to CRM records, and what would be sent now."""
    from poller.domain.attribution import ATTRIBUTE_STEP
    from poller.wiring import crm_rules_from_settings

    call = resolve(cli, reference)
    siro = cli.settings.siro
    directory = cli.store.user_directory()
    connection_id, connection_note = _connection(cli, crm_rules_from_settings(siro))
    events = [e for e in cli.store.events_for(call.id) if e.step == ATTRIBUTE_STEP]
    document = explanation(call, directory, siro, connection_id, connection_note)
    document["events"] = [event.to_dict() for event in events]
    if as_json:
        emit_json(document)
        return
    _print(document)


def explanation(
    call: Call,
    directory: UserDirectory,
    siro: SiroSettings,
    connection_id: str | None,
    connection_note: str | None = None,
) -> dict[str, Any]:
    """The `calls explain --json` document, events aside."""
    from poller.domain.crm import contact_of, decide_crm_link
    from poller.domain.error_kinds import error_kind
    from poller.domain.phones import to_e164
    from poller.wiring import crm_rules_from_settings, rep_rules_from_settings

    rules = rep_rules_from_settings(siro)
    stored_user = directory.by_id(call.siro_user_id) if call.siro_user_id else None
    now = _resolve_now(call, directory, rules)
    crm = decide_crm_link(call.raw, crm_rules_from_settings(siro), connection_id)
    contact = contact_of(call, rules.default_region)
    parked = error_kind(call.error_kind)
    return {
        "call": {
            "id": call.id,
            "provider": call.provider,
            "provider_call_id": call.provider_call_id,
            "state": call.state.value,
            "error_kind": call.error_kind,
            "error_fix": parked.fix if parked else None,
        },
        "rep": {
            "email": call.rep_email,
            "phone": call.rep_phone,
            "phone_e164": to_e164(call.rep_phone, rules.default_region),
            "provider_id": call.rep_provider_id,
            "extension": call.rep_extension,
            "name": call.rep_name,
        },
        "stored": {
            "attribution": call.attribution,
            "siro_user_id": call.siro_user_id,
            "siro_user": stored_user.to_dict() if stored_user else None,
        },
        "now": now,
        "differs": _differs(call, now),
        "crm": {
            "linked": crm.link is not None,
            "integration_connection_id": crm.link.integration_connection_id if crm.link else None,
            "crm_objects": [o.model_dump(by_alias=True) for o in crm.link.crm_objects]
            if crm.link
            else [],
            "detail": crm.detail,
            "connection_note": connection_note,
        },
        "contact": {"name": contact.name, "phone": contact.phone},
        "directory": {"users": len(directory), "synced_at": directory.synced_at},
    }


def _resolve_now(call: Call, directory: UserDirectory, rules: RepRules) -> dict[str, Any]:
    from poller.domain.attribution import attribute
    from poller.domain.failures import StepFailure

    try:
        found = attribute(call, directory, rules)
    except StepFailure as failure:
        return {
            "outcome": failure.disposition.value,
            "attribution": None,
            "reason": failure.kind,
            "siro_user_id": None,
            "user_email": None,
            "user_phone": None,
            "detail": failure.message,
        }
    return {
        "outcome": "attributed",
        "attribution": found.method.value,
        "reason": None,
        "siro_user_id": found.siro_user_id,
        "user_email": found.user_email,
        "user_phone": found.user_phone,
        "detail": found.detail,
    }


def _differs(call: Call, now: dict[str, Any]) -> bool | None:
    """Whether today's resolution disagrees with the row; ``None`` if the row has no verdict."""
    attribution: str | None = now["attribution"]
    siro_user_id: str | None = now["siro_user_id"]
    reason: str | None = now["reason"]
    if call.attribution is not None:
        return (call.attribution, call.siro_user_id) != (attribution, siro_user_id)
    if call.error_kind in rep_skip_reasons():
        return call.error_kind != reason
    return None


def _connection(cli: CliContext, rules: CrmRules) -> tuple[str | None, str | None]:
    """The connection id to explain with, and a note when it could not be had."""
    from poller.app import build_siro_client
    from poller.core.crm_connection import resolve_connection_id
    from poller.domain.crm import UnresolvedConnection
    from poller.ports.siro import SiroError

    if rules.connection_name is None or not rules.enabled:
        return rules.connection_id, None
    if cli.settings.siro.api_token is None:
        return None, "the connection name was not looked up: siro.api_token is not set"
    client = build_siro_client(cli.settings)
    try:
        return resolve_connection_id(client, rules), None
    except UnresolvedConnection as exc:
        return None, str(exc)
    except SiroError as exc:
        return None, f"the connection name was not looked up: {exc}"
    finally:
        client.close()


def _print(document: dict[str, Any]) -> None:
    call, rep, stored, now, crm = (document[key] for key in ("call", "rep", "stored", "now", "crm"))
    directory = document["directory"]
    stored_user = stored["siro_user"]
    if stored["attribution"] is not None:
        shown = stored["siro_user_id"] or "no user id (sent as email/phone)"
        if stored_user is not None:
            shown = f"{stored_user['id']} ({_name(stored_user)}, {_status(stored_user)})"
        stored_text = f"{stored['attribution']}: {shown}"
    elif call["error_kind"] in rep_skip_reasons():
        stored_text = f"skipped as {call['error_kind']}"
    else:
        stored_text = "not attributed yet"
    if now["outcome"] == "attributed":
        target = now["siro_user_id"] or " and ".join(
            value for value in (now["user_email"], now["user_phone"]) if value
        )
        now_text = f"{now['attribution']}: {target}"
    else:
        now_text = f"{now['outcome']} as {now['reason']}"
    differs = {True: "yes", False: "no", None: "-"}[document["differs"]]
    synced = directory["synced_at"]
    synced_text = synced.strftime("%Y-%m-%d %H:%M:%SZ") if synced else "never"
    rows = [
        ["call", f"{call['id']} ({call['provider']} {call['provider_call_id']}), {call['state']}"],
        ["rep email", rep["email"]],
        ["rep phone", _phone(rep["phone"], rep["phone_e164"])],
        ["rep provider id", rep["provider_id"]],
        ["rep extension", rep["extension"]],
        ["rep name", rep["name"]],
        ["stored", stored_text],
        ["resolution now", now_text],
        ["why", now["detail"]],
        ["differs from stored", differs],
        ["crm link", crm["detail"]],
        ["contact", ", ".join(v for v in document["contact"].values() if v) or None],
        ["users directory", f"{directory['users']} users, synced {synced_text}"],
    ]
    if call["error_kind"]:
        rows[1:1] = [["error kind", call["error_kind"]], ["fix", call["error_fix"]]]
    if crm["connection_note"]:
        rows.insert(-2, ["crm connection", crm["connection_note"]])
    emit_table(rows, headers=["what", "value"])
    events = document["events"]
    click.echo(f"\nattribution events ({len(events)}):")
    if events:
        emit_table(
            [[e["at"], e["outcome"], e["message"]] for e in events],
            headers=["at", "attribution", "detail"],
        )


def rep_skip_reasons() -> frozenset[str]:
    from poller.domain.attribution import RepSkipReason

    return frozenset(reason.value for reason in RepSkipReason)


def _phone(raw: str | None, e164: str | None) -> str | None:
    if raw is None:
        return None
    if e164 is None:
        return f"{raw} (not a full phone number)"
    return raw if raw == e164 else f"{raw} ({e164})"


def _name(user: dict[str, Any]) -> str:
    name = " ".join(part for part in (user["first_name"], user["last_name"]) if part)
    return name or user["email"] or "no name"


def _status(user: dict[str, Any]) -> str:
    if user["missing_since"] is not None:
        return "no longer listed by Siro"
    return "disabled" if user["disabled"] else "active"
