"""What the daemon reads from Siro: recordings (for reconciliation), users, CRM connections and
conversation configurations, every page of each."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from urllib.parse import quote

from poller.adapters.siro.auth import SiroAuth
from poller.adapters.siro.exchange import SiroExchange
from poller.adapters.siro.wire import as_utc, data_object, iso, with_cursor
from poller.domain.siro import (
    ConversationConfiguration,
    IntegrationConnection,
    RecordingSummary,
    SiroUser,
)
from poller.ports.siro import SiroPermanentError

PAGE_SIZE = 100


class SiroReads:
    """The read side of :class:`~poller.ports.siro.SiroPort`; thread-safe."""

    def __init__(
        self, *, exchange: SiroExchange, auth: SiroAuth, organization_id: Callable[[], str]
    ) -> None:
        self._exchange = exchange
        self._auth = auth
        self._organization_id = organization_id

    def find_recordings(
        self, created_after: datetime, created_before: datetime | None = None
    ) -> list[RecordingSummary]:
        step = "list-recordings"
        params: dict[str, str | int] = {"dateCreated:gt": iso(created_after), "limit": PAGE_SIZE}
        if created_before is not None:
            params["dateCreated:lt"] = iso(created_before)
        items = self._exchange.pages(
            step,
            lambda cursor: self._auth.gateway(
                step, "GET", "/v1/core/recordings", params=with_cursor(params, cursor)
            ),
        )
        found = [self._exchange.parse(RecordingSummary, item, step) for item in items]
        after, before = as_utc(created_after), as_utc(created_before)
        assert after is not None
        # Reconciliation must not act on a recording outside the window, should Siro ever
        # ignore a filter, so the bounds are checked here too.
        return [
            r
            for r in found
            if r.date_created is None
            or (r.date_created > after and (before is None or r.date_created < before))
        ]

    def get_recording(self, recording_id: str) -> RecordingSummary | None:
        step = "get-recording"
        try:
            response = self._auth.gateway(
                step, "GET", f"/v1/core/recordings/{quote(recording_id, safe='')}"
            )
        except SiroPermanentError as exc:
            if exc.http_status == 404:
                return None
            raise
        return self._exchange.parse(
            RecordingSummary, data_object(self._exchange.json(response, step)), step
        )

    def list_users(self) -> list[SiroUser]:
        step = "users"
        items = self._exchange.pages(
            step,
            lambda cursor: self._auth.external(
                step, "GET", "/v1/core/users", params=with_cursor({"pageSize": PAGE_SIZE}, cursor)
            ),
        )
        return [self._exchange.parse(SiroUser, item, step) for item in items]

    def list_connections(self) -> list[IntegrationConnection]:
        step = "connections"
        items = self._exchange.pages(
            step,
            lambda cursor: self._auth.external(
                step, "GET", "/v1/core/integrations/connections", params=with_cursor({}, cursor)
            ),
        )
        return [self._exchange.parse(IntegrationConnection, item, step) for item in items]

    def list_conversation_configurations(self) -> list[ConversationConfiguration]:
        step = "conversation-configurations"
        params = {"organizationId": self._organization_id()}
        items = self._exchange.pages(
            step,
            lambda cursor: self._auth.gateway(
                step,
                "GET",
                "/v1/core/conversation-configurations",
                params=with_cursor(params, cursor),
            ),
        )
        return [self._exchange.parse(ConversationConfiguration, item, step) for item in items]
