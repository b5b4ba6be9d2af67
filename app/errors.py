"""Typed domain errors raised by the services; views, the API and the CLI render them."""

from __future__ import annotations


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it on one line."""


class DomainError(Exception):
    """A rule of the domain was broken; `message` is one line a person can act on."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.errors = errors or ({field: message} if field else {})


class Invalid(DomainError):
    status = 400
    code = "invalid"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class TooMany(DomainError):
    """A rate limit: answered with 429 and Retry-After (seconds)."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, field: str | None = None):
        super().__init__(message, field=field)
        self.retry_after = retry_after


class Unavailable(DomainError):
    status = 503
    code = "unavailable"
