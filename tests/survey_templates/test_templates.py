"""survey_templates: the built-in questionnaires, snapshots, and one test per schema error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from survey_templates import (
    Option,
    Question,
    Template,
    TemplateError,
    builtin_dir,
    load_builtin,
    load_directory,
    load_template,
)

SCALE = [
    ("very_satisfied", "非常满意", 100, False),
    ("satisfied", "满意", 80, False),
    ("basic", "基本满意", 60, False),
    ("dissatisfied", "不满意", 30, True),
    ("very_dissatisfied", "非常不满意", 0, True),
]


def test_builtins_are_the_three_templates_and_match_their_files() -> None:
    builtins = load_builtin()
    assert set(builtins) == {"department_satisfaction", "county_satisfaction", "department_evaluation"}
    assert {p.stem for p in builtin_dir().glob("*.toml")} == set(builtins)


@pytest.mark.parametrize(
    "name, title, scored_keys",
    [
        (
            "department_satisfaction",
            "部门满意度调查",
            ["overall", "service_attitude", "efficiency", "openness", "integrity"],
        ),
        (
            "county_satisfaction",
            "县区乡镇满意度调查",
            ["overall", "public_security", "environment", "public_services", "business_environment"],
        ),
    ],
)
def test_builtin_structure(name: str, title: str, scored_keys: list[str]) -> None:
    t = load_builtin()[name]
    assert (t.name, t.title, t.version) == (name, title, 1)
    assert [q.key for q in t.questions] == [*scored_keys, "respondent_type", "suggestion"]
    assert [q.key for q in t.scored_questions] == scored_keys
    for q in t.scored_questions:
        assert q.kind == "single" and q.required and not q.segment
        assert [(o.key, o.label, o.score, o.negative) for o in q.options] == SCALE
        assert q.title.endswith("？") and len(q.title) <= 20  # short, plain questions
    seg = t.segment_question
    assert seg is not None and seg.key == "respondent_type" and seg.kind == "single"
    assert not seg.scored and [o.label for o in seg.options] == ["群众", "企业", "其他"]
    assert all(o.score is None for o in seg.options)
    text = t.question("suggestion")
    assert text is not None and text.kind == "text"
    assert (text.required, text.max_length, text.options) == (False, 500, ())
    assert t.question("nope") is None
    assert t.questions[0].option("basic") == Option("basic", "基本满意", 60, False)


def test_snapshot_round_trips_exactly_through_json() -> None:
    for t in load_builtin().values():
        snap = t.to_snapshot()
        again = json.loads(json.dumps(snap, ensure_ascii=False))
        assert again == snap
        back = Template.from_snapshot(again)
        assert back == t and back.to_snapshot() == snap


def test_snapshot_shape() -> None:
    snap = load_builtin()["department_satisfaction"].to_snapshot()
    assert list(snap) == ["name", "title", "description", "version", "questions"]
    assert snap["questions"][0] == {
        "key": "overall",
        "kind": "single",
        "title": "您对该部门的总体评价是？",
        "required": True,
        "scored": True,
        "segment": False,
        "max_length": None,
        "max_choices": None,
        "options": [{"key": k, "label": lbl, "score": s, "negative": n} for k, lbl, s, n in SCALE],
    }
    assert snap["questions"][-1]["options"] == [] and snap["questions"][-1]["max_length"] == 500


def test_snapshot_is_revalidated() -> None:
    snap = load_builtin()["department_satisfaction"].to_snapshot()
    snap["questions"][1]["options"][2]["score"] = 101
    with pytest.raises(TemplateError) as err:
        Template.from_snapshot(snap)
    assert str(err.value) == "snapshot: questions[1].options[2].score: must be an integer 0..100"


HEAD = 'name = "case_t"\ntitle = "测试"\nversion = 1\n'
CHOICE = """
[[questions]]
key = "q1"
kind = "single"
title = "好吗？"

[[questions.options]]
key = "yes"
label = "是"

