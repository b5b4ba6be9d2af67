"""Accounts: console admins (roles, scope, password checks with lockout), API tokens, and the
audit log that records every admin decision and sensitive action."""

from app.accounts.admins import authenticate, create_admin
from app.accounts.tokens import IssuedToken, create_token, hash_token, revoke_token, verify_token

__all__ = ["IssuedToken", "authenticate", "create_admin", "create_token", "hash_token", "revoke_token",
           "verify_token"]  # fmt: skip
