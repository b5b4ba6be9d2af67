# One response's integrity score (0..100) and its reasons: the signals weighed together. A score at
# or above integrity.threshold quarantines the response (kept, out of the official figures).
from __future__ import annotations

from app.integrity import signals
from app.integrity.facts import Facts
from app.integrity.windows import (
    Counts,
    Increments,
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


def suspects(p: Place, members: list[Facts], counts: Counts, hours: tuple[int, int] | None,
             memo: dict, batch: Increments) -> list[Facts]:  # fmt: skip
    """The responses of one place (`members`, a batch's at that place, `batch` the batch's
    increments, windows.counted) that some signal may touch;
    strengths finds nothing for the others. The drain's common case, told once per place (its
    volume, no-scan share, and the choices, prefixes and texts whose signal is not nil) and then
    by set look-ups per response, without weighing each signal for each response."""
    if _volume(members[0], p, counts, memo) != (0.0, 0.0):
        return members
    no_scan = _no_scan(members[0], p, counts, memo)
    hot = memo.get(id(p))  # (Places outlive a batch's memo: windows keeps recent ones)
    if hot is None:
        hot = memo[id(p)] = _hot(counts, p, memo, batch)
    signatures, prefixes, texts = hot
    if hours:
        minute = minute_of_day
        return [f for f in members if f.odd or (no_scan and f.scanned is False) or f.signature in signatures
                or f.ip in prefixes or f.text in texts or signals.off_hours(minute(f), hours)]  # fmt: skip
    if no_scan:
        return [f for f in members if f.odd or f.scanned is False or f.signature in signatures
                or f.ip in prefixes or f.text in texts]  # fmt: skip
    if signatures or prefixes or texts:
        return [f for f in members if f.odd or f.signature in signatures or f.ip in prefixes
                or f.text in texts]  # fmt: skip
    return [f for f in members if f.odd]


def _hot(counts: Counts, p: Place, memo: dict, batch: Increments) -> tuple[set[int], set[str], set[str]]:
    """The signatures, address prefixes and texts the batch counted at a place (`batch`, its
    increments) whose signal is not nil. Each signal is nil below a threshold of the place's own
    (its window, its day's answers and prefixes), worked out once here; only the few over it are
    weighed (into `memo`, where strengths finds them)."""
    none: dict[str, int] = {}
    get, lengths, values = counts.get, counts.lengths, counts.values
    here, before, after = (values.get(k, none) for k in (p.bucket_key, p.prev_key, p.next_key))
    # same_answers (see _same_answers): at least SIGNATURE_FLOOR and over 30% of the window before
    # (this bucket and the one before) or of the window after (this and the next)
    here_n = here.get("n", 0)
    least_before = max(signals.SIGNATURE_FLOOR, 0.3 * (here_n + before.get("n", 0)))
    least_after = max(signals.SIGNATURE_FLOOR, 0.3 * (here_n + after.get("n", 0)))
    # (each count is read once per field below: in the drain these hashes are large, and a read of
    # one costs several times what it does in a quiet loop)
    here_s = batch.get(p.bucket_key, none)  # "n" and the signatures ("s:<signature>")
    if after:
        names = [n for n in here_s if (h := here[n]) + before.get(n, 0) >= least_before
                 or h + after.get(n, 0) >= least_after]  # fmt: skip
    else:  # (the usual case in the drain: the next bucket not held yet)
        names = [n for n in here_s if (h := here[n]) >= least_after or h + before.get(n, 0) >= least_before]
    signatures = set()
    for name in names:
        if name[:2] == "s:":
            signature = int(name[2:])
            if memo.setdefault((p.bucket_key, signature), _same_answers(get, p, name)):
                signatures.add(signature)
    # ip_cluster: over four times the average prefix's answers, over the day or over two days
    day_n, distinct = get(p.day_key, "n"), lengths.get(p.ip_key, 0)
    one_day = max(signals.IP_FLOOR, 4 * day_n / max(distinct, 1))
    today = values[p.ip_key] if p.ip_key in batch else none
    ips = batch.get(p.ip_key, none)
    bars = []  # over two days (a superset of the prefixes over the bar: _ip_cluster weighs each)
    for day_key, ip_key in ((p.yday_key, p.yday_ip_key), (p.tmrw_key, p.tmrw_ip_key)):
        other = values.get(ip_key)
        if other:
            bar = 4 * (day_n + get(day_key, "n")) / max(distinct + lengths.get(ip_key, 0), 1)
            bars.append((other, max(signals.IP_FLOOR_TWO_DAYS, bar)))
    if len(bars) == 1:  # (the usual case in the drain: yesterday held, the day after not)
        other, bar = bars[0]
        candidates = [ip for ip in ips if (t := today[ip]) > one_day or t + other.get(ip, 0) > bar]
    else:  # (no day beside, or both)
        candidates = [ip for ip in ips if (t := today[ip]) > one_day or any(t + o.get(ip, 0) > b
                                                                            for o, b in bars)]  # fmt: skip
    prefixes = set()
    for ip in candidates:
        if memo.setdefault((p.ip_key, ip), _ip_cluster(counts, p, ip, day_n)):
            prefixes.add(ip)
    # text_duplicates: over TEXT_FLOOR and TEXT_SHARE of the day's answers
    most = max(signals.TEXT_FLOOR, signals.TEXT_SHARE * day_n)
    day = values.get(p.day_key, none)
    texts = set()
    for name in batch.get(p.day_key, none):  # "n", "h<hour>", "u:<class>" and the texts ("t:<key>")
        if name[:2] == "t:":
            n = day[name]
            if n > most and memo.setdefault((p.day_key, name[2:]), signals.text_duplicates(n, day_n)):
                texts.add(name[2:])
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
