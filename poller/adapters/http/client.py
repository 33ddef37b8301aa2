"""The one guarded HTTP client every outbound call goes through.

Per request: the destination rules of :mod:`~poller.adapters.http.destinations` on every hop
(redirects are followed by hand, at most :data:`MAX_REDIRECTS`), credentials only to credential
hosts, connect and read timeouts plus one total wall-clock deadline that also covers reading the
body, bodies streamed under a byte cap, the rate limiter, the authenticator's one re-mint after a
401/403, and the retry policy for transient failures. Messages name URLs without their query.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import requests
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict

from poller.adapters.http.auth import Authenticator
from poller.adapters.http.destinations import HostRules
from poller.adapters.http.errors import (
    HostUnresolved,
    HttpError,
    HttpPermanent,
    HttpRefused,
    HttpResponse,
    HttpTransient,
    HttpUnauthorized,
    url_for_humans,
)
from poller.adapters.http.ratelimit import RateLimiter
from poller.adapters.http.retry import RetryPolicy, capped_wait, parse_retry_after
from poller.adapters.http.transport import Guard, GuardedAdapter, RequestDeadline, guarding
from poller.domain.call_record import host_key
from poller.domain.clock import utcnow
from poller.domain.redaction import redact_text
from poller.domain.retry_after import DEFAULT_MAX_RETRY_AFTER_SECONDS
from poller.domain.urls import host_for_humans
from poller.ports.download import Downloaded

log = logging.getLogger(__name__)

# A socket timeout this close to the request's deadline is the deadline's doing.
_DEADLINE_SLACK_SECONDS = 0.01

T = TypeVar("T")

MAX_REDIRECTS = 5
CHUNK_BYTES = 256 * 1024
ERROR_BODY_BYTES = 64 * 1024
REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True, slots=True)
class Limits:
    """``*_key`` name the settings a message tells the operator to change; ``url_keys`` the
    setting each configured host came from (host key, as :func:`host_key` gives it, to the
    setting), named when that host cannot be reached."""

    connect_timeout: float
    read_timeout: float
    deadline: float
    max_body_bytes: int
    body_limit_key: str = "provider.max_page_bytes"
    deadline_key: str = "provider.deadline_seconds"
    # The longest Retry-After believed; a longer one is cut to it (and logged).
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER_SECONDS
    retry_after_key: str = "provider.max_retry_after_seconds"
    read_timeout_key: str = "provider.read_timeout_seconds"
    url_keys: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JsonPage:
    body: Any
    headers: Mapping[str, str]
    url: str
    status: int


class HttpClient:
    """Safe to share across threads: each thread has its own ``requests.Session``."""

    def __init__(
        self,
        *,
        limits: Limits,
        hosts: HostRules,
        retry: RetryPolicy,
        auth: Authenticator | None = None,
        rate_limiter: RateLimiter | None = None,
        user_agent: str,
        redact: Sequence[str] = (),
        pool_size: int = 10,
    ) -> None:
        self.limits = limits
        self.hosts = hosts
        self.retry = retry
        self.auth = auth
        self.rate_limiter = rate_limiter
        self.user_agent = user_agent
        self._redact = [value for value in redact if value]
        self._pool_size = pool_size
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def secrets(self) -> list[str]:
        """Every value a message or log must never show."""
        dynamic = list(self.auth.secrets()) if self.auth is not None else []
        return [*self._redact, *dynamic]

    def redact(self, text: str) -> str:
        return redact_text(text, self.secrets())

    # -- the three ways in -------------------------------------------------------------------

    def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        what: str,
        headers: Mapping[str, str] | None = None,
        parse: Callable[[bytes], Any] = json.loads,
    ) -> JsonPage:
        """GET a JSON document; the body is read under ``limits.max_body_bytes``.

        ``parse`` decodes the body; its :class:`ValueError` means the answer is not JSON.
        """

        def attempt() -> JsonPage:
            response = self._request_once(
                "GET",
                url,
                params=params,
                headers=headers,
                what=what,
                max_body_bytes=self.limits.max_body_bytes,
                limit_key=self.limits.body_limit_key,
            )
            try:
                body = parse(response.body)
            except (ValueError, RecursionError):
                raise HttpPermanent(
                    f"{what}: the answer from {url_for_humans(response.url)} is not JSON",
                    url=response.url,
                    status=response.status,
                ) from None
            return JsonPage(body, response.headers, response.url, response.status)

        return self.retry.call(attempt, retry_on=(HttpTransient,), should_retry=_retry_now)

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        credentials: Mapping[str, str] | None = None,
        what: str,
        idempotent: bool = True,
        max_body_bytes: int | None = None,
        follow_redirects: bool = True,
        authenticate: bool = True,
        hosts: HostRules | None = None,
    ) -> HttpResponse:
        """One request with its answer read; raises :class:`HttpError` for non-2xx answers.

        ``credentials`` are headers sent only to credential hosts. A request that is not
        ``idempotent`` goes on a fresh connection and is retried only when it provably was not
        sent (no connection) or the server said so (408, 429).
        """

        def attempt() -> HttpResponse:
            return self._request_once(
                method,
                url,
                params=params,
                json_body=json,
                data=data,
                headers=headers,
                credentials=credentials,
                what=what,
                max_body_bytes=max_body_bytes or self.limits.max_body_bytes,
                limit_key=self.limits.body_limit_key,
                fresh_connection=not idempotent,
                follow_redirects=follow_redirects,
                authenticate=authenticate,
                hosts=hosts,
            )

        def worth_retrying(error: BaseException) -> bool:
            if not _retry_now(error):
                return False
            if idempotent:
                return True
            assert isinstance(error, HttpError)
            return not error.may_have_been_sent or error.status in (408, 429)

        return self.retry.call(attempt, retry_on=(HttpTransient,), should_retry=worth_retrying)

    def download(
        self,
        url: str,
        destination: Path,
        *,
        max_bytes: int,
        what: str,
        stop: threading.Event | None = None,
        headers: Mapping[str, str] | None = None,
        credentials: Mapping[str, str] | None = None,
        limit_key: str = "worker.max_download_bytes",
        hosts: HostRules | None = None,
        rate_limiter: RateLimiter | None = None,
        secret_path: bool = False,
    ) -> Downloaded:
        """Stream ``url`` to ``destination`` (mode 0600), whole or not at all.

        The body goes to ``<destination>.part`` and is renamed only once complete and checked
        against Content-Length and ``max_bytes`` (not fsynced: see _stream_to_file).
        One attempt: the caller reschedules. ``secret_path``: the URLs' paths grant access (a
        token in them), so logs name hosts only.
        """
        started = time.monotonic()
        partial = destination.with_name(destination.name + ".part")
        result: dict[str, Any] = {}

        def consume(response: requests.Response, deadline: RequestDeadline) -> bytes:
            size, digest = _stream_to_file(
                response, partial, max_bytes, limit_key, deadline, stop, what, self.limits
            )
            result.update(size=size, digest=digest)
            return b""

        try:
            answer = self._exchange(
                "GET",
                url,
                headers=headers,
                credentials=credentials,
                what=what,
                consume=consume,
                hosts=hosts,
                rate_limiter=rate_limiter,
                secret_path=secret_path,
            )
            os.replace(partial, destination)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return Downloaded(
            path=destination,
            size_bytes=result["size"],
            sha256=result["digest"],
            http_status=answer.status,
            duration_ms=int((time.monotonic() - started) * 1000),
            content_type=answer.headers.get("Content-Type"),
        )

    # -- one request ---------------------------------------------------------------------------

    def _request_once(
        self,
        method: str,
        url: str,
        *,
        what: str,
        max_body_bytes: int,
        limit_key: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        credentials: Mapping[str, str] | None = None,
        fresh_connection: bool = False,
        follow_redirects: bool = True,
        authenticate: bool = True,
        hosts: HostRules | None = None,
    ) -> HttpResponse:
        def consume(response: requests.Response, deadline: RequestDeadline) -> bytes:
            return _read_capped(response, max_body_bytes, limit_key, deadline, what, self.limits)

        return self._exchange(
            method,
            url,
            params=params,
            json_body=json_body,
            data=data,
            headers=headers,
            credentials=credentials,
            what=what,
            consume=consume,
            fresh_connection=fresh_connection,
            follow_redirects=follow_redirects,
            authenticate=authenticate,
            hosts=hosts,
        )

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        what: str,
        consume: Callable[[requests.Response, RequestDeadline], bytes],
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        credentials: Mapping[str, str] | None = None,
        fresh_connection: bool = False,
        follow_redirects: bool = True,
        authenticate: bool = True,
        hosts: HostRules | None = None,
        rate_limiter: RateLimiter | None = None,
        secret_path: bool = False,
    ) -> HttpResponse:
        auth = self.auth if authenticate else None
        rules = hosts or self.hosts
        # A per-call limiter: downloads share the rate limit of the provider they come from.
        limiter = rate_limiter or self.rate_limiter
        reminted = False
        while True:
            if limiter is not None:
                limiter.acquire()
            deadline = RequestDeadline(self.limits.deadline)
            deadline.start()
            try:
                with (
                    guarding(rules, deadline) as guard,
                    self._session_for(fresh_connection) as session,
                ):
                    response, sent = self._open(
                        session,
                        guard,
                        method,
                        url,
                        params=params,
                        json_body=json_body,
                        data=data,
                        headers=headers,
                        credentials=credentials,
                        auth=auth,
                        deadline=deadline,
                        what=what,
                        follow_redirects=follow_redirects,
                        limiter=limiter,
                        secret_path=secret_path,
                    )
                    with response:
                        status = response.status_code
                        if (
                            status in (401, 403)
                            and auth is not None
                            and sent
                            and not reminted
                            and _replayable(data)
                            and auth.on_unauthorized(sent)
                        ):
                            log.info(
                                "%s: HTTP %d; trying once with fresh credentials", what, status
                            )
                            reminted = True
                            continue
                        if 200 <= status < 300:
                            body = consume(response, deadline)
                        else:
                            body = _read_capped(
                                response,
                                ERROR_BODY_BYTES,
                                "",
                                deadline,
                                what,
                                self.limits,
                                truncate=True,
                            )
                        answer = HttpResponse(
                            status=status,
                            headers=CaseInsensitiveDict(response.headers),
                            body=body,
                            url=response.url,
                            reason=response.reason or "",
                            elapsed_ms=int((time.monotonic() - deadline.started) * 1000),
                        )
            finally:
                deadline.stop()
            if 200 <= answer.status < 300:
                return answer
            raise self._status_error(method, answer, what, reminted)

    @contextmanager
    def _session_for(self, fresh: bool) -> Iterator[requests.Session]:
        if not fresh:
            yield self._session()
            return
        # A fresh connection: a failure on a reused keep-alive socket could not be told apart
        # from one after the server got the request.
        session = self._new_session(pool_size=1)
        try:
            yield session
        finally:
            session.close()

    def _open(
        self,
        session: requests.Session,
        guard: Guard,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None,
        json_body: Any,
        data: Any,
        headers: Mapping[str, str] | None,
        credentials: Mapping[str, str] | None,
        auth: Authenticator | None,
        deadline: RequestDeadline,
        what: str,
        follow_redirects: bool,
        limiter: RateLimiter | None,
        secret_path: bool = False,
    ) -> tuple[requests.Response, dict[str, str]]:
        """Send, following redirects by hand; each hop checked. Returns the answer and the
        credential headers sent with it (empty if none were).

        Credentials are chosen per hop for the host judged, and the connection refuses any host
        but the one judged: a URL read one way when judged and another when connected sends
        nothing, credentials least of all.
        """
        rules = guard.rules
        shown = host_for_humans if secret_path else url_for_humans
        current = url
        redirected_by: str | None = None  # the URL whose redirect led to ``current``
        for hop in range(MAX_REDIRECTS + 1):
            try:
                guard.destination = rules.check_url(current)
            except HttpRefused as exc:
                raise _refused(exc, current, redirected_by) from None
            send = {"User-Agent": self.user_agent, **(headers or {})}
            sent: dict[str, str] = {}
            if rules.may_send_credentials(current):
                sent.update(credentials or {})
                if auth is not None:
                    sent.update(auth.headers_for_request())
            elif credentials or auth is not None:
                log.debug("%s: no credentials sent to %s", what, shown(current))
            send.update(sent)
            remaining = deadline.remaining()
            if remaining <= 0 or deadline.expired:
                raise self._deadline_error(what, current)
            timeout = (
                min(self.limits.connect_timeout, remaining),
                min(self.limits.read_timeout, remaining),
            )
            started = time.monotonic()
            try:
                response = session.request(
                    method,
                    current,
                    params=params if hop == 0 else None,
                    json=json_body if hop == 0 else None,
                    data=data if hop == 0 else None,
                    headers=send,
                    stream=True,
                    allow_redirects=False,
                    timeout=timeout,
                )
            except HttpRefused as exc:
                raise _refused(exc, current, redirected_by) from None
            except requests.RequestException as exc:
                raise self._network_error(exc, what, current, deadline) from None
            log.debug(
                "%s %s answered HTTP %d in %d ms",
                method,
                shown(current),
                response.status_code,
                (time.monotonic() - started) * 1000,
            )
            if hop == 0 and limiter is not None:
                limiter.observe(response.status_code, response.headers)
            location = response.headers.get("Location")
            if (
                not follow_redirects
                or response.status_code not in REDIRECTS
                or not location
                or method.upper() not in ("GET", "HEAD")
            ):
                return response, sent
            response.close()
            redirected_by = current
            current = urljoin(response.url, location)
        raise TooManyRedirects(
            f"{what}: more than {MAX_REDIRECTS} redirects from {url_for_humans(url)}", url=url
        )

    # -- classification --------------------------------------------------------------------

    def _status_error(
        self, method: str, answer: HttpResponse, what: str, reminted: bool
    ) -> HttpError:
        status = answer.status
        where = f"{what}: HTTP {status} from {method} {url_for_humans(answer.url)}"
        if status in (408, 429) or status >= 500:
            retry_after = capped_wait(
                parse_retry_after(answer.headers.get("Retry-After"), utcnow()),
                cap=self.limits.max_retry_after,
                who=f"{what}: HTTP {status} from {url_for_humans(answer.url)}",
                setting=self.limits.retry_after_key,
            )
            wait = f" (Retry-After {retry_after:g} s)" if retry_after is not None else ""
            return HttpTransient(
                where + wait,
                url=answer.url,
                status=status,
                retry_after=retry_after,
                response=answer,
                may_have_been_sent=True,
            )
        if status in (401, 403):
            again = " (also with fresh credentials)" if reminted else ""
            return HttpUnauthorized(where + again, url=answer.url, status=status, response=answer)
        if 300 <= status < 400:
            return HttpPermanent(
                f"{where}: a redirect that is not followed",
                url=answer.url,
                status=status,
                response=answer,
            )
        return HttpPermanent(where, url=answer.url, status=status, response=answer)

    def _deadline_error(self, what: str, url: str) -> HttpTransient:
        return _deadline(what, url, self.limits)

    def _network_error(
        self, exc: requests.RequestException, what: str, url: str, deadline: RequestDeadline
    ) -> HttpError:
        # The watcher thread marks a deadline expired when it gets to run; on a busy host the
        # socket's own timeout, clipped to the deadline, can fire first.
        if deadline.expired or deadline.remaining() <= _DEADLINE_SLACK_SECONDS:
            return self._deadline_error(what, url)
        if isinstance(
            exc,
            requests.exceptions.InvalidURL
            | requests.exceptions.InvalidSchema
            | requests.exceptions.MissingSchema,
        ):
            return HttpRefused(f"{what}: {url_for_humans(url)} is not a usable URL", url=url)
        check = self._key_for(url)
        if _unresolved(exc):
            host = host_for_humans(url)
            reason = f"the host name {host} does not resolve ({_reason(exc)})"
            return HostUnresolved(
                _with_check(f"{what}: {url_for_humans(url)}: {reason}", check),
                url=url,
                may_have_been_sent=False,
                detail=reason,
                check=check,
            )
        never_connected = _never_connected(exc)
        if isinstance(exc, requests.ConnectTimeout):
            reason = f"could not connect within {self.limits.connect_timeout:g} s"
        elif isinstance(exc, requests.Timeout):
            reason = f"no answer within {self.limits.read_timeout:g} s"
            check = self.limits.read_timeout_key
        else:
            reason = f"connection failed ({_reason(exc)})"
        return HttpTransient(
            _with_check(f"{what}: {url_for_humans(url)}: {reason}", check),
            url=url,
            may_have_been_sent=not never_connected,
            detail=reason,
            check=check,
        )

    def _key_for(self, url: str) -> str | None:
        """The setting ``url``'s host came from, if it is one of the configured hosts."""
        try:
            return self.limits.url_keys.get(host_key(url))
        except ValueError:
            return None

    # -- sessions ----------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._new_session(pool_size=self._pool_size)
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def _new_session(self, *, pool_size: int) -> requests.Session:
        session = requests.Session()
        # No proxies, .netrc or CA bundles from the environment: .netrc would add credentials
        # this client does not control, and a proxy would hide the address that is checked.
        session.trust_env = False
        adapter = GuardedAdapter(pool_connections=pool_size, pool_maxsize=pool_size)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        return session


