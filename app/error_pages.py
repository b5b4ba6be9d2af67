"""Errors as kind Chinese pages for people and JSON for the API: never a traceback."""

from __future__ import annotations

from flask import Flask, jsonify, make_response, render_template, request
from werkzeug.exceptions import HTTPException

from app.errors import DomainError, TooMany

MESSAGES = {
    400: ("请求有误", "提交的内容不完整或格式不对，请返回重试。"),
    403: ("无权访问", "您没有权限查看这个页面。"),
    404: ("页面不存在", "您要找的页面不存在，可能链接已失效。"),
    405: ("请求方式不对", "请通过页面上的按钮操作。"),
    413: ("内容过大", "提交的内容太大了，请精简后再试。"),
    429: ("操作太频繁", "请稍等片刻再试。"),
    500: ("系统开小差了", "非常抱歉，系统暂时出了点问题，请稍后再试。"),
    503: ("系统繁忙", "系统正在维护或繁忙，请稍后再试。"),
}


def _wants_json() -> bool:
    return request.path.startswith("/api/")


def render_error(status: int, detail: str | None = None, code: str | None = None):
    title, text = MESSAGES.get(status, MESSAGES[400] if status < 500 else MESSAGES[500])
    if _wants_json():
        return jsonify({"error": code or title, "message": detail or text, "status": status}), status
    if request.path.startswith("/wechat"):
        return (detail or title), status, {"Content-Type": "text/plain; charset=utf-8"}
    return render_template("error.html", status=status, title=title, message=detail or text), status


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(exc: DomainError):
        response = make_response(render_error(exc.status, exc.message or None, exc.code))
        if isinstance(exc, TooMany):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        detail = exc.description if _wants_json() and status < 500 else None
        response = make_response(render_error(status, detail))
        for name, value in exc.get_headers():  # Allow on a 405, Retry-After on a 429 or 503
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(UnicodeDecodeError)
    def _not_utf8(exc: UnicodeDecodeError):  # a query string or body that is not UTF-8: the client's
        app.logger.info("request on %s %s is not UTF-8: %s", request.method, request.path, exc.reason)
        return render_error(400, "请求的编码不对（应为 UTF-8），请返回重试。")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(500)
