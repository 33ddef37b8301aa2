"""The Siro client over HTTP: token lifecycle, the three-step upload, users, connections, reads.

Two surfaces, two credentials, never crossed: the organization API token goes only to the
external API (``Authorization: Bearer``), the user-scoped access token only to the API gateway
(``x-siro-auth-token``), and the PUT to a signed storage URL carries neither. Redirects are
not followed, so no credential can be carried to another host.

Where Siro's documents disagree (signed-url size field, ``organizationId``, the create
answer's id key, ``clientID``), the client accepts either form and remembers what worked.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic.alias_generators import to_camel

from poller import __version__
from poller.adapters.http import (
    DeadlineExceeded,
    HostRules,
    HttpClient,
    HttpError,
    HttpRefused,
    HttpResponse,
    HttpTransient,
    Limits,
    RetryPolicy,
)
from poller.adapters.http.paginators import PageRequest, PageResponse, PagingLoop, TokenPaginator
from poller.adapters.http.retry import parse_retry_after
from poller.adapters.http.tokens import AccessToken, AccessTokenCache
from poller.config import SiroSettings
from poller.domain.call_record import host_key
from poller.domain.clock import utcnow
from poller.domain.siro import (
    AudioFormat,
    ConversationConfiguration,
    IntegrationConnection,
    OAuthAppCredentials,
    RecordingCreate,
    RecordingSummary,
    SignedUpload,
    SiroUser,
)
from poller.logs import redact_text
from poller.ports.siro import (
    SiroCreateOutcomeUnknown,
    SiroError,
    SiroPermanentError,
    SiroTransientError,
    ZodIssue,
)

logger = logging.getLogger(__name__)

USER_AGENT = f"siro-poller/{__version__} python-requests/{requests.__version__}"
ACCESS_TOKEN_HEADER = "x-siro-auth-token"  # noqa: S105  (a header name, not a secret)
# The mint answer carries no expiry; the phone quickstart says tokens last 16 hours.
DEFAULT_TOKEN_LIFETIME = timedelta(hours=16)
# A PUT that starts this close to the signed URL's expiry could be refused mid-way.
SIGNED_URL_SAFETY_MARGIN = timedelta(seconds=30)
SIZE_FIELDS = ("fileSize", "fileSizeInBytes")  # API reference, then phone quickstart
ORGANIZATION_FIELD = "organizationId"
PAGE_SIZE = 100
MAX_PAGES = 10_000
_DETAIL_LIMIT = 300
# Siro's JSON answers are small; this only stops a runaway body.
MAX_ANSWER_BYTES = 20 * 1024 * 1024

__all__ = ["SiroHttpClient", "parse_retry_after"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class _Answer(BaseModel):
    """Part of an answer the client reads: camelCase, unknown fields ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class _MintAnswer(_Answer):
    access_token: SecretStr
    access_token_id: str | None = None


class _TokenInfo(_Answer):
    expires_at: datetime | None = None


class _SignedUrlAnswer(_Answer):
    upload_url: str
    download_url: str
    expires_at: datetime | None = None
    upload_headers: dict[str, str] | None = None


class _AppAnswer(_Answer):
    app_name: str | None = None
    # Siro's spec answers "clientID", its quickstart "clientId".
    client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("clientID", "clientId")
    )
    client_secret: SecretStr


@dataclass(frozen=True, slots=True)
class _SignedUrlForm:
    """Which of the documented signed-url bodies this Siro accepts."""

    size_field: str
    send_organization_id: bool


