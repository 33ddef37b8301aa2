"""From the validated configuration to the plain values the domain and the core take.

Neither the domain nor the core reads :class:`~poller.config.Settings`; the composition root
(:mod:`poller.app`) and the CLI build their rules and parameters here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from poller.adapters.siro.settings import SiroSettings
from poller.config import Settings
from poller.core.daemon import DaemonParams
from poller.core.poll import PollCycle
from poller.core.poll_report import PollParams
from poller.core.source_deletion import SourceDeletionParams
from poller.core.webhook_subscriptions import (
    CHECK_EVERY,
    SubscriptionJob,
    SubscriptionTarget,
    subscriptions_of,
)
from poller.core.worker import WorkerParams
from poller.domain.attribution import RepRules, normalise_email_keys, normalise_phone_keys
from poller.domain.audio import ConversionRules
from poller.domain.clock import as_utc, utcnow
from poller.domain.crm import CrmRules
from poller.domain.filters import CallFilter
from poller.domain.health import HealthRules
from poller.domain.retention import RetentionRules
from poller.domain.states import Direction
from poller.domain.upload_plan import UploadRules
from poller.ports.provider import ProviderPort
from poller.ports.store import PollStore, WebhookStore


def rep_rules_from_settings(siro: SiroSettings) -> RepRules:
    region = siro.phone_default_region
    rep_map = siro.rep_map
    return RepRules(
        by_provider_id=dict(rep_map.provider_id),
        by_extension=dict(rep_map.extension),
        by_email=normalise_email_keys(rep_map.email),
        by_phone=normalise_phone_keys(rep_map.phone, region),
        default_region=region,
        require_known_rep=siro.require_known_rep,
    )


def crm_rules_from_settings(siro: SiroSettings) -> CrmRules:
    return CrmRules(
        connection_id=siro.integration_connection_id,
        connection_name=siro.integration_connection_name,
        objects=tuple(siro.crm.objects.items()),
    )


def upload_rules_from_settings(settings: Settings) -> UploadRules:
    return UploadRules(
        rep=rep_rules_from_settings(settings.siro),
        crm=crm_rules_from_settings(settings.siro),
        title_template=settings.worker.title_template,
        organization_id=settings.siro.organization_id,
        conversation_type=settings.siro.conversation_type,
    )


def poll_params_from_settings(settings: Settings, provider: str | None = None) -> PollParams:
    """The poll cycle's parameters for the provider called ``provider`` (default: the first)."""
    poll = settings.poll
    return PollParams(
        provider_key=provider or settings.configured_providers[0].name,
        lookback=timedelta(minutes=poll.lookback_minutes),
        settle_delay=timedelta(seconds=poll.settle_delay_seconds),
        initial_lookback=timedelta(hours=poll.initial_lookback_hours),
        start_at=as_utc(poll.start_at) if poll.start_at else None,
        recording_wait=timedelta(hours=poll.recording_wait_hours),
        recheck_waiting=timedelta(minutes=poll.recheck_waiting_minutes),
        call_filter=CallFilter(
            min_duration_seconds=poll.min_duration_seconds,
            directions=frozenset(Direction(name) for name in poll.directions),
            rep_allow=tuple(poll.rep_allow),
            rep_deny=tuple(poll.rep_deny),
        ),
        max_unmapped_ratio=poll.max_unmapped_ratio,
        remap_base=timedelta(seconds=settings.retention.unmapped_remap_base_seconds),
        remap_cap=timedelta(seconds=settings.retention.unmapped_remap_max_seconds),
        unmapped_max_kept=settings.retention.unmapped_max_kept,
    )


def poll_cycle_from_settings(
    settings: Settings,
    name: str,
    provider: ProviderPort,
    store: PollStore,
    clock: Callable[[], datetime],
) -> PollCycle:
    """The daemon's poll cycle of the provider called ``name``; it can run nudged."""
    return PollCycle(poll_params_from_settings(settings, name), provider, store, clock)


def settle_delays_from_settings(
    settings: Settings, providers: Mapping[str, ProviderPort] | None = None
) -> dict[str, float]:
    """Each configured provider's effective settle delay in seconds: the configured one, or
    its adapter's (from ``providers``, by name) where that is longer."""
    configured = float(settings.poll.settle_delay_seconds)
    delays: dict[str, float] = {}
    for section in settings.configured_providers:
        adapter = (providers or {}).get(section.name)
        own = adapter.capabilities.settle_delay.total_seconds() if adapter else 0.0
        delays[section.name] = max(configured, own)
    return delays


def _days(value: float) -> timedelta | None:
    """A retention period in days; 0 keeps for ever."""
    return timedelta(days=value) if value > 0 else None


def retention_rules_from_settings(settings: Settings) -> RetentionRules:
    retention = settings.retention
    return RetentionRules(
        personal_data_after=_days(retention.personal_data_days),
        events_after=_days(retention.events_days),
        unmapped_after=_days(retention.unmapped_days),
        unmapped_max_attempts=retention.unmapped_max_attempts,
        unmapped_max_kept=retention.unmapped_max_kept,
        remap_base=timedelta(seconds=retention.unmapped_remap_base_seconds),
        remap_cap=timedelta(seconds=retention.unmapped_remap_max_seconds),
        batch_size=retention.batch_size,
        max_batches=retention.max_batches,
        default_region=settings.siro.phone_default_region,
    )


