"""API tokens for the performance platform: created once (printed, stored hashed), revoked,
verified on every API call."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts import audit
from app.errors import Conflict, Invalid, NotFound
from app.models import ApiToken, utcnow

NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
TOKEN_PREFIX = "wxs_"


# --- API tokens ---------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once, never stored


def create_token(
    session: Session, name: str, surveys: list[str] | None = None, actor: str = "system"
) -> IssuedToken:
    if not NAME_RE.match(name or ""):
        raise Invalid("令牌名称应为 1-64 位字母、数字、_ . -", field="name")
    if session.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
        raise Conflict(f"令牌 {name} 已存在", field="name")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name, token_hash=hash_token(secret), prefix=secret[:10], surveys=list(surveys or [])
    )
    session.add(token)
    session.flush()
    audit.record(session, actor, "token.create", name, {"surveys": token.surveys})
    return IssuedToken(token, secret)


def revoke_token(session: Session, name: str, actor: str = "system") -> ApiToken:
    token = session.scalar(select(ApiToken).where(ApiToken.name == name))
    if token is None:
        raise NotFound(f"没有名为 {name} 的令牌", field="name")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        audit.record(session, actor, "token.revoke", name)
    return token


def verify_token(session: Session, secret: str) -> ApiToken | None:
    """The live token for this secret, or None (unknown or revoked)."""
    if not secret:
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    if token is None or token.revoked_at is not None:
        return None
    return token
