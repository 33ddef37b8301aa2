"""Which CRM records a recording links to, and who the customer was. Pure: no I/O.

Siro links a recording to CRM records when the create body carries both
``integrationConnectionId`` (the connected CRM) and ``crmObjects`` (``{objectType, objectId}``
of records Siro already synced for that connection), and takes neither without the other. The
ids come from the provider's raw call record, by ``[siro.crm] objects``: a dotted path (read as
the generic adapter reads its fields) mapped to an object type.

The rule here is both or neither, always:

- no id found in the record: no link; ``contactName``/``contactPhone`` let Siro suggest one;
- ids found but no connection (a configured name that did not resolve): no link either, and
  the decision's ``detail`` says so. Sending the objects alone would be refused by Siro.

``contactName`` and ``contactPhone`` (E.164, see :mod:`poller.domain.phones`) are sent in every
case; Siro ignores them when CRM objects are passed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from poller.domain.paths import MISSING, dig
from poller.domain.phones import to_e164
from poller.domain.records import Call
from poller.domain.siro import CrmObject, CrmObjectType, IntegrationConnection


@dataclass(frozen=True, slots=True)
class CrmRules:
    """``siro.integration_connection_id`` or ``_name``, and the ``[siro.crm] objects`` mapping."""

    connection_id: str | None = None
    connection_name: str | None = None
    objects: tuple[tuple[str, CrmObjectType], ...] = ()  # (dotted path, object type), in order

    @property
    def enabled(self) -> bool:
        return bool(self.objects)


@dataclass(frozen=True, slots=True)
class CrmLink:
    """A connection and at least one CRM object: what Siro needs to link, together."""

    integration_connection_id: str
    crm_objects: tuple[CrmObject, ...]

    def __post_init__(self) -> None:
        if not self.integration_connection_id or not self.crm_objects:
            raise ValueError("a CRM link needs a connection id and at least one object")

    def body_fields(self) -> dict[str, Any]:
        """The CRM fields of :class:`~poller.domain.siro.RecordingCreate`."""
        return {
            "integration_connection_id": self.integration_connection_id,
            "crm_objects": self.crm_objects,
        }

    def describe(self) -> str:
        shown = ", ".join(f"{o.object_type} {o.object_id}" for o in self.crm_objects)
        return f"{shown} through connection {self.integration_connection_id}"


@dataclass(frozen=True, slots=True)
class CrmDecision:
    """The link to send (or none) and a sentence saying why, for the audit log."""

    link: CrmLink | None
    detail: str
    found: tuple[CrmObject, ...] = ()  # every object the record named, linked or not


def decide_crm_link(
    raw: Mapping[str, Any] | None, rules: CrmRules, connection_id: str | None
) -> CrmDecision:
    """What to send for ``raw`` (the provider's record) under ``rules``.

    ``connection_id`` is the resolved ``integrationConnectionId``: ``rules.connection_id``, or
    the id of the connection named ``rules.connection_name``, or ``None`` if that lookup failed.
    """
    if not rules.enabled:
        return CrmDecision(None, "no CRM mapping is configured ([siro.crm] objects)")
    found = crm_objects_in(raw, rules)
    paths = ", ".join(path for path, _ in rules.objects)
    if not found:
        return CrmDecision(
            None, f"the record holds no CRM id at {paths}; contact name and phone go instead"
        )
    if not connection_id:
        shown = ", ".join(f"{o.object_type} {o.object_id}" for o in found)
        wanted = (
            f"the connection named {rules.connection_name!r} was not found"
            if rules.connection_name
            else "no integration connection is configured"
        )
        return CrmDecision(
            None,
            f"warning: the record names {shown}, but {wanted}; sent without a CRM link "
            "(Siro takes crmObjects only with integrationConnectionId)",
            found,
        )
    link = CrmLink(connection_id, found)
    return CrmDecision(link, f"linked to {link.describe()}", found)


def crm_link(
    raw: Mapping[str, Any] | None, rules: CrmRules, connection_id: str | None
) -> CrmLink | None:
    """The link to send for ``raw``: connection and objects both, or ``None``."""
    return decide_crm_link(raw, rules, connection_id).link


def crm_objects_in(raw: Mapping[str, Any] | None, rules: CrmRules) -> tuple[CrmObject, ...]:
    """The CRM objects the record names, in mapping order, each once.

    A path may hold one id (text or a whole number) or a list of them. Anything else there
    (an object, true/false, a fraction) is no id and is left out.
    """
    if raw is None:
        return ()
    objects: list[CrmObject] = []
    for path, object_type in rules.objects:
        value = dig(raw, path)
        values = value if isinstance(value, list) else [value]
        for item in values:
            object_id = _object_id(item)
            if object_id is None:
                continue
            found = CrmObject(object_type=object_type, object_id=object_id)
            if found not in objects:
                objects.append(found)
    return tuple(objects)


def _object_id(value: Any) -> str | None:
    if value is MISSING or isinstance(value, bool):
        return None
    if isinstance(value, int | str):
        text = str(value).strip()
        return text or None
    return None


class UnresolvedConnection(Exception):
    """``siro.integration_connection_name`` names no Siro connection, or several: a setting a
    person has to fix, not something a retry mends."""


def choose_connection(
    connections: Sequence[IntegrationConnection], name: str
) -> IntegrationConnection:
    """The connection called ``name`` (any case); raises ``ValueError`` if none or several are.

    When several share the name, an active one wins if it is the only active one.
    """
    wanted = name.strip().lower()
    named = [c for c in connections if (c.name or "").strip().lower() == wanted]
    if len(named) > 1:
        active = [c for c in named if c.is_active]
        named = active if len(active) == 1 else named
    if len(named) == 1:
        return named[0]
    if not named:
        known = ", ".join(repr(c.name) for c in connections if c.name) or "none"
        raise ValueError(
            f"Siro has no integration connection named {name!r} (it has: {known}); "
            "`siro-poller siro connections` lists them"
        )
    ids = ", ".join(c.id for c in named)
    raise ValueError(
        f"several integration connections are named {name!r} ({ids}); set "
        "siro.integration_connection_id to one of them instead"
    )


@dataclass(frozen=True, slots=True)
class Contact:
    """The customer on the call: Siro's fallback for suggesting a CRM link."""

    name: str | None
    phone: str | None  # E.164, extension dropped

    def body_fields(self) -> dict[str, str]:
        """The contact fields of :class:`~poller.domain.siro.RecordingCreate`, unset left out."""
        fields = {"contact_name": self.name, "contact_phone": self.phone}
        return {key: value for key, value in fields.items() if value is not None}


def contact_of(call: Call, default_region: str) -> Contact:
    """The call's contact; a phone that is no full number (``anonymous``, ``204``) is left out."""
    name = call.contact_name.strip() if call.contact_name else None
    return Contact(name=name or None, phone=to_e164(call.contact_phone, default_region))
