# itsdangerous signers that derive their key once per secret: itsdangerous derives it again (an
# extra HMAC) on every sign and every verify, which the submission hot path would pay twice.
from __future__ import annotations

from itsdangerous import Signer, TimestampSigner
from itsdangerous.encoding import want_bytes

_derived: dict[tuple, bytes] = {}
_DERIVED_MAX = 64  # (secret, salt, method) combinations: a handful in practice


class OnceDerivedSigner(Signer):
    """A Signer whose derive_key() is computed once per (secret, salt, derivation, digest)."""

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        secret = self.secret_keys[-1] if secret_key is None else want_bytes(secret_key)
        key = (secret, self.salt, self.key_derivation, self.digest_method)
        derived = _derived.get(key)
        if derived is None:
            if len(_derived) >= _DERIVED_MAX:
                _derived.clear()
            derived = _derived[key] = super().derive_key(secret)
        return derived


class OnceDerivedTimestampSigner(OnceDerivedSigner, TimestampSigner):
    """The same for timestamped values (Flask's session cookie)."""
