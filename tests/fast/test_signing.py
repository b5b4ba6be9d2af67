"""Signers that derive their key once sign and verify exactly like itsdangerous's own."""

from __future__ import annotations

import pytest
from itsdangerous import BadSignature, URLSafeSerializer, URLSafeTimedSerializer

from app.fast.signing import OnceDerivedSigner, OnceDerivedTimestampSigner, SignedReader


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


def _flask_session_serializer(secret):
    from flask import Flask

    app = Flask(__name__)
    app.secret_key = secret
    return app.session_interface.get_signing_serializer(app)


def _full_loads(serializer, value, max_age=None):
    try:
        return serializer.loads(value, max_age=max_age) if max_age else serializer.loads(value)
    except BadSignature:
        return "refused"


def _variants(value: str) -> list[str]:
    """The value, and ways it is tampered with or oddly encoded."""
    head, _, sig = value.rpartition(".")
    flip = "A" if sig[0] != "A" else "B"
    return [
        value,
        value + "x",
        head + "." + flip + sig[1:],  # another signature
        "x" + value,  # another payload
        head + "." + sig + "=",  # a padded signature
        head + ".",
        value.replace(".", ""),
        "",
        "no-dots-at-all",
        value + "é",  # itsdangerous's base64 skips what is not base64; the reader abstains
    ]


@pytest.mark.parametrize("timed", [False, True])
def test_the_reader_agrees_with_itsdangerous_or_abstains(timed):
    """The reader never accepts what itsdangerous refuses, never reads a value otherwise, and
    reads every value itsdangerous writes with the newest key (compressed ones included)."""
    if timed:
        serializer = _flask_session_serializer("secret-a")
        contents = [{"wx_openid": "o-1", "wx_channel": "wechat"}, {"big": "x" * 600}, {"t": (1, 2)}]
    else:
        serializer = URLSafeSerializer("secret-a", salt="wxsurvey.questionnaire", signer=OnceDerivedSigner)
        contents = [["ab" * 16, 1764200000000], {"big": "x" * 600}]
    reader = SignedReader(serializer)
    for content in contents:
        value = serializer.dumps(content)
        if content.get("big") if isinstance(content, dict) else False:
            assert value.startswith("."), "the large value should have been compressed"
        assert reader.loads(value, max_age=3600) == serializer.loads(value)
        for variant in _variants(value):
            read = reader.loads(variant, max_age=3600)
            full = _full_loads(serializer, variant, 3600)
            # Abstaining (None) is always safe: the caller then asks itsdangerous itself.
            assert read is None or read == full, variant
            if full == "refused":
                assert read is None, variant
    other = SignedReader(_flask_session_serializer("secret-b") if timed else URLSafeSerializer("secret-b"))
    assert other.loads(serializer.dumps(contents[0])) is None


def test_the_reader_keeps_the_session_age_limits(monkeypatch):
    import itsdangerous.timed

    serializer = _flask_session_serializer("secret-a")
    reader = SignedReader(serializer)
    now = 1_800_000_000
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: now)  # itsdangerous signs "now"
    value = serializer.dumps({"wx_openid": "o-1"})
    import app.fast.signing

    for offset, expected in ((0, {"wx_openid": "o-1"}), (100, {"wx_openid": "o-1"}), (101, None), (-1, None)):
        monkeypatch.setattr(app.fast.signing.time, "time", lambda o=offset: now + o)
        assert reader.loads(value, max_age=100) == expected
    assert reader.loads(value) == {"wx_openid": "o-1"}  # no age limit asked for


def test_rotated_session_keys_leave_old_cookies_to_flask():
    old = _flask_session_serializer("old-key").dumps({"a": 1})
    rotated = _flask_session_serializer("new-key")
    assert SignedReader(rotated).loads(old) is None  # then Flask's own (fallback-aware) code decides


def test_session_cookies_are_flasks_own_and_the_serializer_is_built_once():
    from flask import Flask, session

    from app.fast.signing import SessionInterface

    def make(secret, fallbacks=(), ours=True):
        app = Flask(__name__)
        if ours:
            app.session_interface = SessionInterface()
        app.secret_key = secret
        app.config["SECRET_KEY_FALLBACKS"] = list(fallbacks)

        @app.get("/set")
        def set_():
            session["wx_openid"] = "o-1"
            return "ok"

        @app.get("/get")
        def get_():
            return session.get("wx_openid", "none")

        return app

    def cookie_of(app):
        client = app.test_client()
        client.get("/set")
        return client.get_cookie("session").value

    def read(app, cookie):
        client = app.test_client()
        client.set_cookie("session", cookie)
        return client.get("/get").get_data(as_text=True)

    ours, flasks = make("key-a"), make("key-a", ours=False)
    assert read(ours, cookie_of(flasks)) == "o-1" and read(flasks, cookie_of(ours)) == "o-1"
    interface = ours.session_interface
    assert interface.get_signing_serializer(ours) is interface.get_signing_serializer(ours)
    assert read(make("key-b"), cookie_of(ours)) == "none"  # another key: a fresh, empty session
    assert read(make("key-b", fallbacks=["key-a"]), cookie_of(ours)) == "o-1"  # a rotated key still reads
