"""Property-based tests (hypothesis) of what strangers feed the service: the submission parser,
the questionnaire template loader and the webhook's XML parsing. Each either accepts the input
into a well-formed result or refuses it with its own typed error: never anything else."""

from __future__ import annotations

import tomllib
from copy import deepcopy
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug import Request

from app import intake
from app.dev.wechat_server import event_xml, seal, text_xml
from app.errors import Invalid
from app.fast import forms as fast_paths
from app.org.scenes import parse_scene
from app.wechat.delivery import Rejected, _parse
from survey_templates import Template, TemplateError, builtin_dir, load_template, parse_template
from tests.fast.test_fast_webhook import _post
from tests.wechat.test_wechat_webhook import ACCOUNT, new_openid

BOUNDED = settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
FEW = settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
TEXT = st.text(st.characters(codec="utf-8"), max_size=40)
# What XML 1.0 can carry (WeChat's XML included): no control characters but tab and line feed.
XML_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")) | st.sampled_from("\t\n"),
                   max_size=40)  # fmt: skip


# --- the submission parser ------------------------------------------------------------------------


@BOUNDED
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_form_fields_read_any_body_as_werkzeug_does(body):
    parsed = fast_paths.form_fields(body)
    werkzeug = Request.from_values(data=body, content_type="application/x-www-form-urlencoded", method="POST")
    try:
        expected = werkzeug.form.to_dict(flat=False)
    except UnicodeDecodeError:
        expected = None
    if parsed is None:  # only a body that is not UTF-8 (the view answers it with a 400)
        with pytest.raises(UnicodeDecodeError):
            body.decode()
        return
    assert expected is None or parsed == expected


def test_parse_answers_accepts_or_refuses_cleanly(app, session, demo):
    form, _dept = intake.load_form(session, "demo-departments", "D08")
    names = sorted(form.field_names) + ["q_unknown", "form_token", "other"]
    option_keys = [o.key for q in form.questions for o in q.options] + ["", " ", "nope"]
    values = st.lists(st.sampled_from(option_keys) | TEXT, max_size=4)
    questions = {q.id: q for q in form.questions}

    @BOUNDED
    @given(st.dictionaries(st.sampled_from(names) | TEXT, values, max_size=len(names)))
    def check(data):
        try:
            answers = intake.parse_answers(form, data, 50)
        except Invalid as exc:
            assert exc.errors, "a refusal names what is wrong"
            return
        for question_id, option_id, text in answers:
            question = questions[question_id]
            if text is not None:
                assert question.kind == "text" and 0 < len(text) <= 50
            else:
                assert option_id in question.option_ids.values()
        answered = {qid for qid, _, _ in answers}
        assert all(q.id in answered for q in form.questions if q.required)

    check()


# --- the template loader ----------------------------------------------------------------------------

SCALARS = st.none() | st.booleans() | st.integers(-5, 10**7) | TEXT
TOML_LIKE = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(TEXT, inner, max_size=5), max_leaves=20)  # fmt: skip
BUILTIN = tomllib.loads((builtin_dir() / "department_satisfaction.toml").read_text("utf-8"))


def mutated(document: dict, path: list, value) -> dict:
    """The built-in template with one value (found along `path`) replaced."""
    copy = deepcopy(document)
    node = copy
    for step in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[step % len(node)]]
        elif isinstance(node, list) and node:
            node = node[step % len(node)]
    if isinstance(node, dict) and node:
        node[sorted(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value
    return copy


@BOUNDED
@given(TOML_LIKE)
def test_any_parsed_toml_is_a_template_or_a_template_error(data):
    try:
        template = parse_template(data, "fuzz.toml")
    except TemplateError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert Template.from_snapshot(template.to_snapshot()) == template


@BOUNDED
@given(st.lists(st.integers(0, 50), min_size=1, max_size=4), TOML_LIKE)
def test_the_builtin_template_with_one_value_changed(path, value):
    try:
        template = parse_template(mutated(BUILTIN, path, value), "mutated.toml")
    except TemplateError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert Template.from_snapshot(template.to_snapshot()) == template  # what a survey stores


@FEW
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_file_is_a_template_or_a_template_error(tmp_path_factory, data):
    path = Path(tmp_path_factory.mktemp("t")) / "fuzz.toml"
    path.write_bytes(data)
    try:
        load_template(path)
    except TemplateError as exc:
        assert "\n" not in str(exc).strip() or "invalid TOML" in str(exc)


# --- the webhook's XML parsing ------------------------------------------------------------------------

XML_PIECES = st.sampled_from(["<xml>", "</xml>", "<a>", "</a>", "<![CDATA[", "]]>", "<!DOCTYPE x>",
                              "<!ENTITY e 'x'>", "&e;", "&amp;", "<FromUserName>", "</FromUserName>",
                              "<MsgType>event</MsgType>", "<Event>SCAN</Event>", "<EventKey>", "</EventKey>",
                              "<?xml version='1.0'?>", "\\x00"])  # fmt: skip


@BOUNDED
@given(st.lists(XML_PIECES | TEXT, max_size=12).map("".join))
def test_any_xml_is_a_message_or_a_refusal(xml):
    try:
        message = _parse(xml)
    except Rejected as exc:
        assert exc.status == 400
        return
    assert isinstance(message.source, str) and message.source
    assert all(not isinstance(v, dict | list) for v in message._data.values())


@BOUNDED
@given(XML_TEXT, XML_TEXT)
def test_any_text_survives_the_xml_round_trip(key, content):
    """What WeChat puts in a CDATA section comes back as sent (xmltodict strips the ends)."""
    openid = "o" + "x" * 20
    event = _parse(event_xml(ACCOUNT, openid, "SCAN", key))
    assert (event.scene_id or "") == key.strip()
    parse_scene(event.scene_id)  # any text: a Scene or None
    assert (_parse(text_xml(ACCOUNT, openid, content)).content or "") == content.strip()


def test_signed_deliveries_with_any_event_key_get_an_answer(app, client, demo, redis_client):
    wechat = app.config["SETTINGS"].wechat

    @FEW
    @given(XML_TEXT, st.sampled_from(["SCAN", "subscribe", "CLICK"]), st.sampled_from(["plaintext", "safe"]))
    def check(key, event, mode):
        sealed = seal(event_xml(ACCOUNT, new_openid(), event, key), wechat, mode)
        answered = _post(client, sealed)
        assert answered.status_code == 200

    check()
