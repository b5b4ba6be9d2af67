"""Signers that derive their key once sign and verify exactly like itsdangerous's own."""

from __future__ import annotations

import pytest
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

from app.signing import OnceDerivedSigner, OnceDerivedTimestampSigner


@pytest.mark.parametrize("timed", [False, True])
def test_same_signatures_as_itsdangerous_and_secrets_kept_apart(timed):
    kind = URLSafeTimedSerializer if timed else URLSafeSerializer
    signer = OnceDerivedTimestampSigner if timed else OnceDerivedSigner
    plain = kind("secret-a", salt="s")
    cached = kind("secret-a", salt="s", signer=signer)
    other = kind("secret-b", salt="s", signer=signer)
    other_salt = kind("secret-a", salt="t", signer=signer)
    value = plain.dumps({"wx_openid": "o-1"})
    assert cached.loads(value) == {"wx_openid": "o-1"}
    assert plain.loads(cached.dumps([1, 2])) == [1, 2]
    for wrong in (other, other_salt):  # a cached key never leaks to another secret or salt
        with pytest.raises(BadSignature):
            wrong.loads(value)
    assert cached.loads(value) == {"wx_openid": "o-1"}


def test_rotated_secrets_still_verify_old_values():
    old = URLSafeTimedSerializer("old-key", salt="cookie-session").dumps({"a": 1})
    rotated = URLSafeTimedSerializer(
        ["old-key", "new-key"], salt="cookie-session", signer=OnceDerivedTimestampSigner
    )
    assert rotated.loads(old) == {"a": 1}
    assert URLSafeTimedSerializer("new-key", salt="cookie-session").loads(rotated.dumps({"b": 2})) == {"b": 2}
