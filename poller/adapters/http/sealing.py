"""Tokens at rest: AES-256-GCM under a key derived with HKDF from the provider's credentials.

A refresh token in the state database is a credential as good as a password, and the database
is backed up, copied and read by auditors. So the store only ever holds ciphertext:

- The key is HKDF-SHA256 of ``token_encryption_key`` when the operator sets one, else of the
  OAuth ``client_secret``: a secret the database does not hold, delivered the way every secret
  is (environment or systemd credentials). Whoever has only the database cannot read a token.
- HKDF's ``info`` names the provider, so two providers sharing a client secret still have two
  keys; the AEAD's associated data names the provider and which token it is, so a sealed access
  token cannot be passed off as a refresh token, nor one provider's row as another's.
- Each value gets a fresh random 96-bit nonce. Sealed text is ``v1.`` + URL-safe base64.

When the key changes (a new client secret, a new ``token_encryption_key``, a renamed
provider), the stored token cannot be opened: :class:`SealBroken` says so, and the
authenticator turns it into a credential error asking for a new seed, never a crash.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1."
_NONCE_BYTES = 12
_SALT = b"siro-poller oauth token store"
_SEED_PREFIX = b"siro-poller refresh-token seed\x00"


class SealBroken(Exception):
    """A sealed value could not be opened: another key, or altered text."""


def seed_fingerprint(seed: str) -> str:
    """Which configured seed a stored token descends from: a SHA-256, not the seed.

    Refresh tokens are long random strings, so the hash reveals nothing usable; it is not
    keyed, so a changed encryption key is still told apart from a new seed (the first asks
    for a new seed in plain words, the second just starts over from it).
    """
    return hashlib.sha256(_SEED_PREFIX + seed.encode()).hexdigest()


class TokenSealer:
    """Seals and opens one provider's tokens."""

    def __init__(self, key_material: str, context: str) -> None:
        if not key_material:
            raise ValueError("no key material to seal tokens with")
        self._context = context
        key = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=_SALT,
            info=f"v1|{context}".encode(),
        ).derive(key_material.encode())
        self._aead = AESGCM(key)

    def _associated(self, kind: str) -> bytes:
        return f"{self._context}|{kind}".encode()

    def seal(self, kind: str, value: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, value.encode(), self._associated(kind))
        return _VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, kind: str, sealed: str) -> str:
        if not sealed.startswith(_VERSION):
            raise SealBroken("not a sealed token of a known version")
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(_VERSION).encode("ascii"))
            nonce, body = raw[:_NONCE_BYTES], raw[_NONCE_BYTES:]
            return self._aead.decrypt(nonce, body, self._associated(kind)).decode()
        except (InvalidTag, ValueError) as exc:
            raise SealBroken("the key does not open it (or the text was altered)") from exc

    def __repr__(self) -> str:
        return f"TokenSealer({self._context!r})"