[[questions.options]]
key = "no"
label = "否"
"""


def write(tmp_path: Path, body: str, name: str = "case_t.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_minimal_template_defaults(tmp_path: Path) -> None:
    body = (
        HEAD + CHOICE + '\n[[questions]]\nkey = "m"\nkind = "multi"\ntitle = "多选"\n'
        'max_choices = 2\n[[questions.options]]\nkey = "a"\nlabel = "A"\n'
        '[[questions.options]]\nkey = "b"\nlabel = "B"\n'
        '[[questions]]\nkey = "t"\nkind = "text"\ntitle = "建议"\n'
    )
    t = load_template(write(tmp_path, "\ufeff" + body))  # a BOM is tolerated
    assert t.description == "" and t.segment_question is None and t.scored_questions == ()
    assert t.questions[0] == Question(
        "q1", "single", "好吗？", True, options=(Option("yes", "是"), Option("no", "否"))
    )
    assert (t.questions[1].required, t.questions[1].max_choices) == (True, 2)
    assert (t.questions[2].required, t.questions[2].max_length) == (False, 500)


def q(kind: str = "single", extra: str = "", key: str = "q2", options: str | None = None) -> str:
    opts = (
        options
        if options is not None
        else (
            '[[questions.options]]\nkey = "a"\nlabel = "A"\n[[questions.options]]\nkey = "b"\nlabel = "B"\n'
        )
    )
    return f'\n[[questions]]\nkey = "{key}"\nkind = "{kind}"\ntitle = "题"\n{extra}\n{opts}'


def opt(key: str, extra: str = "") -> str:
    return f'[[questions.options]]\nkey = "{key}"\nlabel = "{key}"\n{extra}\n'


SCORED2 = opt("a", "score = 100") + opt("b", "score = 0")

BROKEN = {
    "toml_syntax": (
        HEAD + "[[questions]]\nkey = \n",
        "",
        re.compile(r"invalid TOML: .*\(at line 5, column \d+\)$"),
    ),
    "missing_top_key": ('title = "x"\nversion = 1\n' + CHOICE, "name", "missing"),
    "unknown_top_key": (HEAD + 'titel = "x"\n' + CHOICE, "titel", "unknown key"),
    "missing_question_key": (
        HEAD + CHOICE + '\n[[questions]]\nkind = "text"\ntitle = "t"\n',
        "questions[1].key",
        "missing",
    ),
    "unknown_question_key": (
        HEAD + CHOICE + q(extra="requried = true"),
        "questions[1].requried",
        "unknown key",
    ),
    "unknown_option_key": (
        HEAD + CHOICE + q(options=opt("a", 'lable = "A"') + opt("b")),
        "questions[1].options[0].lable",
        "unknown key",
    ),
    "wrong_type_version": (
        HEAD.replace("version = 1", 'version = "1"') + CHOICE,
        "version",
        "must be an integer",
    ),
    "wrong_type_required": (
        HEAD + CHOICE + q(extra='required = "yes"'),
        "questions[1].required",
        "must be true or false",
    ),
    "wrong_type_title": (
        HEAD + CHOICE + q(options=opt("a") + '[[questions.options]]\nkey = "b"\nlabel = 3\n'),
        "questions[1].options[1].label",
        "must be a string",
    ),
    "questions_not_tables": (HEAD + 'questions = ["a", "b"]\n', "questions[0]", "must be a table"),
    "bad_kind": (HEAD + CHOICE + q(kind="rating"), "questions[1].kind", "must be one of"),
    "bad_name_pattern": (HEAD.replace("case_t", "Case-T") + CHOICE, "name", "does not match"),
    "bad_question_key": (HEAD + CHOICE + q(key="2nd"), "questions[1].key", "does not match"),
    "bad_option_key": (
        HEAD + CHOICE + q(options=opt("a") + opt("B b")),
        "questions[1].options[1].key",
        "does not match",
    ),
    "long_question_key": (HEAD + CHOICE + q(key="k" * 33), "questions[1].key", "does not match"),
    "duplicate_question_key": (
        HEAD + CHOICE + q(key="q1"),
        "questions[1].key",
        "duplicate question key 'q1'",
    ),
    "duplicate_option_key": (
        HEAD + CHOICE + q(options=opt("a") + opt("b") + opt("a")),
        "questions[1].options[2].key",
        "duplicate option key 'a'",
    ),
    "single_one_option": (HEAD + CHOICE + q(options=opt("a")), "questions[1].options", "at least 2 options"),
    "multi_one_option": (
        HEAD + CHOICE + q(kind="multi", options=opt("a")),
        "questions[1].options",
        "at least 2 options",
    ),
    "choice_without_options": (HEAD + CHOICE + q(options=""), "questions[1].options", "missing"),
    "options_on_text": (
        HEAD + CHOICE + q(kind="text"),
        "questions[1].options",
        "not allowed on a text question",
    ),
    "score_missing_on_scored": (
        HEAD + CHOICE + q(extra="scored = true", options=opt("a", "score = 100") + opt("b")),
        "questions[1].options[1].score",
        "required on every option",
    ),
    "score_out_of_range": (
        HEAD + CHOICE + q(extra="scored = true", options=opt("a", "score = 100") + opt("b", "score = 101")),
        "questions[1].options[1].score",
        "must be an integer 0..100",
    ),
    "score_not_integer": (
        HEAD + CHOICE + q(extra="scored = true", options=opt("a", "score = 99.5") + opt("b", "score = 0")),
        "questions[1].options[0].score",
        "must be an integer 0..100",
    ),
    "score_on_unscored": (
        HEAD + CHOICE + q(options=opt("a", "score = 100") + opt("b")),
        "questions[1].options[0].score",
        "not allowed",
    ),
    "scored_on_multi": (
        HEAD + CHOICE + q(kind="multi", extra="scored = true", options=SCORED2),
        "questions[1].scored",
        "only a single-choice, scale or matrix question can be scored",
    ),
    "two_segments": (
        HEAD + q(key="s1", extra="segment = true") + q(key="s2", extra="segment = true"),
        "questions[1].segment",
        "only one segment question",
    ),
    "segment_on_multi": (
        HEAD + CHOICE + q(kind="multi", extra="segment = true"),
        "questions[1].segment",
        "only a single-choice question",
    ),
    "segment_and_scored": (
        HEAD + CHOICE + q(extra="segment = true\nscored = true", options=SCORED2),
        "questions[1].segment",
        "cannot also be scored",
    ),
    "empty_questions": (HEAD + "questions = []\n", "questions", "must not be empty"),
    "no_questions": (HEAD, "questions", "missing"),
    "template_title_too_long": (HEAD.replace("测试", "长" * 201) + CHOICE, "title", "too long"),
    "question_title_too_long": (
        HEAD + CHOICE.replace("好吗？", "长" * 201),
        "questions[0].title",
        "too long",
    ),
    "empty_title": (HEAD + CHOICE.replace("好吗？", " "), "questions[0].title", "must not be empty"),
    "max_length_range": (
        HEAD + CHOICE + q(kind="text", extra="max_length = 2001", options=""),
        "questions[1].max_length",
        "must be an integer 1..2000",
    ),
    "max_length_on_single": (
        HEAD + CHOICE + q(extra="max_length = 10"),
        "questions[1].max_length",
        "only allowed on a text question",
    ),
    "max_choices_on_single": (
        HEAD + CHOICE + q(extra="max_choices = 2"),
        "questions[1].max_choices",
        "only allowed on a multi question",
    ),
    "max_choices_too_many": (
        HEAD + CHOICE + q(kind="multi", extra="max_choices = 3"),
        "questions[1].max_choices",
        "must be an integer 1..2",
    ),
    "negative_not_bool": (
        HEAD + CHOICE + q(options=opt("a", "negative = 1") + opt("b")),
        "questions[1].options[0].negative",
        "must be true or false",
    ),
}


@pytest.mark.parametrize("body, path, pattern", BROKEN.values(), ids=BROKEN.keys())
def test_broken_template(tmp_path: Path, body: str, path: str, pattern: str | re.Pattern[str]) -> None:
    with pytest.raises(TemplateError) as err:
        load_template(write(tmp_path, body))
    message = str(err.value)
    assert "\n" not in message
    prefix = f"case_t.toml: {path}: " if path else "case_t.toml: "
    assert message.startswith(prefix), message
    assert (err.value.source, err.value.path) == ("case_t.toml", path)
    if isinstance(pattern, str):  # a literal fragment
        pattern = re.compile(re.escape(pattern) + r"(?![0-9])")
    assert pattern.search(message[len(prefix) :]), message


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"^absent\.toml: cannot read: "):
        load_template(tmp_path / "absent.toml")
    (tmp_path / "latin.toml").write_bytes(b'title = "\xe9"\n')
    with pytest.raises(TemplateError, match=r"^latin\.toml: not valid UTF-8"):
        load_template(tmp_path / "latin.toml")


def test_directory_loading_rejects_broken_and_misnamed_files(tmp_path: Path) -> None:
    write(tmp_path, HEAD + CHOICE)
    assert list(load_directory(tmp_path)) == ["case_t"]
    write(tmp_path, HEAD + CHOICE, name="other.toml")
    with pytest.raises(TemplateError, match=r"^other\.toml: name: 'case_t' must match the file"):
        load_directory(tmp_path)
    (tmp_path / "other.toml").unlink()
    write(tmp_path, HEAD + "questions = []\n", name="zz_bad.toml")
    with pytest.raises(TemplateError, match=r"^zz_bad\.toml: "):
        load_directory(tmp_path)
