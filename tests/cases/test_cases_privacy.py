"""Consent and contact: without 愿意接受回访 nothing about the person is kept beyond the respondent
HMAC; with it the openid is kept sealed (AES-GCM) and is gone once the case closes or expires."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, text

from app.cases import ContactSealer, answer_case, expire_contacts, mark_notified, reseal_contacts
from app.config import ConfigError
from app.models import Base, FollowupCase
from tests.cases.casework import drain, only_case, rate
from tests.conftest import settings_for

OPENID = "oCitizen_privacy_0001"


def everything_stored(session, redis) -> str:
    """Every row of every table and every Redis value, as one text to search."""
    session.rollback()
    parts = []
    for table in Base.metadata.sorted_tables:
        for row in session.execute(text(f"SELECT * FROM {table.name}")):
            parts.append(repr(tuple(row)))
    for key in redis.scan_iter("*"):
        kind = redis.type(key)
        if kind == "string":
            parts.append(str(redis.get(key)))
        elif kind == "stream":
            parts.append(repr(redis.xrange(key)))
        elif kind == "hash":
            parts.append(repr(redis.hgetall(key)))
        elif kind == "list":
            parts.append(repr(redis.lrange(key, 0, -1)))
        parts.append(key)
    return "\n".join(parts)


def test_without_consent_nothing_identifying_is_kept(app, session, demo, redis_client):
    rate(app, session, redis_client, OPENID, consent=False)
    assert OPENID not in everything_stored(session, redis_client)  # not even on the stream
    drain(session, redis_client)
    case = only_case(session)
    assert case.contact is None
    assert OPENID not in everything_stored(session, redis_client)


def test_a_rating_without_comment_opens_no_case_and_keeps_no_contact(app, session, demo, redis_client):
    rate(app, session, redis_client, OPENID, comment="", consent=True)
    drain(session, redis_client)
    assert session.scalars(select(FollowupCase)).all() == []
    stored = everything_stored(session, redis_client)
    assert OPENID not in stored


def test_with_consent_the_sealed_openid_is_kept_until_the_case_closes(app, session, demo, redis_client):
    settings = app.config["SETTINGS"]
    rate(app, session, redis_client, OPENID, consent=True)
    drain(session, redis_client)
    case = only_case(session)
    assert case.contact and OPENID not in case.contact
    assert OPENID not in everything_stored(session, redis_client)  # only sealed, never in clear
    assert ContactSealer.from_settings(settings).open(case.contact) == OPENID
    sealed = case.contact

    answer_case(session, case.id, verification="已核实", fix="增开窗口", reply="已增开两个窗口", actor="t")
    session.commit()
    assert only_case(session).contact == sealed  # still needed: the notice is pending
    mark_notified(session, only_case(session))
    session.commit()
    case = only_case(session)
    assert case.status == "closed" and case.contact is None and case.contact_erased_at is not None
    assert sealed not in everything_stored(session, redis_client)


def test_contacts_expire_whatever_the_state(app, session, demo, redis_client):
    rate(app, session, redis_client, OPENID, consent=True)
    drain(session, redis_client)
    opened = only_case(session).opened_at
    assert expire_contacts(session, contact_days=60, now=opened + timedelta(days=59)) == 0
    assert expire_contacts(session, contact_days=60, now=opened + timedelta(days=61)) == 1
    session.commit()
    case = only_case(session)
    assert case.status == "open" and case.contact is None


def test_the_contact_key_rotates(app, session, demo, redis_client, tmp_path, database_url, redis_url):
    old = app.config["SETTINGS"].cases.contact_key
    rate(app, session, redis_client, OPENID, consent=True)
    drain(session, redis_client)
    new_key = "n" * 43
    sealer = ContactSealer(new_key, previous=old)
    assert sealer.open(only_case(session).contact) == OPENID
    assert reseal_contacts(session, sealer) == 1
    session.commit()
    resealed = only_case(session).contact
    assert ContactSealer(new_key).open(resealed) == OPENID
    assert ContactSealer(old).open(resealed) is None
    assert ContactSealer(new_key).open(resealed[:-2] + "AA") is None  # tampering is refused


def test_a_bad_contact_key_stops_start_up_naming_the_key(tmp_path, database_url, redis_url):
    with pytest.raises(ConfigError, match="cases.contact_key"):
        settings_for(tmp_path, database_url, redis_url, cases={"contact_key": "short"})
