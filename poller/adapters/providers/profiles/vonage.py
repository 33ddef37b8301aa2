"""Vonage Business Communications: company call recordings, through the generic adapter.

What the profile fixes (the Call Recording API as Vonage's OpenAPI document for it,
``_open_api/definitions/call-recording.yml`` of the ``Vonage/vbc-developer`` repository, and its
guides describe it):

- ``GET /t/vbc.prod/call_recording/api/accounts/{account_id}/company_call_recordings`` with
  ``start:gte`` / ``start:lte`` written ``yyyy-MM-ddTHH:mm:ss+0000`` (the document's example),
  ``order=start:ASC``, ``page`` from 1 and ``page_size``; the recordings sit under
  ``_embedded.recordings`` and ``total_pages`` says where the listing ends.
- OAuth 2 password grant at ``https://api.vonage.com/token`` for an *integration user* (an
  account administrator without single sign-on), its user name with ``@vbc.prod`` appended,
  ``scope=openid``, and the application's consumer key and secret in the form (as Vonage's
  guide sends them). Access tokens live a day; the grant is simply repeated.
- The audio: ``GET /t/vbc.prod/call_recording/api/audio/recording/{id}`` with the same token
  (the recording's ``download_url``, built from its id rather than trusted from the record).

What configuration cannot say, and this module's hook does (:class:`VonageProvider`):

- A recording names its rep only by extension number (``extensions``). The rep's email and
  name come from the account's extensions in the Provisioning API
  (``GET /t/vbc.prod/provisioning/api/accounts/{account_id}/extensions``, each with its
  ``extension_number`` and ``user``), read once, page by page, when a recording names an
  extension not seen yet, and at most once per :data:`DIRECTORY_TTL_SECONDS` after that. An
  extension with no user (or one that is gone) keeps its number only, for
  ``[siro.rep_map] extension``.
- The other party is the caller (``caller_id``, ``cnam``) on an inbound call and the dialed
  number (``dnis``) on an outbound one; an internal (``INTRA_PBX``) call has none.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr

from poller.adapters.http.paginators import PageRequest
from poller.adapters.providers.profiles.base import ProfileProvider, ProfileSettings
from poller.adapters.providers.settings import ProviderSettingsBase
from poller.config_types import MINIMAL, NonBlank
from poller.domain.call_record import TEXT_LIMITS, CallRecord
from poller.domain.paths import MISSING, dig
from poller.domain.raw_record import field_text
from poller.domain.states import Direction
from poller.domain.windows import Window
from poller.ports.provider import PermanentProviderError, RecordPosition

log = logging.getLogger(__name__)

API_HOST = "api.vonage.com"
USERNAME_SUFFIX = "@vbc.prod"
MAX_PAGE_SIZE = 100
RECORDINGS = "/t/vbc.prod/call_recording/api"
EXTENSIONS = "/t/vbc.prod/provisioning/api/accounts/{account_id}/extensions"
# How long a read of the extensions stands before an unknown extension reads them again.
DIRECTORY_TTL_SECONDS = 3600
# A safety net: more pages than this is no account's extension list.
MAX_DIRECTORY_PAGES = 1000
AccountId = Annotated[str, Field(pattern=r"^(self|[0-9]{1,20})$")]


class VonageSettings(ProfileSettings):
    """``[provider]`` with ``kind = "vonage"``: the company call recordings of Vonage Business
    Communications, read by an integration user. Set the user and the application's keys; the
    profile fixes the requests, fields and paging.
    """

    kind: Literal["vonage"] = "vonage"
    """Which adapter talks to the phone system: "vonage" is Vonage Business Communications."""
    username: NonBlank | None = Field(
        default=None, examples=["api_user_999999"], json_schema_extra=MINIMAL
    )
    """The VBC integration user's name (an account administrator without single sign-on);
    "@vbc.prod" is appended when it is not there."""
    password: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The integration user's password."""
    client_id: NonBlank | None = Field(
        default=None, examples=["replace-with-your-consumer-key"], json_schema_extra=MINIMAL
    )
    """The application's Consumer Key (Vonage Business Communications developer portal)."""
    client_secret: SecretStr | None = Field(default=None, json_schema_extra=MINIMAL)
    """The application's Consumer Secret."""
    account_id: AccountId = "self"
    """The VBC account id; "self" is the integration user's own account."""
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = MAX_PAGE_SIZE
    """Recordings per page, 1 to 100."""
    history_days: Annotated[float, Field(gt=0)] | None = Field(default=None, examples=[90.0])
    """How many days back a first poll or backfill may reach; unset: as far as asked."""

    profile_title: ClassVar[str] = "Vonage Business Communications"
    vendor_hosts: ClassVar[tuple[str, ...]] = (API_HOST,)
    default_base_url: ClassVar[str | None] = f"https://{API_HOST}"

    required_keys: ClassVar[Mapping[str, str]] = {
        "username": "the VBC integration user",
        "password": "the integration user's password",
        "client_id": "the application's Consumer Key",
        "client_secret": "the application's Consumer Secret",
    }

    def grant_username(self) -> str | None:
        """The user name as the password grant takes it, with ``@vbc.prod``."""
        if not self.username:
            return None
        name = self.username.strip()
        return name if name.endswith(USERNAME_SUFFIX) else name + USERNAME_SUFFIX

    def generic_values(self) -> Mapping[str, Any]:
        return {
            "auth": "oauth_password",
            "token_url": f"{(self.api_base_url or '').rstrip('/')}/token",
            "client_auth": "body",
            "scope": "openid",
            "username": self.grant_username(),
            "listing": {
                "path": f"{RECORDINGS}/accounts/{self.account_id}/company_call_recordings",
                "start_param": "start:gte",
                "end_param": "start:lte",
                "time_format": "%Y-%m-%dT%H:%M:%S%z",
                "time_zone": "UTC",
                "items_path": "_embedded.recordings",
                "params": {"order": "start:ASC"},
                "history_days": self.history_days,
            },
            "paging": {
                "mode": "page_number",
                "page_param": "page",
                "first_page": 1,
                "page_size_param": "page_size",
                "page_size": self.page_size,
                "total_pages_path": "total_pages",
            },
            "fields": {
                "call_id": "id",
                "started_at": "start",
                "ended_at": "end",
                "duration": "duration",
                "duration_unit": "milliseconds",
                "direction": "call_direction",
                "rep_email": None,
                "rep_phone": None,  # caller_id of an outbound call may be a company number
                "rep_extension": "extensions.0",
                "contact_name": None,  # by direction, in the hook
                "contact_phone": None,
                "recording_url": None,
            },
            "recording": {
                "download_path": f"{RECORDINGS}/audio/recording/{{call_id}}",
                "format": "mp3",  # Vonage's file names end in .mp3
            },
        }