def _refused(exc: HttpRefused, url: str, redirected_by: str | None) -> HttpRefused:
    """``exc`` about ``url``; a refused redirect target also names where the redirect came from."""
    if redirected_by is None:
        return HttpRefused(str(exc), url=url)
    return HttpRefused(f"{exc} (redirected there by {url_for_humans(redirected_by)})", url=url)


def _replayable(data: Any) -> bool:
    return data is None or isinstance(data, bytes | str | Mapping)


def _declared_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    # A compressed body's length says nothing about the decoded bytes that are counted.
    if response.headers.get("Content-Encoding", "identity").lower() not in ("identity", ""):
        return None
    return int(value)


_BROKEN = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
)


def _read_capped(
    response: requests.Response,
    cap: int,
    limit_key: str,
    deadline: RequestDeadline,
    what: str,
    limits: Limits,
    *,
    truncate: bool = False,
) -> bytes:
    """The body, streamed; over ``cap`` raises (or, with ``truncate``, stops reading)."""
    where = url_for_humans(response.url)
    declared = _declared_length(response)
    if declared is not None and declared > cap and not truncate:
        raise HttpPermanent(
            f"{what}: the answer from {where} is {declared} bytes, over {limit_key} = {cap}",
            url=response.url,
            status=response.status_code,
        )
    body = bytearray()
    try:
        for chunk in response.iter_content(min(CHUNK_BYTES, cap + 1)):
            body += chunk
            if len(body) > cap:
                if truncate:
                    return bytes(body[:cap])
                raise HttpPermanent(
                    f"{what}: the answer from {where} is more than {cap} bytes, over "
                    f"{limit_key} = {cap}",
                    url=response.url,
                    status=response.status_code,
                )
    except _BROKEN as exc:
        if deadline.expired:
            raise _deadline(what, response.url, limits) from None
        if truncate:
            return bytes(body)
        raise HttpTransient(
            f"{what}: the connection to {where} broke after {len(body)} bytes "
            f"({type(exc).__name__})",
            url=response.url,
            status=response.status_code,
        ) from None
    if deadline.expired:
        raise _deadline(what, response.url, limits)
    return bytes(body)


