"""What a recording's audio is, and what it takes to make it something Siro accepts.

Siro takes mp3, aac (ADTS) and wav, up to a size limit. Anything else is converted: MP4/M4A
holding AAC is repackaged as ADTS without touching the audio frames; every other format (and
a file too big as it is) is encoded to mp3 at a bitrate that fits, never below a floor.
Pure rules only: the probing and encoding live behind :mod:`poller.ports.audio`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from poller.domain.siro import AudioFormat

# The bitrates an MPEG audio layer III stream can have (kbit/s), across MPEG-1, -2 and -2.5.
MP3_BITRATES_KBPS = (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
# An encoded file is a little larger than bitrate x duration (frame headers, the info tag).
MP3_OVERHEAD = 1.02


class ConvertMode(StrEnum):
    AUTO = "auto"  # convert whatever Siro does not take
    NEVER = "never"  # fail such calls instead


class ConversionKind(StrEnum):
    REMUX_AAC = "remux_aac"  # MP4/M4A holding AAC -> ADTS aac, frames copied as they are
    ENCODE_MP3 = "encode_mp3"  # decoded and encoded to mp3, channel count kept


@dataclass(frozen=True, slots=True)
class AudioFacts:
    """What the content says: container, codec and shape of the first audio stream.

    ``siro_format`` is the format Siro would take the file as, unchanged; ``None`` when Siro
    takes neither the container nor the codec. ``duration_seconds`` is what the headers claim
    (counted from the packets only when they claim nothing): a conversion never trusts it
    beyond its :class:`ConversionLimits`.
    """

    container: str
    codec: str
    duration_seconds: float
    channels: int
    sample_rate: int
    siro_format: AudioFormat | None

    def describe(self) -> str:
        return f"{self.container} ({self.codec})"


# Beside worker.max_audio_overrun, the seconds a conversion may decode past the expected
# length anyway: a provider rounds durations, and a 3-second call is not judged by its ratio.
DURATION_GRACE_SECONDS = 60.0
# An ADTS frame is the MP4's AAC frame behind a 7-byte header: a repackaged file hardly grows.
REMUX_GROWTH = 1.5
# Below this, output bounds are not worth judging (an encoder's header, a short recording).
MIN_OUTPUT_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ConversionRules:
    mode: ConvertMode
    max_upload_bytes: int
    mp3_bitrate_kbps: int
    mp3_min_bitrate_kbps: int
    # The bounds of one conversion (see conversion_limits); the defaults are the settings'.
    max_audio_seconds: float = 8 * 3600.0
    max_audio_overrun: float = 1.5
    max_convert_seconds: float = 900.0
    max_output_bytes: int = 2 * 1024 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ConversionLimits:
    """How far one conversion may go before the file counts as an audio bomb.

    A header's duration is the file's own claim: a FLAC whose header says a minute may decode
    to twenty hours. The conversion counts what it really decodes and writes against these.
    """

    expected_seconds: float  # what the header or the provider said (0.0: neither said)
    max_audio_seconds: float
    max_output_bytes: int
    max_wall_seconds: float

    def describe_expected(self) -> str:
        if self.expected_seconds <= 0:
            return "no length is declared for it"
        return f"it is said to last {self.expected_seconds:.1f} s"


@dataclass(frozen=True, slots=True)
class Conversion:
    kind: ConversionKind
    target: AudioFormat
    bitrate_kbps: int | None = None  # ENCODE_MP3 only
    reason: str = ""


class ConversionImpossible(Exception):
    """No mp3 at or above the bitrate floor fits Siro's size limit; the message says why."""


def plan_conversion(
    facts: AudioFacts, size_bytes: int, rules: ConversionRules
) -> Conversion | None:
    """What to do with a downloaded file before upload: ``None`` means upload it as it is.

    Raises :class:`ConversionImpossible` when the recording is too long for any mp3 that fits.
    """
    if facts.siro_format is not None and size_bytes <= rules.max_upload_bytes:
        return None
    if facts.siro_format is None and facts.codec == "aac" and size_bytes <= rules.max_upload_bytes:
        return Conversion(
            ConversionKind.REMUX_AAC,
            AudioFormat.AAC,
            reason=f"Siro does not take {facts.container}",
        )
    bitrate = fitting_mp3_bitrate(facts.duration_seconds, size_bytes, rules)
    reason = (
        f"Siro does not take {facts.describe()}"
        if facts.siro_format is None
        else f"the {facts.describe()} recording is {size_bytes} bytes, over "
        f"worker.max_file_bytes = {rules.max_upload_bytes}"
    )
    return Conversion(ConversionKind.ENCODE_MP3, AudioFormat.MP3, bitrate, reason)