class SiroHttpClient:
    """The real :class:`~poller.ports.siro.SiroPort`; safe to share across threads.

    Every request goes through the guarded :class:`~poller.adapters.http.HttpClient` (one
    session per thread, total deadline, address checks); the access token and the learned
    signed-url body form are shared by all threads.
    """

    def __init__(
        self,
        settings: SiroSettings,
        *,
        clock: Callable[[], datetime] = utcnow,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._user_agent = user_agent
        self._api_base = settings.api_base_url.rstrip("/")
        self._external_base = settings.external_api_base_url.rstrip("/")
        self._tokens = AccessTokenCache(
            self._mint_access_token,
            clock=clock,
            refresh_margin=timedelta(seconds=settings.token_refresh_margin_seconds),
        )
        self._configured_secrets = [
            secret.get_secret_value()
            for secret in (settings.api_token, settings.client_secret)
            if secret is not None
        ]
        self._recent_access_tokens: deque[str] = deque(maxlen=4)
        siro_hosts = {host_key(self._api_base), host_key(self._external_base)}
        # Siro's two configured hosts are explicit (tests run them on 127.0.0.1); credentials
        # go nowhere else, and redirects are not followed.
        self._api_hosts = HostRules.build(
            credential_hosts=siro_hosts, explicit_hosts=siro_hosts, config_key="siro.api_base_url"
        )
        # A signed upload URL: https to a host with public addresses only, unless it is one of
        # Siro's configured hosts. It carries no header credential: the URL is the credential.
        self._upload_hosts = HostRules.build(
            explicit_hosts=siro_hosts,
            https_only=True,
            any_public_host=True,
            config_key="siro.api_base_url",
        )
        self._retry = RetryPolicy(
            max_tries=settings.max_retries + 1,
            base_delay=settings.retry_initial_wait_seconds,
            max_delay=settings.retry_max_wait_seconds,
        )
        self._http = HttpClient(
            limits=Limits(
                connect_timeout=settings.connect_timeout_seconds,
                read_timeout=settings.read_timeout_seconds,
                deadline=settings.deadline_seconds,
                max_body_bytes=MAX_ANSWER_BYTES,
                body_limit_key="the Siro answer limit",
                deadline_key="siro.deadline_seconds",
            ),
            hosts=self._api_hosts,
            # Retried here, per step, so that each failure is classified for Siro first.
            retry=RetryPolicy.once(),
            user_agent=user_agent,
            redact=self._configured_secrets,
        )
        self._form_lock = threading.Lock()
        self._signed_url_form = _SignedUrlForm(
            size_field=SIZE_FIELDS[0], send_organization_id=bool(settings.organization_id)
        )
        self._identity_lock = threading.Lock()
        self._caller_organization_id: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SiroHttpClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the upload --------------------------------------------------------------------------

    def request_upload(self, file_type: AudioFormat, size_bytes: int) -> SignedUpload:
        if size_bytes < 1:
            raise ValueError(f"Siro takes files of at least 1 byte, not {size_bytes}")
        step = "signed-url"
        rejection: SiroPermanentError | None = None
        # Each 422 that names a field moves to the other documented form; three forms at most.
        for _ in range(3):
            with self._form_lock:
                form = self._signed_url_form
            body: dict[str, Any] = {"fileType": file_type.value, form.size_field: size_bytes}
            if form.send_organization_id and self._settings.organization_id:
                body[ORGANIZATION_FIELD] = self._settings.organization_id
            try:
                response = self._gateway(step, "POST", "/v1/core/recordings/signed-urls", body)
            except SiroPermanentError as exc:
                if exc.http_status != 422 or not self._learn_signed_url_form(form, exc.issues):
                    raise
                rejection = exc
                continue
            answer = self._parse(_SignedUrlAnswer, _data_object(self._json(response, step)), step)
            return SignedUpload(
                upload_url=answer.upload_url,
                download_url=answer.download_url,
                expires_at=_as_utc(answer.expires_at),
                upload_headers=dict(answer.upload_headers or {}),
            )
        assert rejection is not None
        raise rejection

    def _learn_signed_url_form(self, tried: _SignedUrlForm, issues: tuple[ZodIssue, ...]) -> bool:
        """Move to the other form if the 422 was about the form; True when worth another try."""
        with self._form_lock:
            if self._signed_url_form != tried:
                return True  # another thread has already learned from the same rejection
            named: set[str] = set()
            refused: set[str] = set()
            for issue in issues:
                # Only issues about key names say the form is wrong; a value Siro dislikes
                # (e.g. fileSize too big) would be refused in the other form as well.
                if issue.keys or issue.code == "unrecognized_keys":
                    refused.update(issue.keys)
                elif not _is_missing_key(issue):
                    continue
                named.update(str(part) for part in issue.path)
                named.update(issue.keys)
                named.update(f for f in (*SIZE_FIELDS, ORGANIZATION_FIELD) if f in issue.message)
            learned = tried
            if named & set(SIZE_FIELDS) or refused - {ORGANIZATION_FIELD}:
                other = SIZE_FIELDS[1] if tried.size_field == SIZE_FIELDS[0] else SIZE_FIELDS[0]
                learned = replace(learned, size_field=other)
            if ORGANIZATION_FIELD in refused:
                learned = replace(learned, send_organization_id=False)
            elif ORGANIZATION_FIELD in named and self._settings.organization_id:
                learned = replace(learned, send_organization_id=True)
            if learned == tried:
                return False
            self._signed_url_form = learned
        logger.info(
            "Siro refused the signed-url body (%s); using %s%s from now on",
            "; ".join(issue.describe() for issue in issues),
            learned.size_field,
            f" with {ORGANIZATION_FIELD}" if learned.send_organization_id else "",
        )
        return True

    def put_audio(
        self, upload: SignedUpload, path: Path, file_type: AudioFormat, size_bytes: int
    ) -> SignedUpload:
        step = "put"
        current = upload

        def attempt() -> None:
            nonlocal current
            if current.expired(self._clock(), SIGNED_URL_SAFETY_MARGIN):
                logger.info("the signed upload URL expired before the PUT; requesting a new one")
                current = self.request_upload(file_type, size_bytes)
            headers = current.put_headers(file_type, size_bytes)
            with path.open("rb") as audio:
                on_disk = os.fstat(audio.fileno()).st_size
                if on_disk != size_bytes:
                    raise ValueError(
                        f"{path.name} is {on_disk} bytes on disk, not the {size_bytes} expected"
                    )
                # requests streams an open file in blocks; the length must be exact because
                # the signature's content-length range was made for this size.
                headers["Content-Length"] = str(size_bytes)
                try:
                    self._exchange(
                        step, "PUT", current.upload_url, headers=headers, data=audio, signed=True
                    )
                except SiroPermanentError as exc:
                    if exc.http_status is not None and current.expired(self._clock()):
                        raise SiroTransientError(
                            f"Siro {step}: the signed URL expired during the upload "
                            f"(HTTP {exc.http_status})",
                            step=step,
                            http_status=exc.http_status,
                        ) from None
                    raise

        self._retrying(step, attempt)
        return current

    def create_recording(self, body: RecordingCreate) -> str:
        step = "create"
        response = self._gateway(
            step, "POST", "/v1/core/recordings/upload", body.to_json(), not_idempotent=True
        )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        data = _data_object(payload)
        for key in ("id", "recordingId"):
            value = data.get(key)
            if isinstance(value, str) and value:
                logger.debug("Siro created recording %s", value)
                return value
        raise SiroCreateOutcomeUnknown(
            f"Siro {step}: HTTP {response.status} but the answer names no recording id; "
            "the recording was probably created",
            step=step,
            http_status=response.status,
        )

    # -- reads -------------------------------------------------------------------------------

    def find_recordings(
        self, created_after: datetime, created_before: datetime | None = None
    ) -> list[RecordingSummary]:
        step = "list-recordings"
        params: dict[str, str | int] = {"dateCreated:gt": _iso(created_after), "limit": PAGE_SIZE}
        if created_before is not None:
            params["dateCreated:lt"] = _iso(created_before)
        items = self._pages(
            step,
            lambda cursor: self._gateway(
                step, "GET", "/v1/core/recordings", params=_with_cursor(params, cursor)
            ),
        )
        found = [self._parse(RecordingSummary, item, step) for item in items]
        after, before = _as_utc(created_after), _as_utc(created_before)
        assert after is not None
        # Reconciliation must not act on a recording outside the window, should Siro ever
        # ignore a filter, so the bounds are checked here too.
        return [
            r
            for r in found
            if r.date_created is None
            or (r.date_created > after and (before is None or r.date_created < before))
        ]

    def get_recording(self, recording_id: str) -> RecordingSummary | None:
        step = "get-recording"
        try:
            response = self._gateway(
                step, "GET", f"/v1/core/recordings/{quote(recording_id, safe='')}"
            )
        except SiroPermanentError as exc:
            if exc.http_status == 404:
                return None
            raise
        return self._parse(RecordingSummary, _data_object(self._json(response, step)), step)

    def list_users(self) -> list[SiroUser]:
        step = "users"
        items = self._pages(
            step,
            lambda cursor: self._external(
                step, "GET", "/v1/core/users", params=_with_cursor({"pageSize": PAGE_SIZE}, cursor)
            ),
        )
        return [self._parse(SiroUser, item, step) for item in items]

    def list_connections(self) -> list[IntegrationConnection]:
        step = "connections"
        items = self._pages(
            step,
            lambda cursor: self._external(
                step, "GET", "/v1/core/integrations/connections", params=_with_cursor({}, cursor)
            ),
        )
        return [self._parse(IntegrationConnection, item, step) for item in items]

    def list_conversation_configurations(self) -> list[ConversationConfiguration]:
        step = "conversation-configurations"
        params = {"organizationId": self.organization_id()}
        items = self._pages(
            step,
            lambda cursor: self._gateway(
                step,
                "GET",
                "/v1/core/conversation-configurations",
                params=_with_cursor(params, cursor),
            ),
        )
        return [self._parse(ConversationConfiguration, item, step) for item in items]

    # -- administration (CLI) ----------------------------------------------------------------

    def organization_id(self) -> str:
        """The configured organization, else the one the organization API token belongs to."""
        if self._settings.organization_id:
            return self._settings.organization_id
        step = "caller-identity"
        with self._identity_lock:
            if self._caller_organization_id is None:
                response = self._external(step, "GET", "/v1/core/auth/caller-identity")
                found = _data_object(self._json(response, step)).get("organizationId")
                if not isinstance(found, str) or not found:
                    raise SiroPermanentError(
                        f"Siro {step}: the answer names no organizationId", step=step
                    )
                self._caller_organization_id = found
            return self._caller_organization_id

    def create_oauth_app(self, name: str, owner: str) -> OAuthAppCredentials:
        """Create an OAuth app; the secret in the answer is shown by Siro this one time only."""
        step = "create-app"
        body = {"appName": name, "owner": owner, "organizationId": self.organization_id()}
        response = self._external(step, "POST", "/v1/core/oauth/apps", body, not_idempotent=True)
        answer = self._parse(_AppAnswer, _data_object(self._json(response, step)), step)
        client_id = answer.client_id
        if not client_id:
            raise SiroPermanentError(
                f"Siro {step}: the answer names no clientID; look the app up in Siro", step=step
            )
        return OAuthAppCredentials(
            app_name=answer.app_name or name,
            client_id=client_id,
            client_secret=answer.client_secret,
        )

    # -- tokens ------------------------------------------------------------------------------

    def verify_credentials(self) -> None:
        cached = self._tokens.current_value()
        if cached is not None:
            self._tokens.invalidate_value(cached)
        self._tokens.get()

    def _mint_access_token(self) -> AccessToken:
        step = "mint-token"
        settings = self._settings
        client_id = _required(settings.client_id, "siro.client_id", step)
        secret = settings.client_secret.get_secret_value() if settings.client_secret else ""
        secret = _required(secret, "siro.client_secret", step)
        user_id = _required(settings.token_user_id, "siro.token_user_id", step)
        minted_at = self._clock()
        response = self._external(
            step,
            "POST",
            f"/v1/core/oauth/apps/{quote(client_id, safe='')}/access-token",
            {"clientSecret": secret, "userId": user_id, "scope": settings.token_scope},
        )
        answer = self._parse(_MintAnswer, _data_object(self._json(response, step)), step)
        value = answer.access_token.get_secret_value()
        if not value:
            raise SiroPermanentError(f"Siro {step}: the answer holds no accessToken", step=step)
        self._recent_access_tokens.append(value)
        expires_at = self._token_expiry(client_id, answer.access_token_id, minted_at)
        logger.info(
            "minted a Siro access token for user %s (scope %s), valid until %s",
            user_id,
            settings.token_scope,
            expires_at.isoformat(),
        )
        return AccessToken(value=value, expires_at=expires_at, token_id=answer.access_token_id)

    def _token_expiry(self, client_id: str, token_id: str | None, minted_at: datetime) -> datetime:
        assumed = minted_at + DEFAULT_TOKEN_LIFETIME
        if not token_id:
            return assumed
        step = "token-expiry"
        path = (
            f"/v1/core/oauth/apps/{quote(client_id, safe='')}"
            f"/access-token/{quote(token_id, safe='')}"
        )
        try:
            # One try only: the expiry is a refinement, the 16 hours are a sound fallback.
            response = self._exchange(
                step, "GET", self._external_base + path, headers=self._org_auth(step)
            )
            info = self._parse(_TokenInfo, _data_object(self._json(response, step)), step)
        except SiroError as exc:
            logger.info("could not read the access token's expiry, assuming 16 hours: %s", exc)
            return assumed
        expires_at = _as_utc(info.expires_at)
        if expires_at is None or expires_at <= minted_at:
            return assumed
        return expires_at

    # -- the two surfaces --------------------------------------------------------------------

    def _gateway(
        self,
        step: str,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        not_idempotent: bool = False,
    ) -> HttpResponse:
        """A call to the API gateway with the access token; one fresh token after a 401."""
        url = self._api_base + path
        refreshed = False
        while True:
            token = self._tokens.get()
            headers = {ACCESS_TOKEN_HEADER: token.value}
            try:
                return self._send(step, method, url, headers, params, json_body, not_idempotent)
            except SiroPermanentError as exc:
                if exc.http_status != 401:
                    raise
                if refreshed:
                    raise SiroPermanentError(
                        f"Siro {step}: a freshly minted access token was refused too (HTTP 401); "
                        "check siro.client_id, siro.token_user_id and siro.token_scope",
                        step=step,
                        http_status=401,
                    ) from None
            # Siro refused the token before acting on the request, so sending again is safe.
            logger.info("Siro refused the access token on %s (HTTP 401); minting a new one", step)
            self._tokens.invalidate(token)
            refreshed = True

    def _external(
        self,
        step: str,
        method: str,
        path: str,
        json_body: Any = None,
        *,
        params: Mapping[str, Any] | None = None,
        not_idempotent: bool = False,
    ) -> HttpResponse:
        """A call to the external API with the organization token."""
        headers = self._org_auth(step)
        try:
            return self._send(
                step, method, self._external_base + path, headers, params, json_body, not_idempotent
            )
        except SiroPermanentError as exc:
            if exc.http_status not in (401, 403):
                raise
            hint = "siro.api_token"
            if step == "mint-token":
                hint += ", siro.client_id, siro.client_secret and siro.token_user_id"
            raise SiroPermanentError(
                f"{exc}; check {hint}", step=step, http_status=exc.http_status
            ) from None

    def _org_auth(self, step: str) -> dict[str, str]:
        token = self._settings.api_token.get_secret_value() if self._settings.api_token else ""
        return {"Authorization": f"Bearer {_required(token, 'siro.api_token', step)}"}

    def _send(
        self,
        step: str,
        method: str,
        url: str,
        headers: dict[str, str],
        params: Mapping[str, Any] | None,
        json_body: Any,
        not_idempotent: bool,
    ) -> HttpResponse:
        # A request that is not idempotent goes on a fresh connection each time (a failure on
        # a reused keep-alive socket could not be told apart from one after Siro got it), and
        # is retried only on what proves nothing was acted on: no connection, 429, 408.
        return self._retrying(
            step,
            lambda: self._exchange(
                step,
                method,
                url,
                headers=headers,
                params=params,
                json_body=json_body,
                not_idempotent=not_idempotent,
            ),
        )

    # -- one exchange, and how failures are classified ---------------------------------------

    def _exchange(
        self,
        step: str,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        not_idempotent: bool = False,
        signed: bool = False,
    ) -> HttpResponse:
        try:
            return self._http.request(
                method,
                url,
                params=params,
                json=json_body,
                data=data,
                headers=headers if signed else None,
                credentials=None if signed else headers,
                what=f"Siro {step}",
                idempotent=not not_idempotent,
                follow_redirects=False,
                hosts=self._upload_hosts if signed else self._api_hosts,
            )
        except HttpRefused as exc:
            raise SiroPermanentError(f"Siro {step}: {exc.detail}", step=step) from None
        except HttpError as exc:
            if exc.response is not None:
                raise self._http_failure(step, exc.response, not_idempotent, signed) from None
            raise self._network_failure(step, exc, not_idempotent) from None

    def _http_failure(
        self, step: str, response: HttpResponse, not_idempotent: bool, signed: bool
    ) -> SiroError:
        status = response.status
        detail = self._detail(response, signed)
        if status in (408, 429) or status >= 500:
            retry_after = None
            if status in (429, 503):
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            if not_idempotent and status >= 500:
                return SiroCreateOutcomeUnknown(
                    f"Siro {step}: HTTP {status} after the request was sent, so it may have been "
                    f"acted on: {detail}",
                    step=step,
                    http_status=status,
                )
            wait = f" (Retry-After {retry_after:g} s)" if retry_after is not None else ""
            return SiroTransientError(
                f"Siro {step}: HTTP {status}{wait}: {detail}",
                step=step,
                http_status=status,
                retry_after=retry_after,
            )
        if 300 <= status < 400:
            return SiroPermanentError(
                f"Siro {step}: unexpected redirect (HTTP {status}), not followed so that "
                "credentials stay with Siro",
                step=step,
                http_status=status,
            )
        issues = self._zod_issues(response) if status == 422 else ()
        if issues:
            detail = "; ".join(issue.describe() for issue in issues)
        return SiroPermanentError(
            f"Siro {step}: HTTP {status}: {detail}", step=step, http_status=status, issues=issues
        )

    def _network_failure(self, step: str, exc: HttpError, not_idempotent: bool) -> SiroError:
        if isinstance(exc, DeadlineExceeded):
            what = exc.detail
        elif exc.status is not None:
            what = f"the answer broke off ({exc.detail})"
        else:
            what = exc.detail
        if not_idempotent and exc.may_have_been_sent:
            return SiroCreateOutcomeUnknown(
                f"Siro {step}: {what} after the request was sent, so it may have been acted on",
                step=step,
            )
        if not isinstance(exc, HttpTransient):
            return SiroPermanentError(f"Siro {step}: {what}", step=step, http_status=exc.status)
        return SiroTransientError(f"Siro {step}: {what}", step=step)

    def _detail(self, response: HttpResponse, signed: bool) -> str:
        """A short, secret-free account of what went wrong, from the answer's body."""
        if signed:
            # Storage error bodies echo the canonical request; only the error code is kept.
            code = re.search(r"<Code>([^<]{1,80})</Code>", response.text)
            return code.group(1) if code else response.reason or "no details"
        try:
            payload = response.json()
        except ValueError:
            payload = None
        text = ""
        if isinstance(payload, dict):
            for key in ("error", "message", "name"):
                if isinstance(payload.get(key), str):
                    text = payload[key]
                    break
        text = text or response.text or response.reason or ""
        return self._clean(text) or "no details"

    def _zod_issues(self, response: HttpResponse) -> tuple[ZodIssue, ...]:
        try:
            payload = response.json()
        except ValueError:
            return ()
        raw = payload.get("issues") if isinstance(payload, dict) else None
        if not isinstance(raw, list):
            return ()
        issues = []
        for item in raw:
            if not isinstance(item, dict):
                continue
            message = self._clean(str(item.get("message", "")))
            code = item.get("code") if isinstance(item.get("code"), str) else None
            keys = item.get("keys")
            if isinstance(keys, list) and keys:
                refused = tuple(str(key) for key in keys)
            elif code == "unrecognized_keys":
                refused = tuple(re.findall(r"""['"]([^'"]+)['"]""", message))
            else:
                refused = ()
            path = item.get("path")
            issues.append(
                ZodIssue(
                    message=message,
                    path=tuple(p for p in path if isinstance(p, str | int))
                    if isinstance(path, list)
                    else (),
                    code=code,
                    keys=refused,
                )
            )
        return tuple(issues)

    def _clean(self, text: str) -> str:
        text = " ".join(text.split())[:_DETAIL_LIMIT]
        return redact_text(text, [*self._configured_secrets, *self._recent_access_tokens])

    # -- plumbing ----------------------------------------------------------------------------

    def _retrying(self, step: str, attempt: Callable[[], T]) -> T:
        def announce(error: BaseException, tries: int, wait: float) -> None:
            logger.warning(
                "%s; retry %d of %d in %.2f s",
                error,
                tries,
                self._retry.max_tries - 1,
                wait,
                extra={"siro_step": step, "retry_wait_seconds": wait},
            )

        # A Retry-After longer than retry_max_wait_seconds ends the tries at once: the error,
        # with its retry_after, goes back to the worker to schedule.
        return self._retry.call(attempt, retry_on=(SiroTransientError,), on_retry=announce)

    def _pages(
        self, step: str, fetch: Callable[[str | None], HttpResponse]
    ) -> list[Mapping[str, Any]]:
        """Every item of a cursor-paged list (``data``, ``cursor``, ``hasNextPage``)."""
        items: list[Mapping[str, Any]] = []
        paginator = TokenPaginator(token_path="cursor", token_param="cursor")  # noqa: S106
        request = PageRequest(step)
        for _ in range(MAX_PAGES):
            payload = self._json(fetch((request.params or {}).get("cursor")), step)
            page = payload.get("data") if isinstance(payload, dict) else None
            if not isinstance(page, list):
                raise SiroPermanentError(f"Siro {step}: the answer holds no data list", step=step)
            items.extend(page)
            if payload.get("hasNextPage") is False:
                return items
            try:
                following = paginator.next_request(request, PageResponse(step, payload, {}, page))
            except PagingLoop as exc:
                raise SiroPermanentError(f"Siro {step}: {exc}", step=step) from None
            if following is None:
                return items
            request = following
        raise SiroPermanentError(f"Siro {step}: more than {MAX_PAGES} pages", step=step)

    def _json(self, response: HttpResponse, step: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SiroPermanentError(
                f"Siro {step}: HTTP {response.status} with a body that is not JSON",
                step=step,
                http_status=response.status,
            ) from None

    def _parse(self, model: type[M], data: Any, step: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'answer'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            raise SiroPermanentError(
                f"Siro {step}: unexpected answer ({problems})", step=step
            ) from None


def _required(value: str | None, key: str, step: str) -> str:
    if not value:
        raise SiroPermanentError(f"Siro {step}: {key} is not set", step=step)
    return value


def _data_object(payload: Any) -> Mapping[str, Any]:
    """Siro wraps some answers in ``data`` and returns others top level; accept either."""
    if isinstance(payload, dict):
        inner = payload.get("data")
        return inner if isinstance(inner, dict) else payload
    return {}


def _is_missing_key(issue: ZodIssue) -> bool:
    """Zod 3 says "Required"; Zod 4 says "Invalid input: expected string, received undefined"."""
    text = issue.message.lower()
    return issue.code in (None, "invalid_type") and ("required" in text or "undefined" in text)


def _with_cursor(params: Mapping[str, Any], cursor: str | None) -> dict[str, Any]:
    return {**params, "cursor": cursor} if cursor else dict(params)


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime) -> str:
    utc = _as_utc(value)
    assert utc is not None
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")
