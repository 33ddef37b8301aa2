"""Stream one recording from the provider to the spool, verified before it counts.

A thin layer over :meth:`HttpClient.download`: the guarded client checks every hop (scheme,
allowed host, resolved address), sends the provider's credentials only to its credential hosts,
cuts the transfer at the total deadline and at ``worker.max_download_bytes``. Here its errors become
the worker's :class:`StepFailure` reasons.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path

from poller.adapters.http import (
    BodyEmpty,
    BodyTooLarge,
    BodyTruncated,
    DeadlineExceeded,
    Downloaded,
    HostRules,
    HttpClient,
    HttpError,
    HttpRefused,
    HttpTransient,
    HttpUnauthorized,
    Interrupted,
    RateLimiter,
    TooManyRedirects,
    url_for_humans,
)
from poller.domain.call_record import DownloadRequest, host_key
from poller.domain.failures import StepFailure
from poller.domain.redaction import MASK
from poller.domain.urls import UnsafeUrl, url_target
from poller.ports.provider import ProviderAuthError

__all__ = ["Downloaded", "Downloader"]


class Downloader:
    def __init__(
        self,
        client: HttpClient,
        *,
        max_bytes: int,
        stop: threading.Event | None = None,
        rate_limiters: Mapping[str, RateLimiter] | None = None,
    ) -> None:
        self.client = client
        self.max_bytes = max_bytes
        self.stop = stop or threading.Event()
        # By host key: a download from a provider's own host waits for that provider's limit.
        self.rate_limiters = dict(rate_limiters or {})

    def fetch(self, request: DownloadRequest, destination: Path) -> Downloaded:
        """Write the audio to ``destination`` (mode 0600) or raise :class:`StepFailure`;
        :class:`ProviderAuthError` when the provider refused the credentials sent with it.

        A partial file never survives: the body goes to ``<destination>.part`` and is renamed
        only once complete and checked against Content-Length and the size limit.
        """
        rules = HostRules.build(
            allowed=request.download_hosts,
            credential_hosts=request.credential_hosts,
            explicit_hosts=request.explicit_hosts,
            https_only=request.https_only,
            config_key=request.hosts_config_key,
        )
        try:
            return self.client.download(
                request.url,
                destination,
                max_bytes=self.max_bytes,
                limit_key="worker.max_download_bytes",
                what="recording download",
                stop=self.stop,
                credentials=request.headers,
                hosts=rules,
                rate_limiter=self._rate_limiter_for(request.url),
                secret_path=request.secret_path,
            )
        except HttpUnauthorized as exc:
            refused_by = exc.response.url if exc.response is not None else request.url
            if request.headers and rules.may_send_credentials(refused_by):
                # The provider's own host refused its credentials: a credential problem for
                # every call of the provider, not one of this call (the worker pauses).
                message = _hide_path(str(exc), request.url) if request.secret_path else str(exc)
                raise ProviderAuthError(
                    f"the provider refused the credentials for a recording download: {message}; "
                    f"check the provider's credentials and their permission to read recordings",
                    status=exc.status,
                ) from None
            if request.refreshable:
                # Nothing of ours was refused: the grant the provider handed out has expired
                # (or was used once already). The next attempt resolves a fresh one.
                message = _hide_path(str(exc), request.url) if request.secret_path else str(exc)
                raise StepFailure.retry(
                    "download_url_expired",
                    f"{message}: the download URL the provider handed out was refused, most "
                    "likely expired; the next attempt asks the provider for a fresh one",
                    http_status=exc.status,
                ) from None
            raise _step_failure(exc, request) from None
        except HttpError as exc:
            raise _step_failure(exc, request) from None
        except OSError as exc:  # the spool, not the provider: a full disk, a missing directory
            raise StepFailure.retry(
                "spool_error",
                f"writing the download into the spool failed: {exc.strerror or type(exc).__name__}",
            ) from None

    def _rate_limiter_for(self, url: str) -> RateLimiter | None:
        try:
            return self.rate_limiters.get(host_key(url))
        except UnsafeUrl:
            return None  # the client refuses the URL before it would wait for a limit


def _hide_path(message: str, url: str) -> str:
    shown = url_for_humans(url)
    try:
        target = url_target(url)
    except UnsafeUrl:
        return message  # the message shows no URL it cannot judge
    host = f"[{target.host}]" if ":" in target.host else target.host
    port = f":{target.port}" if target.port is not None else ""
    return message.replace(shown, f"{target.scheme}://{host}{port}/{MASK}")


def _step_failure(exc: HttpError, request: DownloadRequest) -> StepFailure:
    message = _hide_path(str(exc), request.url) if request.secret_path else str(exc)
    status = exc.status
    if isinstance(exc, HttpRefused):
        return StepFailure.fail("download_refused", message)
    if isinstance(exc, Interrupted):
        return StepFailure.retry("interrupted", "the download was interrupted by shutdown")
    if isinstance(exc, BodyTooLarge):
        return StepFailure.fail("oversize", message)
    if isinstance(exc, BodyEmpty):
        return StepFailure.fail("not_audio", "the provider sent an empty body")
    if isinstance(exc, BodyTruncated):
        return StepFailure.retry("download_truncated", message)
    if isinstance(exc, DeadlineExceeded):
        return StepFailure.retry("download_deadline", message)
    if isinstance(exc, TooManyRedirects):
        return StepFailure.fail("download_redirect_loop", message)
    if isinstance(exc, HttpUnauthorized):
        return StepFailure.fail(
            "provider_auth",
            f"the provider refused the download: {message}; check the provider credentials "
            "and their permission to read recordings, then "
            "`siro-poller calls retry --state failed`",
            http_status=status,
        )
    if status in (404, 410):
        return StepFailure.fail(
            "recording_not_found",
            f"{message}: the provider has no recording there; it may have been deleted or moved",
            http_status=status,
        )
    if isinstance(exc, HttpTransient):
        if status is None:
            # No answer, or the provider's rate limit said to wait (its retry_after).
            kind = "download_rate_limited" if exc.retry_after is not None else "download_network"
            return StepFailure.retry(kind, message, retry_after_seconds=exc.retry_after)
        return StepFailure.retry(
            f"download_http_{status}",
            message,
            http_status=status,
            retry_after_seconds=exc.retry_after,
        )
    if status is not None:
        return StepFailure.fail(f"download_http_{status}", message, http_status=status)
    return StepFailure.fail("download_failed", message)