class TooManyRedirects(HttpPermanent):
    """More than :data:`MAX_REDIRECTS` redirects (or a redirect loop)."""


class BodyTruncated(HttpTransient):
    """Fewer bytes arrived than Content-Length announced."""


class BodyTooLarge(HttpPermanent):
    """The body is over its byte cap."""


class BodyEmpty(HttpPermanent):
    """A 2xx answer with no body at all."""


class Interrupted(HttpTransient):
    """The caller's stop event was set mid-transfer."""


class DeadlineExceeded(HttpTransient):
    """The request's total wall-clock deadline passed."""


def _deadline(what: str, url: str, limits: Limits) -> DeadlineExceeded:
    detail = (
        f"did not finish within the total deadline of {limits.deadline:g} s ({limits.deadline_key})"
    )
    return DeadlineExceeded(f"{what}: {url_for_humans(url)} {detail}", url=url, detail=detail)


def _stream_to_file(
    response: requests.Response,
    partial: Path,
    max_bytes: int,
    limit_key: str,
    deadline: RequestDeadline,
    stop: threading.Event | None,
    what: str,
    limits: Limits,
) -> tuple[int, str]:
    where = url_for_humans(response.url)
    declared = _declared_length(response)
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge(
            f"{what}: {where} is {declared} bytes, over {limit_key} = {max_bytes}",
            url=response.url,
            status=response.status_code,
        )
    digest = hashlib.sha256()
    size = 0
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                if stop is not None and stop.is_set():
                    raise Interrupted(f"{what}: interrupted by shutdown", url=response.url)
                size += len(chunk)
                if size > max_bytes:
                    raise BodyTooLarge(
                        f"{what}: {where} is more than {size} bytes, over {limit_key} = "
                        f"{max_bytes}",
                        url=response.url,
                        status=response.status_code,
                    )
                digest.update(chunk)
                out.write(chunk)
        except _BROKEN as exc:
            if deadline.expired:
                raise _deadline(what, response.url, limits) from None
            if declared is not None and size < declared:
                raise BodyTruncated(
                    f"{what}: received {size} bytes but Content-Length said {declared}",
                    url=response.url,
                    status=response.status_code,
                ) from None
            raise HttpTransient(
                f"{what}: the connection to {where} broke after {size} bytes "
                f"({type(exc).__name__})",
                url=response.url,
                status=response.status_code,
            ) from None
        if deadline.expired:
            raise _deadline(what, response.url, limits)
        # Not fsynced: a flush per download was a disk wait on every call. A power cut may
        # leave the renamed file short or garbled; the worker checks it against the size and
        # SHA-256 recorded with it before it sends a byte (and downloads it again).
        out.flush()
    if declared is not None and size != declared:
        raise BodyTruncated(
            f"{what}: received {size} bytes but Content-Length said {declared}",
            url=response.url,
            status=response.status_code,
        )
    if size == 0:
        raise BodyEmpty(
            f"{what}: {where} sent an empty body", url=response.url, status=response.status_code
        )
    return size, digest.hexdigest()


