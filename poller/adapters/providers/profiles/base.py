"""What every profile shares: settings that build the generic adapter's, and the adapter.

A profile's settings model declares the keys a user may set, with the generic adapter's names
where the meaning is the same (``token``, ``base_url``, the transport limits), and says in
:meth:`ProfileSettings.generic_values` what it fixes. Every key of the generic kind that the
profile does not declare is fixed by it; set in the config, it is refused with
"provider.listing: fixed by the salesloft profile" (see :meth:`ProfileSettings.fixed_keys`,
which the config's messages read).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any, ClassVar, get_args

from pydantic import SecretStr, model_validator

from poller.adapters.providers.generic import GenericProvider, GenericSettings
from poller.adapters.providers.settings import ProviderSettingsBase


class ProfileSettings(ProviderSettingsBase):
    """Base of a profile's ``[provider]`` table: the user-facing keys only."""

    # The vendor's name as messages show it ("Salesloft").
    profile_title: ClassVar[str] = ""

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
    adapter's host rules are a native kind's: credentials to the vendor's own hosts only. A
    refused credential names the profile's own secret keys (the user set those, not the
    generic ones the profile builds from them)."""
    secrets = [
        name
        for name, info in profile.model_fields.items()
        if SecretStr in (info.annotation, *get_args(info.annotation))
    ]

    def credential_keys(self: GenericSettings) -> list[str]:
        return [self.config_key(name) for name in secrets]

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


class ProfileProvider(GenericProvider):
    """The generic adapter, on the settings its profile builds; a vendor's subclass adds the
    hook configuration cannot express (see :meth:`GenericProvider.map_record`)."""

    def __init__(self, settings: ProfileSettings, **kwargs: Any) -> None:
        self.profile = settings
        super().__init__(settings.generic_settings(), **kwargs)