def conversion_limits(
    facts: AudioFacts,
    rules: ConversionRules,
    *,
    kind: ConversionKind,
    bitrate_kbps: int | None,
    source_bytes: int,
    provider_seconds: float | None,
) -> ConversionLimits:
    """The bounds of one conversion of a file of ``source_bytes``.

    Decoded audio may run past the longer of the header's and the provider's length by
    ``max_audio_overrun`` times it (plus a grace), never past ``max_audio_seconds``; what is
    written is bounded by what that much audio makes, and by ``max_output_bytes``.
    """
    expected = max(facts.duration_seconds, float(provider_seconds or 0))
    seconds = rules.max_audio_seconds
    if expected > 0:
        seconds = min(seconds, expected * rules.max_audio_overrun + DURATION_GRACE_SECONDS)
    if kind == ConversionKind.REMUX_AAC or bitrate_kbps is None:
        output = source_bytes * REMUX_GROWTH
    else:
        output = estimated_mp3_bytes(seconds, bitrate_kbps) * MP3_OVERHEAD
    return ConversionLimits(
        expected_seconds=expected,
        max_audio_seconds=seconds,
        max_output_bytes=min(rules.max_output_bytes, max(MIN_OUTPUT_BYTES, math.ceil(output))),
        max_wall_seconds=rules.max_convert_seconds,
    )


def fitting_mp3_bitrate(duration_seconds: float, size_bytes: int, rules: ConversionRules) -> int:
    """The configured bitrate, or the highest lower one whose mp3 fits the size limit."""
    for bitrate in _bitrates_down_from(rules.mp3_bitrate_kbps, rules.mp3_min_bitrate_kbps):
        if estimated_mp3_bytes(duration_seconds, bitrate) <= rules.max_upload_bytes:
            return bitrate
    raise ConversionImpossible(
        too_long_message(duration_seconds, size_bytes, rules, rules.mp3_min_bitrate_kbps)
    )


def lower_mp3_bitrate(
    bitrate_kbps: int, encoded_bytes: int, duration_seconds: float, rules: ConversionRules
) -> int:
    """After an encode at ``bitrate_kbps`` came out at ``encoded_bytes``, over the limit: the
    next bitrate to try, scaled by how far over it was. Raises :class:`ConversionImpossible`."""
    wanted = bitrate_kbps * rules.max_upload_bytes / encoded_bytes
    for bitrate in _bitrates_down_from(bitrate_kbps, rules.mp3_min_bitrate_kbps):
        if bitrate < bitrate_kbps and bitrate <= wanted:
            return bitrate
    raise ConversionImpossible(
        too_long_message(duration_seconds, encoded_bytes, rules, bitrate_kbps, encoded=True)
    )


def estimated_mp3_bytes(duration_seconds: float, bitrate_kbps: int) -> int:
    return math.ceil(duration_seconds * bitrate_kbps * 1000 / 8 * MP3_OVERHEAD)


def too_long_message(
    duration_seconds: float,
    size_bytes: int,
    rules: ConversionRules,
    bitrate_kbps: int,
    *,
    encoded: bool = False,
) -> str:
    at_floor = estimated_mp3_bytes(duration_seconds, bitrate_kbps)
    what = (
        f"encoded at {bitrate_kbps} kbit/s it came out at {size_bytes} bytes"
        if encoded
        else f"the recording is {size_bytes} bytes and even as mp3 at the floor of "
        f"{bitrate_kbps} kbit/s (worker.mp3_min_bitrate_kbps) it would be about {at_floor} bytes"
    )
    return (
        f"{_clock(duration_seconds)} of audio cannot fit Siro's limit of "
        f"{rules.max_upload_bytes} bytes (worker.max_file_bytes): {what}"
    )


def _bitrates_down_from(ceiling: int, floor: int) -> list[int]:
    return [b for b in reversed(MP3_BITRATES_KBPS) if floor <= b <= ceiling]


def _clock(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m{whole % 60:02d}s ({seconds:.1f} s)"
