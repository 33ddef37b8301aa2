"""Which recordings are converted, to what, and at which bitrate: pure rules, no audio needed."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from poller.config import WorkerSettings
from poller.domain import transitions
from poller.domain.audio import (
    AudioFacts,
    ConversionImpossible,
    ConversionKind,
    ConversionLimits,
    ConversionRules,
    ConvertMode,
    conversion_limits,
    estimated_mp3_bytes,
    lower_mp3_bitrate,
    plan_conversion,
)
from poller.domain.ingest import LISTING_COLUMNS, MEASURED_COLUMNS
from poller.domain.siro import AudioFormat

MB = 1024 * 1024
RULES = ConversionRules(
    mode=ConvertMode.AUTO, max_upload_bytes=100 * MB, mp3_bitrate_kbps=64, mp3_min_bitrate_kbps=16
)


def facts(
    container: str, codec: str, siro: AudioFormat | None, seconds: float = 60.0
) -> AudioFacts:
    return AudioFacts(container, codec, seconds, 2, 44100, siro)


@pytest.mark.parametrize("siro", [AudioFormat.MP3, AudioFormat.WAV, AudioFormat.AAC])
def test_what_siro_takes_within_the_limit_goes_as_it_is(siro: AudioFormat) -> None:
    assert plan_conversion(facts("x", "x", siro), 100 * MB, RULES) is None


def test_aac_in_an_mp4_or_m4a_is_repackaged() -> None:
    plan = plan_conversion(facts("m4a", "aac", None), 5 * MB, RULES)
    assert plan is not None
    assert (plan.kind, plan.target, plan.bitrate_kbps) == (
        ConversionKind.REMUX_AAC,
        AudioFormat.AAC,
        None,
    )


@pytest.mark.parametrize(
    ("container", "codec"),
    [("ogg", "opus"), ("webm", "opus"), ("flac", "flac"), ("mp4", "mp3"), ("wav", "gsm_ms")],
)
def test_everything_else_is_encoded_to_mp3_at_the_configured_bitrate(
    container: str, codec: str
) -> None:
    plan = plan_conversion(facts(container, codec, None), 5 * MB, RULES)
    assert plan is not None
    assert (plan.kind, plan.target, plan.bitrate_kbps) == (
        ConversionKind.ENCODE_MP3,
        AudioFormat.MP3,
        64,
    )
    assert plan.reason == f"Siro does not take {container} ({codec})"


def test_a_wav_over_the_limit_is_encoded_to_mp3() -> None:
    plan = plan_conversion(facts("wav", "pcm_s16le", AudioFormat.WAV), 150 * MB, RULES)
    assert plan is not None and plan.kind == ConversionKind.ENCODE_MP3
    assert plan.reason == (
        f"the wav (pcm_s16le) recording is {150 * MB} bytes, over "
        f"worker.max_file_bytes = {100 * MB}"
    )


def test_a_long_recording_starts_at_the_highest_bitrate_that_fits() -> None:
    five_hours = facts("wav", "pcm_s16le", AudioFormat.WAV, seconds=5 * 3600)
    plan = plan_conversion(five_hours, 3 * 1024 * MB, RULES)
    assert plan is not None and plan.bitrate_kbps == 40  # 48 would make 110 MB
    assert estimated_mp3_bytes(5 * 3600, 40) <= 100 * MB < estimated_mp3_bytes(5 * 3600, 48)


def test_a_recording_too_long_for_the_floor_cannot_be_converted() -> None:
    day = facts("wav", "pcm_s16le", AudioFormat.WAV, seconds=24 * 3600)
    with pytest.raises(ConversionImpossible, match=r"24h00m00s .* floor of 16 kbit/s"):
        plan_conversion(day, 15 * 1024 * MB, RULES)


def test_an_encode_that_came_out_too_big_steps_down_by_how_far_over_it_was() -> None:
    assert lower_mp3_bitrate(64, 120 * MB, 3600, RULES) == 48
    assert lower_mp3_bitrate(64, 101 * MB, 3600, RULES) == 56
    with pytest.raises(ConversionImpossible, match="encoded at 16 kbit/s it came out at"):
        lower_mp3_bitrate(16, 101 * MB, 3600, RULES)


def test_the_audio_length_fills_a_duration_only_the_provider_left_out() -> None:
    audio = facts("m4a", "aac", None, seconds=61.6)
    filled = transitions.audio_probed(audio, provider_duration_seconds=None)
    kept = transitions.audio_probed(audio, provider_duration_seconds=60)
    assert filled["duration_seconds"] == 62
    assert "duration_seconds" not in kept
    assert kept["audio_duration_seconds"] == 61.6
    assert (kept["source_format"], kept["source_codec"]) == ("m4a", "aac")
    assert (kept["audio_channels"], kept["audio_sample_rate"]) == (2, 44100)


def test_every_listing_column_the_audio_fills_is_kept_from_an_empty_listing() -> None:
    # A column both a listing and the probe write is lost to the next poll unless ingest knows
    # it as measured.
    filled = transitions.audio_probed(facts("mp3", "mp3", None), provider_duration_seconds=None)
    assert set(filled) & set(LISTING_COLUMNS) == MEASURED_COLUMNS


@pytest.mark.parametrize(
    ("values", "error"),
    [
        ({"mp3_bitrate_kbps": 65}, "must be an mp3 bitrate"),
        ({"mp3_bitrate_kbps": 32, "mp3_min_bitrate_kbps": 48}, "must not be above"),
        ({"max_file_bytes": 200, "max_download_bytes": 100}, "must not be below max_file_bytes"),
        ({"convert": "sometimes"}, "'auto' or 'never'"),
    ],
)
def test_conversion_settings_are_checked(values: dict[str, object], error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        WorkerSettings.model_validate(values)


def limits(seconds: float, provider: float | None = None, **rules: float) -> ConversionLimits:
    return conversion_limits(
        facts("flac", "flac", None, seconds),
        replace(RULES, **rules),
        kind=ConversionKind.ENCODE_MP3,
        bitrate_kbps=64,
        source_bytes=MB,
        provider_seconds=provider,
    )


def test_decoding_may_run_past_the_declared_length_by_the_overrun_and_a_minute() -> None:
    assert limits(60).max_audio_seconds == 60 * 1.5 + 60
    assert limits(3600, max_audio_overrun=2.0).max_audio_seconds == 3600 * 2 + 60
    # What that much audio makes at the bitrate bounds what may be written.
    assert limits(60).max_output_bytes == pytest.approx(estimated_mp3_bytes(150, 64) * 1.02)


def test_the_longer_of_the_headers_and_the_providers_length_is_expected() -> None:
    assert limits(60, provider=600).expected_seconds == 600
    assert limits(600, provider=60).expected_seconds == 600


def test_no_file_decodes_past_max_audio_seconds_whatever_it_declares() -> None:
    assert limits(20 * 3600).max_audio_seconds == 8 * 3600
    assert limits(0.0).max_audio_seconds == 8 * 3600  # no length declared at all
    assert limits(60, max_audio_seconds=100).max_audio_seconds == 100


def test_what_a_conversion_writes_never_exceeds_the_download_cap() -> None:
    assert limits(8 * 3600, max_output_bytes=10 * MB).max_output_bytes == 10 * MB


def test_a_repackaging_may_write_about_its_sources_size() -> None:
    remux = conversion_limits(
        facts("m4a", "aac", None, 60),
        RULES,
        kind=ConversionKind.REMUX_AAC,
        bitrate_kbps=None,
        source_bytes=10 * MB,
        provider_seconds=None,
    )
    assert 10 * MB < remux.max_output_bytes <= 20 * MB


def test_the_limit_settings_have_bounds() -> None:
    with pytest.raises(ValidationError, match="max_audio_overrun"):
        WorkerSettings(max_audio_overrun=0.5)
    with pytest.raises(ValidationError, match="max_convert_seconds"):
        WorkerSettings(max_convert_seconds=0)
