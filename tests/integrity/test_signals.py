"""Each stuffing signal on its own: a pure function from counts to a strength in 0..1."""

from __future__ import annotations

import pytest

from app.integrity import signals
from app.integrity.facts import choice_signature, text_key
from app.integrity.score import WEIGHTS, describe, score


def test_burst_against_the_departments_own_baseline():
    assert signals.burst(5, 0.0) == 0  # a handful of answers is never a burst
    assert signals.burst(signals.BURST_FLOOR, 0.0) == 0
    assert signals.burst(30, 0.0) == 1.0  # thirty in twenty minutes where nobody usually answers
    assert signals.burst(30, 20.0) == 0  # ... but ordinary for a department that gets twenty
    assert 0 < signals.burst(10, 0.0) < 1


def test_surge_of_a_whole_day():
    assert signals.surge(15, 0.0) == 0
    assert signals.surge(100, 0.0) == 0  # no history: no baseline to surge over
    assert signals.surge(100, 10.0) == 1.0
    assert signals.surge(100, 60.0) == 0
    assert 0 < signals.surge(60, 10.0) < 1


def test_same_answers_needs_many_and_a_large_share():
    assert signals.same_answers(5, 5) == 0  # below the floor
    assert signals.same_answers(6, 40) == 0  # 15%: what satisfied citizens look like
    assert signals.same_answers(20, 20) == 1.0
    assert 0 < signals.same_answers(10, 20) < 1


def test_ip_cluster_against_the_average_prefix():
    assert signals.ip_cluster(0, 100, 50) == 0
    assert signals.ip_cluster(5, 100, 50) == 0  # under the floor
    assert signals.ip_cluster(30, 60, 31) == 1.0  # an office network among citizens' carriers
    assert signals.ip_cluster(30, 300, 10) == 0  # everyone shares ten prefixes: nothing unusual


def test_ua_cluster_only_outside_wechat():
    assert signals.ua_cluster("wechat", 500) == 0
    assert signals.ua_cluster(None, 500) == 0
    assert signals.ua_cluster("desktop", 3) == 0
    assert signals.ua_cluster("desktop", 12) == 1.0
    assert signals.ua_cluster("bot", 1) == 0.5  # a script's agent weighs even alone


def test_no_scan_share_on_a_day_when_most_did_not_scan():
    assert signals.no_scan_share(True, 90, 100) == 0  # this answer followed a scan
    assert signals.no_scan_share(None, 90, 100) == 0  # unknown (written while Redis was down)
    assert signals.no_scan_share(False, 5, 8) == 0  # too few answers to say
    assert signals.no_scan_share(False, 20, 100) == 0  # ordinary share
    assert signals.no_scan_share(False, 90, 100) == 1.0


def test_text_duplicates_and_the_text_key():
    assert signals.text_duplicates(1) == 0 and signals.text_duplicates(2) == 0
    assert signals.text_duplicates(5) == 1.0
    assert text_key("服务热情周到，办事效率高！") == text_key(
        "服务热情周到 办事效率高"
    )  # punctuation, spaces
    assert text_key("很好") is None  # short texts are said by everyone
    assert text_key("窗口工作人员态度很好") != text_key("窗口工作人员效率很高")


def test_completion_time_outliers():
    assert signals.completion(None) == 0
    assert signals.completion(1_500) == 1.0
    assert signals.completion(6_000) == 0.6
    assert signals.completion(15_000) == 0.3
    assert signals.completion(60_000) == 0


def test_straightline():
    assert signals.straightline(True) == 1.0 and signals.straightline(False) == 0


