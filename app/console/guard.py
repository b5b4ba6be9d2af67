"""Who may do what in the console: the signed-in admin, CSRF tokens, roles and department scope.

Every console request passes `_guard` first; views then ask `require_role` and `check_scope`,
which raise Forbidden (403) so that a URL typed by hand is refused just like a hidden link.
"""

from __future__ import annotations

import hmac
import secrets
import time

from flask import g, redirect, request, session, url_for

from app.console.blueprint import bp
from app.db import db
from app.errors import Forbidden, Invalid
from app.models import AdminUser, Department
from app.org.departments import subtree_ids
from app.redis_store import redis_store

SESSION_HOURS = 12
OPEN_ENDPOINTS = {"console.login"}
VIEWER_WRITES = {"console.logout"}  # the one POST a read-only viewer makes
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
ROLE_NAMES = {"city_admin": "市级管理员", "scoped_admin": "单位管理员", "viewer": "只读查看"}


def csrf_token() -> str:
    """The session's CSRF token, created on first use; every console form carries it."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def _revoked_key(sid: str) -> str:
    return f"console:revoked:{sid}"


def sign_in(admin: AdminUser) -> None:
    """Start a fresh session (new CSRF token and session id) for this admin."""
    session.clear()
    session.permanent = True
    session.update(admin_id=admin.id, sid=secrets.token_urlsafe(16), at=int(time.time()))
    csrf_token()


def sign_out() -> None:
    """End the session; its id is remembered as revoked so a copied cookie stops working too."""
    sid = session.get("sid")
    if sid:
        redis_store.client.set(_revoked_key(sid), "1", ex=SESSION_HOURS * 3600)
    session.clear()


def _signed_in_admin() -> AdminUser | None:
    admin_id, sid, at = session.get("admin_id"), session.get("sid"), session.get("at", 0)
    if not admin_id or not sid or time.time() - at > SESSION_HOURS * 3600:
        return None
    if redis_store.client.exists(_revoked_key(sid)):
        return None
    admin = db.session.get(AdminUser, admin_id)
    return admin if admin is not None and admin.active else None


@bp.before_request
def _guard():
    if request.method in WRITE_METHODS:
        sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
        expected = session.get("csrf") or ""
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Invalid("表单已过期或缺少安全令牌，请刷新页面后重试")
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    g.admin = _signed_in_admin()
    if g.admin is None:
        session.pop("admin_id", None)
        return redirect(url_for("console.login", next=request.full_path if request.method == "GET" else None))
    if request.method in WRITE_METHODS and g.admin.role == "viewer" and request.endpoint not in VIEWER_WRITES:
        raise Forbidden("只读账号不能执行这个操作")
    return None


@bp.after_request
def _no_store(response):
    # Console pages hold personal data and CSRF tokens: keep them out of shared caches.
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


@bp.app_context_processor
def _template_helpers():
    return {"csrf_token": csrf_token, "role_names": ROLE_NAMES}


def current_admin() -> AdminUser:
    return g.admin


def require_role(*roles: str) -> AdminUser:
    admin = current_admin()
    if admin.role not in roles:
        raise Forbidden("您的角色不能执行这个操作")
    return admin


def can_write() -> bool:
    return current_admin().role in ("city_admin", "scoped_admin")


def scope_ids() -> set[int] | None:
    """Department ids this admin may see, or None for the whole city."""
    admin = current_admin()
    if admin.scope_department_id is None:
        return None if admin.role != "scoped_admin" else set()
    if "scope_ids" not in g:
        g.scope_ids = subtree_ids(db.session, admin.scope_department_id)
    return g.scope_ids


def check_scope(department: Department) -> Department:
    allowed = scope_ids()
    if allowed is not None and department.id not in allowed:
        raise Forbidden(f"{department.name} 不在您的管辖范围内")
    return department


def actor() -> str:
    return current_admin().username
