"""Quo (formerly OpenPhone): the calls of a workspace and their recordings, through the
generic adapter and Quo's 2026-03-30 API.

What the profile fixes (Quo's API reference, ``quo.com/docs/2026-03-30/calls/...`` and
``/users/get-a-user-by-id``, and its OpenAPI document ``openphone-public-api-2026-03-30``):

- ``GET https://api.quo.com/calls``: every call of the workspace, newest first, every filter
  optional (v1's ``/v1/calls`` needs a Quo number and one participant, so it cannot list a
  workspace; this profile does not use v1). The window is ``createdAt[gte]`` and
  ``createdAt[lte]``, both inclusive, ISO 8601; ``limit`` 1 to 50; the next page's cursor is
  ``nextCursor`` (``null`` on the last page), sent back as ``after``.
- Every request carries ``Quo-Api-Version: 2026-03-30`` (without it the API answers 400) and
  the API key as the whole ``Authorization`` header, with no ``Bearer``.
- 10 requests a second per key, shared with the workspace's other integrations of that key;
  ``requests_per_minute`` is held per second, so no burst goes over it.
- The recording: ``GET /calls/{callId}/recordings`` answers ``{"data": [...], "nextCursor"}``,
  one entry per recorded segment, oldest first, each with a signed ``url`` (``null`` until
  the segment's ``status`` is ``completed``). The profile downloads the first segment's URL
  (``data.0.url``), asked for again before each download and never stored; it goes to the
  storage host without the API key. A call paused and resumed has several segments: only the
  first reaches Siro (docs/providers/quo.md).

What configuration cannot say, and this module's hook does (:class:`QuoProvider`):

- the version header on every API request (:class:`VersionedAuth`);
- the rep: the call names its user (``actorId``, ``US...``), not an email;
  ``GET /users/{userId}`` gives the email, asked once per user and process. The rep's line is
  the participant with that ``actorId``, the contact the participant outside the workspace
  (``actorId`` null);
- the recording state: a call that ended without being answered (``missed``, ``no-answer``,
  ``busy``, ``failed``, ``canceled``, ``abandoned``), or ended with no ``answeredAt``, has no
  recording to wait for; a call still live (``queued``, ``initiated``, ``ringing``,
  ``in-progress``) is not listed as ready.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr

from poller.adapters.http.auth import Authenticator
from poller.adapters.providers.profiles.base import ProfileProvider, ProfileSettings, ProfileUser
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.config_types import MINIMAL, HostPattern
from poller.domain.call_record import TEXT_LIMITS, CallRecord
from poller.domain.raw_record import field_text
from poller.domain.states import RecordingState
from poller.ports.provider import RecordPosition

API_HOST = "api.quo.com"
API_VERSION = "2026-03-30"
VERSION_HEADER = "Quo-Api-Version"
# Quo's reference shows its signed recording URLs on a placeholder host
# ("examplestorage.com"); files.openphone.co is the host third-party payloads show (unconfirmed
# by Quo). A download refused for another host names it and the key to add it to.
RECORDING_HOSTS = ["files.openphone.co"]
MAX_PAGE_SIZE = 50
# Quo's limit is 10 a second per key; a poller shares it with the key's other users.
DEFAULT_REQUESTS_PER_MINUTE = 300
LIVE_STATUSES = frozenset({"queued", "initiated", "ringing", "in-progress"})
UNANSWERED_STATUSES = frozenset({"missed", "no-answer", "busy", "failed", "canceled", "abandoned"})


class QuoSettings(ProfileSettings):
    """``[provider]`` with ``kind = "quo"``: the calls of a Quo (formerly OpenPhone)
    workspace and their recordings, through Quo's 2026-03-30 API. Set an API key and the
    recordings' download host; the profile fixes the requests, fields and paging.
    """

    kind: Literal["quo"] = "quo"
    """Which adapter talks to the phone system: "quo" is Quo's (formerly OpenPhone's) calls."""
    api_key: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """A Quo API key (workspace settings, API; an owner or admin makes it), sent as the whole
    Authorization header, without "Bearer"."""
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = MAX_PAGE_SIZE
    """Calls per page (limit), 1 to 50 (Quo's own bound)."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[365.0])
    """How many days back a first poll or backfill may reach; unset: as far as asked (Quo
    documents no limit)."""
    requests_per_minute: Annotated[int, Field(gt=0, le=600)] | None = DEFAULT_REQUESTS_PER_MINUTE
    """Requests per minute to stay under, at most 600: Quo allows 10 a second per key, shared
    with everything else that uses the key."""
    download_hosts: list[HostPattern] = Field(default=list(RECORDING_HOSTS))
    """Hosts the recordings are downloaded from: the host of the signed URLs in Quo's
    recordings answer. Quo's reference does not name it; the default is the host seen in
    third-party examples. A download refused for another host names it (add it here). They
    never receive the API key."""

    profile_title: ClassVar[str] = "Quo"
    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    required_keys: ClassVar[Mapping[str, str]] = {"api_key": "a Quo API key"}

    def generic_values(self) -> Mapping[str, Any]:
        return {
            "auth": "api_key",
            "api_key_header": "Authorization",
            "listing": {
                "path": "/calls",
                "start_param": "createdAt[gte]",
                "end_param": "createdAt[lte]",
                "time_format": "iso8601",
                "items_path": "data",
                "params": {},
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "token",
                "token_path": "nextCursor",
                "token_param": "after",
                "page_size_param": "limit",
                "page_size": self.page_size,
            },
            "fields": {
                "call_id": "id",
                "started_at": "createdAt",
                "duration": "duration",
                "direction": "direction",
                "rep_email": None,  # the user's, in the hook
                "rep_phone": None,  # the user's participant, in the hook
                "rep_provider_id": "actorId",
                "contact_name": None,
                "contact_phone": None,  # the participant outside the workspace, in the hook
                "recording_url": None,
            },
            "recording": {
                "download_path": "/calls/{call_id}/recordings",
                "answer": "json",
                "url_path": "data.0.url",
                "format": "mp3",
            },
        }


class VersionedAuth:
    """The API key's header plus ``Quo-Api-Version``: both go only to Quo's API hosts, never
    to the storage host of the signed recording URLs."""

    def __init__(self, inner: Authenticator) -> None:
        self._inner = inner

    def headers_for_request(self) -> Mapping[str, str]:
        return {**self._inner.headers_for_request(), VERSION_HEADER: API_VERSION}

    def on_unauthorized(self, sent: Mapping[str, str]) -> bool:
        return self._inner.on_unauthorized(sent)

    def secrets(self) -> Sequence[str]:
        return self._inner.secrets()


class QuoProvider(ProfileProvider):
    """Quo's calls: the generic adapter plus the hook above."""

    kind: ClassVar[str] = "quo"
    settings_model: ClassVar[type[ProviderSettingsBase]] = QuoSettings
    user_id_path: ClassVar[str | None] = "actorId"
    user_path: ClassVar[str] = "users/{id}"

    def __init__(self, settings: QuoSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        limiter = self.http.rate_limiter
        if limiter is not None and limiter.rate is not None and limiter.period == 60.0:
            # Quo's limit is per second: requests_per_minute over a minute's window would let
            # a whole minute's worth go out in one burst and earn 429s, so the same rate is
            # held per second (300 a minute: 5 a second).
            limiter.rate, limiter.period = max(1, limiter.rate // 60), 1.0

    def authenticator(self) -> Authenticator:
        return VersionedAuth(super().authenticator())

    def names_a_user(self, user_id: str) -> bool:
        # SYU... is a system actor (Quo's AI agent): no user, no email.
        return user_id.startswith("US")

    def read_user(self, user: Mapping[str, Any]) -> ProfileUser:
        name = " ".join(
            part
            for part in (field_text(user.get("firstName")), field_text(user.get("lastName")))
            if part
        )
        return ProfileUser(field_text(user.get("email")), name or None)

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        record = self.with_user(super().map_record(raw, position))
        rep_line, contact = _lines(raw.get("participants"), record.rep_provider_id)
        status = (field_text(raw.get("status")) or "").lower()
        state, reason = RecordingState.READY, None
        if status in UNANSWERED_STATUSES:
            state = RecordingState.NONE
            reason = f"Quo has no recording: the call ended {status} without being answered"
        elif status in LIVE_STATUSES:
            state = RecordingState.PENDING
        elif raw.get("answeredAt") is None:
            # Ended, yet nobody picked up (a forwarded call, say): nothing was recorded here.
            state = RecordingState.NONE
            reason = "Quo has no recording: nobody answered the call"
        return replace(
            record,
            rep_phone=field_text(rep_line, TEXT_LIMITS["rep_phone"]),
            contact_phone=field_text(contact, TEXT_LIMITS["contact_phone"]),
            recording_state=state,
            no_recording_reason=reason,
        )


def _lines(participants: Any, actor_id: str | None) -> tuple[str | None, str | None]:
    """The rep's line (the participant of the call's user) and the contact's (the first
    participant outside the workspace) from Quo's ``participants``."""
    if not isinstance(participants, list):
        return None, None
    rep = contact = None
    for entry in participants:
        if not isinstance(entry, Mapping):
            continue
        number = field_text(entry.get("phoneNumber"))
        owner = field_text(entry.get("actorId"))
        if owner is None:
            contact = contact or number
        elif actor_id is not None and owner == actor_id:
            rep = rep or number
    return rep, contact
