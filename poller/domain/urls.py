"""Where a URL leads: the one parse every host decision is made with.

requests connects wherever urllib3's :func:`~urllib3.util.parse_url` says; ``urllib.parse``
reads some URLs differently. ``http://OTHER\\@credhost/x`` is ``credhost`` to ``urlsplit`` but
``other`` to urllib3, which ends the host at the backslash: an allow-list or credential decision
made with one parser and a connection made with the other send credentials to the wrong host.

So every decision about a URL's host (allowed hosts, credential hosts, storage hosts, the host
key of a setting) reads it through :func:`url_target`, which uses urllib3's parser, and before
that refuses what parsers disagree on: a backslash, whitespace or non-ASCII characters in the
host part, control characters anywhere (``urlsplit`` silently drops tabs and newlines),
leading or trailing whitespace (requests strips it); then, from urllib3's reading, a percent
sign in the host and port 0 (each reaches the socket changed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from urllib3.util import parse_url

DEFAULT_PORTS = {"http": 80, "https": 443}
# C0 controls, DEL and C1 controls.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")


class UnsafeUrl(ValueError):
    """A URL no host decision may be made on; the message says why, without the URL."""


@dataclass(frozen=True, slots=True)
class UrlTarget:
    """What a connection to a URL would be made to.

    ``host`` is lower case, without a trailing dot and without the brackets of an IPv6
    literal; ``port`` is the port written in the URL, if any.
    """

    scheme: str
    host: str
    port: int | None
    path: str

    @property
    def key(self) -> str:
        """``host`` or ``host:port`` (default ports dropped): what host rules and credentials
        bind to."""
        return host_port_key(self.host, self.port, self.scheme)


def host_port_key(host: str, port: int | None, scheme: str) -> str:
    """The key of a host and port as a connection sees them (lower case, no trailing dot)."""
    host = host.lower().rstrip(".")
    if port is None or DEFAULT_PORTS.get(scheme.lower()) == port:
        return host
    return f"{host}:{port}"


# One request judges its URL a dozen times (host rules, credentials, the connection, messages);
# signed URLs are long, so the judgement is kept for the last few URLs instead.
@lru_cache(maxsize=256)
def url_target(url: str) -> UrlTarget:
    """The scheme, host and port ``url`` connects to, as urllib3 (and so requests) reads it.

    Raises :class:`UnsafeUrl` for a URL whose host part parsers read differently, and for one
    urllib3 cannot parse (a bad port, an invalid host).
    """
    problem = _ambiguity(url)
    if problem is not None:
        raise UnsafeUrl(problem)
    try:
        parsed = parse_url(url)
    except ValueError:  # urllib3's LocationParseError: a bad port or an invalid host
        raise UnsafeUrl("the URL is not valid") from None
    if parsed.port == 0:
        # urllib3 reads port 0 as "no port" and connects to the scheme's default one.
        raise UnsafeUrl("the URL's port is 0")
    host = (parsed.host or "").lower()
    if "%" in host:
        # Percent-escapes and IPv6 zone ids are decoded differently on the way to the socket.
        raise UnsafeUrl("the URL's host holds a percent sign")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return UrlTarget(
        scheme=(parsed.scheme or "").lower(),
        host=host.rstrip("."),
        port=parsed.port,
        path=parsed.path or "",
    )


def _ambiguity(url: str) -> str | None:
    """Why parsers may read ``url``'s host differently, or None."""
    if _CONTROL_CHARACTER.search(url):
        return "the URL holds a control character"
    if url != url.strip():
        return "the URL starts or ends with whitespace"
    _scheme, separator, rest = url.partition("://")
    if not separator:
        return None
    # RFC 3986 ends the authority at "/", "?" or "#"; urllib3 also at a backslash.
    authority = rest
    for end in "/?#":
        authority = authority.split(end, 1)[0]
    if "\\" in authority:
        return "the URL's host part holds a backslash, which parsers read differently"
    if any(character.isspace() for character in authority):
        return "the URL's host part holds whitespace"
    if not authority.isascii():
        return "the URL's host part holds non-ASCII characters (write the host in punycode)"
    return None


def host_for_humans(url: str) -> str:
    """The host key a message may name for ``url``, or why no host can be named."""
    try:
        return url_target(url).key
    except UnsafeUrl as exc:
        return f"<a URL no host can be judged for: {exc}>"
