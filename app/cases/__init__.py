"""The 差评 follow-up loop: cases for negative ratings with a comment, their deadlines in working
days, escalation, the department's answer, the citizen's notice and re-rating, and the figures."""

from app.cases.calendar import WorkCalendar, load_calendar, parse_holidays, replace_year_holidays
from app.cases.contact import ContactSealer
from app.cases.figures import COLUMNS, Grouping, case_figures, figures_dict, parse_grouping
from app.cases.opening import CONSENT_FIELD, followup_request, open_cases, sealer_for
from app.cases.service import (
    RERATING_LABELS,
    STATUS_LABELS,
    answer_case,
    appeal,
    case_by_token,
    escalate_overdue,
    expire_contacts,
    get_case,
    list_cases,
    mark_notified,
    mark_notify_failed,
    request_resend,
    rerate,
    reseal_contacts,
)

__all__ = ["COLUMNS", "CONSENT_FIELD", "RERATING_LABELS", "STATUS_LABELS", "ContactSealer", "Grouping",
           "WorkCalendar", "answer_case", "appeal", "case_by_token", "case_figures", "escalate_overdue",
           "expire_contacts", "figures_dict", "followup_request", "get_case", "list_cases", "load_calendar",
           "mark_notified", "mark_notify_failed", "open_cases", "parse_grouping", "parse_holidays",
           "replace_year_holidays", "request_resend", "rerate", "reseal_contacts", "sealer_for"]  # fmt: skip
