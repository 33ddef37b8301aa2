"""The download step: fetch a call's recording into the spool, judge it by its content, and
convert it when Siro would not take it as it came.

A file leaves this step as one Siro takes (probed again after converting), recorded on the row
as ``downloaded``; a file that is no usable audio does not stay in the spool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path

from poller.core.spool_sweep import sha256_of
from poller.domain.audio import (
    AudioFacts,
    Conversion,
    ConversionImpossible,
    ConversionKind,
    ConversionRules,
    ConvertMode,
    conversion_limits,
    fitting_mp3_bitrate,
    lower_mp3_bitrate,
    plan_conversion,
)
from poller.domain.failures import (
    AUDIO_BOMB,
    CORRUPT_AUDIO,
    NOT_AUDIO,
    UNSUPPORTED_FORMAT,
    StepFailure,
)
from poller.domain.pauses import PausedService
from poller.domain.records import Call, EventDraft
from poller.domain.siro import AudioFormat
from poller.domain.spool import audio_name, download_name
from poller.ports.audio import (
    AudioBomb,
    AudioError,
    AudioPort,
    ConversionStopped,
    CorruptAudio,
    NotAudio,
    UnsupportedAudio,
)
from poller.ports.download import RecordingFetcher
from poller.ports.provider import (
    PermanentProviderError,
    ProviderAuthError,
    ProviderError,
    ProviderPort,
    ProviderRefused,
)
from poller.ports.store import WorkQueue
from poller.ports.telemetry import Telemetry

log = logging.getLogger(__name__)


class DownloadStep:
    def __init__(
        self,
        *,
        store: WorkQueue,
        providers: Mapping[str, ProviderPort],
        downloader: RecordingFetcher,
        audio: AudioPort,
        conversion: ConversionRules,
        spool: Path,
        owner: str,
        stop: threading.Event,
        clock: Callable[[], datetime],
        telemetry: Telemetry,
        on_lost_lease: Callable[[Call], None],
    ) -> None:
        self.store = store
        # By name, as `calls.provider` holds it: one process serves every configured provider.
        self.providers = providers
        self.downloader = downloader
        self.audio = audio
        self.conversion = conversion
        self.spool = spool
        self.owner = owner
        self.stop = stop
        self.clock = clock
        self.telemetry = telemetry
        # Told when the row's lease was found taken over: the result is not recorded here.
        self.on_lost_lease = on_lost_lease

    def download(self, call: Call) -> Call | None:
        """The row as ``downloaded`` (None when its lease was lost meanwhile); a problem of the
        call raises StepFailure."""
        provider = self.providers.get(call.provider)
        if provider is None:
            raise StepFailure.fail(
                "provider_not_configured",
                f"the call came from provider {call.provider!r}, which this configuration no "
                "longer names; configure it again, then `siro-poller calls retry --state failed`",
            )
        destination = self.spool / download_name(call.id)
        try:
            request = provider.resolve_download(call)
            fetched = self.downloader.fetch(request, destination)
        except ProviderError as exc:
            raise _provider_failure(exc) from None
        facts = self._probe(destination)
        impossible: ConversionImpossible | None = None
        try:
            conversion = plan_conversion(facts, fetched.size_bytes, self.conversion)
        except ConversionImpossible as exc:
            conversion, impossible = None, exc
        download_event = EventDraft(
            step="download",
            outcome="ok",
            http_status=fetched.http_status,
            duration_ms=fetched.duration_ms,
            message=f"{fetched.size_bytes} bytes of {facts.describe()}, "
            f"{facts.duration_seconds:.0f}s of audio, {_shape(facts)}",
        )
        self.telemetry.bytes_downloaded(fetched.size_bytes)
        self.telemetry.step_finished("download", "ok", seconds=fetched.duration_ms / 1000)
        if conversion is None and impossible is None:
            assert facts.siro_format is not None
            final_path = self.spool / audio_name(call.id, facts.siro_format.value)
            destination.replace(final_path)
            return self._downloaded(
                call,
                final_path,
                facts.siro_format.value,
                fetched.size_bytes,
                fetched.sha256,
                download_event,
                facts,
            )
        # The download is recorded first, so a conversion that fails still shows what came.
        if not self.store.record_audio(
            call.id,
            self.owner,
            self.clock(),
            facts,
            download_event,
            provider_duration_seconds=call.duration_seconds,
        ):
            self.on_lost_lease(call)
            destination.unlink(missing_ok=True)
            return None
        try:
            if impossible is not None:
                raise StepFailure.fail("oversize", str(impossible))
            assert conversion is not None
            converted, converted_format, event = self._convert(call, destination, facts, conversion)
        except StepFailure as failure:
            failure.step = "convert"
            raise
        finally:
            destination.unlink(missing_ok=True)
        return self._downloaded(
            call,
            converted,
            converted_format.value,
            converted.stat().st_size,
            sha256_of(converted),
            event,
            None,
        )

    def _downloaded(
        self,
        call: Call,
        path: Path,
        audio_format: str,
        size_bytes: int,
        sha256: str,
        event: EventDraft,
        facts: AudioFacts | None,
    ) -> Call | None:
        updated = self.store.mark_downloaded(
            call.id,
            self.owner,
            self.clock(),
            audio_format=audio_format,
            size_bytes=size_bytes,
            sha256=sha256,
            spool_path=str(path),
            event=event,
            audio=facts,
            provider_duration_seconds=call.duration_seconds,
        )
        if updated is None:
            self.on_lost_lease(call)
            path.unlink(missing_ok=True)
        return updated

    def _probe(self, path: Path) -> AudioFacts:
        """Judge the file by its content; a file that is no usable audio does not stay."""
        try:
            return self.audio.probe(path)
        except AudioError as exc:
            path.unlink(missing_ok=True)
            raise _audio_failure(exc) from None

    def _convert(
        self, call: Call, source: Path, facts: AudioFacts, conversion: Conversion
    ) -> tuple[Path, AudioFormat, EventDraft]:
        """Make ``source`` a file Siro takes, checked by probing it again: the file, its format
        and the ``convert`` event."""
        if self.conversion.mode == ConvertMode.NEVER:
            raise StepFailure.fail(
                UNSUPPORTED_FORMAT if facts.siro_format is None else "oversize",
                f'{conversion.reason}, and worker.convert = "never" leaves it unconverted; '
                'set worker.convert = "auto" to convert it, then '
                "`siro-poller calls retry --state failed`",
            )
        target = self.spool / audio_name(call.id, conversion.target.value)
        started = time.monotonic()
        bitrate = conversion.bitrate_kbps
        try:
            while True:
                self._run_conversion(call, facts, conversion, source, target, bitrate)
                size = target.stat().st_size
                if size <= self.conversion.max_upload_bytes:
                    break
                target.unlink(missing_ok=True)
                if conversion.kind == ConversionKind.REMUX_AAC:
                    # Repackaging keeps the size: encoding to mp3 is the way down.
                    bitrate = fitting_mp3_bitrate(facts.duration_seconds, size, self.conversion)
                    conversion = Conversion(ConversionKind.ENCODE_MP3, AudioFormat.MP3, bitrate)
                    target = self.spool / audio_name(call.id, conversion.target.value)
                    continue
                assert bitrate is not None
                bitrate = lower_mp3_bitrate(bitrate, size, facts.duration_seconds, self.conversion)
            result = self.audio.probe(target)
        except ConversionImpossible as exc:
            target.unlink(missing_ok=True)
            raise StepFailure.fail("oversize", str(exc)) from None
        except ConversionStopped:
            target.unlink(missing_ok=True)
            raise StepFailure.retry(
                "interrupted", "the conversion was interrupted by shutdown"
            ) from None
        except AudioError as exc:
            target.unlink(missing_ok=True)
            raise _audio_failure(exc, converting=facts.describe()) from None
        except OSError as exc:  # the spool, not the recording: a full disk, say
            target.unlink(missing_ok=True)
            raise StepFailure.retry(
                "spool_error", f"converting into the spool failed: {exc.strerror or exc}"
            ) from None
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        elapsed_ms = int((time.monotonic() - started) * 1000)
        if result.siro_format != conversion.target:
            target.unlink(missing_ok=True)
            raise StepFailure.fail(
                "convert_failed",
                f"converting {facts.describe()} to {conversion.target.value} produced "
                f"{result.describe()}",
            )
        how = (
            "repackaged without re-encoding"
            if conversion.kind == ConversionKind.REMUX_AAC
            else f"encoded at {bitrate} kbit/s"
        )
        source_size = source.stat().st_size
        event = EventDraft(
            step="convert",
            outcome="ok",
            duration_ms=elapsed_ms,
            message=f"{facts.container} ({facts.codec}, {source_size} bytes) -> "
            f"{conversion.target.value} ({size} bytes), {how}; "
            f"{result.duration_seconds:.0f}s of audio, {_shape(result)}",
        )
        self.telemetry.step_finished("convert", "ok", seconds=elapsed_ms / 1000)
        log.debug("call %s (%s): %s", call.id, call.provider_call_id, event.message)
        return target, conversion.target, event

    def _run_conversion(
        self,
        call: Call,
        facts: AudioFacts,
        conversion: Conversion,
        source: Path,
        target: Path,
        bitrate: int | None,
    ) -> None:
        limits = conversion_limits(
            facts,
            self.conversion,
            kind=conversion.kind,
            bitrate_kbps=bitrate,
            source_bytes=source.stat().st_size,
            provider_seconds=call.duration_seconds,
        )
        if conversion.kind == ConversionKind.REMUX_AAC:
            self.audio.remux_to_adts(source, target, limits=limits, should_stop=self.stop.is_set)
        else:
            assert bitrate is not None
            self.audio.encode_mp3(
                source, target, bitrate_kbps=bitrate, limits=limits, should_stop=self.stop.is_set
            )


def _audio_failure(exc: AudioError, *, converting: str | None = None) -> StepFailure:
    prefix = f"converting {converting}: " if converting else ""
    if isinstance(exc, NotAudio):
        return StepFailure.fail(NOT_AUDIO, prefix + str(exc))
    if isinstance(exc, UnsupportedAudio):
        return StepFailure.fail(UNSUPPORTED_FORMAT, prefix + str(exc))
    if isinstance(exc, CorruptAudio):
        return StepFailure.fail(CORRUPT_AUDIO, prefix + str(exc))
    if isinstance(exc, AudioBomb):
        return StepFailure.fail(AUDIO_BOMB, prefix + str(exc))
    return StepFailure.fail("audio_error", prefix + str(exc))


def _shape(facts: AudioFacts) -> str:
    channels = {1: "mono", 2: "stereo"}.get(facts.channels, f"{facts.channels} channels")
    return f"{channels}, {facts.sample_rate} Hz"


def _provider_failure(exc: ProviderError) -> StepFailure:
    if isinstance(exc, ProviderRefused):
        return StepFailure.fail("download_refused", str(exc))
    if isinstance(exc, ProviderAuthError):
        return StepFailure.pause(
            "provider_auth", str(exc), PausedService.PROVIDER, http_status=exc.status
        )
    if isinstance(exc, PermanentProviderError):
        return StepFailure.fail("provider_refused", str(exc), http_status=exc.status)
    return StepFailure.retry(
        "provider_unavailable",
        str(exc),
        http_status=exc.status,
        retry_after_seconds=getattr(exc, "retry_after", None),
    )
