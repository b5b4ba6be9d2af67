# One response's integrity score (0..100) and its reasons: the signals weighed together. A score at
# or above integrity.threshold quarantines the response (kept, out of the official figures).
from __future__ import annotations

from app.integrity import signals
from app.integrity.facts import Facts
from app.integrity.windows import (
    Counts,
    Place,
    expected_in_window,
    expected_per_day,
    expected_two_days,
    minute_of_day,
)

# Points a signal adds at full strength. No single signal reaches the default threshold (55): it
# takes two kinds of evidence to hold an answer back (follow-and-leave needs only a little more).
WEIGHTS = {
    "burst": 30,
    "surge": 30,
    "same_answers": 30,
    "ip_cluster": 45,
    "ua_cluster": 30,
    "no_scan_share": 35,
    "text_duplicates": 45,
    "completion": 20,
    "straightline": 10,
    "follow_churn": 50,
    "off_hours": 25,
}
# The reviewers' words for each signal (the console's review queue shows them).
LABELS = {
    "burst": "短时集中提交（超出该单位同时段常态）",
    "surge": "当日回答量远超该单位平日水平",
    "same_answers": "同一时段大量完全相同的选择",
    "ip_cluster": "同一网段集中提交",
    "ua_cluster": "非微信浏览器集中提交",
    "no_scan_share": "未扫该单位二维码（当日此类回答远多于平日）",
    "text_duplicates": "意见文字与他人雷同",
    "completion": "作答用时过短",
    "straightline": "所有评分题选同一项",
    "follow_churn": "作答前刚关注、作答后很快取消关注",
    "off_hours": "在该窗口单位办公时间以外作答",
}
# Signals read from counts over the department's window: when one grows with a later batch, the
# responses already stored in that window are looked at again (retroactive quarantine).
GROUP_SIGNALS = frozenset(
    ("burst", "surge", "same_answers", "ip_cluster", "ua_cluster", "no_scan_share", "text_duplicates")
)


def strengths(f: Facts, p: Place, counts: Counts, hours: tuple[int, int] | None,
              memo: dict | None = None) -> dict[str, float]:  # fmt: skip
    """The signals' strengths for one response (only those found: a signal missing has none).
    The window signals are the same for every response of a group (a department's bucket, day,
    prefix...): `memo` keeps them for a batch.
    A 20-minute window is the response's bucket with the one before or (once the next bucket is
    read, see windows.needed) the one after, whichever is fuller; a cluster of addresses, desktop
    browsers or answers with no scan is looked for over the day and over the day with the one
    before (an office's staff answering over two days; addresses, on a second look, also with
    the day after)."""
    memo = {} if memo is None else memo
    get = counts.get
    day_n = get(p.day_key, "n")
    volume = _volume(f, p, counts, memo)
    same = (p.bucket_key, f.signature)
    if same not in memo:
        memo[same] = _same_answers(get, p, f"s:{f.signature}")
    address = (p.ip_key, f.ip)
    if address not in memo:
        memo[address] = _ip_cluster(counts, p, f.ip, day_n) if f.ip else 0.0
    browser = (p.day_key, f.ua)
    if browser not in memo:
        memo[browser] = signals.ua_cluster(f.ua, get(p.day_key, f"u:{f.ua}"), day_n)
        if f.ua == "desktop":
            two_days = get(p.day_key, "u:desktop") + get(p.yday_key, "u:desktop")
            memo[browser] = max(
                memo[browser], signals.ua_cluster_two_days(two_days, day_n + get(p.yday_key, "n"))
            )
    no_scan = _no_scan(f, p, counts, memo) if f.scanned is False else 0.0
    text = 0.0
    if f.text:
        key = (p.day_key, f.text)
        if key not in memo:
            same_text = get(p.day_key, f"t:{f.text}")
            memo[key] = signals.text_duplicates(same_text, day_n) if same_text > signals.TEXT_FLOOR else 0.0
        text = memo[key]
    found = {}
    for name, strength in (("burst", volume[0]), ("surge", volume[1]), ("same_answers", memo[same]),
                           ("ip_cluster", memo[address]), ("ua_cluster", memo[browser]),
                           ("no_scan_share", no_scan), ("text_duplicates", text)):  # fmt: skip
        if strength:
            found[name] = strength
    if f.completion_ms is not None and f.completion_ms < signals.BRISK_MS:
        found["completion"] = signals.completion(f.completion_ms)
    if f.straightline:
        found["straightline"] = 1.0
    if f.followed_ms:
        found["follow_churn"] = signals.follow_churn(f.ms, f.followed_ms, f.left_ms)
    if hours:
        found["off_hours"] = signals.off_hours(minute_of_day(f), hours)
    return found


def quiet(f: Facts, p: Place, counts: Counts, hours: tuple[int, int] | None, memo: dict) -> bool:
    """True when no signal can touch this response (strengths would find none): the drain's common
    case, told from the batch's hot choices, prefixes and texts (per bucket and day, in `memo`)
    without weighing each signal for each response."""
    if (
        f.straightline
        or f.followed_ms
        or (f.completion_ms is not None and f.completion_ms < signals.BRISK_MS)
    ):
        return False
    if f.ua is not None and f.ua != "wechat":
        return False
    if hours and signals.off_hours(minute_of_day(f), hours):
        return False
    if (memo.get(p.bucket_key) or _volume(f, p, counts, memo)) != (0.0, 0.0):
        return False
    if f.scanned is False and _no_scan(f, p, counts, memo):
        return False
    hot = memo.get(id(p))  # (a batch's Places live as long as its memo)
    if hot is None:
        hot = memo[id(p)] = _hot(counts, p)
    return f.signature not in hot[0] and f.ip not in hot[1] and f.text not in hot[2]


