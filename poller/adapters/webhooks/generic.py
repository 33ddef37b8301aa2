"""The generic kind's webhook verifier: a shared token in a header, or an HMAC of the raw body.

Either way the secret is compared in constant time, and a verified event only ever nudges a
poll of its provider (:mod:`poller.ports.webhooks`): its body is read for a call id to log, at
most, never as data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Literal

from poller.adapters.webhooks.settings import GenericWebhookSettings
from poller.config_types import ConfigError
from poller.domain.paths import MISSING, dig
from poller.ports.webhooks import Refused, Verified, WebhookRequest

# What a generic event is called: its vendor names it nowhere the verifier can know.
GENERIC_EVENT = "event"
# A call id longer than this is no id: it is left out of the event rather than logged.
_MAX_CALL_ID = 200
_MAX_CALL_IDS = 20


class GenericVerifier:
    """Checks one provider's events as its ``[provider.webhook]`` table says."""

    def __init__(
        self,
        *,
        secret: str,
        scheme: Literal["token", "hmac"] = "token",
        header: str = "Authorization",
        hmac_algorithm: Literal["sha1", "sha256", "sha512"] = "sha256",
        hmac_encoding: Literal["hex", "base64"] = "hex",
        hmac_prefix: str = "",
        call_id_path: str | None = None,
    ) -> None:
        self._secret = secret.encode()
        self.scheme = scheme
        self.header = header.lower()
        self.hmac_algorithm = hmac_algorithm
        self.hmac_encoding = hmac_encoding
        self.hmac_prefix = hmac_prefix
        self.call_id_path = call_id_path

    @classmethod
    def from_settings(cls, settings: GenericWebhookSettings, *, key: str) -> GenericVerifier:
        """The verifier of a provider whose ``webhook`` table is ``settings``, placed at the
        config key ``key`` (``provider.webhook``); raises :class:`ConfigError` without a secret."""
        secret = settings.secret.get_secret_value() if settings.secret else ""
        if not secret:
            raise ConfigError([_secret_needed(settings, key)])
        return cls(
            secret=secret,
            scheme=settings.scheme,
            header=settings.header,
            hmac_algorithm=settings.hmac_algorithm,
            hmac_encoding=settings.hmac_encoding,
            hmac_prefix=settings.hmac_prefix,
            call_id_path=settings.call_id_path,
        )

    def verify(self, request: WebhookRequest) -> Verified | Refused:
        given = request.header(self.header)
        if not given:
            return Refused("no_signature")
        if self.scheme == "token":
            return self._token(given.strip(), request.body)
        return self._hmac(given.strip(), request.body)

    def _token(self, given: str, body: bytes) -> Verified | Refused:
        scheme, _, rest = given.partition(" ")
        token = rest.strip() if scheme.lower() == "bearer" and rest else given
        if not hmac.compare_digest(_bytes(token), self._secret):
            return Refused("bad_token")
        # The token is the same on every event: the body tells one delivery from another.
        return self._verified(body, replay_key=hashlib.sha256(body).hexdigest())

    def _hmac(self, given: str, body: bytes) -> Verified | Refused:
        digest = hmac.new(self._secret, body, self.hmac_algorithm).digest()
        if not given.startswith(self.hmac_prefix):
            return Refused("bad_signature")
        signature = given[len(self.hmac_prefix) :].strip()
        if self.hmac_encoding == "hex":
            expected = digest.hex()
            signature = signature.lower()
        else:
            expected = base64.b64encode(digest).decode()
        if not hmac.compare_digest(_bytes(signature), expected.encode()):
            return Refused("bad_signature")
        return self._verified(body, replay_key=expected)

    def _verified(self, body: bytes, *, replay_key: str) -> Verified:
        return Verified(GENERIC_EVENT, call_ids=self._call_ids(body), replay_key=replay_key)

    def _call_ids(self, body: bytes) -> tuple[str, ...]:
        if self.call_id_path is None:
            return ()
        try:
            document = json.loads(body)
        except ValueError:
            return ()  # a signed body need not be JSON; the event still nudges
        found = dig(document, self.call_id_path)
        values = found if isinstance(found, list) else [found]
        return tuple(
            str(value)
            for value in values[:_MAX_CALL_IDS]
            if value is not MISSING
            and isinstance(value, str | int)
            and not isinstance(value, bool)
            and 0 < len(str(value)) <= _MAX_CALL_ID
        )


def missing_secret(settings: GenericWebhookSettings, *, key: str) -> list[str]:
    """The line `config check` and `run` show when events are enabled without their secret."""
    if not settings.lacks_secret():
        return []
    return [_secret_needed(settings, key)]


def _secret_needed(settings: GenericWebhookSettings, key: str) -> str:
    what = "the shared token" if settings.scheme == "token" else "the HMAC key"
    return (
        f"{key}.secret: required with {key}.enabled = true ({what} the events are checked "
        f"with); set it, or set {key}.enabled = false"
    )


def _bytes(text: str) -> bytes:
    # Header values arrive as latin-1 text; any byte a secret cannot hold simply fails to match.
    return text.encode("utf-8", "surrogateescape")