def worker_params_from_settings(settings: Settings) -> WorkerParams:
    worker = settings.worker
    return WorkerParams(
        spool_dir=settings.spool_dir,
        upload_rules=upload_rules_from_settings(settings),
        concurrency=worker.concurrency,
        max_attempts=worker.max_attempts,
        retry_base_seconds=worker.retry_base_seconds,
        retry_max_seconds=worker.retry_max_seconds,
        lease_seconds=worker.lease_seconds,
        conversion=conversion_rules_from_settings(settings),
        credential_probe_seconds=worker.credential_probe_seconds,
    )


def conversion_rules_from_settings(settings: Settings) -> ConversionRules:
    worker = settings.worker
    return ConversionRules(
        mode=worker.convert,
        max_upload_bytes=worker.max_file_bytes,
        mp3_bitrate_kbps=worker.mp3_bitrate_kbps,
        mp3_min_bitrate_kbps=worker.mp3_min_bitrate_kbps,
        max_audio_seconds=worker.max_audio_seconds,
        max_audio_overrun=worker.max_audio_overrun,
        max_convert_seconds=worker.max_convert_seconds,
        # A conversion writes its copy beside the download: the spool's budget for either.
        max_output_bytes=worker.max_download_bytes,
    )


def daemon_params_from_settings(
    settings: Settings, providers: Mapping[str, ProviderPort] | None = None
) -> DaemonParams:
    """The daemon's parameters; ``providers`` (the adapters, by name) add their own settle
    delays to the nudges' plain follow-up poll."""
    return DaemonParams(
        poll_interval_seconds=settings.poll.interval_seconds,
        work_interval_seconds=settings.worker.interval_seconds,
        users_refresh_minutes=settings.siro.users_refresh_minutes,
        lease_seconds=settings.worker.lease_seconds,
        concurrency=settings.worker.concurrency,
        shutdown_grace_seconds=settings.worker.shutdown_grace_seconds,
        role=settings.worker.role,
        providers=tuple(provider.name for provider in settings.configured_providers),
        retention_interval_seconds=settings.retention.interval_seconds,
        webhook_providers=webhook_providers(settings),
        settle_delays=settle_delays_from_settings(settings, providers),
        nudge_debounce_seconds=settings.webhooks.debounce_seconds,
        nudge_follow_up_seconds=tuple(settings.webhooks.follow_up_seconds),
    )


def health_rules_from_settings(settings: Settings) -> HealthRules:
    """What `siro-poller status` checks: every configured provider's polling and a worker."""
    return HealthRules(
        providers=tuple(provider.name for provider in settings.configured_providers),
        poll_interval=timedelta(seconds=settings.poll.interval_seconds),
        work_interval=timedelta(seconds=settings.worker.interval_seconds),
        webhook_providers=webhook_providers(settings),
    )


def webhook_providers(settings: Settings) -> tuple[str, ...]:
    """The providers whose events are taken (``webhook.enabled``), by name."""
    return tuple(
        provider.name for provider in settings.configured_providers if provider.webhook.enabled
    )


def source_deletion_params_from_settings(settings: Settings) -> SourceDeletionParams:
    """The global switch, and the providers that opted in to deletion at the source."""
    section = settings.source_deletion
    return SourceDeletionParams(
        enabled=section.enabled,
        grace_by_provider={
            provider.name: timedelta(days=provider.delete_grace_days)
            for provider in settings.configured_providers
            if provider.delete_at_source
        },
        batch_size=section.batch_size,
        max_attempts=section.max_attempts,
        retry_base=timedelta(seconds=section.retry_base_seconds),
        retry_max=timedelta(seconds=section.retry_max_seconds),
    )


def subscription_targets(
    settings: Settings, adapters: Mapping[str, object]
) -> list[SubscriptionTarget]:
    """The providers with ``webhook.enabled`` whose adapter manages its vendor's subscriptions."""
    targets = []
    for name in webhook_providers(settings):
        api = subscriptions_of(adapters.get(name))
        if api is not None:
            url = settings.provider_named(name).webhook.public_url
            targets.append(SubscriptionTarget(name, url, api))
    return targets


def webhook_subscription_job(
    settings: Settings,
    adapters: Mapping[str, object],
    store: WebhookStore,
    clock: Callable[[], datetime] = utcnow,
) -> tuple[str, Callable[[], None], float] | None:
    """The daemon's hourly check of the webhook subscriptions (renewals, lost ones), as an
    extra job; None when no enabled webhook has a subscription to look after."""
    targets = subscription_targets(settings, adapters)
    if not targets:
        return None
    job = SubscriptionJob(lambda: targets, store, clock)
    return ("webhook-subscriptions", job.job, CHECK_EVERY.total_seconds())
