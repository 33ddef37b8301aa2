"""Where the audio may be PUT: the signed upload URL is checked before a byte is sent.

A signed upload URL comes from Siro's answer, so it is trusted no further than the hosts in
``siro.storage_hosts`` (exact ``host[:port]`` entries and ``*.example.com`` patterns, as
``provider.download_hosts``; by default the Google Cloud Storage hosts Siro's V4 signed URLs
use). Only https is allowed, except to a loopback address listed exactly (a local Siro, as in
tests). The guarded HTTP layer then checks the addresses the host resolves to, so a public
name cannot lead to a private network unless an operator listed it exactly.

The URL is itself the credential: a refusal names the host, never the URL.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from poller.adapters.http import HostRules
from poller.adapters.siro.settings import SIRO_STORAGE_HOSTS
from poller.domain.urls import UnsafeUrl, url_target
from poller.ports.siro import SiroPermanentError

CONFIG_KEY = "siro.storage_hosts"


class StorageHosts:
    """The storage hosts one client may PUT audio to."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entry.strip().lower() for entry in entries if entry.strip())
        exact = {entry for entry in self.entries if not entry.startswith("*.")}
        self._loopback = {entry for entry in exact if _is_loopback(entry)}
        self.rules = HostRules.build(
            allowed=self.entries,
            # Hosts an operator wrote down may be on a private network; the defaults never are.
            explicit_hosts=exact - set(SIRO_STORAGE_HOSTS),
            https_only=True,
            config_key=CONFIG_KEY,
        )

    def check(self, url: str, step: str) -> None:
        """Raise :class:`SiroPermanentError` unless the audio may go to ``url``."""
        try:
            target = url_target(url)
        except UnsafeUrl as exc:
            raise SiroPermanentError(
                f"Siro {step}: refused the signed upload URL: {exc}", step=step
            ) from None
        scheme, key = target.scheme, target.key
        if scheme not in ("http", "https"):
            raise SiroPermanentError(
                f"Siro {step}: refused to send the audio to a {scheme or 'scheme-less'} URL; "
                "storage is reached over https only",
                step=step,
            )
        if not key:
            raise SiroPermanentError(f"Siro {step}: the signed upload URL names no host", step=step)
        if scheme == "http" and key not in self._loopback:
            raise SiroPermanentError(
                f"Siro {step}: refused to send the audio to {key} over plain http; storage is "
                f"reached over https only, except a loopback address listed exactly in "
                f"{CONFIG_KEY}",
                step=step,
            )
        if not self.rules.is_allowed(key):
            raise SiroPermanentError(
                f"Siro {step}: refused to send the audio to {key}: not one of {CONFIG_KEY} "
                f"({', '.join(self.entries)}); add it there only if Siro's storage is really "
                "there",
                step=step,
            )


def _is_loopback(entry: str) -> bool:
    """Whether an exact entry (``host``, ``host:port``, IPv6 with or without brackets and
    port) is a loopback IP address."""
    candidates = {entry, entry.strip("[]")}
    if entry.startswith("["):
        candidates.add(entry[1:].split("]", 1)[0])
    candidates.add(entry.rsplit(":", 1)[0].strip("[]"))
    for candidate in candidates:
        try:
            if ipaddress.ip_address(candidate).is_loopback:
                return True
        except ValueError:
            continue
    return False
