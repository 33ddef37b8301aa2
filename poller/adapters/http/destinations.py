"""Which URLs may be reached, which of them get credentials, and the address check.

A hostile or broken provider controls the URLs this process fetches (recording URLs, next-page
URLs, redirects). :class:`HostRules` decides, per hop, before anything is sent:

- only ``http`` and ``https``; with ``https_only``, plain http only to an explicit host, and
  credentials never over plain http;
- only allowed hosts: exact ``host`` / ``host:port`` entries (default ports dropped) and
  patterns ``*.example.com`` (subdomains only, default port);
- credentials only to ``credential_hosts``;
- addresses: a host that is not listed *explicitly* (an exact entry an operator configured)
  may only resolve to global unicast addresses. Loopback, private, link-local, unique-local,
  multicast, unspecified and cloud metadata addresses are refused, and so are the metadata
  names before any lookup.

The address check runs in the connection itself (:mod:`poller.adapters.http.transport`) on the
very addresses it then connects to, so a name that resolves differently a second time (DNS
rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field

from poller.adapters.http.errors import HttpRefused, url_for_humans
from poller.domain.urls import UnsafeUrl, host_port_key, url_target

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

SCHEMES = ("http", "https")
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.123",
        "fd00:ec2::254",
        "fd00:ec2::23",
        "100.100.100.200",
        "192.0.0.192",
    )
)


def address_problem(address: IpAddress) -> str | None:
    """Why ``address`` is not a public destination, or None if it is one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_problem(address.ipv4_mapped)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_private or address.is_reserved or not address.is_global:
        return "a private address"
    return None


def _literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class HostRules:
    """The destinations of one client, and where its credentials may go.

    ``allowed`` holds exact host keys and ``*.domain`` patterns; credential and explicit hosts
    are allowed too. ``any_public_host`` allows every host that resolves to public addresses
    only (for URLs a trusted API hands out, such as a signed storage URL).
    ``config_key`` is the setting a refusal message tells the operator to change.
    """

    allowed: frozenset[str] = frozenset()
    credential_hosts: frozenset[str] = frozenset()
    explicit_hosts: frozenset[str] = frozenset()
    https_only: bool = False
    any_public_host: bool = False
    config_key: str = "provider.download_hosts"
    _exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lowered = {entry.strip().lower() for entry in self.allowed if entry.strip()}
        suffixes = tuple(entry[1:] for entry in lowered if entry.startswith("*."))
        exact = {e for e in lowered if not e.startswith("*.")}
        exact |= {h.lower() for h in self.credential_hosts} | {
            h.lower() for h in self.explicit_hosts
        }
        object.__setattr__(
            self, "credential_hosts", frozenset(h.lower() for h in self.credential_hosts)
        )
        object.__setattr__(
            self, "explicit_hosts", frozenset(h.lower() for h in self.explicit_hosts)
        )
        object.__setattr__(self, "_exact", frozenset(exact))
        object.__setattr__(self, "_suffixes", suffixes)

    @classmethod
    def build(
        cls,
        *,
        allowed: Iterable[str] = (),
        credential_hosts: Iterable[str] = (),
        explicit_hosts: Iterable[str] = (),
        https_only: bool = False,
        any_public_host: bool = False,
        config_key: str = "provider.download_hosts",
    ) -> HostRules:
        """Rules from plain iterables; exact entries of ``allowed`` are not explicit."""
        return cls(
            allowed=frozenset(allowed),
            credential_hosts=frozenset(credential_hosts),
            explicit_hosts=frozenset(explicit_hosts),
            https_only=https_only,
            any_public_host=any_public_host,
            config_key=config_key,
        )

    # -- per URL, before sending -------------------------------------------------------------

    def is_explicit(self, key: str) -> bool:
        return key.lower() in self.explicit_hosts

    def is_allowed(self, key: str) -> bool:
        key = key.lower()
        if key in self._exact:
            return True
        if ":" in key:
            return False  # patterns match names on the default port only
        return any(key.endswith(suffix) for suffix in self._suffixes)

    def check_url(self, url: str) -> str:
        """The URL's host key if it may be fetched; raises :class:`HttpRefused` if not.

        The host is read as the connection reads it (:func:`url_target`), so the host judged
        here is the host connected to.
        """
        shown = url_for_humans(url)
        try:
            target = url_target(url)
        except UnsafeUrl as exc:
            raise HttpRefused(f"refused to fetch {shown}: {exc}", url=url) from None
        scheme = target.scheme
        if scheme not in SCHEMES:
            if not scheme:
                raise HttpRefused(
                    "refused to fetch a URL without a scheme: only http and https URLs are fetched",
                    url=url,
                )
            raise HttpRefused(
                f"refused to fetch {shown}: only http and https URLs are fetched, never "
                f"{scheme}://",
                url=url,
            )
        host = target.host
        if not host:
            raise HttpRefused(f"refused to fetch {shown}: the URL names no host", url=url)
        key = target.key
        explicit = self.is_explicit(key)
        if scheme == "http" and self.https_only and not explicit:
            raise HttpRefused(
                f"refused to fetch {shown} over plain http; only https is allowed for {host} "
                f"(list it in {self.config_key} to allow it)",
                url=url,
            )
        if not explicit:
            if host in METADATA_NAMES or host.endswith(".metadata.google.internal"):
                raise HttpRefused(
                    f"refused to connect to {host} (a cloud metadata name); list it in "
                    f"{self.config_key} to allow it",
                    url=url,
                )
            literal = _literal(host)
            problem = address_problem(literal) if literal is not None else None
            if problem is not None:
                raise HttpRefused(
                    f"refused to connect to {key} ({problem}); list it in {self.config_key} "
                    "to allow it",
                    url=url,
                )
        if not (explicit or self.is_allowed(key) or self.any_public_host):
            raise HttpRefused(
                f"refused to connect to {key}: not an allowed host; list it in "
                f"{self.config_key} to allow it",
                url=url,
            )
        return key

    def may_send_credentials(self, url: str) -> bool:
        try:
            target = url_target(url)
        except UnsafeUrl:
            return False
        if self.https_only and target.scheme != "https":
            return False
        return target.key in self.credential_hosts

    # -- per connection, on the resolved addresses -------------------------------------------

    def check_addresses(
        self, host: str, port: int | None, scheme: str, addresses: Iterable[str]
    ) -> None:
        """Raise :class:`HttpRefused` unless every address of ``host`` may be connected to."""
        key = host_port_key(host, port, scheme)
        if self.is_explicit(key):
            return
        for text in addresses:
            address = _literal(text.split("%", 1)[0])
            if address is None:
                continue
            problem = address_problem(address)
            if problem is not None:
                raise HttpRefused(
                    f"refused to connect to {host} (resolves to {address}, {problem}); "
                    f"list it in {self.config_key} to allow it"
                )
