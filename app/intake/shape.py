"""The questionnaire's shape for one department: which questions it is asked (audiences), how they
group into blocks (a matrix's rows in one table), and when a follow-up applies (conditions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Condition:
    """A follow-up is asked when the answer to `question` (a key) is one of `answers`."""

    question: str
    answers: frozenset[str]
    hint: str = ""  # when to answer, in the citizen's words: 「总体评价」选择「不满意」或「非常不满意」时

    @property
    def input_name(self) -> str:
        return f"q_{self.question}"

    def met(self, chosen: dict[str, list[str]]) -> bool:
        return any(a in self.answers for a in chosen.get(self.question, ()))


@dataclass(frozen=True, slots=True)
class Audience:
    """Asked only of these departments or categories; both empty: of everyone."""

    departments: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()

    def includes(self, dept) -> bool:
        if not self.departments and not self.categories:
            return True
        return dept.code in self.departments or getattr(dept, "category", "") in self.categories


EVERYONE = Audience()


@dataclass(frozen=True, slots=True)
class FormMatrix:
    """Several rows (each a FormQuestion of kind single) rated on one shared scale."""

    key: str
    title: str
    required: bool
    rows: tuple[Any, ...]  # FormQuestion
    show_if: Condition | None = None
    audience: Audience = EVERYONE
    kind: str = "matrix"

    @property
    def options(self) -> tuple[Any, ...]:
        return self.rows[0].options


def question_extras(snapshot: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per SQL question key: its condition, audience and (for a matrix row) its matrix's title,
    read from the survey's frozen snapshot; a matrix's rows share the matrix's condition and audience."""
    extras: dict[str, dict[str, Any]] = {}
    asked: dict[str, tuple[str, dict[str, str]]] = {}  # key -> (title, option key -> label)
    for q in (snapshot or {}).get("questions", []):
        labels = {o["key"]: o["label"] for o in q.get("options") or ()}
        if q.get("kind") == "scale":
            labels = {f"s{v}": str(v) for v in range(11)}
        cond = q.get("show_if")
        extra = {
            "show_if": _condition(cond, asked) if cond else None,
            "audience": Audience(frozenset(q.get("departments") or ()), frozenset(q.get("categories") or ())),
        }
        if q.get("kind") == "matrix":
            for row in q.get("rows") or ():
                extras[row["key"]] = {**extra, "matrix_title": q["title"]}
                asked[row["key"]] = (row["label"], labels)
        else:
            extras[q["key"]] = extra
            asked[q["key"]] = (q["title"], labels)
    return extras


def _condition(cond: dict[str, Any], asked: dict[str, tuple[str, dict[str, str]]]) -> Condition:
    title, labels = asked.get(cond["question"], (cond["question"], {}))
    points = sorted(int(a[1:]) for a in cond["answers"] if a[:1] == "s" and a[1:].isdigit())
    if points and len(points) == len(cond["answers"]):  # a scale's points: 0 到 6 分
        contiguous = points == list(range(points[0], points[-1] + 1)) and len(points) > 2
        chosen = (
            f" {points[0]} 到 {points[-1]} 分" if contiguous else " " + "、".join(map(str, points)) + " 分"
        )
    else:
        chosen = "或".join(f"「{labels.get(a, a)}」" for a in cond["answers"])
    hint = f"「{title.rstrip('？?')}」选择{chosen}时请回答"
    return Condition(cond["question"], frozenset(cond["answers"]), hint)


def build_blocks(questions: tuple[Any, ...], titles: dict[str, str]) -> tuple[Any, ...]:
    """Questions in order, a matrix's consecutive rows gathered into one FormMatrix."""
    blocks: list[Any] = []
    for q in questions:
        if q.matrix is None:
            blocks.append(q)
        elif blocks and isinstance(blocks[-1], FormMatrix) and blocks[-1].key == q.matrix:
            last = blocks[-1]
            blocks[-1] = FormMatrix(last.key, last.title, last.required, (*last.rows, q), last.show_if,
                                    last.audience)  # fmt: skip
        else:
            blocks.append(FormMatrix(q.matrix, titles.get(q.key, q.matrix), q.required, (q,), q.show_if,
                                     q.audience))  # fmt: skip
    return tuple(blocks)
