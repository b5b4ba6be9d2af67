"""The newer template kinds (matrix, 0-10 scale), conditions, audiences and indicators; errors
that name their line; `templates check` listing every error."""

from __future__ import annotations

from pathlib import Path

import pytest

from survey_templates import (
    Condition,
    Row,
    Template,
    TemplateError,
    line_of,
    load_builtin,
    load_template,
    template_errors,
)

HEAD = 'name = "case_k"\ntitle = "测试"\nversion = 1\n'
RATING = """
[[questions]]
key = "overall"
kind = "single"
title = "总体？"
scored = true

[[questions.options]]
key = "good"
label = "满意"
score = 100

[[questions.options]]
key = "bad"
label = "不满意"
score = 0
negative = true
"""
MATRIX = """
[[questions]]
key = "aspects"
kind = "matrix"
title = "各方面"

[[questions.rows]]
key = "attitude"
label = "服务态度"
indicator = "B01"

[[questions.rows]]
key = "speed"
label = "办事效率"

[[questions.options]]
key = "good"
label = "满意"

[[questions.options]]
key = "bad"
label = "不满意"
"""


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "case_k.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_every_new_kind_in_the_builtin_template() -> None:
    t = load_builtin()["department_evaluation"]
    kinds = {q.kind for q in t.questions}
    assert {"matrix", "scale", "single", "multi", "text"} <= kinds
    aspects = t.question("aspects")
    assert aspects is not None and aspects.scored and len(aspects.options) == 5
    assert [(r.key, r.indicator) for r in aspects.rows] == [
        ("attitude", "B01"),
        ("efficiency", "B02"),
        ("integrity", "B03"),
        ("facilities", "B04"),
    ]
    reasons = t.question("reasons")
    assert reasons is not None
    assert reasons.show_if == Condition("overall", ("dissatisfied", "very_dissatisfied"))
    scale = t.question("recommend")
    assert scale is not None and [o.key for o in scale.options] == [f"s{v}" for v in range(11)]
    assert [o.negative for o in scale.options] == [True] * 7 + [False] * 4
    assert scale.options[9].score is None  # not scored: no index contribution
    hall = t.question("queue_time")
    assert hall is not None and (hall.departments, hall.categories) == (("D17",), ("公共服务单位",))
    assert Template.from_snapshot(t.to_snapshot()) == t


def test_matrix_scale_and_condition_on_a_scale(tmp_path: Path) -> None:
    body = (
        HEAD + MATRIX + '\n[[questions]]\nkey = "nps"\nkind = "scale"\ntitle = "推荐？"\nscored = true\n'
        '\n[[questions]]\nkey = "why"\nkind = "text"\ntitle = "为什么？"\n'
        'show_if = { question = "nps", answers = [0, 1, 2] }\n'
        '\n[[questions]]\nkey = "speed_why"\nkind = "text"\ntitle = "慢在哪里？"\n'
        'show_if = { question = "speed", answers = ["bad"] }\n'
    )
    t = load_template(write(tmp_path, body))
    assert t.questions[0].rows == (Row("attitude", "服务态度", "B01"), Row("speed", "办事效率", None))
    assert [o.score for o in t.questions[1].options] == list(range(0, 101, 10))
    assert t.questions[2].show_if == Condition("nps", ("s0", "s1", "s2"))
    assert t.questions[3].show_if == Condition("speed", ("bad",))  # a matrix row is a target too


