"""Protections at the edges (issue #14; threat model and tests in SECURITY.md).

client_address (the client's address behind trusted proxies: `client_address(environ, settings)`)
· rate_limits (fixed-window counters in Redis, 429 with Retry-After) · headers (CSP, nosniff,
frame and referrer policies, HSTS on every response).
"""

from app.security.client_address import client_address

__all__ = ["client_address"]
