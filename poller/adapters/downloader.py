"""Stream one recording from the provider to the spool, verified before it counts.

Redirects are followed by hand, because ``requests`` only drops ``Authorization`` on a host
change: an API-key header would follow a redirect to a storage bucket. Here each hop gets
exactly the headers :meth:`DownloadRequest.headers_for` allows for its URL.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from urllib.parse import urljoin

import requests

from poller import __version__
from poller.domain.call_record import DownloadRequest, RateLimitHints
from poller.domain.clock import utcnow
from poller.domain.failures import StepFailure
from poller.logs import redact_url
from poller.ports.download import Downloaded

CHUNK_BYTES = 256 * 1024
MAX_REDIRECTS = 5
_REDIRECTS = {301, 302, 303, 307, 308}


class Downloader:
    def __init__(
        self,
        session: requests.Session,
        *,
        max_bytes: int,
        connect_timeout: float,
        read_timeout: float,
        stop: threading.Event | None = None,
    ) -> None:
        self.session = session
        self.max_bytes = max_bytes
        self.timeout = (connect_timeout, read_timeout)
        self.stop = stop or threading.Event()

    def fetch(self, request: DownloadRequest, destination: Path) -> Downloaded:
        """Write the audio to ``destination`` (mode 0600) or raise :class:`StepFailure`.

        A partial file never survives: the body goes to ``<destination>.part`` and is renamed
        only once complete and checked against Content-Length and the size limit.
        """
        started = time.monotonic()
        partial = destination.with_name(destination.name + ".part")
        try:
            response = self._open(request)
            with response:
                size, digest = self._stream(response, partial)
            os.replace(partial, destination)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return Downloaded(
            path=destination,
            size_bytes=size,
            sha256=digest,
            http_status=response.status_code,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    def _open(self, request: DownloadRequest) -> requests.Response:
        url = request.url
        for _hop in range(MAX_REDIRECTS + 1):
            headers = {"User-Agent": f"siro-poller/{__version__}", **request.headers_for(url)}
            try:
                response = self.session.get(
                    url,
                    headers=headers,
                    stream=True,
                    allow_redirects=False,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                raise StepFailure.retry(
                    "download_network",
                    f"could not fetch the recording from {redact_url(url)}: {type(exc).__name__}",
                ) from None
            if response.status_code in _REDIRECTS and "Location" in response.headers:
                url = urljoin(url, response.headers["Location"])
                response.close()
                continue
            if response.status_code != 200:
                response.close()
                raise self._refusal(response, url)
            return response
        raise StepFailure.fail(
            "download_redirect_loop",
            f"more than {MAX_REDIRECTS} redirects fetching {redact_url(request.url)}",
        )

    def _refusal(self, response: requests.Response, url: str) -> StepFailure:
        status = response.status_code
        where = redact_url(url)
        if status == 429 or status >= 500:
            hints = RateLimitHints.from_headers(response.headers, utcnow())
            return StepFailure.retry(
                "download_http_" + str(status),
                f"the provider answered {status} for {where}",
                http_status=status,
                retry_after_seconds=hints.retry_after_seconds,
            )
        if status in (401, 403):
            return StepFailure.fail(
                "provider_auth",
                f"the provider refused the download ({status}) of {where}: check the "
                "provider credentials and their permission to read recordings, then "
                "`siro-poller calls retry --failed`",
                http_status=status,
            )
        if status in (404, 410):
            return StepFailure.fail(
                "recording_not_found",
                f"the provider has no recording at {where} ({status}); it may have been "
                "deleted or moved",
                http_status=status,
            )
        return StepFailure.fail(
            f"download_http_{status}",
            f"the provider answered {status} for {where}",
            http_status=status,
        )

    def _stream(self, response: requests.Response, partial: Path) -> tuple[int, str]:
        declared = _content_length(response)
        if declared is not None and declared > self.max_bytes:
            raise _oversize(declared, self.max_bytes)
        digest = hashlib.sha256()
        size = 0
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            try:
                for chunk in response.iter_content(CHUNK_BYTES):
                    if self.stop.is_set():
                        raise StepFailure.retry(
                            "interrupted", "the download was interrupted by shutdown"
                        )
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise _oversize(size, self.max_bytes, while_streaming=True)
                    digest.update(chunk)
                    out.write(chunk)
            except requests.RequestException as exc:
                raise StepFailure.retry(
                    "download_network",
                    f"the connection broke after {size} bytes: {type(exc).__name__}",
                ) from None
            out.flush()
            os.fsync(out.fileno())
        if declared is not None and size != declared:
            raise StepFailure.retry(
                "download_truncated",
                f"received {size} bytes but Content-Length said {declared}",
            )
        if size == 0:
            raise StepFailure.fail("not_audio", "the provider sent an empty body")
        return size, digest.hexdigest()


def _content_length(response: requests.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.strip().isdigit():
        return None
    # A compressed body's length says nothing about the decoded bytes we count.
    if response.headers.get("Content-Encoding", "identity").lower() not in ("identity", ""):
        return None
    return int(value)


def _oversize(size: int, limit: int, *, while_streaming: bool = False) -> StepFailure:
    seen = "more than " if while_streaming else ""
    return StepFailure.fail(
        "oversize",
        f"the recording is {seen}{size} bytes, over worker.max_file_bytes = {limit} "
        "(Siro takes at most 100 MB)",
    )
