"""Answers checked against the frozen questions, and the integrity signals one submission
carries by itself (user-agent class, IP prefix, straight-lining, completion time)."""

from __future__ import annotations

import functools
import ipaddress

from app.errors import Invalid
from app.intake.forms import SurveyForm
from app.intake.store import AnswerTriple

FAST_MS = 3000


# --- validation --------------------------------------------------------------------------------


def parse_answers(form: SurveyForm, data, text_limit: int, department=None) -> list[AnswerTriple]:
    """Answers from form fields `q_<key>`; Invalid with one message per question otherwise.

    `data` is a MultiDict (request.form) or any mapping of name -> list of strings. With a
    `department`, only the questions asked of it are known (an answer to another one is refused).
    A follow-up whose condition does not hold must be left empty; one whose condition holds is
    required when the question is. Conditions read the answers given above them on the same form.
    """
    getlist = data.getlist if hasattr(data, "getlist") else (lambda name: data.get(name) or ())
    questions = form.questions if department is None else form.questions_for(department)
    errors: dict[str, str] = {}
    answers: list[AnswerTriple] = []
    known = form.field_names if department is None else {q.input_name for q in questions}
    unknown = sorted(name for name in data.keys() if name.startswith("q_") and name not in known)
    if unknown:
        message = "问卷中没有这些题目，请刷新后重新填写。"
        raise Invalid(message, errors={"_form": "未知题目：" + ", ".join(unknown)})
    chosen_by_key: dict[str, list[str]] = {}
    for q in questions:
        values = [v for v in getlist(q.input_name) if isinstance(v, str)]
        if q.show_if is not None and not q.show_if.met(chosen_by_key):
            if any(v.strip() for v in values):
                errors[q.key] = "根据您前面的回答，这道题不需要填写，请清空后再提交。"
            continue
        error = _parse_one(q, values, text_limit, answers, chosen_by_key)
        if error:
            errors[q.key] = error
    if errors:
        raise Invalid("还有题目没有填好，请检查标红的地方。", errors=errors)
    return answers


def _parse_one(q, values: list[str], text_limit: int, answers: list[AnswerTriple],
               chosen_by_key: dict[str, list[str]]) -> str | None:  # fmt: skip
    """Check one question's values, append its answers; the error message, or None."""
    if q.kind == "text":
        if len(values) > 1:
            return "这道题只能填写一段文字。"
        text = (values[0] if values else "").strip()
        limit = min(q.max_length or text_limit, text_limit)
        if len(text) > limit:
            return f"请不要超过 {limit} 个字（现在 {len(text)} 个字）。"
        if not text and q.required:
            return "请填写这道题。"
        if text:
            answers.append((q.id, None, text))
        return None
    chosen = [c for c in (v.strip() for v in values) if c]
    if not chosen:
        if q.required:
            return "请至少选择一项。" if q.kind == "multi" else "请选择一项。"
        return None
    if len(chosen) > 1:
        if q.kind != "multi":
            return "这道题只能选择一项。"
        if len(set(chosen)) != len(chosen):
            return "同一个选项只能选一次。"
        if q.max_choices and len(chosen) > q.max_choices:
            return f"最多选择 {q.max_choices} 项。"
    option_ids = [q.option_ids.get(c) for c in chosen]
    if None in option_ids:
        return "所选的选项不存在，请重新选择。"
    chosen_by_key[q.key] = chosen
    answers.extend((q.id, oid, None) for oid in option_ids)
    return None


# --- integrity metadata --------------------------------------------------------------------------


def user_agent_class(user_agent: str) -> str:
    ua = user_agent or ""
    if not ua:
        return "none"
    if "MicroMessenger" in ua:
        return "wechat"
    lowered = ua.lower()
    if any(word in lowered for word in ("bot", "spider", "crawl", "curl", "python", "wget")):
        return "bot"
    if any(word in ua for word in ("Mobile", "Android", "iPhone", "iPad")):
        return "mobile"
    return "desktop"


@functools.lru_cache(maxsize=4096)
def ip_prefix(address: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address: enough to spot floods, not a person."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return None
    bits = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def straightlined(form: SurveyForm, answers: list[AnswerTriple], min_questions: int, department=None) -> bool:
    """Every scored single-choice question (a matrix's rows included) given the same option key.
    With a `department`, only the questions asked of it count, follow-ups left out."""
    scored = form.scored_options
    if department is not None:
        asked = {q.id for q in form.questions_for(department) if q.show_if is None}
        scored = {qid: options for qid, options in scored.items() if qid in asked}
    if len(scored) < max(2, min_questions):
        return False
    chosen: dict[int, str] = {}
    for qid, oid, _ in answers:
        options = scored.get(qid)
        if options is not None and oid in options:
            chosen[qid] = options[oid]
    return len(chosen) == len(scored) and len(set(chosen.values())) == 1
