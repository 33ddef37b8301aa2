"""The ``integrationConnectionId`` to send: configured as an id, or looked up by its name."""

from __future__ import annotations

from poller.domain.crm import CrmRules, UnresolvedConnection, choose_connection
from poller.ports.siro import SiroPort


def resolve_connection_id(siro: SiroPort, rules: CrmRules) -> str | None:
    """``siro.integration_connection_id``, or the id of the connection named by
    ``siro.integration_connection_name`` (one ``GET /v1/core/integrations/connections``).

    ``None`` when neither is configured. A name Siro does not know, or knows twice, is an
    :class:`~poller.domain.crm.UnresolvedConnection`; Siro's own errors (``SiroError``) pass
    through.
    """
    if rules.connection_id is not None:
        return rules.connection_id
    if rules.connection_name is None:
        return None
    try:
        return choose_connection(siro.list_connections(), rules.connection_name).id
    except ValueError as exc:
        raise UnresolvedConnection(f"siro.integration_connection_name: {exc}") from None
