"""Which adapter serves which ``kind``: the one table a new provider is added to.

Each kind names the module that owns its adapter class and its settings model (vdirsyncer's
``cli/utils.py`` maps a storage ``type`` the same way). The config validates ``[provider]`` and
``[[providers]]`` tables against the union of the settings models listed here.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING

from poller.adapters.providers.settings import ProviderSettingsBase
from poller.config_types import ConfigError
from poller.ports.token_store import OAuthTokenStore

if TYPE_CHECKING:
    from poller.adapters.providers.base import ProviderAdapter

KINDS: dict[str, str] = {
    "generic": "poller.adapters.providers.generic:GenericProvider",
    "aircall": "poller.adapters.providers.aircall:AircallProvider",
    "dialpad": "poller.adapters.providers.dialpad:DialpadProvider",
    "ringcentral": "poller.adapters.providers.ringcentral:RingCentralProvider",
    "zoom": "poller.adapters.providers.zoom:ZoomProvider",
    "twilio": "poller.adapters.providers.twilio:TwilioProvider",
    # Profiles: the generic adapter, configured for one vendor (profiles/<vendor>.py).
    "salesloft": "poller.adapters.providers.profiles.salesloft:SalesloftProvider",
    "cloudtalk": "poller.adapters.providers.profiles.cloudtalk:CloudTalkProvider",
    "callrail": "poller.adapters.providers.profiles.callrail:CallRailProvider",
    "freshcaller": "poller.adapters.providers.profiles.freshcaller:FreshcallerProvider",
    "justcall": "poller.adapters.providers.profiles.justcall:JustCallProvider",
    "outreach": "poller.adapters.providers.profiles.outreach:OutreachProvider",
    "webex": "poller.adapters.providers.profiles.webex:WebexProvider",
    "8x8": "poller.adapters.providers.profiles.eightbyeight:EightByEightProvider",
    "vonage": "poller.adapters.providers.profiles.vonage:VonageProvider",
    "quo": "poller.adapters.providers.profiles.quo:QuoProvider",
}


@cache
def adapter_class(kind: str) -> type[ProviderAdapter[ProviderSettingsBase]]:
    """The adapter class of ``kind``; raises ``KeyError`` for a kind not listed in :data:`KINDS`."""
    module_name, _, class_name = KINDS[kind].partition(":")
    adapter: type[ProviderAdapter[ProviderSettingsBase]] = getattr(
        importlib.import_module(module_name), class_name
    )
    return adapter


def settings_models() -> list[type[ProviderSettingsBase]]:
    return [adapter_class(kind).settings_model for kind in KINDS]


def build_provider(
    settings: ProviderSettingsBase, *, token_store: OAuthTokenStore | None = None
) -> ProviderAdapter[ProviderSettingsBase]:
    """The adapter ``settings.kind`` names; raises :class:`ConfigError` for unset needs.

    ``token_store`` keeps the OAuth tokens that must outlive the process (see
    :func:`needs_token_store`)."""
    problems = missing_settings(settings)
    if problems:
        raise ConfigError(problems)
    return adapter_class(settings.kind)(settings, token_store=token_store)


def needs_token_store(settings: ProviderSettingsBase) -> bool:
    """Whether this provider keeps OAuth tokens in the state database (a rotating refresh
    token): its adapter then needs a token store."""
    check = getattr(settings, "needs_token_store", None)
    return bool(check()) if callable(check) else False


def missing_settings(settings: ProviderSettingsBase) -> list[str]:
    """What this provider's kind needs that the config leaves unset, one "key: why" each."""
    return settings.requirements()
