# Signed values on the hot paths: itsdangerous signers that derive their key once, a one-pass reader
# for what an itsdangerous URL-safe serializer dumped, and Flask sessions that reuse their serializer.
"""itsdangerous derives the signing key again (an extra HMAC) on every sign and verify, and reads a
value through several layers of signer and serializer objects; the submission hot path reads two
signed values per request (the session cookie and the form token).

`SignedReader` accepts exactly the canonical values the serializer itself writes, signed with its
newest secret key, and returns None for anything else (a rotated key, an odd encoding, a bad
signature, an expired stamp): the caller then asks the full serializer, which decides.

`SessionInterface` is Flask's cookie session interface with its serializer built once per set of
keys instead of on every request.
"""

from __future__ import annotations

import binascii
import hmac
import time
import zlib
from typing import Any

from flask.sessions import SecureCookieSessionInterface
from itsdangerous import Signer, TimestampSigner, URLSafeTimedSerializer
from itsdangerous.encoding import want_bytes
from werkzeug.http import parse_cookie

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


_FROM_URLSAFE = bytes.maketrans(b"-_+/", b"+/-_")  # swaps the alphabets, so "+" or "/" stay invalid


def _b64decode(data: bytes) -> bytes:
    """itsdangerous's URL-safe base64 without padding, strictly (no skipped characters)."""
    return binascii.a2b_base64(data.translate(_FROM_URLSAFE) + b"=" * (-len(data) % 4), strict_mode=True)


def _b64encode(data: bytes) -> bytes:
    return binascii.b2a_base64(data, newline=False).translate(_FROM_URLSAFE).rstrip(b"=")


class SignedReader:
    """Reads what `serializer` (an itsdangerous URLSafeSerializer or URLSafeTimedSerializer) dumps."""

    def __init__(self, serializer) -> None:
        signer = serializer.make_signer()
        self.key = signer.derive_key()
        self.digest = signer.digest_method
        self.sep = want_bytes(signer.sep)
        self.timed = isinstance(signer, TimestampSigner)
        self.decode = serializer.serializer.loads

    def loads(self, value: str, max_age: int | None = None) -> Any | None:
        """The value's content, or None when this reader cannot vouch for it."""
        try:
            data = value.encode("ascii")
            signed, sep, signature = data.rpartition(self.sep)
            if not sep:
                return None
            expected = _b64encode(hmac.digest(self.key, signed, self.digest))
            if not hmac.compare_digest(signature, expected):
                return None
            payload = signed
            if self.timed:
                payload, sep, stamp = signed.rpartition(self.sep)
                if not sep:
                    return None
                if max_age is not None:
                    age = int(time.time()) - int.from_bytes(_b64decode(stamp), "big")
                    if age > max_age or age < 0:
                        return None
            if payload.startswith(b"."):
                raw = zlib.decompress(_b64decode(payload[1:]))
            else:
                raw = _b64decode(payload)
            return self.decode(raw.decode("utf-8"))
        except (ValueError, binascii.Error, zlib.error):  # UnicodeError is a ValueError
            return None


class SessionInterface(SecureCookieSessionInterface):
    """Flask's cookie sessions, with the signing serializer built once per set of keys (Flask
    builds one on every request, sessionless ones like the webhook's included) and a signer that
    derives its key once. Cookies are exactly Flask's (tests/test_signing.py)."""

    def __init__(self) -> None:
        self._serializers: dict[tuple, URLSafeTimedSerializer] = {}

    def get_signing_serializer(self, app) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)  # the current key last
        serializer = self._serializers.get(keys)
        if serializer is None:
            if len(self._serializers) >= _DERIVED_MAX:
                self._serializers.clear()
            serializer = self._serializers[keys] = URLSafeTimedSerializer(
                list(keys),
                salt=self.salt,
                serializer=self.serializer,
                signer=OnceDerivedTimestampSigner,
                signer_kwargs={"key_derivation": self.key_derivation, "digest_method": self.digest_method},
            )
        return serializer


class SessionCookie:
    """The app's session cookie read outside Flask: the data Flask's SecureCookieSessionInterface
    would open, when the cookie is signed with the current key within the session's maximum age,
    else None (the caller then leaves the request to Flask, whose session handling decides)."""

    def __init__(self, app) -> None:
        self.app = app
        self._signing: tuple | None = None

    def _reader(self) -> SignedReader | None:
        """A reader for Flask's own session serializer (same keys, salt, digest, derivation),
        built once per secret key instead of a serializer per request."""
        key = self.app.secret_key
        if self._signing is None or self._signing[0] != key:
            serializer = self.app.session_interface.get_signing_serializer(self.app)
            self._signing = (key, SignedReader(serializer) if serializer is not None else None)
        return self._signing[1]

    def read(self, environ, missing: dict | None = None) -> dict | None:
        """The session's data; `missing` when the request carries no session cookie at all."""
        value = parse_cookie(environ.get("HTTP_COOKIE", "")).get(self.app.config["SESSION_COOKIE_NAME"])
        reader = self._reader()
        if reader is None:
            return None
        if not value:
            return missing
        data = reader.loads(value, max_age=int(self.app.permanent_session_lifetime.total_seconds()))
        return data if isinstance(data, dict) else None
