# The stuffing detector's signals, each alone: a pure function from counts over a window to a
# strength in 0..1 (0: nothing odd). app.integrity.score weighs them; app.integrity.windows counts.
"""Every signal reads only what intake already stores: the truncated IP prefix, the user-agent
class, whether the person scanned the department's code, completion time, the straight-line flag,
a short hash of the free text, a hash of the chosen options, and follow/unfollow times.

Thresholds are deliberately conservative: no signal is meant to quarantine by itself but
follow-and-leave and a heavy address cluster (see WEIGHTS in app.integrity.score)."""

from __future__ import annotations

import math

BURST_FLOOR = 8  # responses in a 20-minute window below which no department is "bursting"
IP_FLOOR = 6  # answers from one address prefix in a day before it is a cluster at all
UA_FLOOR = 4  # answers of one non-WeChat browser class in a day before it is a cluster
TEXT_FLOOR = 2  # the same free text (normalised) this many times is still a coincidence
SIGNATURE_FLOOR = 6  # the same choices this many times in 20 minutes is still a coincidence
NO_SCAN_NORMAL = 0.35  # share of answers with no scan before them that is still ordinary
NO_SCAN_MIN_ANSWERS = 10
FOLLOW_BEFORE_MS = 30 * 60_000  # followed at most this long before answering ...
LEFT_AFTER_MS = 24 * 3600_000  # ... and left at most this long after: bought followers
LEFT_SOON_MS = 2 * 3600_000
FAST_MS = 3_000  # as app.intake.validation.FAST_MS
QUICK_MS = 8_000
BRISK_MS = 20_000  # one in forty honest answers is this quick: a small weight only


def clamp(value: float) -> float:
    return 0.0 if value <= 0 else 1.0 if value >= 1 else value


def burst(window_count: int, expected: float) -> float:
    """The department's answers in the last 20 minutes against its own baseline for that hour of
    that weekday (expected count in 20 minutes): three times the baseline plus four of its
    standard deviations, and at least BURST_FLOOR, before anything counts."""
    threshold = max(BURST_FLOOR, 3 * expected + 4 * math.sqrt(expected))
    return clamp(2 * (window_count - threshold) / threshold)  # full strength at 1.5 x the threshold


SURGE_FLOOR = 20  # answers in one day below which no department is "surging"


def surge(day_count: int, expected_per_day: float) -> float:
    """The department's answers of the day against its usual day (a campaign spread over the day
    with human-like timing never bursts, but it still multiplies the day's volume)."""
    if expected_per_day <= 0:  # no day of history yet: nothing to compare with
        return 0.0
    threshold = max(SURGE_FLOOR, 2.5 * expected_per_day + 4 * math.sqrt(expected_per_day))
    return clamp((day_count - threshold) / threshold)


def same_answers(signature_count: int, window_count: int) -> float:
    """The same choices, question for question, by many of the last 20 minutes' answers."""
    if signature_count < SIGNATURE_FLOOR or window_count <= 0:
        return 0.0
    return clamp((signature_count / window_count - 0.3) / 0.4)


IP_FLOOR_TWO_DAYS = 9  # ... and over a day and the day before


def ip_cluster(same_prefix: int, day_count: int, distinct_prefixes: int, floor: int = IP_FLOOR) -> float:
    """Many of a department's answers of one day (or two) from one address prefix (an office
    network, a room on one Wi-Fi), against what a prefix brings on average."""
    if same_prefix <= 0:
        return 0.0
    average = day_count / max(distinct_prefixes, 1)
    threshold = max(floor, 4 * average)
    return clamp(0.25 + 1.5 * (same_prefix - threshold) / threshold) if same_prefix > threshold else 0.0


UA_SHARE = 0.1  # ... and beyond this share of the day's answers
TEXT_SHARE = 0.002  # a department with thousands of answers a day hears its common phrases often


def ua_cluster(ua_class: str | None, same_class: int, day_count: int = 0) -> float:
    """Answers from outside WeChat's browser (desktop, scripts, no user agent) piling up at one
    department in one day; bots and missing agents weigh more."""
    if ua_class in (None, "wechat"):
        return 0.0
    base = 0.5 if ua_class in ("bot", "none") else 0.0
    threshold = max(UA_FLOOR, UA_SHARE * day_count)
    return clamp(base + max(0.0, (same_class - threshold) / (2 * threshold)))


