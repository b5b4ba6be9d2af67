# The browser-side defences every response carries (Flask's and the fast paths' alike): a CSP that
# allows no inline script and no framing, nosniff, a referrer policy, and HSTS in production on https.
"""`security_headers(settings)`: the header pairs; `register(app)` adds them to Flask's responses.

The fast paths in front of Flask (app/fast/submit.py, app/fast/webhook.py) send the
same pairs, read from app.config["SECURITY_HEADERS"]. Inline `style` attributes stay allowed (the
console's bars are sized by them) but `<style>` elements and every inline script are refused.
"""

from __future__ import annotations

from flask import Flask, Response

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "style-src-attr 'unsafe-inline'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
HSTS = "max-age=31536000"


def security_headers(settings) -> tuple[tuple[str, str], ...]:
    headers = [
        ("Content-Security-Policy", CSP),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "same-origin"),
    ]
    if settings.is_production and settings.app.base_url.startswith("https://"):
        headers.append(("Strict-Transport-Security", HSTS))
    return tuple(headers)


def register(app: Flask) -> None:
    headers = security_headers(app.config["SETTINGS"])
    app.config["SECURITY_HEADERS"] = headers

    @app.after_request
    def _security_headers(response: Response) -> Response:
        for name, value in headers:
            response.headers.setdefault(name, value)
        return response
