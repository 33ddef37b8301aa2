"""A provider's ``webhook`` table: how its events prove their origin, and where they arrive."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr

from poller.config_types import BaseUrl, NonBlank, Section


class WebhookSettings(Section):
    """``[provider.webhook]``: this provider's events nudge an early poll (with
    ``[webhooks] listen`` set). The poll stays the source of truth: a lost event costs latency,
    never a call."""

    enabled: bool = False
    """Accept this provider's events at /webhooks/<provider name> of [webhooks] listen."""
    secret: SecretStr | None = None
    """What the vendor's events are checked with (each kind's page says which of its secrets)."""
    public_url: BaseUrl | None = None
    """The address the vendor posts to, as it sees it (the TLS proxy's https:// URL with the
    path /webhooks/<provider name>). Twilio signs it; `webhooks subscribe` uses it by default."""
    max_event_age_seconds: Annotated[float, Field(gt=0, le=86400)] = 300.0
    """An event whose vendor timestamp is further than this from now is refused as a replay."""

    def active_secret(self) -> SecretStr | None:
        """The secret events are checked with, while events are taken and one is set."""
        if not self.enabled or self.secret is None or not self.secret.get_secret_value():
            return None
        return self.secret

    def lacks_secret(self) -> bool:
        """Events are taken, but nothing is set to check them with."""
        return self.enabled and self.active_secret() is None


class GenericWebhookSettings(WebhookSettings):
    """``[provider.webhook]`` of the generic kind and its profiles: a shared token or an HMAC
    signature of the raw body, in a header the vendor names."""

    secret: SecretStr | None = None
    """The shared token, or the HMAC key, the vendor's events carry or are signed with."""
    scheme: Literal["token", "hmac"] = "token"
    """"token" compares a shared token in a header; "hmac" checks a signature of the
    raw body."""
    header: NonBlank = "Authorization"
    """The header holding the token (a "Bearer " prefix is allowed) or the
    signature."""
    hmac_algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    """With scheme "hmac": the digest of the HMAC."""
    hmac_encoding: Literal["hex", "base64"] = "hex"
    """With scheme "hmac": how the signature is written in the header."""
    hmac_prefix: str = ""
    """With scheme "hmac": text before the signature in the header, e.g. "sha256="."""
    call_id_path: str | None = None
    """The dotted path to the call id in the event's JSON body, for the log line
    of an announced call that no poll lists (e.g. "data.call.id"); unset: no id is read."""
