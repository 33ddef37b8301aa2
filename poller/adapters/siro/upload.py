"""Siro's three upload steps: a signed URL, the PUT of the audio, and the recording's create.

The signed-url body's form is learned as :mod:`poller.adapters.siro.signed_url_form` says;
the PUT goes only to an allowed storage host (:mod:`poller.adapters.siro.storage`), with the
headers the URL was signed with and no credential; the create is never retried once it may
have reached Siro.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from poller.adapters.siro.auth import SiroAuth
from poller.adapters.siro.exchange import SiroExchange
from poller.adapters.siro.signed_url_form import (
    BodyForm,
    Choice,
    SignedUrlForms,
    choices_named,
    refused_too,
)
from poller.adapters.siro.storage import StorageHosts
from poller.adapters.siro.wire import SignedUrlAnswer, as_utc, data_object
from poller.domain.siro import AudioFormat, RecordingCreate, SignedUpload
from poller.ports.siro import (
    SiroCreateUnconfirmed,
    SiroCredentialError,
    SiroPermanentError,
    SiroTransientError,
)

logger = logging.getLogger(__name__)

# A PUT that starts this close to the signed URL's expiry could be refused mid-way.
SIGNED_URL_SAFETY_MARGIN = timedelta(seconds=30)
SIGNED_URL_PATH = "/v1/core/recordings/signed-urls"
CREATE_PATH = "/v1/core/recordings/upload"


class SiroUploader:
    """The three steps of :class:`~poller.ports.siro.SiroPort`; thread-safe."""

    def __init__(
        self,
        *,
        exchange: SiroExchange,
        auth: SiroAuth,
        forms: SignedUrlForms,
        storage: StorageHosts,
        organization_id: Callable[[], str],
        clock: Callable[[], datetime],
    ) -> None:
        self._exchange = exchange
        self._auth = auth
        self._forms = forms
        self._storage = storage
        self._organization_id = organization_id
        self._clock = clock

    # -- step 1 ------------------------------------------------------------------------------

    def request_upload(self, file_type: AudioFormat, size_bytes: int) -> SignedUpload:
        if size_bytes < 1:
            raise ValueError(f"Siro takes files of at least 1 byte, not {size_bytes}")
        step = "signed-url"
        tried_first = form = self._forms.current()
        first_refusal: SiroPermanentError | None = None
        switched: set[Choice] = set()
        while True:
            body = form.body(file_type, size_bytes, self._organization_for(form))
            try:
                response = self._auth.gateway(step, "POST", SIGNED_URL_PATH, body)
            except SiroPermanentError as exc:
                if exc.http_status != 422 or isinstance(exc, SiroCredentialError):
                    raise
                learnable = self._forms.learnable(choices_named(exc.issues))
                if first_refusal is None:
                    if not learnable:
                        raise self._forms.explain(exc) from None
                    first_refusal = exc
                elif not learnable or learnable & switched:
                    # Refused again over what was just switched: the problem is not the form.
                    raise refused_too(first_refusal, form, exc) from None
                # At most one switch per choice, so three requests at most.
                switched |= learnable
                form = form.switched(learnable)
                continue
            self._forms.accepted(tried_first, form, first_refusal)
            answer = self._exchange.parse(
                SignedUrlAnswer, data_object(self._exchange.json(response, step)), step
            )
            return SignedUpload(
                upload_url=answer.upload_url,
                download_url=answer.download_url,
                expires_at=as_utc(answer.expires_at),
                upload_headers=dict(answer.upload_headers or {}),
            )

    def _organization_for(self, form: BodyForm) -> str | None:
        # The configured organization, else the one the organization token belongs to.
        return self._organization_id() if form.with_organization_id else None

    # -- step 2 ------------------------------------------------------------------------------

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
            # Before a byte is sent: the audio goes to an allowed storage host only.
            self._storage.check(current.upload_url, step)
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
                    self._exchange.exchange(
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

        self._exchange.retrying(step, attempt)
        return current

    # -- step 3 ------------------------------------------------------------------------------

    def create_recording(self, body: RecordingCreate) -> str:
        step = "create"
        response = self._auth.gateway(
            step, "POST", CREATE_PATH, body.to_json(), not_idempotent=True
        )
        try:
            payload = response.json()
        except ValueError:
            payload = None
        data = data_object(payload)
        for key in ("id", "recordingId"):  # the docs page says id, the spec recordingId
            value = data.get(key)
            if isinstance(value, str) and value:
                logger.debug("Siro created recording %s", value)
                return value
        raise SiroCreateUnconfirmed(
            f"Siro {step}: HTTP {response.status} but the answer names no recording id; Siro "
            "took the request, so it is not sent again",
            step=step,
            http_status=response.status,
        )