def _retry_now(error: BaseException) -> bool:
    """Whether trying again within this call may help: not for a name that does not resolve."""
    return not isinstance(error, HostUnresolved)


def _with_check(message: str, check: str | None) -> str:
    return f"{message}; check {check}" if check else message


def _unresolved(exc: BaseException) -> bool:
    """The connection failed because the host name does not resolve (getaddrinfo failed)."""
    return any(
        isinstance(link, urllib3.exceptions.NameResolutionError | socket.gaierror)
        for link in _causes(exc)
    )


def _never_connected(exc: BaseException) -> bool:
    """True when no TCP connection was made, so the request cannot have been read."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    return any(
        isinstance(
            link,
            urllib3.exceptions.NewConnectionError
            | urllib3.exceptions.ConnectTimeoutError
            | urllib3.exceptions.NameResolutionError,
        )
        for link in _causes(exc)
    )


def _reason(exc: BaseException) -> str:
    """The innermost cause in plain words (never its str: urllib3 puts URLs in those)."""
    innermost = _causes(exc)[-1]
    strerror = getattr(innermost, "strerror", None)
    if isinstance(strerror, str) and strerror:
        return strerror
    if isinstance(innermost, ConnectionError):
        return "closed without an answer"
    return type(innermost).__name__


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it wraps: requests and urllib3 nest the socket error in args/reason."""
    chain = [exc]
    while len(chain) < 20:
        current = chain[-1]
        nested = getattr(current, "reason", None)
        if not isinstance(nested, BaseException):
            nested = next((a for a in current.args if isinstance(a, BaseException)), None)
        if nested is None:
            nested = current.__cause__ or current.__context__
        if nested is None or nested in chain:
            break
        chain.append(nested)
    return chain
