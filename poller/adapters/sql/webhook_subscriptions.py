"""The SQL side of :class:`poller.ports.store.WebhookStore`: ``webhook_subscriptions``.

One row per provider, written by upsert: a check replaces the subscription's columns and
leaves ``last_event_at`` alone; an event's arrival moves ``last_event_at`` forward only, so a
slow writer holding an older time never moves it back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, select
from sqlalchemy.dialects import postgresql, sqlite

from poller.adapters.sql.database import read_transaction, write_transaction
from poller.adapters.sql.models import webhook_subscriptions_table as subscriptions
from poller.domain.redaction import mask_url_query, mask_urls_in_text
from poller.ports.store import SavedSubscription
from poller.ports.webhooks import Subscription, SubscriptionState


def stored_url(url: str | None) -> str | None:
    """The address as kept: a vendor may hand back a URL carrying a token in its query."""
    return None if url is None else mask_url_query(url)


def stored_detail(detail: str) -> str:
    return mask_urls_in_text(detail)


class SqlWebhookSubscriptions:
    """Mixed into :class:`poller.adapters.sql.store.SqlStore`."""

    engine: Engine

    def _upsert(self) -> Any:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(subscriptions)

    def save_webhook_subscription(self, subscription: Subscription, checked_at: datetime) -> None:
        values = {
            "state": subscription.state.value,
            "vendor_id": subscription.vendor_id,
            "url": stored_url(subscription.url),
            "expires_at": subscription.expires_at,
            "detail": stored_detail(subscription.detail),
            "checked_at": checked_at,
        }
        statement = self._upsert().values(provider=subscription.provider, **values)
        with write_transaction(self.engine) as conn:
            conn.execute(statement.on_conflict_do_update(index_elements=["provider"], set_=values))

    def webhook_event_arrived(self, provider: str, at: datetime) -> None:
        statement = self._upsert().values(provider=provider, last_event_at=at)
        current = subscriptions.c.last_event_at
        later = case(
            (current.is_(None), statement.excluded.last_event_at),
            (current < statement.excluded.last_event_at, statement.excluded.last_event_at),
            else_=current,
        )
        with write_transaction(self.engine) as conn:
            conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["provider"], set_={"last_event_at": later}
                )
            )

    def webhook_subscription_states(self) -> list[SavedSubscription]:
        with read_transaction(self.engine) as conn:
            rows = conn.execute(select(subscriptions).order_by(subscriptions.c.provider)).all()
        return [
            SavedSubscription(
                provider=row.provider,
                state=SubscriptionState(row.state) if row.state is not None else None,
                vendor_id=row.vendor_id,
                url=row.url,
                expires_at=row.expires_at,
                detail=row.detail,
                checked_at=row.checked_at,
                last_event_at=row.last_event_at,
            )
            for row in rows
        ]
