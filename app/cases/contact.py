# The citizen's contact for a case, kept only with consent: the openid sealed with AES-GCM under a
# key of its own (cases.contact_key), never the respondent HMAC's secret, and rotatable.
"""Ciphertexts read "<key id>.<base64url(nonce + ciphertext + tag)>"; the key id is the first 8 hex
digits of SHA-256 over the key, so a ciphertext names the key that opens it. To rotate: put the
current key in cases.previous_contact_keys (comma-separated), set a new cases.contact_key, then
`wxsurvey cases rotate-key` re-seals every kept contact under the new key; drop the old key after.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.errors import ConfigError

AAD = b"wxsurvey.case-contact.v1"


def _decode_key(text: str, where: str) -> bytes:
    raw = text.strip()
    try:
        key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        raise ConfigError(f"{where}: not base64 (32 random bytes, e.g. python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))')") from None  # fmt: skip
    if len(key) != 32:
        raise ConfigError(f"{where}: must decode to 32 bytes, got {len(key)}")
    return key


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


class ContactSealer:
    """Seals with the current key; opens with the current or any previous key."""

    def __init__(self, current: str, previous: str = "") -> None:
        self.current = _decode_key(current, "cases.contact_key") if current else None
        keys = [self.current] if self.current else []
        keys += [_decode_key(k, "cases.previous_contact_keys") for k in previous.split(",") if k.strip()]
        self.keys = {key_id(k): k for k in keys}

    @classmethod
    def from_settings(cls, settings) -> ContactSealer:
        return cls(settings.cases.contact_key, settings.cases.previous_contact_keys)

    @property
    def available(self) -> bool:
        return self.current is not None

    def seal(self, openid: str) -> str:
        if self.current is None:
            raise ConfigError("cases.contact_key is not set: no contact can be kept")
        nonce = os.urandom(12)
        sealed = AESGCM(self.current).encrypt(nonce, openid.encode(), AAD)
        return f"{key_id(self.current)}.{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, ciphertext: str) -> str | None:
        """The openid, or None when no configured key opens it (or it was tampered with)."""
        kid, _, body = (ciphertext or "").partition(".")
        key = self.keys.get(kid)
        if key is None or not body:
            return None
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return AESGCM(key).decrypt(raw[:12], raw[12:], AAD).decode()
        except (binascii.Error, ValueError, InvalidTag):
            return None

    def is_current(self, ciphertext: str) -> bool:
        return self.current is not None and ciphertext.startswith(key_id(self.current) + ".")


def check_keys(section) -> None:
    """Config validation: every key given decodes to 32 bytes (ConfigError naming the key)."""
    ContactSealer(section["contact_key"], section["previous_contact_keys"])
