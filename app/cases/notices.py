# What the citizen receives when a case is answered: a WeChat template message linking to the
# answer page, where the one-question re-rating waits.
from __future__ import annotations

from typing import Any

from app.clock import day_of as local_day
from app.models import FollowupCase

SIMULATOR_TEMPLATE = "SIM_CASE_ANSWERED"  # dev mode with the simulator, when none is configured


def template_id(settings) -> str | None:
    configured = settings.cases.notify_template_id
    if configured:
        return configured
    return None if settings.is_production else SIMULATOR_TEMPLATE


def answer_url(settings, case: FollowupCase) -> str:
    return f"{settings.app.base_url}/c/{case.token}"


def notice_data(case: FollowupCase, department_name: str) -> dict[str, Any]:
    answered = local_day(case.answered_at) if case.answered_at else None
    return {
        "first": {"value": f"您对「{department_name}」的评价已有答复"},
        "keyword1": {"value": department_name},
        "keyword2": {"value": f"{answered:%Y年%m月%d日}" if answered else ""},
        "remark": {"value": "感谢您的监督！请点击查看答复，并告诉我们您是否满意。"},
    }
