"""Twilio's recording status callbacks: the ``X-Twilio-Signature``, and the console steps.

What Twilio documents (twilio.com/docs/usage/webhooks/webhooks-security), as its helper
library implements it (twilio-python ``twilio.request_validator.RequestValidator``):

- ``X-Twilio-Signature`` is the base64 HMAC-SHA1, keyed with the account's Auth Token, of the
  full URL Twilio requested (scheme, host, path and query, as configured) followed by every
  POST parameter's name and value, sorted by name (a repeated name: its distinct values sorted).
  Twilio's back end is not consistent about the port, so the library accepts the URL with the
  scheme's default port and without any port; so does this verifier.
- A JSON body is signed through the URL: Twilio adds ``bodySHA256`` (the hex SHA-256 of the
  body) to the query and signs the URL alone.
- A Webhook Rule of the Webhooks configuration API (public beta,
  twilio.com/docs/usage/webhooks/webhook-shared-keys) can sign with a SharedKey instead of the
  Auth Token, naming it and the algorithm in ``X-Twilio-Webhooks-Signature-Settings:
  key=...,algorithm=HMAC_SHA256``; the signed string is the same. That key's secret goes in
  ``webhook.secret``.
- Retried deliveries (connection overrides, ``#rc=``) carry the same
  ``I-Twilio-Idempotency-Token``. It is not signed, so it cannot be the replay key: a captured
  callback replayed with a new token would pass. The signature is: a retry or a replay of the
  same callback (same URL, same parameters) carries the same one.

The ``recordingStatusCallback`` form (twilio.com/docs/voice/twiml/record, "Recording status
callback parameters"): ``AccountSid``, ``CallSid``, ``RecordingSid``, ``RecordingUrl``,
``RecordingStatus`` (``in-progress``, ``completed``, ``absent``, ``failed``),
``RecordingDuration``, ``RecordingChannels``, ``RecordingStartTime``, ``RecordingSource``,
``ErrorCode``. The adapter keys calls by the recording SID (``RE...``): the callback's
``RecordingSid``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import parse_qs, parse_qsl, urlsplit, urlunsplit

from pydantic import SecretStr

from poller.adapters.webhooks.console import ConsoleSubscriptions
from poller.domain.call_record import MAX_ID_LENGTH
from poller.ports.webhooks import Refused, Verified, WebhookRequest

SIGNATURE_HEADER = "x-twilio-signature"
SIGNATURE_SETTINGS_HEADER = "x-twilio-webhooks-signature-settings"
BODY_HASH_PARAMETER = "bodySHA256"
RECORDING_STATUS_EVENT = "recordingStatusCallback"
_ALGORITHMS = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}
_DEFAULT_PORTS = {"https": 443, "http": 80}

CONSOLE_STEPS = (
    "Twilio has no subscription to create: the recording status callback is set on each call "
    "or recording. Use this exact URL, as provider.webhook.public_url has it (Twilio signs the "
    "URL it calls, so it must match to the character): {url}",
    'TwiML <Record>: add recordingStatusCallback="{url}" and '
    'recordingStatusCallbackEvent="completed absent" (the default is completed only).',
    'TwiML <Dial record="record-from-answer-dual"> (or another record value) and '
    "<Start><Recording>: add "
    'recordingStatusCallback="{url}" and recordingStatusCallbackEvent="completed absent".',
    "Calls created through the REST API (Calls.json with Record=true) or recordings started "
    "with the Recordings API: pass RecordingStatusCallback={url} and "
    "RecordingStatusCallbackEvent=completed (and absent).",
    "Studio flows and Twilio Functions that record: set the same recording status callback URL "
    "in their Record or Connect Call widgets.",
    "Keep provider.auth_token set (Twilio signs with the account's Auth Token), or, if a "
    "Webhook Rule signs with a SharedKey, put that key's secret in provider.webhook.secret; set "
    "provider.webhook.enabled = true and restart the poller.",
)


def twilio_console_steps(provider: str) -> ConsoleSubscriptions:
    return ConsoleSubscriptions(provider, "Twilio", CONSOLE_STEPS)


def twilio_signature(
    secret: str,
    url: str,
    params: Iterable[tuple[str, str]] = (),
    *,
    algorithm: str = "HMAC_SHA1",
) -> str:
    """The base64 HMAC of ``url`` and each parameter's name and value, sorted by name and,
    for a repeated name, by value (each distinct value once)."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    digest = hmac.new(secret.encode(), signed.encode(), _ALGORITHMS[algorithm]).digest()
    return base64.b64encode(digest).decode()


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


