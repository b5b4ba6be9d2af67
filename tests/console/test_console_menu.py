"""The account's menu: its line format and every limit it checks, and the console page that edits
it and publishes it through the (fake, in dev) WeChat API, whose menu the simulator then shows."""

from __future__ import annotations

import json

import pytest
import requests

from app.errors import Invalid
from app.org.menu import DEFAULT_MENU, menu_lines, parse_menu_lines
from tests.console.test_console import admins, login, post  # noqa: F401  (fixtures)

EDITED = """我要评价 | click:EVALUATE
办事指南
- 办事大厅 | view:https://zwfw.example.gov.cn/
- 使用帮助 | click:HELP
"""


def test_lines_round_trip_and_default():
    menu = parse_menu_lines(EDITED)
    assert menu == {
        "button": [
            {"type": "click", "name": "我要评价", "key": "EVALUATE"},
            {"name": "办事指南", "sub_button": [
                {"type": "view", "name": "办事大厅", "url": "https://zwfw.example.gov.cn/"},
                {"type": "click", "name": "使用帮助", "key": "HELP"},
            ]},
        ]
    }  # fmt: skip
    assert parse_menu_lines(menu_lines(menu)) == menu
    assert parse_menu_lines(menu_lines(DEFAULT_MENU)) == DEFAULT_MENU


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "不能为空"),
        ("a | click:A\nb | click:B\nc | click:C\nd | click:D", "第 4 行：一级菜单最多 3 个"),
        ("- 子 | click:A", "第 1 行：子菜单"),
        ("组\n" + "".join(f"- s{i} | click:K{i}\n" for i in range(6)), "第 7 行：每个菜单组最多 5 个"),
        ("组", "还没有子菜单"),
        ("我要评价评价评价 | click:A", "太长"),
        ("评价 | click:", "click 后面要写"),
        ("官网 | view:ftp://x", "第 1 行：view 后面要写"),
        ("评价 | tap:A", "只能是 click 或 view"),
        (" | click:A", "名称不能为空"),
    ],
)
def test_each_limit_names_its_line(text, fragment):
    with pytest.raises(Invalid) as err:
        parse_menu_lines(text)
    assert fragment in err.value.message, err.value.message


def test_console_edits_and_publishes_the_menu(app, client, admins, live_server, redis_client):  # noqa: F811
    app.config["SETTINGS"].app.base_url = live_server.url  # the simulator's fake WeChat API is here
    assert login(client, "city").status_code == 302
    page = client.get("/console/menu").get_data(as_text=True)
    assert "我要评价 | click:EVALUATE" in page and "还没有从这里发布过" in page
    bad = post(client, "/console/menu", {"menu": "a | click:A\nb | click:B\nc | click:C\nd | click:D"})
    assert bad.status_code == 400 and "第 4 行" in bad.get_data(as_text=True)
    assert redis_client.get("wx:sim:menu") is None
    done = post(client, "/console/menu", {"menu": EDITED, "publish": "1"}, follow_redirects=True)
    text = done.get_data(as_text=True)
    assert done.status_code == 200 and "菜单已发布" in text and "上次发布" in text
    published = json.loads(redis_client.get("wx:sim:menu"))
    assert published == parse_menu_lines(EDITED)
    audit = client.get("/console/audit").get_data(as_text=True)
    assert "wechat.menu_save" in audit and "wechat.menu_publish" in audit
    phone = requests.get(live_server.url + "/dev/phone", timeout=10).text
    assert "<button>办事指南</button>" in phone and "<button>我要评价</button>" in phone


def test_only_city_admins_see_the_menu(client, admins):  # noqa: F811
    assert login(client, "look").status_code == 302
    assert client.get("/console/menu").status_code == 403
    assert post(client, "/console/menu/publish").status_code == 403
