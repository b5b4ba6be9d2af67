# One response's integrity score (0..100) and its reasons: the signals weighed together. A score at
# or above integrity.threshold quarantines the response (kept, out of the official figures).
from __future__ import annotations

from app.integrity import signals
from app.integrity.facts import Facts
from app.integrity.windows import Counts, Place, expected_in_window, expected_per_day

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
GROUP_SIGNALS = (
    "burst",
    "surge",
    "same_answers",
    "ip_cluster",
    "ua_cluster",
    "no_scan_share",
    "text_duplicates",
)


def strengths(f: Facts, p: Place, counts: Counts, hours: tuple[int, int] | None) -> dict[str, float]:
    window = counts.get(p.bucket_key, "n") + counts.get(p.prev_key, "n")
    sig_field = f"s:{f.signature}"
    day_n = counts.get(p.day_key, "n")
    found = {
        "burst": signals.burst(window, expected_in_window(counts, f, p)),
        "surge": signals.surge(day_n, expected_per_day(counts, f, p)),
        "same_answers": signals.same_answers(
            counts.get(p.bucket_key, sig_field) + counts.get(p.prev_key, sig_field), window
        ),
        "ip_cluster": signals.ip_cluster(
            counts.get(p.ip_key, f.ip) if f.ip else 0, day_n, counts.lengths.get(p.ip_key, 0)
        ),
        "ua_cluster": signals.ua_cluster(f.ua, counts.get(p.day_key, f"u:{f.ua}")),
        "no_scan_share": signals.no_scan_share(
            f.scanned, counts.get(p.day_key, "ns"), day_n, expected_per_day(counts, f, p, "ns")
        ),
        "text_duplicates": signals.text_duplicates(counts.get(p.day_key, f"t:{f.text}") if f.text else 0),
        "completion": signals.completion(f.completion_ms),
        "straightline": signals.straightline(f.straightline),
        "follow_churn": signals.follow_churn(f.ms, f.followed_ms, f.left_ms),
        "off_hours": signals.off_hours(p.minute, hours),
    }
    # Burst and surge are one kind of evidence (volume) at two scales: only the stronger counts.
    found["surge" if found["burst"] >= found["surge"] else "burst"] = 0.0
    return found


def score(found: dict[str, float]) -> tuple[int, list]:
    """(0..100, [[signal, strength], ...] strongest first) from the signals' strengths."""
    reasons = sorted(
        ([name, round(s, 2)] for name, s in found.items() if s > 0), key=lambda r: -WEIGHTS[r[0]] * r[1]
    )
    return min(100, round(sum(WEIGHTS[name] * s for name, s in reasons))), reasons


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