def test_follow_and_leave():
    minute, hour = 60_000, 3_600_000
    t = 10 * 86_400_000
    assert signals.follow_churn(t, None, None) == 0
    assert signals.follow_churn(t, t - 3 * minute, None) == 0  # followed for it, still following
    assert signals.follow_churn(t, t - 3 * minute, t + 30 * minute) == 1.0
    assert signals.follow_churn(t, t - 3 * minute, t + 10 * hour) == 0.6
    assert signals.follow_churn(t, t - 3 * minute, t + 3 * 24 * hour) == 0  # left days later
    assert signals.follow_churn(t, t - 5 * hour, t + 30 * minute) == 0  # a follower of old


def test_off_hours():
    hours = signals.parse_hours("08:30-17:30")
    assert hours == (510, 1050)
    assert signals.off_hours(9 * 60, hours) == 0
    assert signals.off_hours(22 * 60, hours) == 1.0
    assert signals.off_hours(22 * 60, None) == 0  # not a window department
    assert signals.parse_hours("") is None
    for bad in ("8-17", "17:00-08:00", "08:30-25:00", "nonsense"):
        with pytest.raises(ValueError):
            signals.parse_hours(bad)


def test_choice_signature_is_the_choices():
    assert choice_signature([(1, 10, None), (2, 20, None)]) == choice_signature(
        [(1, 10, None), (2, 20, None), (3, None, "x")]
    )
    assert choice_signature([(1, 10, None), (2, 20, None)]) != choice_signature(
        [(1, 10, None), (2, 21, None)]
    )


def test_score_weighs_signals_and_says_why():
    assert score({name: 0.0 for name in WEIGHTS}) == (0, [])
    value, reasons = score({"ip_cluster": 1.0, "straightline": 1.0, "burst": 0.0})
    assert value == WEIGHTS["ip_cluster"] + WEIGHTS["straightline"]
    assert [name for name, _ in reasons] == ["ip_cluster", "straightline"]
    assert describe(reasons)[0].startswith("同一网段集中提交")
    assert all(WEIGHTS[name] < 55 for name in WEIGHTS)  # no single signal quarantines by itself


def test_ip_cluster_over_two_days_has_a_higher_floor():
    # an office's staff answering over two days: 4 today, 8 yesterday from the office network
    assert signals.ip_cluster(4, 30, 25) == 0  # today alone is no cluster
    assert signals.ip_cluster(12, 60, 50, floor=signals.IP_FLOOR_TWO_DAYS) > 0.5
    # a busy carrier prefix bringing seven answers over two days is still nothing
    assert signals.ip_cluster(7, 200, 140, floor=signals.IP_FLOOR_TWO_DAYS) == 0


def test_desktop_browsers_over_two_days():
    assert signals.ua_cluster_two_days(4, 60) == 0  # citizens on PCs now and then
    assert signals.ua_cluster_two_days(8, 60) == 0  # the floor itself
    assert signals.ua_cluster_two_days(24, 60) == 1.0  # an office's PCs over two days
    assert signals.ua_cluster_two_days(24, 1000) == 0  # a department where everyone uses a PC
    assert 0 < signals.ua_cluster_two_days(14, 60) < 1


def test_no_scan_over_two_days_only_when_today_is_mostly_no_scan_too():
    # the day after an office's first day: 12 of 30 today without a scan, 30 of 40 yesterday
    assert signals.no_scan_two_days(18, 30, 30, 40, 6.0) > 0.5
    assert signals.no_scan_two_days(6, 30, 30, 40, 6.0) == 0  # citizens the day after: scanned mostly
    assert signals.no_scan_two_days(5, 8, 30, 40, 6.0) == 0  # too few answers today to say
    assert signals.no_scan_two_days(12, 30, 2, 60, 40.0) == 0  # an ordinary yesterday, usual numbers


def test_choice_signature_leaves_the_segment_question_out():
    room = [(1, 10, None), (2, 20, None), (9, 91, None)]  # question 9: which service (the segment)
    other_service = [(1, 10, None), (2, 20, None), (9, 93, None)]
    assert choice_signature(room, 9) == choice_signature(other_service, 9)
    assert choice_signature(room) != choice_signature(other_service)
