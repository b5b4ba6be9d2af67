"""Console sign-in and sign-out; failures are counted and accounts locked by app.accounts.admins."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for

from app import accounts
from app.console.blueprint import bp
from app.console.guard import sign_in, sign_out
from app.db import db
from app.errors import Forbidden


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
        try:
            admin = accounts.authenticate(
                db.session, username, request.form.get("password", ""), ip=request.remote_addr
            )
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
