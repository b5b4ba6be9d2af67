"""Console sign-in and sign-out; failures are counted and accounts locked by app.accounts.admins."""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, url_for

from app import accounts
from app.console.blueprint import bp
from app.console.guard import sign_in, sign_out
from app.db import db
from app.errors import Forbidden
from app.intake import ip_prefix
from app.redis_store import redis_store
from app.security.client_address import client_address
from app.security.rate_limits import hit, limit_for


def _safe_next(target: str | None) -> str:
    # Only paths inside the console: never an open redirect to another site.
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return url_for("console.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error, status = None, 200
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        settings = current_app.config["SETTINGS"]
        ip = client_address(request.environ, settings)
        hit(redis_store.client, limit_for(settings, "login"), ip_prefix(ip))  # 429 past the limit
        try:
            admin = accounts.authenticate(db.session, username, request.form.get("password", ""), ip=ip)
        except Forbidden as exc:
            db.session.rollback()
            error, status = exc.message, 403
        else:
            db.session.commit()
            sign_in(admin)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("console/login.html", error=error), status


@bp.post("/logout")
def logout():
    sign_out()
    return redirect(url_for("console.login"))


@bp.get("/")
def index():
    return redirect(url_for("console.surveys"))
