"""Freshcaller: the call log of a Freshcaller account, through the generic adapter.

What the profile fixes (Freshcaller's v1 API, ``developers.freshcaller.com/api``; where that page
is silent, Freshworks' own Airbyte connector and PostHog's Freshcaller source):

- ``GET https://<subdomain>.freshcaller.com/api/v1/calls`` with ``by_time[from]`` and
  ``by_time[to]`` (ISO 8601 in UTC, written with ``Z``: an offset such as ``+00:00`` is
  refused), ``per_page`` (1 to 1,000) and ``page`` from 1; the calls sit under ``calls`` and
  ``meta.total_pages`` says where the listing ends. Every request says
  ``Accept: application/json``: with ``*/*`` the API answers 404.
- The API key in the ``X-Api-Auth`` header; 50 requests a minute per app and account, a 429
  naming its wait in ``Retry-After``.
- The recording: ``recording.url``. Whether it is the API's recording endpoint (which the docs
  say answers 302 to the file) or a signed link, and for how long it lives, is not documented,
  so it is never trusted from the listing: before each download the call is fetched again
  (``GET /api/v1/calls/{id}``) for a fresh one. The key goes only to the account's own host; a
  redirect to another host is followed without it, and only to hosts ``download_hosts`` allows.

What configuration cannot say, and this module's hook does (:class:`FreshcallerProvider`):

- The call names its agent by Freshcaller user id and name (``assigned_agent_id``,
  ``assigned_agent_name``) but not by email; the email comes from the account's user list
  (``GET /api/v1/users``), read when a call names an agent not seen yet, at most every
  :data:`USERS_REFRESH`; a key that may not read it (403) leaves calls their agent's id and
  name.
- The other party is the participant whose ``participant_type`` is ``Customer`` (the caller on
  an incoming call, the callee on an outgoing one); ``phone_number`` is the account's own line,
  shared by every agent on it, so it is never taken as the rep's phone.
- The duration is ``bill_duration`` in ``bill_duration_unit``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import urljoin

from pydantic import Field, SecretStr, field_validator

from poller.adapters.http import HostRules
from poller.adapters.http.paginators import PageRequest
from poller.adapters.providers.profiles.base import ProfileProvider, ProfileSettings
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.adapters.webhooks.generic import missing_secret
from poller.config_types import MINIMAL
from poller.domain.call_record import TEXT_LIMITS, CallRecord, host_key
from poller.domain.paths import MISSING, dig
from poller.domain.raw_record import field_text
from poller.domain.windows import Window
from poller.ports.provider import PermanentProviderError, RecordPosition

log = logging.getLogger(__name__)

VENDOR_DOMAIN = "freshcaller.com"
MAX_PER_PAGE = 1000
# How often the user list may be read again for an agent id it did not hold.
USERS_REFRESH = timedelta(minutes=10)
# Safety net on the user list: 50 pages of 1,000 users.
MAX_USER_PAGES = 50
_SUBDOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SECONDS_PER_UNIT = {"seconds": 1, "second": 1, "secs": 1, "sec": 1, "minutes": 60, "mins": 60}


class FreshcallerSettings(ProfileSettings):
    """``[provider]`` with ``kind = "freshcaller"``: the calls of a Freshcaller account. Set the
    account's subdomain and the API key; the profile fixes the requests, fields and paging.
    """

    kind: Literal["freshcaller"] = "freshcaller"
    """Which adapter talks to the phone system: "freshcaller" is a Freshcaller account's calls."""
    subdomain: str | None = Field(
        default=None, examples=["acme"], json_schema_extra=MINIMAL, pattern=_SUBDOMAIN.pattern
    )
    """The account's subdomain: "acme" for https://acme.freshcaller.com ("acme.freshcaller.com"
    is read the same)."""
    api_key: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The Freshcaller API key, sent in the X-Api-Auth header; calls are listed as far as its
    agent's role lets it see."""
    page_size: Annotated[int, Field(ge=1, le=MAX_PER_PAGE)] = MAX_PER_PAGE
    """Calls per page, 1 to 1000 (Freshcaller's own bound)."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[90.0])
    """How many days back a first poll or backfill may reach; unset: as far as asked."""
    requests_per_minute: Annotated[int, Field(gt=0)] | None = 40
    """Requests per minute to stay under. Freshcaller allows 50 a minute per app and account;
    the default leaves some to the account's other integrations.
    """

    profile_title: ClassVar[str] = "Freshcaller"

    @field_validator("subdomain", mode="before")
    @classmethod
    def _bare_subdomain(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower().removeprefix("https://").rstrip("/")
            value = value.removesuffix(f".{VENDOR_DOMAIN}")
        return value

    @property
    def api_base_url(self) -> str | None:
        if self.base_url is not None:
            return self.base_url
        return f"https://{self.subdomain}.{VENDOR_DOMAIN}" if self.subdomain else None

    required_keys: ClassVar[Mapping[str, str]] = {"api_key": "the Freshcaller API key"}

    def requirements(self) -> list[str]:
        # Not the base's: its base_url requirement is the subdomain's here.
        missing = missing_secret(self.webhook, key=self.config_key("webhook"))
        if self.api_base_url is None:
            missing.append(
                f"{self.config_key('subdomain')}: required: the account's subdomain (acme for "
                f"acme.{VENDOR_DOMAIN})"
            )
        return missing + self.unset_required_keys()

    def generic_values(self) -> Mapping[str, Any]:
        return {
            "base_url": self.api_base_url,
            "auth": "api_key",
            "api_key_header": "X-Api-Auth",
            "listing": {
                "path": "/api/v1/calls",
                "start_param": "by_time[from]",
                "end_param": "by_time[to]",
                "time_format": "iso8601",
                "items_path": "calls",
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "page_number",
                "page_param": "page",
                "first_page": 1,
                "page_size_param": "per_page",
                "page_size": self.page_size,
                "total_pages_path": "meta.total_pages",
            },
            "fields": {
                "call_id": "id",
                "recording_id": "recording.id",
                "started_at": "created_time",
                "ended_at": None,
                "duration": None,  # bill_duration in its unit, in the hook
                "direction": "direction",
                "rep_email": None,  # from the user list, in the hook
                "rep_phone": None,
                "rep_provider_id": "assigned_agent_id",
                "rep_name": "assigned_agent_name",
                "contact_name": None,  # the Customer participant, in the hook
                "contact_phone": None,
                "recording_url": "recording.url",
            },
            "recording": {
                "refetch_path": "/api/v1/calls/{call_id}",
                "refetch_item_path": "call",
            },
        }


@dataclass(frozen=True)
class _Directory:
    """The account's users by id (their emails), and when it was read."""

    emails: Mapping[str, str | None]
    read_at: datetime