def _hot(counts: Counts, p: Place) -> tuple[set[int], set[str], set[str]]:
    """The signatures, address prefixes and texts of a place that could make a signal (at or above
    the floors below which _same_answers, _ip_cluster and text_duplicates find nothing)."""
    none: dict[str, int] = {}
    here, before, after = (counts.values.get(k, none) for k in (p.bucket_key, p.prev_key, p.next_key))
    signatures = {int(name[2:]) for name, n in here.items() if name[:2] == "s:" and
                  n + max(before.get(name, 0), after.get(name, 0)) >= signals.SIGNATURE_FLOOR}  # fmt: skip
    yday, tmrw = counts.values.get(p.yday_ip_key, none), counts.values.get(p.tmrw_ip_key, none)
    prefixes = {ip for ip, n in counts.values.get(p.ip_key, none).items() if n > signals.IP_FLOOR or
                n + max(yday.get(ip, 0), tmrw.get(ip, 0)) > signals.IP_FLOOR_TWO_DAYS}  # fmt: skip
    day = counts.values.get(p.day_key, none)
    texts = {name[2:] for name, n in day.items() if name[:2] == "t:" and n > signals.TEXT_FLOOR}
    return signatures, prefixes, texts


def _volume(f: Facts, p: Place, counts: Counts, memo: dict) -> tuple[float, float]:
    """(burst, surge) of the response's bucket: one kind of evidence (volume) at two scales, so
    only the stronger counts."""
    volume = memo.get(p.bucket_key)
    if volume is None:
        get = counts.get
        window = get(p.bucket_key, "n") + max(get(p.prev_key, "n"), get(p.next_key, "n"))
        burst = signals.burst(window, expected_in_window(counts, f, p))
        surge = signals.surge(get(p.day_key, "n"), expected_per_day(counts, f, p))
        volume = memo[p.bucket_key] = (burst, 0.0) if burst >= surge else (0.0, surge)
    return volume


def _no_scan(f: Facts, p: Place, counts: Counts, memo: dict) -> float:
    """The no-scan signal of the response's day (over the day, and with the day before)."""
    if p.day_key not in memo:
        get = counts.get
        ns, day_n = get(p.day_key, "ns"), get(p.day_key, "n")
        one = signals.no_scan_share(False, ns, day_n, expected_per_day(counts, f, p, "ns"))
        two = signals.no_scan_two_days(ns, day_n, get(p.yday_key, "ns"), get(p.yday_key, "n"),
                                       expected_two_days(counts, f, p, "ns"))  # fmt: skip
        memo[p.day_key] = max(one, two)
    return memo[p.day_key]


def _same_answers(get, p: Place, sig_field: str) -> float:
    """The same choices in the window before (prev + this bucket) or after (this + next)."""
    here, before, after = get(p.bucket_key, sig_field), get(p.prev_key, sig_field), get(p.next_key, sig_field)
    if here + max(before, after) < signals.SIGNATURE_FLOOR:  # the common case: not even a coincidence
        return 0.0
    here_n = get(p.bucket_key, "n")
    return max(signals.same_answers(here + before, here_n + get(p.prev_key, "n")),
               signals.same_answers(here + after, here_n + get(p.next_key, "n")))  # fmt: skip


def _ip_cluster(counts: Counts, p: Place, ip: str, day_n: int) -> float:
    """One address prefix's cluster over the day, or over the day and the day before (or, on a
    second look, the day after)."""
    today = counts.get(p.ip_key, ip)
    if today <= signals.IP_FLOOR:  # the common case: a few answers from a prefix, no cluster either way
        other = max(counts.get(p.yday_ip_key, ip), counts.get(p.tmrw_ip_key, ip))
        if today + other <= signals.IP_FLOOR_TWO_DAYS:
            return 0.0
    best = signals.ip_cluster(today, day_n, counts.lengths.get(p.ip_key, 0))
    if not today:
        return best
    for day_key, ip_key in ((p.yday_key, p.yday_ip_key), (p.tmrw_key, p.tmrw_ip_key)):
        other = counts.get(ip_key, ip)
        if other:
            distinct = counts.lengths.get(p.ip_key, 0) + counts.lengths.get(ip_key, 0)
            two = signals.ip_cluster(today + other, day_n + counts.get(day_key, "n"), distinct,
                                     floor=signals.IP_FLOOR_TWO_DAYS)  # fmt: skip
            best = max(best, two)
    return best


def score(found: dict[str, float]) -> tuple[int, list]:
    """(0..100, [[signal, strength], ...] strongest first) from the signals' strengths (a signal
    not in `found` has none)."""
    held: list[tuple[str, float]] = [(name, round(s, 2)) for name, s in found.items() if s > 0]
    if not held:
        return 0, []
    if len(held) > 1:
        held.sort(key=lambda r: -WEIGHTS[r[0]] * r[1])
    return min(100, round(sum(WEIGHTS[name] * s for name, s in held))), [list(r) for r in held]


# The per-answer flags intake stores (app.intake.record), in the reviewers' words.
FLAG_LABELS = {
    "straightline": "所有评分题选同一项",
    "no_scan": "作答前未扫该单位二维码",
    "too_fast": "作答用时过短",
}


def describe(reasons: list | None) -> list[str]:
    """The reasons in the reviewers' words, with their weight: "同一网段集中提交（45 分）"."""
    out = []
    for name, strength, *_ in reasons or []:
        label = LABELS.get(name, name)
        out.append(f"{label}（{round(WEIGHTS.get(name, 0) * strength)} 分）")
    return out
