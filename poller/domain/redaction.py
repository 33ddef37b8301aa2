"""Masking secrets in free text and URLs: bearer tokens, credential headers, URL userinfo and
the query strings of signed URLs. Pure: the log filter, error messages and the state table use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[REDACTED]"

# Authorization-style headers and tokens in free text.
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{4,}")
_AUTH_HEADER = re.compile(
    r"(?i)((?:x-siro-auth-token|authorization|x-api-key|api[-_]?key|access[-_]?token|client[-_]?secret)"
    r"[\"']?\s*[:=]\s*[\"']?)([^\s\"',}]+)"
)
# Credentials in a URL's userinfo: scheme://user:password@host
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)@")
# Query strings of signed URLs (GCS, S3, Azure and the like) and of URLs carrying tokens.
# Also matches a bare path with a query, as urllib3 logs it ("PUT /bucket/f.mp3?X-Goog-...").
_URL_QUERY = re.compile(r"(?i)((?:https?://)?[^\s?#\"'=&]*)\?([^\s#\"']+)")
_SENSITIVE_QUERY_KEY = re.compile(
    r"(?i)(^|&)(x-goog-[a-z-]+|x-amz-[a-z-]+|signature|sig|se|sp|sv|st|token|access_token|"
    r"api_key|apikey|key|expires|policy|key-pair-id|credential|auth|code|secret|password|passwd|"
    r"jwt)="
)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)

    def _query(match: re.Match[str]) -> str:
        if _SENSITIVE_QUERY_KEY.search(match.group(2)):
            return f"{match.group(1)}?{MASK}"
        return match.group(0)

    return _URL_QUERY.sub(_query, text)


def redact_url(url: str) -> str:
    """A URL fit for logs, errors and the database: no userinfo, no signed query string."""
    return redact_text(url)


# -- URLs kept for the record ---------------------------------------------------------------

# The query keys whose values a stored record keeps: each selects a view of a resource and
# grants nothing. Every other query value is masked whatever its key is named, since a list of
# secret names always misses the next vendor's (Zoom signs its file URLs with ``jwt``).
# RingCentral's record URIs end in ``?view=Detailed``; Twilio's media URL of a dual-channel
# recording in ``?RequestedChannels=2`` (compared in lower case).
HARMLESS_QUERY_KEYS = frozenset({"view", "requestedchannels"})

# A word of free text, as far as a URL in it can reach.
_WORD = re.compile(r"[^\s\"'<>]+")
_QUERY_OR_FRAGMENT = re.compile(r"[?#]")
# A user name alone (``https://ghp_abc@host``) is as often a token as a name.
_ANY_USERINFO = re.compile(r"(?i)^([a-z][a-z0-9+.-]*://)[^/?#@\s]+@")


def mask_url_query(url: str) -> str:
    """``url`` with every query value masked (keys kept to show what was there), except under
    :data:`HARMLESS_QUERY_KEYS`; its userinfo and the values in its fragment are masked too."""
    url = _ANY_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", url)
    rest, hash_mark, fragment = url.partition("#")
    base, question_mark, query = rest.partition("?")
    masked = base + question_mark + _mask_pairs(query)
    return masked + hash_mark + (_mask_pairs(fragment) if "=" in fragment else fragment)


def mask_urls_in_text(text: str) -> str:
    """``text`` with :func:`mask_url_query` applied to each URL in it (a whole-string URL or
    one inside a sentence) and credential headers or bearer tokens masked."""
    text = _WORD.sub(lambda m: _masked_if_url(m.group(0)), text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
    return _AUTH_HEADER.sub(lambda m: f"{m.group(1)}{MASK}", text)


def _masked_if_url(word: str) -> str:
    """``word`` through :func:`mask_url_query` if it is a URL: one with a scheme, or a path
    (``media/x.mp3``), a file name or nothing before its query or fragment; a question
    ("ready?") is left alone."""
    if "://" in word:
        return mask_url_query(word)
    query_or_fragment = _QUERY_OR_FRAGMENT.search(word)
    if query_or_fragment is None:
        return word
    head = word[: query_or_fragment.start()]
    return mask_url_query(word) if not head or "/" in head or "." in head else word


def _mask_pairs(query: str) -> str:
    if not query:
        return query
    pairs = []
    for pair in query.split("&"):
        key, equals, value = pair.partition("=")
        if not pair or (equals and key.lower() in HARMLESS_QUERY_KEYS):
            pairs.append(pair)
        elif equals:
            pairs.append(f"{key}={MASK}" if value else pair)
        else:
            pairs.append(MASK)  # a bare token (``?AKIA...``) is a value without a key
    return "&".join(pairs)
