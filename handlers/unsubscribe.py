"""Someone stops following the account: nothing to say (WeChat shows no reply), but the time is
remembered for the stuffing detector (bought followers follow, rate and leave)."""

from __future__ import annotations

from typing import Any

from app.intake.respondents import respondent_key
from app.integrity.follows import record_leave
from handlers.context import HandlerContext


def on_unsubscribe(message: Any, ctx: HandlerContext) -> None:
    key = respondent_key(ctx.settings.survey.respondent_secret, message.source)
    record_leave(ctx.effects, key, int(message.time) * 1000)
    return None