@dataclass(frozen=True)
class VonageUser:
    email: str | None
    name: str | None


class VonageProvider(ProfileProvider):
    """Vonage Business Communications: the generic adapter plus the hooks above."""

    kind: ClassVar[str] = "vonage"
    settings_model: ClassVar[type[ProviderSettingsBase]] = VonageSettings

    def __init__(self, settings: VonageSettings, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.vonage = settings
        # Extension number -> its user (None: an extension without one).
        self._directory: dict[str, VonageUser | None] = {}
        self._directory_read_at: float | None = None

    def before_mapping(self, items: Sequence[Any], window: Window) -> Sequence[Any]:
        wanted = {
            number
            for item in items
            if isinstance(item, Mapping)
            and (number := field_text(dig(item, "extensions.0"))) is not None
        }
        stale = self._directory_read_at is None or (
            time.monotonic() - self._directory_read_at > DIRECTORY_TTL_SECONDS
        )
        if wanted - set(self._directory) and stale:
            try:
                self._directory = self._read_directory()
            except PermanentProviderError as exc:
                if exc.status not in (403, 404):
                    raise
                # An application not subscribed to the Provisioning API: the recordings
                # still come, named by extension for [siro.rep_map].
                log.warning(
                    "%s: the extensions of account %s cannot be read (HTTP %s), so reps are "
                    "named by extension only; subscribe the application to the Provisioning "
                    "API, or map the extensions in siro.rep_map",
                    self.name,
                    self.vonage.account_id,
                    exc.status,
                )
            self._directory_read_at = time.monotonic()
        return items

    def map_record(self, raw: Mapping[str, Any], position: RecordPosition) -> CallRecord:
        record = super().map_record(raw, position)
        user = self._directory.get(record.rep_extension or "")
        if user is not None:
            record = replace(
                record,
                rep_email=field_text(user.email, TEXT_LIMITS["rep_email"]),
                rep_name=field_text(user.name, TEXT_LIMITS["rep_name"]),
            )
        phone, name = None, None
        if record.direction is Direction.INBOUND:
            phone, name = raw.get("caller_id"), raw.get("cnam")
        elif record.direction is Direction.OUTBOUND:
            phone = raw.get("dnis")
        return replace(
            record,
            contact_phone=field_text(phone, TEXT_LIMITS["contact_phone"]),
            contact_name=field_text(name, TEXT_LIMITS["contact_name"]),
        )

    def _read_directory(self) -> dict[str, VonageUser | None]:
        """Every extension of the account with its user, all pages."""
        path = EXTENSIONS.format(account_id=self.vonage.account_id)
        url = f"{self.base_url.rstrip('/')}{path}"
        found: dict[str, VonageUser | None] = {}
        page, pages = 1, 1
        while page <= min(pages, MAX_DIRECTORY_PAGES):
            params = {"page": str(page), "page_size": str(MAX_PAGE_SIZE)}
            body = self.get_json(PageRequest(url, params), "Vonage extensions").body
            for extension in _entries(dig(body, "_embedded.data")):
                number = field_text(extension.get("extension_number"))
                if number is not None:
                    found[number] = _user_of(extension.get("user"))
            total = dig(body, "total_pages")
            pages = total if isinstance(total, int) and not isinstance(total, bool) else page
            page += 1
        return found


def _entries(value: Any) -> list[Mapping[str, Any]]:
    """The extensions of a page: the document types ``_embedded.data`` as one object, a list
    endpoint answers a list; both are read."""
    if value is MISSING or value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [entry for entry in values if isinstance(entry, Mapping)]


def _user_of(user: Any) -> VonageUser | None:
    if not isinstance(user, Mapping):
        return None
    first, last = field_text(user.get("first_name")), field_text(user.get("last_name"))
    name = " ".join(part for part in (first, last) if part) or None
    return VonageUser(field_text(user.get("email")), name)
