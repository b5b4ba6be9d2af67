"""The org chart service: list, create, edit, deactivate and bulk-import departments.

Three levels: city departments (市直部门) and counties (县区) have no parent; a township (乡镇)
belongs to a county. Codes are stable identifiers used in QR scenes and exports.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts import audit
from app.errors import Invalid, NotFound
from app.models import Department
from app.models.org import LEVEL_NAMES, LEVELS

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$")
LEVEL_ALIASES = {
    **{v: k for k, v in LEVEL_NAMES.items()},
    **{k: k for k in LEVELS},
    "市直": "city",
    "县": "county",
}
HEADER_ALIASES = {
    "code": "code", "编码": "code", "代码": "code", "单位编码": "code",
    "name": "name", "名称": "name", "单位名称": "name", "部门名称": "name",
    "category": "category", "类别": "category", "分类": "category",
    "level": "level", "层级": "level", "级别": "level",
    "parent_code": "parent_code", "parent": "parent_code", "上级编码": "parent_code", "上级": "parent_code",
    "active": "active", "启用": "active", "状态": "active",
}  # fmt: skip
TRUE_WORDS = {"1", "true", "yes", "y", "是", "启用", "有效", ""}
FALSE_WORDS = {"0", "false", "no", "n", "否", "停用", "无效"}
MAX_IMPORT_ROWS = 100_000


def department_dict(dept: Department) -> dict[str, Any]:
    """The public shape of a department (SPEC: departments list --json)."""
    return {
        "code": dept.code,
        "name": dept.name,
        "category": dept.category,
        "level": dept.level,
        "parent_code": dept.parent.code if dept.parent else None,
        "active": dept.active,
    }


def list_departments(
    session: Session, *, active: bool | None = None, within: int | None = None
) -> list[Department]:
    """Departments in org-chart order; `within` limits to one department's subtree."""
    query = select(Department).order_by(Department.level, Department.sort_order, Department.code)
    if active is not None:
        query = query.where(Department.active == active)
    departments = list(session.scalars(query))
    if within is not None:
        allowed = subtree_ids(session, within)
        departments = [d for d in departments if d.id in allowed]
    return departments


def get_department(session: Session, code: str) -> Department:
    dept = session.scalar(select(Department).where(Department.code == code))
    if dept is None:
        raise NotFound(f"没有编码为 {code} 的单位", field="code")
    return dept


def subtree_ids(session: Session, root_id: int) -> set[int]:
    """The id of a department and of everything below it."""
    rows = session.execute(select(Department.id, Department.parent_id)).all()
    children: dict[int | None, list[int]] = {}
    for dept_id, parent_id in rows:
        children.setdefault(parent_id, []).append(dept_id)
    found, stack = set(), [root_id]
    while stack:
        current = stack.pop()
        if current in found:
            continue
        found.add(current)
        stack.extend(children.get(current, []))
    return found


def _check_fields(code: str, name: str, category: str, level: str) -> str:
    if not CODE_RE.match(code or ""):
        raise Invalid(f"编码 {code!r} 无效：1-20 位字母、数字、- 或 _", field="code")
    if not name or len(name) > 100:
        raise Invalid("名称不能为空，且不超过 100 个字", field="name")
    if not category or len(category) > 40:
        raise Invalid("类别不能为空，且不超过 40 个字", field="category")
    normalized = LEVEL_ALIASES.get((level or "").strip())
    if normalized is None:
        raise Invalid(f"层级 {level!r} 无效：应为 city/county/township（市直部门/县区/乡镇）", field="level")
    return normalized


def _check_parent(level: str, parent: Department | None) -> None:
    if level == "township":
        if parent is None or parent.level != "county":
            raise Invalid("乡镇必须隶属于一个县区（上级编码填写县区编码）", field="parent_code")
    elif parent is not None:
        raise Invalid(f"{LEVEL_NAMES[level]}不应有上级单位", field="parent_code")


def create_department(
    session: Session,
    *,
    code: str,
    name: str,
    category: str,
    level: str,
    parent_code: str | None = None,
    active: bool = True,
    actor: str = "system",
) -> Department:
    level = _check_fields(code, name.strip(), category.strip(), level)
    if session.scalar(select(Department.id).where(Department.code == code)) is not None:
        raise Invalid(f"编码 {code} 已被使用", field="code")
    parent = get_department(session, parent_code) if parent_code else None
    _check_parent(level, parent)
    dept = Department(
        code=code, name=name.strip(), category=category.strip(), level=level, parent=parent, active=active
    )
    session.add(dept)
    session.flush()
    audit.record(session, actor, "department.create", code, {"name": dept.name, "level": level})
    return dept


def update_department(
    session: Session,
    code: str,
    *,
    name: str | None = None,
    category: str | None = None,
    parent_code: str | None = None,
    active: bool | None = None,
    actor: str = "system",
) -> Department:
    dept = get_department(session, code)
    changes: dict[str, Any] = {}
    new_name = (name if name is not None else dept.name).strip()
    new_category = (category if category is not None else dept.category).strip()
    _check_fields(dept.code, new_name, new_category, dept.level)
    if parent_code is not None:
        parent = get_department(session, parent_code) if parent_code else None
        _check_parent(dept.level, parent)
        if parent is not dept.parent:
            changes["parent_code"] = parent_code or None
            dept.parent = parent
    for attr, value in (("name", new_name), ("category", new_category), ("active", active)):
        if value is not None and getattr(dept, attr) != value:
            changes[attr] = value
            setattr(dept, attr, value)
    if changes:
        audit.record(session, actor, "department.update", code, changes)
    return dept