class TwilioWebhookVerifier:
    """A :class:`poller.ports.webhooks.WebhookVerifier` for ``X-Twilio-Signature``.

    ``auth_token`` signs by default; ``shared_key`` is ``webhook.secret``: a SharedKey's secret
    when a Webhook Rule signs with one, or the Auth Token itself when the provider
    authenticates with an API key and holds no Auth Token.
    """

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: SecretStr | None,
        shared_key: SecretStr | None = None,
    ) -> None:
        self._account_sid = account_sid
        self._auth_token = auth_token
        self._shared_key = shared_key

    def verify(self, request: WebhookRequest) -> Verified | Refused:
        signature = request.header(SIGNATURE_HEADER)
        if not signature:
            return Refused("no_signature")
        if request.public_url is None:
            # Twilio signs the URL it called; without it nothing here can be checked.
            return Refused("no_public_url")
        keys, algorithm = self._keys(request.header(SIGNATURE_SETTINGS_HEADER))
        if algorithm is None:
            return Refused("bad_signature")
        if not keys:
            return Refused("no_secret")
        try:
            query = parse_qs(urlsplit(request.public_url).query)
        except ValueError:
            return Refused("malformed")
        body_hash = query.get(BODY_HASH_PARAMETER, [None])[-1]
        fields: list[tuple[str, str]] = []
        if body_hash is None:
            try:
                fields = parse_qsl(
                    request.body.decode("utf-8"), keep_blank_values=True, strict_parsing=False
                )
            except (UnicodeDecodeError, ValueError):
                return Refused("malformed")
        elif not hmac.compare_digest(body_sha256(request.body).encode(), body_hash.encode()):
            return Refused("bad_signature")
        if not signature_matches(signature, keys, request.public_url, fields, algorithm):
            return Refused("bad_signature")
        form = dict(fields) if body_hash is None else _json_fields(request.body)
        if form is None:
            return Refused("malformed")
        if form.get("AccountSid") != self._account_sid:
            return Refused("wrong_account")
        replay_key = signature.strip()
        status = form.get("RecordingStatus")
        if status is None:
            # Another callback sent to this address (a call status one): proven, of no interest.
            return Verified(event="callback", nudge=False, replay_key=replay_key)
        recording = form.get("RecordingSid", "").strip()
        call_ids = (recording,) if recording and len(recording) <= MAX_ID_LENGTH else ()
        return Verified(
            event=f"{RECORDING_STATUS_EVENT}:{status[:40]}",
            call_ids=call_ids,
            # "absent" and "failed" name a recording there is nothing to fetch of.
            nudge=status == "completed",
            replay_key=replay_key,
        )

    def _keys(self, settings_header: str | None) -> tuple[list[str], str | None]:
        """The secrets that may have signed, and the algorithm; None: one Twilio never uses."""
        if settings_header is None:
            found = [self._shared_key, self._auth_token]
            return [key.get_secret_value() for key in found if key is not None], "HMAC_SHA1"
        parts = dict(
            part.strip().partition("=")[::2] for part in settings_header.split(",") if part
        )
        algorithm = parts.get("algorithm", "").strip().upper()
        if algorithm not in _ALGORITHMS:
            return [], None
        shared = self._shared_key
        return ([shared.get_secret_value()] if shared is not None else []), algorithm


def signature_matches(
    signature: str,
    keys: Sequence[str],
    url: str,
    fields: Sequence[tuple[str, str]],
    algorithm: str = "HMAC_SHA1",
) -> bool:
    """Whether ``signature`` signs ``url`` (with or without its port) and ``fields`` under one
    of ``keys``."""
    given = signature.strip().encode()
    matched = False
    # Every candidate is computed and compared: the time taken says nothing of which matched.
    for key in keys:
        for url_form in _url_forms(url):
            expected = twilio_signature(key, url_form, fields, algorithm=algorithm).encode()
            matched |= hmac.compare_digest(expected, given)
    return matched


def _url_forms(url: str) -> list[str]:
    """``url`` as given, and with its port removed or the scheme's default one added: Twilio's
    back end signs either way, so twilio-python accepts both. Only the port changes; the rest
    stays as Twilio signed it, to the character."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    netloc = parts.netloc
    host, colon, port = netloc.rpartition(":")
    has_port = bool(colon) and port.isdigit() and not netloc.endswith("]")
    if has_port:
        other = urlunsplit(parts._replace(netloc=host))
    else:
        default = _DEFAULT_PORTS.get(parts.scheme.lower())
        if default is None:
            return [url]
        other = urlunsplit(parts._replace(netloc=f"{netloc}:{default}"))
    return [url, other]


def _json_fields(body: bytes) -> Mapping[str, str] | None:
    """The top-level text fields of a JSON object body (Twilio's JSON-bodied callbacks)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    fields = {key: value for key, value in document.items() if isinstance(value, str)}
    if "AccountSid" not in fields and "account_sid" in fields:
        fields["AccountSid"] = fields["account_sid"]
    return fields
