"""Siro's answers as the client reads them: camelCase, unknown fields ignored, either envelope.

Only the parts the client uses are modelled; the domain types (recordings, users, connections)
live in :mod:`poller.domain.siro` and are read with the same leniency.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr
from pydantic.alias_generators import to_camel


class Answer(BaseModel):
    """Part of an answer the client reads: camelCase, unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class MintAnswer(Answer):
    access_token: SecretStr
    access_token_id: str | None = None


class TokenInfo(Answer):
    expires_at: datetime | None = None


class SignedUrlAnswer(Answer):
    upload_url: str
    download_url: str
    expires_at: datetime | None = None
    upload_headers: dict[str, str] | None = None


class AppAnswer(Answer):
    app_name: str | None = None
    # Siro's spec answers "clientID", its quickstart "clientId".
    client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("clientID", "clientId")
    )
    client_secret: SecretStr


def data_object(payload: Any) -> Mapping[str, Any]:
    """Siro wraps some answers in ``data`` and returns others top level; accept either."""
    if isinstance(payload, dict):
        inner = payload.get("data")
        return inner if isinstance(inner, dict) else payload
    return {}


def with_cursor(params: Mapping[str, Any], cursor: str | None) -> dict[str, Any]:
    return {**params, "cursor": cursor} if cursor else dict(params)


def as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso(value: datetime) -> str:
    """A query-string timestamp as Siro writes them: UTC, milliseconds, ``Z``."""
    utc = as_utc(value)
    assert utc is not None
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
