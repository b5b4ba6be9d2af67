"""The SQL data model (SQLAlchemy 2 typed style), one module per part of the domain."""

from app.models.accounts import AdminUser, ApiToken
from app.models.audit import AuditEntry
from app.models.base import Base, utcnow
from app.models.cases import FollowupCase, Holiday
from app.models.exports import ExportRun
from app.models.org import Department
from app.models.responses import Answer, Response
from app.models.surveys import Option, Question, Survey, SurveyTemplate
from app.models.tallies import TallyMonth, TallyRow
from app.models.wechat import WechatMenu

__all__ = [
    "AdminUser",
    "Answer",
    "ApiToken",
    "AuditEntry",
    "Base",
    "Department",
    "ExportRun",
    "FollowupCase",
    "Holiday",
    "Option",
    "Question",
    "Response",
    "Survey",
    "SurveyTemplate",
    "TallyMonth",
    "TallyRow",
    "WechatMenu",
    "utcnow",
]
