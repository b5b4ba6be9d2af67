"""Console admins: creation with a role and a scope, password checks with lockout."""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.accounts import audit
from app.errors import Conflict, Forbidden, Invalid
from app.models import AdminUser, utcnow
from app.models.accounts import ROLES
from app.org.departments import get_department

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,64}$")
MIN_PASSWORD = 10
LOCK_AFTER = 5
LOCK_FOR = timedelta(minutes=15)
SIGN_IN_REFUSED = "用户名或密码错误"
# Checked against when there is no account to check, so that an unknown or locked name costs the
# same one hash as a wrong password (same method and parameters as a real password's hash).
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe(16))


# --- admins -------------------------------------------------------------------------------------


def create_admin(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    scope_code: str | None = None,
    actor: str = "system",
) -> AdminUser:
    if not USERNAME_RE.match(username or ""):
        raise Invalid("用户名应为 3-64 位字母、数字、_ . -", field="username")
    if role not in ROLES:
        raise Invalid(f"角色 {role!r} 无效：应为 {', '.join(ROLES)}", field="role")
    if len(password or "") < MIN_PASSWORD:
        raise Invalid(f"密码至少 {MIN_PASSWORD} 位", field="password")
    if role == "scoped_admin" and not scope_code:
        raise Invalid("scoped_admin 需要指定管辖单位（--scope 单位编码）", field="scope")
    if role == "city_admin" and scope_code:
        raise Invalid("city_admin 管辖全市，不能指定 --scope", field="scope")
    scope = get_department(session, scope_code) if scope_code else None
    if session.scalar(select(AdminUser.id).where(AdminUser.username == username)) is not None:
        raise Conflict(f"用户名 {username} 已存在", field="username")
    user = AdminUser(
        username=username, password_hash=generate_password_hash(password), role=role, scope=scope
    )
    session.add(user)
    session.flush()
    audit.record(session, actor, "admin.create", username, {"role": role, "scope": scope_code})
    return user


def authenticate(session: Session, username: str, password: str, ip: str | None = None) -> AdminUser:
    """Check a password; lock the account for a while after repeated failures.

    Unknown, inactive and locked accounts get the message and the work (one password hash) of a
    wrong password, so that neither the answer nor its timing tells which names exist."""
    user = session.scalar(select(AdminUser).where(AdminUser.username == username))
    now = utcnow()
    if user is None or not user.active or (user.locked_until and _aware(user.locked_until) > now):
        check_password_hash(_DUMMY_HASH, password or "")
        raise Forbidden(SIGN_IN_REFUSED)
    if not check_password_hash(user.password_hash, password or ""):
        user.failed_logins += 1
        if user.failed_logins >= LOCK_AFTER:
            user.locked_until = now + LOCK_FOR
            user.failed_logins = 0
            audit.record(session, username, "admin.locked", username, {}, ip)
        session.commit()
        raise Forbidden(SIGN_IN_REFUSED)
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    audit.record(session, username, "admin.login", username, {}, ip)
    return user


def _aware(value):
    from datetime import UTC

    return value if value.tzinfo else value.replace(tzinfo=UTC)
