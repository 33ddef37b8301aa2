"""The Siro client: :class:`SiroHttpClient`, the real :class:`~poller.ports.siro.SiroPort`.

A facade over the package's parts, each one concept: the answers' wire models (``wire``),
one exchange and its failures (``exchange``), the credentials (``auth``), the upload steps
(``upload``) with the signed-url body form (``signed_url_form``) and the storage hosts
(``storage``), the reads (``reads``) and administration (``admin``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType

import requests

from poller import __version__
from poller.adapters.siro.admin import SiroAdmin
from poller.adapters.siro.auth import SiroAuth
from poller.adapters.siro.exchange import SiroExchange
from poller.adapters.siro.reads import SiroReads
from poller.adapters.siro.settings import SiroSettings
from poller.adapters.siro.signed_url_form import SignedUrlForms
from poller.adapters.siro.storage import StorageHosts
from poller.adapters.siro.upload import SiroUploader
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

USER_AGENT = f"siro-poller/{__version__} python-requests/{requests.__version__}"


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
        storage = StorageHosts(settings.storage_hosts)
        self._exchange = SiroExchange(settings, storage_hosts=storage.rules, user_agent=user_agent)
        self._auth = SiroAuth(settings, self._exchange, clock=clock)
        self._admin = SiroAdmin(settings, exchange=self._exchange, auth=self._auth)
        pinned = settings.signed_url_size_field
        self._uploader = SiroUploader(
            exchange=self._exchange,
            auth=self._auth,
            forms=SignedUrlForms(
                pinned_size_field=None if pinned == "auto" else pinned,
                with_organization_id=bool(settings.organization_id),
            ),
            storage=storage,
            organization_id=self._admin.organization_id,
            clock=clock,
        )
        self._reads = SiroReads(
            exchange=self._exchange, auth=self._auth, organization_id=self._admin.organization_id
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._exchange.close()

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
        return self._uploader.request_upload(file_type, size_bytes)

    def put_audio(
        self, upload: SignedUpload, path: Path, file_type: AudioFormat, size_bytes: int
    ) -> SignedUpload:
        return self._uploader.put_audio(upload, path, file_type, size_bytes)

    def create_recording(self, body: RecordingCreate) -> str:
        return self._uploader.create_recording(body)

    # -- credentials -------------------------------------------------------------------------

    def verify_credentials(self) -> None:
        self._auth.verify_credentials()

    # -- reads -------------------------------------------------------------------------------

    def find_recordings(
        self, created_after: datetime, created_before: datetime | None = None
    ) -> list[RecordingSummary]:
        return self._reads.find_recordings(created_after, created_before)

    def get_recording(self, recording_id: str) -> RecordingSummary | None:
        return self._reads.get_recording(recording_id)

    def list_users(self) -> list[SiroUser]:
        return self._reads.list_users()

    def list_connections(self) -> list[IntegrationConnection]:
        return self._reads.list_connections()

    def list_conversation_configurations(self) -> list[ConversationConfiguration]:
        return self._reads.list_conversation_configurations()

    # -- administration (CLI) ----------------------------------------------------------------

    def organization_id(self) -> str:
        return self._admin.organization_id()

    def create_oauth_app(self, name: str, owner: str) -> OAuthAppCredentials:
        return self._admin.create_oauth_app(name, owner)