UA_FLOOR_TWO_DAYS = 8


def ua_cluster_two_days(desktop: int, two_day_count: int) -> float:
    """Desktop browsers piling up at one department over a day and the day before (an office's
    PCs, its staff answering over two days); no base strength: citizens use PCs too."""
    threshold = max(UA_FLOOR_TWO_DAYS, UA_SHARE * two_day_count)
    return clamp((desktop - threshold) / (2 * threshold))


def no_scan_two_days(
    no_scan: int, day_count: int, no_scan_yesterday: int, yesterday_count: int, expected_two_days: float
) -> float:
    """Answers with no scan over a day and the day before, against the department's usual two
    days before yesterday; only on a day when most of today's answers had no scan either (the day
    after a stuffed one, citizens who did not scan are not suspects by that alone)."""
    if day_count < NO_SCAN_MIN_ANSWERS or no_scan / day_count <= NO_SCAN_NORMAL:
        return 0.0
    return no_scan_share(False, no_scan + no_scan_yesterday, day_count + yesterday_count, expected_two_days)


def no_scan_share(
    scanned: bool | None, no_scan_count: int, day_count: int, expected_no_scan: float = 0.0
) -> float:
    """An answer with no scan of the code before it, on a day when most of the department's
    answers had none, or far more had none than on its usual day (links passed around, accounts
    of a farm: anything but codes scanned at the service point)."""
    if scanned is not False or day_count < NO_SCAN_MIN_ANSWERS:
        return 0.0
    share = clamp((no_scan_count / day_count - NO_SCAN_NORMAL) / 0.3)
    if expected_no_scan <= 0:  # no history: the share alone
        return share
    threshold = max(NO_SCAN_MIN_ANSWERS, 2.5 * expected_no_scan + 4 * math.sqrt(expected_no_scan))
    return max(share, clamp((no_scan_count - threshold) / threshold))


def text_duplicates(same_text: int, day_count: int = 0) -> float:
    """Near-identical free text (same after dropping spaces, punctuation and case) repeated."""
    threshold = max(TEXT_FLOOR, TEXT_SHARE * day_count)
    return clamp((same_text - threshold) / (1.5 * threshold))


def completion(completion_ms: int | None) -> float:
    """Finished faster than anyone reads the questions."""
    if completion_ms is None:
        return 0.0
    if completion_ms < FAST_MS:
        return 1.0
    return 0.6 if completion_ms < QUICK_MS else 0.3 if completion_ms < BRISK_MS else 0.0


def straightline(flagged: bool) -> float:
    return 1.0 if flagged else 0.0


def follow_churn(answered_ms: int, followed_ms: int | None, left_ms: int | None) -> float:
    """Followed the account just before answering and left soon after."""
    if followed_ms is None or left_ms is None:
        return 0.0
    if (
        not 0 <= answered_ms - followed_ms <= FOLLOW_BEFORE_MS
        or not 0 <= left_ms - answered_ms <= LEFT_AFTER_MS
    ):
        return 0.0
    return 1.0 if left_ms - answered_ms <= LEFT_SOON_MS else 0.6


def off_hours(minute_of_day: int, hours: tuple[int, int] | None) -> float:
    """An answer about a service window given while the window was closed (city time)."""
    if hours is None:
        return 0.0
    opens, closes = hours
    return 0.0 if opens <= minute_of_day < closes else 1.0


def parse_hours(text: str | None) -> tuple[int, int] | None:
    """'08:30-17:30' -> (510, 1050) minutes; None for empty; ValueError when malformed."""
    if not text:
        return None
    try:
        start, end = (part.strip() for part in text.split("-"))
        (h1, m1), (h2, m2) = (map(int, start.split(":")), map(int, end.split(":")))
    except ValueError:
        raise ValueError(f"opening hours {text!r}: expected HH:MM-HH:MM") from None
    opens, closes = h1 * 60 + m1, h2 * 60 + m2
    if not (0 <= m1 < 60 and 0 <= m2 < 60 and 0 <= opens < closes <= 24 * 60):
        raise ValueError(f"opening hours {text!r}: expected HH:MM-HH:MM, opening before closing")
    return opens, closes
