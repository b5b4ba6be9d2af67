"""The `wxsurvey` command as a user runs it: JSON shapes, and one-line errors that change nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from app.models import AdminUser, ApiToken, Department, Survey
from tests.conftest import run_cli


def count(session, model) -> int:
    session.rollback()  # see what the subprocess committed
    return session.scalar(select(func.count()).select_from(model))


def assert_one_line_error(result, *fragments: str, code: int | None = None):
    assert result.returncode != 0
    if code is not None:
        assert result.returncode == code
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wxsurvey: error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_departments_import_and_list_json(cli_env, session, tmp_path):
    csv_file = tmp_path / "org.csv"
    csv_file.write_text(
        "编码,名称,类别,层级,上级编码,启用\n"
        "E01,市教育局,政府部门,市直部门,,是\n"
        "K01,东湖区,县区,county,,\n"
        "K01T1,东湖区桃源镇,乡镇,township,K01,否\n",
        encoding="utf-8-sig",
    )
    result = run_cli("departments", "import", str(csv_file), env=cli_env)
    assert result.returncode == 0, result.stderr
    assert "3 new" in result.stdout
    listed = json.loads(run_cli("departments", "list", "--json", env=cli_env).stdout)
    assert listed == [
        {
            "code": "E01",
            "name": "市教育局",
            "category": "政府部门",
            "level": "city",
            "parent_code": None,
            "active": True,
        },
        {
            "code": "K01",
            "name": "东湖区",
            "category": "县区",
            "level": "county",
            "parent_code": None,
            "active": True,
        },
        {
            "code": "K01T1",
            "name": "东湖区桃源镇",
            "category": "乡镇",
            "level": "township",
            "parent_code": "K01",
            "active": False,
        },
    ]
    again = run_cli("departments", "import", str(csv_file), env=cli_env)
    assert "0 new, 0 updated, 3 unchanged" in again.stdout


def test_department_csv_with_bad_rows_imports_nothing(cli_env, session, tmp_path):
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text(
        "code,name,category,level,parent_code\n"
        "OK1,市民政局,政府部门,city,\n"
        "bad code!,市税务局,垂直管理部门,city,\n"
        "T9,某镇,乡镇,township,NOPE\n"
        "X1,某局,政府部门,galaxy,\n"
    )
    result = run_cli("departments", "import", str(csv_file), env=cli_env)
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert err[-1] == f"wxsurvey: error: {csv_file}: 3 bad row(s), nothing imported"
    assert any(line.startswith("bad.csv:3: ") and "编码" in line for line in err)
    assert any(line.startswith("bad.csv:4: ") and "NOPE" in line for line in err)
    assert any(line.startswith("bad.csv:5: ") and "层级" in line for line in err)
    assert count(session, Department) == 0


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["surveys", "create", "--bogus"], ["No such option", "--bogus"]),
        (["no-such-command"], ["No such command"]),
        (
            [
                "surveys",
                "create",
                "--template",
                "department_satisfaction",
                "--slug",
                "s1",
                "--start",
                "2026-13-01",
                "--end",
                "2026-12-31",
            ],
            ["not a date"],
        ),
        (
            [
                "surveys",
                "create",
                "--template",
                "nope",
                "--slug",
                "s1",
                "--start",
                "2026-01-01",
                "--end",
                "2026-12-31",
            ],
            ["nope"],
        ),
        (
            [
                "surveys",
                "create",
                "--template",
                "department_satisfaction",
                "--slug",
                "Bad Slug",
                "--start",
                "2026-01-01",
                "--end",
                "2026-12-31",
            ],
            ["Bad Slug"],
        ),
        (["surveys", "open", "missing"], ["missing"]),
        (["departments", "import", "/nonexistent.csv"], ["no such file"]),
        (["admin", "create", "--username", "ab", "--password-stdin", "--role", "viewer"], ["用户名"]),
        (["admin", "create", "--username", "alice", "--password-stdin", "--role", "emperor"], ["emperor"]),
        (
            ["admin", "create", "--username", "alice", "--password-stdin", "--role", "scoped_admin"],
            ["--scope"],
        ),
    ],
)
def test_bad_arguments_give_one_line_and_change_nothing(cli_env, session, args, fragments):
    result = run_cli(*args, env=cli_env, input="correct horse battery\n")
    assert_one_line_error(result, *fragments)
    assert count(session, Survey) == 0
    assert count(session, AdminUser) == 0


def test_malformed_config_is_one_line(cli_env):
    result = run_cli("surveys", "list", env={**cli_env, "WXSURVEY_SURVEY_MIN_SAMPLE": "many"})
    assert_one_line_error(result, "WXSURVEY_SURVEY_MIN_SAMPLE", "expected an integer")


def test_production_without_secret_refuses_to_start(cli_env):
    env = {
        **cli_env,
        "WXSURVEY_APP_MODE": "production",
        "WXSURVEY_APP_SECRET_KEY": "k" * 32,
        "WXSURVEY_SURVEY_RESPONDENT_SECRET": "r" * 32,
        "WXSURVEY_WECHAT_APPID": "wx1",
        "WXSURVEY_WECHAT_SECRET": "s",
    }
    result = run_cli("surveys", "list", env=env)
    assert_one_line_error(result, "production mode needs wechat.token", "WXSURVEY_WECHAT_TOKEN")


def test_survey_lifecycle_and_list_json(cli_env, session):
    created = run_cli(
        "surveys",
        "create",
        "--template",
        "department_satisfaction",
        "--slug",
        "s2027",
        "--start",
        "2027-01-01",
        "--end",
        "2027-12-31",
        "--levels",
        "city",
        env=cli_env,
    )
    assert created.returncode == 0, created.stderr
    assert run_cli("surveys", "open", "s2027", env=cli_env).returncode == 0
    listed = json.loads(run_cli("surveys", "list", "--json", env=cli_env).stdout)
    assert listed == [
        {
            "slug": "s2027",
            "title": "部门满意度调查",
            "status": "open",
            "period_start": "2027-01-01",
            "period_end": "2027-12-31",
            "template": "department_satisfaction",
            "levels": ["city"],
        }
    ]
    assert run_cli("surveys", "close", "s2027", env=cli_env).returncode == 0
    reopened = run_cli(
        "surveys",
        "create",
        "--template",
        "department_satisfaction",
        "--slug",
        "s2027",
        "--start",
        "2027-01-01",
        "--end",
        "2027-12-31",
        env=cli_env,
    )
    assert_one_line_error(reopened, "s2027")


def test_token_printed_once_and_stored_hashed(cli_env, session):
    result = run_cli("token", "create", "platform", env=cli_env)
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip()
    assert secret.startswith("wxs_") and len(secret) > 30
    session.rollback()
    token = session.scalar(select(ApiToken))
    assert token.name == "platform" and secret not in (token.token_hash, token.prefix)
    assert_one_line_error(run_cli("token", "create", "platform", env=cli_env), "platform")


def test_admin_create_reads_password_from_stdin(cli_env, session, demo):
    result = run_cli(
        "admin",
        "create",
        "--username",
        "dongu",
        "--password-stdin",
        "--role",
        "scoped_admin",
        "--scope",
        "C01",
        env=cli_env,
        input="a-long-password\n",
    )
    assert result.returncode == 0, result.stderr
    session.rollback()
    user = session.scalar(select(AdminUser).where(AdminUser.username == "dongu"))
    assert user.role == "scoped_admin" and user.scope.code == "C01"
    assert "a-long-password" not in user.password_hash
    short = run_cli(
        "admin",
        "create",
        "--username",
        "shorty",
        "--password-stdin",
        "--role",
        "viewer",
        env=cli_env,
        input="short\n",
    )
    assert_one_line_error(short, "密码")


def test_broken_template_is_refused_with_file_and_key(cli_env, session, tmp_path):
    broken = tmp_path / "mine.toml"
    broken.write_text(
        'name = "mine"\ntitle = "自定义"\nversion = 1\n[[questions]]\nkey = "q1"\nkind = "single"\n'
        'title = "满意吗？"\nscored = true\n[[questions.options]]\nkey = "a"\nlabel = "满意"\nscore = 100\n'
        '[[questions.options]]\nkey = "b"\nlabel = "不满意"\nscore = 900\n'
    )
    result = run_cli("templates", "add", str(broken), env=cli_env)
    assert_one_line_error(result, "mine.toml", "questions[0].options[1].score")
    listed = json.loads(run_cli("templates", "list", "--json", env=cli_env).stdout)
    assert "mine" not in {t["name"] for t in listed}
    broken.write_text(broken.read_text().replace("900", "0"))
    assert run_cli("templates", "add", str(broken), env=cli_env).returncode == 0
    listed = json.loads(run_cli("templates", "list", "--json", env=cli_env).stdout)
    assert "mine" in {t["name"] for t in listed}
