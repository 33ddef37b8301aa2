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
    r"api_key|apikey|key|expires|policy|key-pair-id|credential|auth|code|secret|password|passwd)="
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