BROKEN = {
    "matrix_without_rows": (
        MATRIX.split("[[questions.rows]]")[0] + MATRIX.split('label = "办事效率"\n')[1],
        "questions[1].rows",
        "missing",
        "[[questions]]",
    ),
    "matrix_indicator": (
        MATRIX.replace('title = "各方面"', 'title = "各方面"\nindicator = "X"'),
        "questions[1].indicator",
        "not allowed on a matrix",
        'indicator = "X"',
    ),
    "row_key_clashes_with_question": (
        MATRIX.replace('key = "speed"', 'key = "overall"'),
        "questions[1].rows[1].key",
        "duplicate row key 'overall'",
        'key = "overall"',
    ),
    "bad_indicator": (
        RATING.replace("scored = true", 'scored = true\nindicator = "中文"').replace(
            'key = "overall"', 'key = "second"'
        ),
        "questions[1].indicator",
        "does not match",
        'indicator = "中文"',
    ),
    "options_on_scale": (
        '\n[[questions]]\nkey = "nps"\nkind = "scale"\ntitle = "推荐？"\n'
        '[[questions.options]]\nkey = "a"\nlabel = "A"\n',
        "questions[1].options",
        "not allowed on a scale",
        "[[questions.options]]",
    ),
    "condition_on_later_question": (
        '\n[[questions]]\nkey = "why"\nkind = "text"\ntitle = "为什么？"\n'
        'show_if = { question = "later", answers = ["bad"] }\n',
        "questions[1].show_if.question",
        "not an earlier",
        "show_if = {",
    ),
    "condition_unknown_answer": (
        '\n[[questions]]\nkey = "why"\nkind = "text"\ntitle = "为什么？"\n'
        'show_if = { question = "overall", answers = ["meh"] }\n',
        "questions[1].show_if.answers[0]",
        "'meh' is not an option",
        "show_if = {",
    ),
    "condition_empty": (
        '\n[[questions]]\nkey = "why"\nkind = "text"\ntitle = "为什么？"\n'
        'show_if = { question = "overall", answers = [] }\n',
        "questions[1].show_if.answers",
        "non-empty array",
        "show_if = {",
    ),
    "audience_not_strings": (
        '\n[[questions]]\nkey = "why"\nkind = "text"\ntitle = "为什么？"\ndepartments = [1]\n',
        "questions[1].departments",
        "non-empty strings",
        "departments = [1]",
    ),
}


@pytest.mark.parametrize("extra, path, fragment, written", BROKEN.values(), ids=BROKEN.keys())
def test_broken_new_kinds_name_their_line(tmp_path: Path, extra, path, fragment, written) -> None:
    file = write(tmp_path, HEAD + RATING + extra)
    with pytest.raises(TemplateError) as err:
        load_template(file)
    assert err.value.path == path and fragment in err.value.message, str(err.value)
    line = err.value.line
    assert line is not None and line > len((HEAD + RATING).splitlines())  # in the second question
    assert file.read_text().splitlines()[line - 1].startswith(written)
    assert err.value.located().startswith(f"case_k.toml:{line}: {path}: ")


def test_every_broken_question_is_reported_with_its_line(tmp_path: Path) -> None:
    body = (
        HEAD
        + RATING.replace("score = 0", "score = 900")
        + '\n[[questions]]\nkey = "fine"\nkind = "text"\ntitle = "好"\n'
        + '\n[[questions]]\nkey = "nps"\nkind = "scale"\ntitle = "推荐？"\nmax_choices = 2\n'
    )
    errors = template_errors(write(tmp_path, body))
    assert [(e.path, e.line) for e in errors] == [
        ("questions[0].options[1].score", 19),
        ("questions[2].max_choices", 31),
    ]
    syntax = template_errors(write(tmp_path, HEAD + "[[questions]]\nkey = \n"))
    assert len(syntax) == 1 and syntax[0].line == 5


def test_line_of_finds_the_deepest_written_part() -> None:
    text = HEAD + RATING + MATRIX
    assert line_of(text, "title") == 2
    assert line_of(text, "questions[1].rows[1].label") == 34
    assert line_of(text, "questions[1].options[0]") == 36
    assert line_of(text, "questions[1].nothing") == 22  # not written: the question's header
    assert line_of(text, "questions[7].key") is None


def test_templates_check_lists_every_error(cli_env, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    body = (
        HEAD + RATING.replace("score = 0", "score = 900") + MATRIX.replace('key = "speed"', 'key = "Speed"')
    )
    file = write(tmp_path, body)
    result = run_cli("templates", "check", str(file), env=cli_env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "case_k.toml:19: questions[0].options[1].score: must be an integer 0..100",
        "case_k.toml:33: questions[1].rows[1].key: 'Speed' does not match [a-z][a-z0-9_]{0,31}",
        "wxsurvey: error: case_k.toml: 2 errors (listed above)",
    ]
    good = write(tmp_path, HEAD + RATING + MATRIX)
    ok = run_cli("templates", "check", str(good), env=cli_env)
    assert ok.returncode == 0 and "ok" in ok.stdout
