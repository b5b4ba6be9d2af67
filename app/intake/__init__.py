"""Intake: a citizen's answers from the form to SQL.

forms (the survey as the questionnaire needs it, form tokens) -> validation (answers, one
submission's own signals) -> record (one per person, atomically queued on the Redis stream) ->
store (the stream's wire form, the SQL writer) <- drain (the stream into SQL, crash-safe).
respondents: the HMAC key stored instead of the openid, and the scan memory.
"""

from app.intake.forms import (
    STATE_MESSAGES,
    DepartmentInfo,
    FormOption,
    FormQuestion,
    SurveyForm,
    issue_form_token,
    load_form,
    read_form_token,
    refusal,
)
from app.intake.record import (
    DEAD_LETTERS,
    DRAIN_FLAG,
    RECORD,
    RECORD_SCRIPT,
    STREAM,
    Outcome,
    degraded,
    done_key,
    previous_answer,
    record_response,
)
from app.intake.validation import ip_prefix, parse_answers, straightlined, user_agent_class

__all__ = [
    "DEAD_LETTERS", "DRAIN_FLAG", "RECORD", "RECORD_SCRIPT", "STATE_MESSAGES", "STREAM",
    "DepartmentInfo", "FormOption", "FormQuestion", "Outcome", "SurveyForm", "degraded", "done_key",
    "ip_prefix", "issue_form_token", "load_form", "parse_answers", "previous_answer", "read_form_token",
    "record_response", "refusal", "straightlined", "user_agent_class",
]  # fmt: skip
