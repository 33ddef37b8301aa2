"""An in-memory Siro behind the same port, so the worker's unit tests need no HTTP.

It keeps Siro's rules that matter to a caller: a file must be PUT (with the size asked for)
before a recording can be created from its download URL, an expired signed URL is replaced
before the PUT, and ids come back from create. Failures are scripted per method with
:meth:`InMemorySiro.fail_next`, including "the call took effect but its answer was lost".
"""

from __future__ import annotations

import hashlib
import itertools
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

from poller.domain.clock import utcnow
from poller.domain.siro import (
    AudioFormat,
    ConversationConfiguration,
    IntegrationConnection,
    RecordingCreate,
    RecordingSummary,
    SignedUpload,
    SiroUser,
)
from poller.ports.siro import SiroError, SiroPermanentError, ZodIssue

T = TypeVar("T")


@dataclass
class StoredAudio:
    """What arrived at one signed URL."""

    file_type: AudioFormat
    size_bytes: int
    received_bytes: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class _ScriptedFailure:
    error: SiroError
    after_effect: bool


class InMemorySiro:
    """A :class:`~poller.ports.siro.SiroPort` that keeps everything in dictionaries."""

    def __init__(
        self,
        *,
        clock: Callable[[], datetime] = utcnow,
        users: Iterable[SiroUser] = (),
        connections: Iterable[IntegrationConnection] = (),
        conversation_configurations: Iterable[ConversationConfiguration] = (),
        signed_url_lifetime: timedelta = timedelta(minutes=15),
    ) -> None:
        self.clock = clock
        self.users = list(users)
        self.connections = list(connections)
        self.conversation_configurations = list(conversation_configurations)
        self.signed_url_lifetime = signed_url_lifetime
        self.audio: dict[str, StoredAudio] = {}  # by download URL
        self.recordings: dict[str, RecordingSummary] = {}
        self.created: list[RecordingCreate] = []  # bodies of the recordings created, in order
        self.calls: list[str] = []  # port methods called, in order
        self._upload_to_download: dict[str, str] = {}
        self._failures: dict[str, deque[_ScriptedFailure]] = defaultdict(deque)
        self._ids = itertools.count(1)
        self._lock = threading.RLock()

    # -- scripting and inspection -----------------------------------------------------------

    def fail_next(self, method: str, error: SiroError, *, after_effect: bool = False) -> None:
        """The next call of port method ``method`` raises ``error``.

        With ``after_effect`` the call first does its work, so e.g. ``create_recording`` makes
        the recording and then raises, as when Siro created it and the answer was lost.
        """
        with self._lock:
            self._failures[method].append(_ScriptedFailure(error, after_effect))

    def add_recording(self, recording: RecordingSummary) -> None:
        with self._lock:
            self.recordings[recording.id] = recording

    # -- the port ---------------------------------------------------------------------------

    def request_upload(self, file_type: AudioFormat, size_bytes: int) -> SignedUpload:
        def effect() -> SignedUpload:
            if size_bytes < 1:
                raise ValueError(f"Siro takes files of at least 1 byte, not {size_bytes}")
            number = next(self._ids)
            upload = SignedUpload(
                upload_url=f"memory://uploads/{number}?signature=upload-{number}",
                download_url=f"memory://uploads/{number}?signature=download-{number}",
                expires_at=self.clock() + self.signed_url_lifetime,
                upload_headers={
                    "Content-Type": file_type.mime_type,
                    "x-goog-content-length-range": f"0,{size_bytes}",
                },
            )
            self._upload_to_download[upload.upload_url] = upload.download_url
            self.audio[upload.download_url] = StoredAudio(file_type, size_bytes)
            return upload

        return self._call("request_upload", effect)

    def put_audio(
        self, upload: SignedUpload, path: Path, file_type: AudioFormat, size_bytes: int
    ) -> SignedUpload:
        def effect() -> SignedUpload:
            current = upload
            if current.expired(self.clock()):
                current = self.request_upload(file_type, size_bytes)
            download_url = self._upload_to_download.get(current.upload_url)
            if download_url is None:
                raise SiroPermanentError(
                    "Siro put: HTTP 403: SignatureDoesNotMatch", step="put", http_status=403
                )
            digest = hashlib.sha256()
            received = 0
            with path.open("rb") as audio:
                for block in iter(lambda: audio.read(1 << 16), b""):
                    digest.update(block)
                    received += len(block)
            if received != size_bytes:
                raise ValueError(f"{path.name} is {received} bytes on disk, not {size_bytes}")
            stored = self.audio[download_url]
            stored.received_bytes = received
            stored.sha256 = digest.hexdigest()
            return current

        return self._call("put_audio", effect)

    def create_recording(self, body: RecordingCreate) -> str:
        def effect() -> str:
            stored = self.audio.get(body.file_url)
            if stored is None or stored.sha256 is None:
                issue = ZodIssue("fileUrl does not point to an uploaded file", ("fileUrl",))
                raise SiroPermanentError(
                    f"Siro create: HTTP 422: {issue.describe()}",
                    step="create",
                    http_status=422,
                    issues=(issue,),
                )
            recording_id = f"rec-{next(self._ids)}"
            self.recordings[recording_id] = RecordingSummary(
                id=recording_id,
                title=body.title,
                date_created=body.date_created or self.clock(),
                user_id=body.user_id,
                conversation_type=body.conversation_type,
                processing_status="in-progress",
            )
            self.created.append(body)
            return recording_id

        return self._call("create_recording", effect)

    def find_recordings(
        self, created_after: datetime, created_before: datetime | None = None
    ) -> list[RecordingSummary]:
        def effect() -> list[RecordingSummary]:
            return sorted(
                (
                    r
                    for r in self.recordings.values()
                    if r.date_created is not None
                    and r.date_created > created_after
                    and (created_before is None or r.date_created < created_before)
                ),
                key=lambda r: (r.date_created, r.id),
            )

        return self._call("find_recordings", effect)

    def get_recording(self, recording_id: str) -> RecordingSummary | None:
        return self._call("get_recording", lambda: self.recordings.get(recording_id))

    def verify_credentials(self) -> None:
        self._call("verify_credentials", lambda: None)

    def list_users(self) -> list[SiroUser]:
        return self._call("list_users", lambda: list(self.users))

    def list_connections(self) -> list[IntegrationConnection]:
        return self._call("list_connections", lambda: list(self.connections))

    def list_conversation_configurations(self) -> list[ConversationConfiguration]:
        return self._call(
            "list_conversation_configurations", lambda: list(self.conversation_configurations)
        )

    def _call(self, method: str, effect: Callable[[], T]) -> T:
        with self._lock:
            self.calls.append(method)
            queued = self._failures.get(method)
            failure = queued.popleft() if queued else None
            if failure is not None and not failure.after_effect:
                raise failure.error
            result = effect()
            if failure is not None:
                raise failure.error
            return result
