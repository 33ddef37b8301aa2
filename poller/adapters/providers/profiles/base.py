"""What every profile shares: settings that build the generic adapter's, and the adapter.

A profile's settings model declares the keys a user may set, with the generic adapter's names
where the meaning is the same (``token``, ``base_url``, the transport limits), and says in
:meth:`ProfileSettings.generic_values` what it fixes. Every key of the generic kind that the
profile does not declare is fixed by it; set in the config, it is refused with
"provider.listing: fixed by the salesloft profile" (see :meth:`ProfileSettings.fixed_keys`,
which the config's messages read).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, ClassVar
from urllib.parse import quote, urljoin

from pydantic import SecretStr, model_validator

from poller.adapters.http.paginators import PageRequest
from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.adapters.webhooks.generic import missing_secret
from poller.adapters.webhooks.settings import GenericWebhookSettings
from poller.domain.call_record import TEXT_LIMITS, CallRecord
from poller.domain.paths import dig
from poller.domain.raw_record import field_text
from poller.domain.states import Direction
from poller.domain.windows import Window
from poller.ports.provider import PermanentProviderError


class ProfileSettings(ProviderSettingsBase):
    """Base of a profile's ``[provider]`` table: the user-facing keys only."""

    # The vendor's name as messages show it ("Salesloft").
    profile_title: ClassVar[str] = ""
    webhook: GenericWebhookSettings = GenericWebhookSettings()
    """This provider's webhook events, which nudge an early poll (see [webhooks])."""

    # The keys this profile cannot work without, each with what it is, for the message that
    # names an unset one ("provider.api_key: required: a Quo API key").
    required_keys: ClassVar[Mapping[str, str]] = {}

    def requirements(self) -> list[str]:
        webhook = missing_secret(self.webhook, key=self.config_key("webhook"))
        return super().requirements() + webhook + self.unset_required_keys()

    def unset_required_keys(self) -> list[str]:
        """A "key: required: what" line for each of :attr:`required_keys` left unset."""
        missing = []
        for key, what in self.required_keys.items():
            value = getattr(self, key)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if not value:
                missing.append(f"{self.config_key(key)}: required: {what}")
        return missing

    @classmethod
    def fixed_keys(cls) -> frozenset[str]:
        """Keys of the generic kind this profile fixes: every one it does not declare."""
        return frozenset(GenericSettings.model_fields) - frozenset(cls.model_fields)

    def generic_values(self) -> Mapping[str, Any]:
        """The generic settings this profile fixes and the user's choices, as generic keys."""
        raise NotImplementedError

    def generic_settings(self) -> GenericSettings:
        """The generic adapter's settings: the shared keys as set, the rest as the profile says."""
        shared = {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name in GenericSettings.model_fields and name != "kind"
        }
        generic = _generic_model(type(self)).model_validate({**shared, **self.generic_values()})
        generic.placed_at(self._config_prefix)
        return generic

    @model_validator(mode="after")
    def _builds_generic_settings(self) -> ProfileSettings:
        # A user's choice the fixed settings cannot take is reported when the config loads.
        self.generic_settings()
        return self


@cache
def _generic_model(profile: type[ProfileSettings]) -> type[GenericSettings]:
    """The generic settings with the profile's vendor hosts and default base URL, so the
    adapter's host rules are a native kind's: credentials to the vendor's own hosts only."""
    fixed = profile.fixed_keys()

    def credential_keys(self: GenericSettings) -> list[str]:
        # A refused credential names only keys the user can set: CallRail's header_template is
        # the profile's, its api_key the user's.
        keys = GenericSettings.credential_keys(self)
        return [key for key in keys if key.rpartition(".")[2] not in fixed]

    return type(
        f"{profile.__name__}Generic",
        (GenericSettings,),
        {
            "__module__": profile.__module__,
            "vendor_hosts": profile.vendor_hosts,
            "default_base_url": profile.default_base_url,
            "credential_keys": credential_keys,
        },
    )


@dataclass(frozen=True)
class ProfileUser:
    """A vendor's user a call names: what Siro's attribution takes of them."""

    email: str | None
    name: str | None


class ProfileProvider(GenericProvider):
    """The generic adapter, on the settings its profile builds; a vendor's subclass adds the
    hook configuration cannot express (see :meth:`GenericProvider.map_record`).

    A vendor whose calls name a user by id only (Salesloft, Outreach, Quo) sets
    ``user_id_path`` and ``user_path``: each user is then read once per process, before the
    page that names them is mapped, and :meth:`with_user` puts their email and name on a record.
    """

    # Where a listed item names its user, and the API path (``{id}`` filled in, relative to
    # base_url) that reads one; None: the profile looks up no user.
    user_id_path: ClassVar[str | None] = None
    user_path: ClassVar[str] = ""
    # Where the user sits in that answer.
    user_body_path: ClassVar[str] = "data"

    def __init__(self, settings: ProfileSettings, **kwargs: Any) -> None:
        self.profile = settings
        super().__init__(settings.generic_settings(), **kwargs)
        # Vendor user id -> the user, or None for one the API no longer has.
        self._users: dict[str, ProfileUser | None] = {}

    def before_mapping(self, items: Sequence[Any], window: Window) -> Sequence[Any]:
        if self.user_id_path is None:
            return items
        for item in items:
            user_id = (
                field_text(dig(item, self.user_id_path)) if isinstance(item, Mapping) else None
            )
            if user_id is not None and self.names_a_user(user_id) and user_id not in self._users:
                self._users[user_id] = self._fetch_user(user_id)
        return items

    def names_a_user(self, user_id: str) -> bool:
        """Whether ``user_id`` is one the user path can read (not a system actor, say)."""
        return True

    def read_user(self, user: Mapping[str, Any]) -> ProfileUser:
        """The user in the vendor's answer."""
        return ProfileUser(field_text(user.get("email")), field_text(user.get("name")))

    def with_user(self, record: CallRecord) -> CallRecord:
        """``record`` with its user's email and name, as looked up (none for an unknown one)."""
        user = self._users.get(record.rep_provider_id or "")
        return replace(
            record,
            rep_email=field_text(user.email, TEXT_LIMITS["rep_email"]) if user else None,
            rep_name=field_text(user.name, TEXT_LIMITS["rep_name"]) if user else None,
        )

    def _fetch_user(self, user_id: str) -> ProfileUser | None:
        path = self.user_path.format(id=quote(user_id, safe=""))
        what = f"{self.profile.profile_title} user {user_id}"
        try:
            page = self.get_json(PageRequest(urljoin(self.base_url + "/", path)), what)
        except PermanentProviderError as exc:
            if exc.status == 404:  # a deleted user: the call keeps its user id only
                return None
            raise
        user = dig(page.body, self.user_body_path)
        return self.read_user(user) if isinstance(user, Mapping) else None


def contact_field(direction: Direction | None, *, outbound: str, inbound: str) -> str | None:
    """The record field that holds the contact's number: the callee's on an outbound call, the
    caller's on an inbound one, none on a call of neither direction."""
    if direction is Direction.OUTBOUND:
        return outbound
    if direction is Direction.INBOUND:
        return inbound
    return None
