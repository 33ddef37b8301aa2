"""One exchange with Siro and what its failure means, bounded retrying, and cursor paging.

Every failure becomes one of the port's errors (:mod:`poller.ports.siro`), with a short,
secret-free detail taken from the answer: :class:`SiroTransientError` for what may pass
(connection failures, timeouts, 408, 429, 5xx), :class:`SiroPermanentError` for a refusal
(with a 422's Zod issues parsed), and :class:`SiroCreateOutcomeUnknown` when a request that
is not idempotent may have been acted on. Which refusals are about the credentials is decided
by the caller that attached them (:mod:`poller.adapters.siro.auth`).

A request that is not idempotent goes on a fresh connection each time (a failure on a reused
keep-alive socket could not be told apart from one after Siro got it), and is retried only on
what proves nothing was acted on: no connection, 429, 408.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from poller.adapters.http import (
    DeadlineExceeded,
    HostRules,
    HostUnresolved,
    HttpClient,
    HttpError,
    HttpRefused,
    HttpResponse,
    HttpTransient,
    Limits,
    RetryPolicy,
)
from poller.adapters.http.paginators import PageRequest, PageResponse, PagingLoop, TokenPaginator
from poller.adapters.siro.settings import SiroSettings
from poller.domain.call_record import host_key
from poller.domain.redaction import redact_text
from poller.ports.siro import (
    SiroCreateOutcomeUnknown,
    SiroError,
    SiroHostUnresolved,
    SiroPermanentError,
    SiroTransientError,
    ZodIssue,
)

logger = logging.getLogger(__name__)

MAX_PAGES = 10_000
DETAIL_LIMIT = 300
# Siro's JSON answers are small; this only stops a runaway body.
MAX_ANSWER_BYTES = 20 * 1024 * 1024

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class SiroExchange:
    """Sends requests to Siro's two surfaces and to signed storage URLs; thread-safe.

    Redirects are never followed, so no credential can be carried to another host. Error
    texts are cut short and scrubbed of the configured secrets and recent access tokens.
    """

    def __init__(
        self,
        settings: SiroSettings,
        *,
        storage_hosts: HostRules,
        user_agent: str,
    ) -> None:
        self.api_base = settings.api_base_url.rstrip("/")
        self.external_base = settings.external_api_base_url.rstrip("/")
        self._configured_secrets = [
            secret.get_secret_value()
            for secret in (settings.api_token, settings.client_secret)
            if secret is not None
        ]
        self._recent_access_tokens: deque[str] = deque(maxlen=4)
        siro_hosts = {host_key(self.api_base), host_key(self.external_base)}
        # Siro's two configured hosts are explicit (tests run them on 127.0.0.1); credentials
        # go nowhere else.
        self._api_hosts = HostRules.build(
            credential_hosts=siro_hosts, explicit_hosts=siro_hosts, config_key="siro.api_base_url"
        )
        self._storage_hosts = storage_hosts
        self.retry_policy = RetryPolicy(
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
                max_retry_after=settings.max_retry_after_seconds,
                retry_after_key="siro.max_retry_after_seconds",
                read_timeout_key="siro.read_timeout_seconds",
                url_keys={
                    host_key(self.external_base): "siro.external_api_base_url",
                    host_key(self.api_base): "siro.api_base_url",
                },
            ),
            hosts=self._api_hosts,
            # Retried here, per step, so that each failure is classified for Siro first.
            retry=RetryPolicy.once(),
            user_agent=user_agent,
            redact=self._configured_secrets,
        )

    def close(self) -> None:
        self._http.close()

    def remember_secret(self, value: str) -> None:
        """A freshly minted access token: scrubbed from error texts from now on."""
        self._recent_access_tokens.append(value)

    # -- requests ----------------------------------------------------------------------------

    def send(
        self,
        step: str,
        method: str,
        url: str,
        headers: dict[str, str],
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        not_idempotent: bool = False,
    ) -> HttpResponse:
        """A request to one of Siro's surfaces with its credential, retried while transient."""
        return self.retrying(
            step,
            lambda: self.exchange(
                step,
                method,
                url,
                headers=headers,
                params=params,
                json_body=json_body,
                not_idempotent=not_idempotent,
            ),
        )

    def exchange(
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
        """One try. ``signed``: a storage URL, which carries no credential but its signature."""
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
                hosts=self._storage_hosts if signed else self._api_hosts,
            )
        except HttpRefused as exc:
            raise SiroPermanentError(f"Siro {step}: {exc.detail}", step=step) from None
        except HttpError as exc:
            if exc.response is not None:
                raise self._http_failure(
                    step, exc.response, not_idempotent, signed, exc.retry_after
                ) from None
            raise self._network_failure(step, exc, not_idempotent) from None

    def retrying(self, step: str, attempt: Callable[[], T]) -> T:
        """``attempt()``, tried again on :class:`SiroTransientError` within the bounded policy."""

        def announce(error: BaseException, tries: int, wait: float) -> None:
            logger.warning(
                "%s; retry %d of %d in %.2f s",
                error,
                tries,
                self.retry_policy.max_tries - 1,
                wait,
                extra={"siro_step": step, "retry_wait_seconds": wait},
            )

        # A Retry-After longer than retry_max_wait_seconds ends the tries at once: the error,
        # with its retry_after, goes back to the worker to schedule.
        return self.retry_policy.call(
            attempt,
            retry_on=(SiroTransientError,),
            on_retry=announce,
            should_retry=lambda error: not isinstance(error, SiroHostUnresolved),
        )

    # -- answers -----------------------------------------------------------------------------

    def pages(
        self, step: str, fetch: Callable[[str | None], HttpResponse]
    ) -> list[Mapping[str, Any]]:
        """Every item of a cursor-paged list (``data``, ``cursor``, ``hasNextPage``)."""
        items: list[Mapping[str, Any]] = []
        paginator = TokenPaginator(token_path="cursor", token_param="cursor")  # noqa: S106
        request = PageRequest(step)
        for _ in range(MAX_PAGES):
            payload = self.json(fetch((request.params or {}).get("cursor")), step)
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

    def json(self, response: HttpResponse, step: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SiroPermanentError(
                f"Siro {step}: HTTP {response.status} with a body that is not JSON",
                step=step,
                http_status=response.status,
            ) from None

    def parse(self, model: type[M], data: Any, step: str) -> M:
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

    # -- how failures are classified ---------------------------------------------------------

    def _http_failure(
        self,
        step: str,
        response: HttpResponse,
        not_idempotent: bool,
        signed: bool,
        retry_after: float | None,
    ) -> SiroError:
        """``retry_after``: the answer's Retry-After as the client read it, already capped at
        ``siro.max_retry_after_seconds``; only a 429's or a 503's is Siro's wish."""
        status = response.status
        detail = self._detail(response, signed)
        if status in (408, 429) or status >= 500:
            if status not in (429, 503):
                retry_after = None
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
        if exc.url_for_humans:
            # The host only: a storage URL's path names the organisation's objects.
            where = urlsplit(exc.url_for_humans)
            what = f"{where.scheme}://{where.netloc}: {what}"
        check = f"; check {exc.check}" if exc.check else ""
        if not_idempotent and exc.may_have_been_sent:
            return SiroCreateOutcomeUnknown(
                f"Siro {step}: {what} after the request was sent, so it may have been acted "
                f"on{check}",
                step=step,
            )
        message = f"Siro {step}: {what}{check}"
        if isinstance(exc, HostUnresolved):
            return SiroHostUnresolved(message, step=step)
        if not isinstance(exc, HttpTransient):
            return SiroPermanentError(message, step=step, http_status=exc.status)
        return SiroTransientError(message, step=step)

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
        text = " ".join(text.split())[:DETAIL_LIMIT]
        return redact_text(text, [*self._configured_secrets, *self._recent_access_tokens])