def set_active(session: Session, code: str, active: bool, actor: str = "system") -> Department:
    return update_department(session, code, active=active, actor=actor)


# --- bulk import -------------------------------------------------------------------------------


@dataclass
class ImportReport:
    rows: int = 0
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, message)

    @property
    def ok(self) -> bool:
        return not self.errors


def read_rows(data: bytes, filename: str) -> list[dict[str, str]]:
    """Rows of a CSV (UTF-8, UTF-8 with BOM or GB18030) or XLSX file, keyed by canonical header."""
    suffix = Path(filename).suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        raw_rows = _xlsx_rows(data)
    elif suffix in (".csv", ".txt", ""):
        raw_rows = _csv_rows(data)
    else:
        raise Invalid(f"{filename}: 只支持 CSV 或 XLSX 文件", field="file")
    if not raw_rows:
        raise Invalid(f"{filename}: 文件是空的", field="file")
    header = [
        HEADER_ALIASES.get(str(h or "").strip().lower(), HEADER_ALIASES.get(str(h or "").strip()))
        for h in raw_rows[0]
    ]
    missing = [h for h in ("code", "name", "category", "level") if h not in header]
    if missing:
        raise Invalid(f"{filename}: 缺少列 {', '.join(missing)}（第一行应为表头）", field="file")
    if len(raw_rows) - 1 > MAX_IMPORT_ROWS:
        raise Invalid(f"{filename}: 超过 {MAX_IMPORT_ROWS} 行", field="file")
    rows: list[dict[str, Any]] = []
    for raw in raw_rows[1:]:
        if not any(str(c or "").strip() for c in raw):
            rows.append({})
            continue
        rows.append(
            {
                key: str(raw[i] if i < len(raw) and raw[i] is not None else "").strip()
                for i, key in enumerate(header)
                if key
            }
        )
    return rows


def _csv_rows(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise Invalid("CSV 文件编码无法识别（请用 UTF-8 保存）", field="file")
    try:
        return [row for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        raise Invalid(f"CSV 格式错误：{exc}", field="file") from None


def _xlsx_rows(data: bytes) -> list[list[Any]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, OSError, KeyError, ValueError) as exc:
        raise Invalid(f"XLSX 文件无法打开：{exc}", field="file") from None
    try:
        sheet = book.worksheets[0]
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


def _parse_active(value: str) -> bool | None:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


def import_departments(
    session: Session, rows: list[dict[str, str]], *, dry_run: bool = False, actor: str = "system"
) -> ImportReport:
    """Create or update departments by code. Any bad row means nothing is written.

    Line numbers in errors count the header as line 1. Parents may be defined anywhere in the file.
    """
    report = ImportReport()
    existing = {d.code: d for d in session.scalars(select(Department))}
    planned: dict[str, dict[str, Any]] = {}
    for index, row in enumerate(rows, start=2):
        if not row:
            continue
        report.rows += 1
        code = row.get("code", "")
        try:
            level = _check_fields(code, row.get("name", ""), row.get("category", ""), row.get("level", ""))
        except Invalid as exc:
            report.errors.append((index, exc.message))
            continue
        active = _parse_active(row.get("active", ""))
        if active is None:
            report.errors.append((index, f"启用列的值 {row.get('active')!r} 无效：应为 是/否"))
            continue
        if code in planned:
            report.errors.append((index, f"编码 {code} 在文件中重复（第 {planned[code]['line']} 行）"))
            continue
        planned[code] = {
            "line": index,
            "name": row["name"],
            "category": row["category"],
            "level": level,
            "parent_code": row.get("parent_code") or None,
            "active": active,
        }
    for code, plan in planned.items():
        parent_code = plan["parent_code"]
        parent_level = None
        if parent_code:
            if parent_code in planned:
                parent_level = planned[parent_code]["level"]
            elif parent_code in existing:
                parent_level = existing[parent_code].level
            else:
                report.errors.append((plan["line"], f"上级编码 {parent_code} 不存在"))
                continue
        if plan["level"] == "township" and parent_level != "county":
            report.errors.append((plan["line"], "乡镇必须隶属于一个县区（上级编码填写县区编码）"))
        elif plan["level"] != "township" and parent_code:
            report.errors.append((plan["line"], f"{LEVEL_NAMES[plan['level']]}不应有上级单位"))
        elif code in existing and existing[code].level != plan["level"]:
            report.errors.append((plan["line"], f"编码 {code} 已存在且层级不同，不能通过导入改变层级"))
    report.errors.sort()
    if report.errors:
        return report
    for code, plan in planned.items():
        dept = existing.get(code)
        if dept is None:
            report.created.append(code)
        elif (dept.name, dept.category, dept.active, dept.parent.code if dept.parent else None) != (
            plan["name"],
            plan["category"],
            plan["active"],
            plan["parent_code"],
        ):
            report.updated.append(code)
        else:
            report.unchanged.append(code)
    if dry_run:
        return report
    for code in report.created:
        plan = planned[code]
        existing[code] = Department(
            code=code,
            name=plan["name"],
            category=plan["category"],
            level=plan["level"],
            active=plan["active"],
            sort_order=plan["line"],
        )
        session.add(existing[code])
    for code in report.created + report.updated:
        plan = planned[code]
        dept = existing[code]
        dept.name, dept.category, dept.active = plan["name"], plan["category"], plan["active"]
        dept.parent = existing[plan["parent_code"]] if plan["parent_code"] else None
    session.flush()
    audit.record(
        session,
        actor,
        "department.import",
        "",
        {"created": len(report.created), "updated": len(report.updated), "rows": report.rows},
    )
    return report
