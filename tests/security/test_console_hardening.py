"""Console sign-in and roles: one answer (and one password hash) for unknown, locked and wrong,
and a viewer refused on every console POST, poster batches included."""

from __future__ import annotations

import pytest

from app.accounts import admins as accounts
from app.queues import get_queue
from tests.console.test_console import PASSWORD, admins, login, post  # noqa: F401  (admins is a fixture)


def alert(response) -> str:
    """The login page's error message."""
    html = response.get_data(as_text=True)
    return html.split('role="alert">', 1)[1].split("<", 1)[0]


def test_unknown_locked_and_wrong_get_one_answer(client, admins):  # noqa: F811
    for _ in range(accounts.LOCK_AFTER):
        login(client, "east", "not-the-password")
    locked = login(client, "east")  # the right password, locked
    unknown = login(client, "nobody-here")
    wrong = login(client, "city", "not-the-password")
    assert locked.status_code == unknown.status_code == wrong.status_code == 403
    assert alert(locked) == alert(unknown) == alert(wrong) == accounts.SIGN_IN_REFUSED


@pytest.fixture
def hash_calls(monkeypatch):
    """Counts of the password hashing done by app.accounts (the real functions still run)."""
    calls = {"check": 0, "generate": 0}
    real_check, real_generate = accounts.check_password_hash, accounts.generate_password_hash

    def check(*args, **kwargs):
        calls["check"] += 1
        return real_check(*args, **kwargs)

    def generate(*args, **kwargs):
        calls["generate"] += 1
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(accounts, "check_password_hash", check)
    monkeypatch.setattr(accounts, "generate_password_hash", generate)
    return calls


def test_unknown_and_locked_cost_one_hash_like_a_wrong_password(session, admins, hash_calls):  # noqa: F811
    def work(username: str, password: str) -> dict[str, int]:
        hash_calls.update(check=0, generate=0)
        with pytest.raises(accounts.Forbidden):
            accounts.authenticate(session, username, password)
        session.rollback()
        return dict(hash_calls)

    wrong = work("city", "not-the-password")
    assert work("nobody-here", "not-the-password") == wrong == {"check": 1, "generate": 0}
    for _ in range(accounts.LOCK_AFTER):
        work("east", "not-the-password")
    assert work("east", PASSWORD) == wrong
    # The dummy hash is made like a real one: same method and parameters, so the same cost.
    real = session.scalar(accounts.select(accounts.AdminUser.password_hash).where(
        accounts.AdminUser.username == "city"))  # fmt: skip
    assert accounts._DUMMY_HASH.split("$")[0] == real.split("$")[0]


def console_post_rules(app):
    return sorted(
        (rule for rule in app.url_map.iter_rules()
         if rule.endpoint.startswith("console.") and "POST" in rule.methods),
        key=lambda rule: rule.rule,
    )  # fmt: skip


SAMPLE = {"code": "D08", "slug": "demo-departments", "response_id": 1, "action": "close"}


def test_viewer_is_refused_on_every_console_post(app, client, admins, session, redis_client):  # noqa: F811
    login(client, "look")
    rules = console_post_rules(app)
    assert len(rules) >= 10
    for rule in rules:
        if rule.endpoint in ("console.login", "console.logout"):
            continue
        path = rule.build({k: v for k, v in SAMPLE.items() if k in rule.arguments})[1]
        answer = post(client, path, {"format": "zip", "name": "x", "active": "0", "decision": "reject",
                                     "reason": "x"})  # fmt: skip
        assert answer.status_code == 403, f"{rule.endpoint}: {answer.status_code}"
    assert get_queue("default").count == 0, "a viewer's request started a job"
