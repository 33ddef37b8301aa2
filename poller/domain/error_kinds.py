"""Every value ``calls.error_kind`` can hold: what it means and what a person does about it.

Written once here, for the documentation's error reference and for ``calls explain``. A kind
is raised where its failure is found (:class:`~poller.domain.failures.StepFailure`, the skip
reasons of :mod:`poller.domain.filters` and :mod:`poller.domain.attribution`); a test checks
that every kind the code raises has its entry. Some kinds carry a variable part (the Siro step,
the HTTP status): their entries are patterns such as ``siro_<step>_rejected``.

A retry kind also ends up on a ``failed`` row, once ``worker.max_attempts`` attempts are spent;
the fix is then the same, followed by ``siro-poller calls retry``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from poller.domain.attribution import USERS_NOT_SYNCED, RepSkipReason
from poller.domain.failures import (
    AUDIO_BOMB,
    CORRUPT_AUDIO,
    NOT_AUDIO,
    UNSUPPORTED_FORMAT,
    Disposition,
)
from poller.domain.filters import SkipReason

RETRY_FAILED = "`siro-poller calls retry --state failed`"


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """One value of ``calls.error_kind`` (or a pattern of them, with ``<placeholders>``)."""

    name: str
    disposition: Disposition
    meaning: str
    fix: str

    def matches(self, kind: str) -> bool:
        literal_parts = re.split(r"<[a-z_]+>", self.name)
        pattern = "[a-z0-9_]+".join(re.escape(part) for part in literal_parts)
        return re.fullmatch(pattern, kind) is not None


def _kind(name: str, disposition: Disposition, meaning: str, fix: str) -> ErrorKind:
    return ErrorKind(str(name), disposition, meaning, fix)


FAIL, RETRY, SKIP, PAUSE = Disposition.FAIL, Disposition.RETRY, Disposition.SKIP, Disposition.PAUSE

ERROR_KINDS: tuple[ErrorKind, ...] = (
    # The recording: what was downloaded is not audio Siro can be given.
    _kind(
        NOT_AUDIO,
        FAIL,
        "The download is not audio: an error or login page, JSON, an empty body, a video.",
        "Look at the URL in `siro-poller calls show ID`: a login page means the provider's "
        "credentials lack the right to read recordings; fix that at the provider, then "
        f"{RETRY_FAILED}.",
    ),
    _kind(
        UNSUPPORTED_FORMAT,
        FAIL,
        "Audio that no decoder here reads, or a format Siro does not take while "
        '`worker.convert = "never"`.',
        'Set `worker.convert = "auto"` (the default), then '
        f"{RETRY_FAILED}; a codec FFmpeg cannot decode cannot be converted.",
    ),
    _kind(
        CORRUPT_AUDIO,
        FAIL,
        "The audio is truncated or damaged, or made to break the audio library.",
        "Check the recording at the provider; if it plays there, report the call's "
        "`source_format` and `source_codec` (`siro-poller calls show ID`).",
    ),
    _kind(
        AUDIO_BOMB,
        FAIL,
        "The file decodes to far more audio than it declares, or its conversion passed "
        "`worker.max_audio_seconds`, `worker.max_audio_overrun` or "
        "`worker.max_convert_seconds`.",
        "The message gives the figures; raise the bound it names only if the recording is "
        f"genuinely that long, then {RETRY_FAILED}.",
    ),
    _kind(
        "oversize",
        FAIL,
        "The recording is larger than `worker.max_download_bytes`, or too long to fit "
        "`worker.max_file_bytes` even at `worker.mp3_min_bitrate_kbps`.",
        f"Raise the bound the message names (Siro takes at most 100 MB), then {RETRY_FAILED}.",
    ),
    _kind(
        "audio_error",
        FAIL,
        "The audio library failed on the recording in a way not classified above.",
        "The message says what failed; report it with the call's `source_format`.",
    ),
    _kind(
        "convert_failed",
        FAIL,
        "A conversion produced something other than the format it was asked for.",
        "Report the message with the call's `source_format` and `source_codec`.",
    ),
    # The download.
    _kind(
        "download_refused",
        FAIL,
        "The recording's URL, or a redirect, goes to a host the rules refuse; nothing was sent.",
        "If the host is the provider's storage, add it to `provider.download_hosts`, then "
        f"{RETRY_FAILED}.",
    ),
    _kind(
        "download_redirect_loop",
        FAIL,
        "The recording's URL redirects too many times.",
        "Open the URL of `siro-poller calls show ID` at the provider; retry once it answers.",
    ),
    _kind(
        "recording_not_found",
        FAIL,
        "The provider answers 404 or 410: the recording was deleted or moved.",
        "Nothing to upload unless the provider restores it; then `siro-poller calls retry ID`.",
    ),
    _kind(
        "download_http_<status>",
        FAIL,
        "The provider answered the download with that HTTP status: a 4xx fails the call, a "
        "5xx, 408 or 429 is retried.",
        f"The message quotes the provider's answer; fix what it names, then {RETRY_FAILED}.",
    ),
    _kind(
        "download_failed",
        FAIL,
        "The download failed without an HTTP status, in a way retrying will not change.",
        f"The message says why; once fixed, {RETRY_FAILED}.",
    ),
    _kind(
        "download_url_expired",
        RETRY,
        "The host of a download URL or token the provider had just handed out refused it, "
        "no credentials having gone there: the grant expired (or was already used).",
        "Nothing: each attempt asks the provider for a fresh one. If it keeps happening, the "
        "grant expires before the download starts: look for long rate-limit waits in the log.",
    ),
    _kind(
        "download_truncated",
        RETRY,
        "The connection closed before the whole recording arrived.",
        "Nothing: retried with backoff. Many of them point at the network or the provider.",
    ),
    _kind(
        "download_deadline",
        RETRY,
        "The download took longer than `provider.deadline_seconds`.",
        "Retried; if large recordings keep failing, raise `provider.deadline_seconds`.",
    ),
    _kind(
        "download_network",
        RETRY,
        "No answer from the recording's host (refused, reset, timed out, name not resolved).",
        "Retried with backoff (a name that does not resolve at the next attempt, not within "
        "the request); check the machine reaches the host in the message.",
    ),
    _kind(
        "download_rate_limited",
        RETRY,
        "The provider's rate limit said to wait.",
        "Nothing: retried after the wait the provider named.",
    ),
    _kind(
        "interrupted",
        RETRY,
        "The daemon was stopped during the download or the conversion.",
        "Nothing: the call is due again at the next start.",
    ),
    _kind(
        "spool_error",
        RETRY,
        "Writing into the spool directory failed (a full disk, a missing directory).",
        "Free space or fix the directory `siro-poller doctor` names under spool.",
    ),
    # The provider, asked for the recording.
    _kind(
        "provider_auth",
        PAUSE,
        "The provider refused its credentials while the call was downloaded; the work of "
        "that provider pauses (on a failed row: the download URL itself refused them).",
        "Correct the provider credentials the message names (`siro-poller provider check`); "
        f"restart the service after changing a credential file; for a failed row {RETRY_FAILED}.",
    ),
    _kind(
        "provider_refused",
        FAIL,
        "The provider refused the request for the recording for good (another 4xx, an "
        "answer of the wrong shape).",
        f"The message quotes the provider; fix what it names, then {RETRY_FAILED}.",
    ),
    _kind(
        "provider_unavailable",
        RETRY,
        "The provider did not answer the request for the recording, or answered 5xx or 429.",
        "Nothing: retried with backoff.",
    ),
    _kind(
        "provider_not_configured",
        FAIL,
        "The call came from a provider this configuration no longer names.",
        f"Configure that provider again (same `name`), then {RETRY_FAILED}.",
    ),
    # Siro.
    _kind(
        "siro_credentials",
        PAUSE,
        "Siro refused the credentials; all uploads pause until a fresh token is accepted.",
        "Check `siro.client_id`, `siro.client_secret` and `siro.token_user_id` "
        "(`siro-poller doctor`); restart the service after changing a credential file.",
    ),
    _kind(
        "siro_<step>_unavailable",
        RETRY,
        "Siro did not answer that step, or answered 5xx or 429.",
        "Nothing: retried with backoff, after Siro's Retry-After when it sends one.",
    ),
    _kind(
        "siro_<step>_rejected",
        FAIL,
        "Siro refused that step for good (a 4xx other than the credentials).",
        f"The message quotes Siro's answer; fix what it names, then {RETRY_FAILED}.",
    ),
    _kind(
        "siro_<step>_error",
        RETRY,
        "That step of the upload failed in a way not classified above.",
        "Retried; the message says what happened.",
    ),
    _kind(
        "siro_create_unknown",
        RETRY,
        "The create was sent but no answer came back.",
        "Nothing: the next attempt looks for the recording in Siro before creating it.",
    ),
    _kind(
        "siro_create_unconfirmed",
        RETRY,
        "Siro accepted the create without naming the recording; it is never sent again by itself.",
        "Look for the recording in Siro by its title; only if it is not there, "
        "`siro-poller calls retry ID` sends it once more.",
    ),
    _kind(
        "invalid_recording",
        FAIL,
        "Siro would refuse the recording as the poller would send it (the message says which "
        "field).",
        "Fix the field mapping or `worker.title_template` the message points at, then "
        f"{RETRY_FAILED}.",
    ),
    _kind(
        "crm_connection_unknown",
        FAIL,
        "`siro.integration_connection_name` names no connection Siro knows.",
        f"Pick one from `siro-poller siro connections`, then {RETRY_FAILED}.",
    ),
    _kind(
        USERS_NOT_SYNCED,
        RETRY,
        "Siro's users were never synced, so the rep cannot be resolved yet.",
        "Run `siro-poller siro sync-users`, or wait for the daemon's sync.",
    ),
    # The worker.
    _kind(
        "attempts_exhausted",
        FAIL,
        "Every attempt ended with the worker dying or stopped mid-step.",
        "See the call's events (`siro-poller calls show ID`) and the daemon log for the "
        "crash, then `siro-poller calls retry ID`.",
    ),
    _kind(
        "internal_error",
        RETRY,
        "An unexpected exception in the worker.",
        "Retried; the daemon log has the traceback. Please report it.",
    ),
    # Skipped when listed: the configuration or the call's nature leaves nothing to upload.
    _kind(
        SkipReason.NO_RECORDING,
        SKIP,
        "The call has no recording: not recorded, not answered, absent, deleted or encrypted, "
        "or none showed up within `poll.recording_wait_hours`.",
        "Nothing, unless the provider should have recorded it; the message says why.",
    ),
    _kind(
        SkipReason.SHORT_RECORDING,
        SKIP,
        "The provider kept no recording because the call was too short (RingCentral).",
        "Nothing.",
    ),
    _kind(
        SkipReason.TOO_SHORT,
        SKIP,
        "Shorter than `poll.min_duration_seconds`.",
        "Lower the setting and `siro-poller calls retry --state skipped --error-kind too_short`.",
    ),
    _kind(
        SkipReason.DIRECTION_EXCLUDED,
        SKIP,
        "Its direction is not in `poll.directions`.",
        "Change the setting and `siro-poller calls retry --state skipped --error-kind "
        "direction_excluded`.",
    ),
    _kind(
        SkipReason.REP_NOT_ALLOWED,
        SKIP,
        "The rep matches no `poll.rep_allow` entry.",
        "Add the rep and `siro-poller calls retry --state skipped --error-kind rep_not_allowed`.",
    ),
    _kind(
        SkipReason.REP_DENIED,
        SKIP,
        "The rep matches a `poll.rep_deny` entry.",
        "Nothing, unless the entry is wrong.",
    ),
    _kind(
        SkipReason.REP_UNDECIDED,
        SKIP,
        "The provider's record does not say which party is the rep (a Twilio call of an "
        "undocumented direction, a RingCentral record with neither direction nor extension, "
        "a Zoom queue recording or Dialpad group call naming no agent).",
        "For Twilio, add the rep's party to `provider.rep_parties`, list the call again "
        "(`siro-poller backfill` over its time), then `siro-poller calls retry ID`.",
    ),
    # Parked by `calls forget` (poller.domain.erasure.FORGOTTEN_KIND; a literal here, so that
    # this catalog does not load the phone number library).
    _kind(
        "forgotten",
        SKIP,
        "Its personal data was erased on request (`siro-poller calls forget`) before it "
        "reached Siro; the row is a tombstone and the call is never uploaded.",
        "Nothing: `calls retry` and `calls replay` refuse it; its `forget` event says who "
        "asked and when.",
    ),
    # Skipped for the rep, at upload (poller.domain.attribution).
    _kind(
        RepSkipReason.NO_REP_IDENTITY,
        SKIP,
        "No email, phone, or mapped provider id or extension: Siro would not ingest it.",
        "Map the rep's provider id or extension in `[siro.rep_map]`, then "
        "`siro-poller calls retry ID`.",
    ),
    _kind(
        RepSkipReason.UNKNOWN_REP,
        SKIP,
        "`siro.require_known_rep` is on and the rep matched no Siro user.",
        "Add the rep to Siro (then `siro-poller siro sync-users`) or map it in "
        "`[siro.rep_map]`, then `siro-poller calls retry ID`.",
    ),
    _kind(
        RepSkipReason.REP_DISABLED,
        SKIP,
        "The rep's email or phone belongs only to a disabled Siro user, or one Siro no longer "
        "lists; the call is given to no one else.",
        "Map the rep in `[siro.rep_map]`, then `siro-poller calls retry ID`.",
    ),
    _kind(
        RepSkipReason.AMBIGUOUS_REP,
        SKIP,
        "Several active Siro users share the rep's email or phone.",
        "Name the right one in `[siro.rep_map]`, then `siro-poller calls retry ID`.",
    ),
)


def error_kind(kind: str | None) -> ErrorKind | None:
    """The entry for a stored ``calls.error_kind``; ``None`` for none or one this version lacks."""
    if kind is None:
        return None
    return next((entry for entry in ERROR_KINDS if entry.matches(kind)), None)