class FreshcallerProvider(ProfileProvider):
    """Freshcaller's calls: the generic adapter plus the hook above."""

    kind: ClassVar[str] = "freshcaller"
    settings_model: ClassVar[type[ProviderSettingsBase]] = FreshcallerSettings

    def __init__(self, settings: FreshcallerSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self._directory: _Directory | None = None

    def host_rules(self) -> HostRules:
        rules = super().host_rules()
        if self.profile.base_url is not None:
            return rules
        # The host built from the subdomain is Freshcaller's, not one the operator named: like
        # a native kind's vendor host it may never resolve to a private address.
        return replace(rules, explicit_hosts=rules.explicit_hosts - {host_key(self.base_url)})

    def before_mapping(self, items: Sequence[Any], window: Window) -> Sequence[Any]:
        agents = {
            agent
            for item in items
            if isinstance(item, Mapping)
            and (agent := field_text(item.get("assigned_agent_id"))) is not None
        }
        directory = self._directory
        unknown = agents - set(directory.emails) if directory else agents
        if unknown and (directory is None or self.clock() - directory.read_at >= USERS_REFRESH):
            try:
                emails = self._read_users()
            except PermanentProviderError as exc:
                if exc.status != 403:
                    raise
                # A key whose role may not list users still lists calls: reps go by id and
                # name (and [siro.rep_map]) until the next try.
                log.warning(
                    "provider %s: Freshcaller refused the user list (403), so calls carry no "
                    "rep email; use an admin's API key in %s",
                    self.name,
                    self.settings.config_key("api_key"),
                )
                emails = {}
            self._directory = _Directory(emails, self.clock())
        return items

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        record = super().map_record(raw, position)
        emails = self._directory.emails if self._directory else {}
        customer = _customer(raw.get("participants"))
        return replace(
            record,
            rep_email=field_text(
                emails.get(record.rep_provider_id or ""), TEXT_LIMITS["rep_email"]
            ),
            contact_phone=field_text(customer.get("caller_number"), TEXT_LIMITS["contact_phone"]),
            contact_name=field_text(customer.get("caller_name"), TEXT_LIMITS["contact_name"]),
            duration_seconds=_duration(raw),
        )

    def _read_users(self) -> dict[str, str | None]:
        emails: dict[str, str | None] = {}
        url = urljoin(self.base_url + "/", "api/v1/users")
        for page in range(1, MAX_USER_PAGES + 1):
            params = {"per_page": str(MAX_PER_PAGE), "page": str(page)}
            body = self.get_json(PageRequest(url, params), f"Freshcaller users page {page}").body
            users = dig(body, "users")
            if users is MISSING or not isinstance(users, list):
                break
            for user in users:
                if isinstance(user, Mapping) and (key := field_text(user.get("id"))):
                    emails[key] = field_text(user.get("email"))
            total = dig(body, "meta.total_pages")
            if not users or not isinstance(total, int) or page >= total:
                break
        return emails


def _customer(participants: object) -> Mapping[str, Any]:
    """The call's Customer participant (the other party), or nothing."""
    if isinstance(participants, list):
        for participant in participants:
            if isinstance(participant, Mapping):
                kind = field_text(participant.get("participant_type")) or ""
                if kind.lower() == "customer":
                    return participant
    return {}


def _duration(raw: Mapping[str, Any]) -> int | None:
    value = raw.get("bill_duration")
    unit = (field_text(raw.get("bill_duration_unit")) or "seconds").lower()
    factor = _SECONDS_PER_UNIT.get(unit)
    if isinstance(value, bool) or not isinstance(value, int | float) or factor is None:
        return None
    return round(value * factor) if value >= 0 else None
