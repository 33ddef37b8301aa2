"""How the generic adapter turns a stored call into a download of its recording.

``[provider.recording]`` chooses one of four ways:

- **The stored URL**, with the provider's auth on its own hosts (Twilio, RingCentral, Zoom
  style). A URL that was signed was stored redacted and cannot be used: that needs one of the
  ways below.
- **Refetch** (``refetch_path``): the call is read again by id for a fresh signed URL at
  ``fields.recording_url`` (Aircall style).
- **A URL built from the record** (``download_path``): ``/api/calls/recording/{call_id}.json``
  answers the audio itself (CloudTalk, 8x8, Vonage, Talkdesk).
- **Indirect** (``download_path`` with ``answer = "json"``): the answer is a JSON document
  holding the audio's URL at ``url_path`` (CallRail, Quo) or a token at ``token_path`` that
  ``token_download_path`` is built from (GoTo Connect, whose token path answers a redirect to
  the media).

Placeholders (``{call_id}``, ``{recording_id}``, ``{token}``) are filled with the mapped
values, each percent-encoded as one path segment, so an id like ``../../admin`` or ``a/b``
stays inside its segment; ``.`` and ``..`` alone are refused (URL normalisation would read
them as a step up whatever the encoding).

The JSON step goes through a client of its own built on the provider's (the same auth, host
rules, retry policy and rate limiter) whose answer is capped at ``json_max_bytes`` and whose
total deadline is ``json_timeout_seconds``, never more than ``deadline_seconds``. What it
yields, a URL or a token, is a credential: it is never stored, messages show only the host
it points at (``secret_path``), credentials go to it only if it is a credential host, and the
download is ``refreshable``: a refusal from a host that got no credentials means the grant
expired, so the call is retried and resolved afresh rather than failed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote, urljoin, urlsplit

from pydantic import Field, field_validator, model_validator

from poller.adapters.http import HttpError, url_for_humans
from poller.adapters.http.paginators import PageRequest
from poller.adapters.providers.base import ProviderAdapter
from poller.config_types import HostName, OptionalPath, Section, check_url_path
from poller.domain.call_record import DownloadRequest, RecordingLocator
from poller.domain.paths import MISSING, dig
from poller.domain.raw_record import clean_text, field_text, shown
from poller.domain.redaction import MASK, redact_text
from poller.domain.urls import UnsafeUrl, url_target
from poller.ports.provider import (
    PermanentProviderError,
    ProviderRefused,
    TransientProviderError,
)

if TYPE_CHECKING:
    from poller.adapters.http.client import HttpClient

_AUDIO_SUFFIXES = {".mp3": "mp3", ".wav": "wav", ".m4a": "m4a", ".aac": "aac"}
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
CALL_PLACEHOLDERS = ("call_id", "recording_id")
# A URL or token longer than this is no URL or token (and would only bloat messages).
MAX_POINTER_CHARS = 8192
# Statuses whose meaning is fixed elsewhere: credentials (a pause), rate limits and timeouts
# (retried anyway); none of them can say "still processing".
_NOT_PENDING = frozenset({401, 403, 408, 429})


def _placeholders(template: str) -> set[str]:
    return set(_PLACEHOLDER.findall(template))


def _check_template(value: str, allowed: tuple[str, ...], needs: tuple[str, ...]) -> str:
    check_url_path(value)
    found = _placeholders(value)
    unknown = sorted(found - set(allowed))
    if unknown:
        names = ", ".join("{" + name + "}" for name in allowed)
        raise ValueError(f"unknown placeholder {{{unknown[0]}}}; it may use {names}")
    if not found & set(needs):
        raise ValueError("must contain " + " or ".join("{" + name + "}" for name in needs))
    return value


class RecordingSettings(Section):
    """``[provider.recording]``: how the generic adapter turns a call into a download."""

    refetch_path: str | None = Field(default=None, examples=["/calls/{call_id}"])
    """For signed, expiring recording URLs (which are never stored): path of the single-call
    request fetched before each download for a fresh URL, with {call_id} or {recording_id}.
    """
    refetch_item_path: OptionalPath = Field(default=None, examples=["call"])
    """Where the call sits in that response ("" or unset: the response is the call)."""
    download_path: str | None = Field(
        default=None, examples=["/api/calls/recording/{call_id}.json"]
    )
    """For recordings at a path built from the call: the path (appended to base_url), with
    {call_id} or {recording_id}, each filled in as one URL-encoded path segment. Its answer is
    the audio itself, or where the audio is (see answer).
    """
    answer: Literal["audio", "json"] = "audio"
    """What download_path answers: "audio" (the recording itself) or "json" (a document with
    the recording's URL at url_path, or a token at token_path).
    """
    url_path: OptionalPath = Field(default=None, examples=["url"])
    """With answer = "json": where the recording's URL sits in the answer ("data.0.url" takes
    the first entry of a list). The URL is a credential: never stored, never shown whole.
    """
    token_path: OptionalPath = Field(default=None, examples=["token"])
    """With answer = "json": where a download token sits in the answer, for
    token_download_path (instead of url_path).
    """
    token_download_path: str | None = Field(
        default=None, examples=["/recording/v1/recordings/{recording_id}/content/{token}"]
    )
    """The path the audio is fetched from with that token: {token}, and {call_id} or
    {recording_id} where needed. Its redirects are followed under download_hosts.
    """
    pending_statuses: list[Annotated[int, Field(ge=400, le=499)]] = Field(
        default=[], examples=[[404]]
    )
    """HTTP statuses of the answer = "json" request that mean the recording is still being
    processed, where the provider documents that: the call is retried later instead of failed.
    """
    json_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    """Total seconds the answer = "json" request may take (at most deadline_seconds)."""
    json_max_bytes: Annotated[int, Field(gt=0, le=64 * 1024 * 1024)] = 256 * 1024
    """Largest answer to the answer = "json" request, in bytes."""
    credential_hosts: list[HostName] = Field(default=[])
    """Hosts besides base_url's that may receive the provider credentials (e.g. a media host)."""
    format: Literal["mp3", "wav", "m4a", "aac"] | None = Field(default=None, examples=["mp3"])
    """Audio format of the recordings when their URLs do not tell: "mp3", "wav", "m4a" or "aac"."""

    @field_validator("refetch_path", "download_path")
    @classmethod
    def _names_the_call(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return _check_template(value, CALL_PLACEHOLDERS, CALL_PLACEHOLDERS)

    @field_validator("token_download_path")
    @classmethod
    def _token_template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        return _check_template(value, (*CALL_PLACEHOLDERS, "token"), ("token",))

    @field_validator("pending_statuses")
    @classmethod
    def _pending_means_processing(cls, value: list[int]) -> list[int]:
        fixed = sorted(set(value) & _NOT_PENDING)
        if fixed:
            raise ValueError(
                f"HTTP {fixed[0]} already has its meaning (credentials, rate limit or timeout)"
            )
        return value

    @model_validator(mode="after")
    def _one_way(self) -> RecordingSettings:
        if self.refetch_path is not None and self.download_path is not None:
            raise ValueError("set refetch_path or download_path, not both")
        json_keys = {
            "url_path": self.url_path,
            "token_path": self.token_path,
            "token_download_path": self.token_download_path,
            "pending_statuses": self.pending_statuses or None,
        }
        if self.answer == "audio":
            given = [name for name, value in json_keys.items() if value is not None]
            if given:
                raise ValueError(f'{given[0]} is only used with answer = "json"')
            return self
        if self.download_path is None:
            raise ValueError('answer = "json" needs download_path, the request it answers')
        if (self.url_path is None) == (self.token_path is None):
            raise ValueError('answer = "json" needs one of url_path and token_path')
        if (self.token_path is None) != (self.token_download_path is None):
            raise ValueError("token_path and token_download_path go together")
        return self

    def builds_url(self, recording_id: str | None) -> bool:
        """Whether download_path can be filled for a call with this recording id."""
        if self.download_path is None:
            return False
        return recording_id is not None or "recording_id" not in _placeholders(self.download_path)


class RecordingResolver:
    """:meth:`ProviderAdapter.resolve_download` of the generic adapter, per the settings."""

    def __init__(
        self,
        provider: ProviderAdapter[Any],
        recording: RecordingSettings,
        recording_url_field: str | None,
    ) -> None:
        self.provider = provider
        self.recording = recording
        self.recording_url_field = recording_url_field
        self._json_http = self._json_client() if recording.answer == "json" else None

    def key(self, name: str) -> str:
        key: str = self.provider.settings.config_key(f"recording.{name}")
        return key

    def resolve(self, call: RecordingLocator) -> DownloadRequest:
        recording = self.recording
        if recording.download_path is not None:
            url = self._url(self._fill(recording.download_path, call, "download_path"))
            if recording.answer == "json":
                return self._indirect(call, url)
            return self.provider.download_request(url, recording.format or format_from(url))
        stored = call.recording_url
        if recording.refetch_path is not None:
            url = self._fresh_recording_url(call, recording.refetch_path)
            fresh = self.provider.download_request(url, recording.format or format_from(url))
            # Signed a moment ago: refused where no credentials went, it has expired.
            return replace(fresh, refreshable=True)
        if stored is None:
            raise PermanentProviderError(
                f"call {call.provider_call_id} has no recording URL to download"
            )
        if MASK in stored:
            raise PermanentProviderError(
                f"call {call.provider_call_id}: its recording URL is signed, so it was not "
                f"stored; set {self.key('refetch_path')} to fetch a fresh one"
            )
        return self.provider.download_request(stored, recording.format or format_from(stored))

    # -- templates ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return urljoin(self.provider.base_url + "/", path.lstrip("/"))

    def _fill(
        self, template: str, call: RecordingLocator, setting: str, token: str | None = None
    ) -> str:
        values = {"call_id": call.provider_call_id, "recording_id": call.recording_id}
        if token is not None:
            values["token"] = token

        def segment(match: re.Match[str]) -> str:
            name = match.group(1)
            value = values.get(name)
            if value is None:
                raise PermanentProviderError(
                    f"call {call.provider_call_id} has no {name.replace('_', ' ')} for "
                    f"{self.key(setting)}"
                )
            if value in (".", ".."):
                # Percent-encoded or not, URL normalisation reads these as a step up.
                shown_value = MASK if name == "token" else shown(value)
                raise PermanentProviderError(
                    f"call {call.provider_call_id}: its {name.replace('_', ' ')} "
                    f"{shown_value} cannot be a path segment of {self.key(setting)}"
                )
            return quote(value, safe="")

        return _PLACEHOLDER.sub(segment, template)

    # -- refetch (Aircall style) ----------------------------------------------------------

    def _fresh_recording_url(self, call: RecordingLocator, template: str) -> str:
        path = self._fill(template, call, "refetch_path")
        page = self.provider.get_json(PageRequest(self._url(path)), f"call {call.provider_call_id}")
        item = dig(page.body, self.recording.refetch_item_path)
        found = (
            field_text(dig(item, self.recording_url_field))
            if item is not MISSING and self.recording_url_field is not None
            else None
        )
        if found is None:
            raise TransientProviderError(
                f"call {call.provider_call_id}: the provider returned no recording URL for it yet"
            )
        return self._url(found)

    # -- indirect (answer = "json") -------------------------------------------------------

    def _indirect(self, call: RecordingLocator, url: str) -> DownloadRequest:
        recording = self.recording
        what = f"recording lookup of call {call.provider_call_id}"
        assert self._json_http is not None
        try:
            answer = self._json_http.request("GET", url, what=what)
        except HttpError as exc:
            if exc.status is not None and exc.status in recording.pending_statuses:
                raise TransientProviderError(
                    f"{what}: HTTP {exc.status} from {url_for_humans(url)}, which "
                    f"{self.key('pending_statuses')} says means the provider is still "
                    "processing the recording; retried later",
                    status=exc.status,
                ) from None
            raise self.provider.provider_error(exc) from None
        try:
            body = json.loads(answer.body)
        except (ValueError, RecursionError):
            raise PermanentProviderError(
                f"{what}: the answer from {url_for_humans(answer.url)} is not JSON, which "
                f'{self.key("answer")} = "json" expects (set it to "audio" if '
                f"{self.key('download_path')} answers the recording itself)",
                status=answer.status,
            ) from None
        if recording.url_path is not None:
            found = self._pick(body, recording.url_path, "url_path", what)
            target = self._url(found)
        else:
            assert recording.token_path is not None and recording.token_download_path is not None
            token = self._pick(body, recording.token_path, "token_path", what)
            target = self._url(
                self._fill(recording.token_download_path, call, "token_download_path", token)
            )
        try:
            request = self.provider.download_request(
                target, recording.format or format_from(target), secret_path=True
            )
        except ProviderRefused as exc:
            raise ProviderRefused(f"{what}: {_hide_path(str(exc), target)}") from None
        return replace(request, refreshable=True)

    def _pick(self, body: Any, path: str, setting: str, what: str) -> str:
        key = f"{self.key(setting)} = {path!r}"
        value = dig(body, path)
        if value is MISSING:
            if _short_list(body, path):
                raise TransientProviderError(
                    f"{what}: the answer's list has no entry for {key} yet; retried later"
                )
            seen = sorted(str(name) for name in body)[:10] if isinstance(body, Mapping) else []
            raise PermanentProviderError(
                f"{what}: the answer has nothing at {key}; its top-level keys: "
                f"{', '.join(clean_text(name)[:40] for name in seen) or 'none'}"
            )
        if value is None or value == "":
            raise TransientProviderError(
                f"{what}: {key} is empty in the answer: the recording is not ready yet; "
                "retried later"
            )
        if not isinstance(value, str) or len(value) > MAX_POINTER_CHARS:
            described = shown(value) if not isinstance(value, str) else "an overlong string"
            raise PermanentProviderError(f"{what}: {key} holds {described}, not a string")
        return value

    def _json_client(self) -> HttpClient:
        """The provider's client with the JSON step's own byte cap and deadline."""
        http = self.provider.http
        own = self.recording.json_timeout_seconds < http.limits.deadline
        limits = replace(
            http.limits,
            deadline=min(self.recording.json_timeout_seconds, http.limits.deadline),
            # The message names the setting that set the deadline.
            deadline_key=self.key("json_timeout_seconds") if own else http.limits.deadline_key,
            max_body_bytes=self.recording.json_max_bytes,
            body_limit_key=self.key("json_max_bytes"),
        )
        from poller.adapters.http.client import HttpClient

        return HttpClient(
            limits=limits,
            hosts=http.hosts,
            retry=http.retry,
            auth=http.auth,
            rate_limiter=http.rate_limiter,
            user_agent=http.user_agent,
            redact=http.secrets(),
        )


def _short_list(body: Any, path: str) -> bool:
    """Whether ``path`` misses only because a list on it has too few entries (none yet)."""
    node = body
    for key in path.split("."):
        if isinstance(node, list) and key.lstrip("-").isdigit():
            index = int(key)
            if not -len(node) <= index < len(node):
                return True
            node = node[index]
        elif isinstance(node, Mapping) and key in node:
            node = node[key]
        else:
            return False
    return False


def _hide_path(message: str, url: str) -> str:
    """``message`` with ``url``'s path (a credential of its own) masked, its host kept."""
    try:
        target = url_target(url)
    except UnsafeUrl:
        return redact_text(message)
    host = f"[{target.host}]" if ":" in target.host else target.host
    port = f":{target.port}" if target.port is not None else ""
    return redact_text(
        message.replace(url_for_humans(url), f"{target.scheme}://{host}{port}/{MASK}")
    )


def format_from(url: str) -> str | None:
    """The audio format a URL's path names, if it ends in a known suffix."""
    path = urlsplit(url).path.lower()
    for suffix, audio_format in _AUDIO_SUFFIXES.items():
        if path.endswith(suffix):
            return audio_format
    return None
