# What the detector knows about one response: read from a submission in the drain, or back from a
# stored response when a later batch makes it look again (retroactive quarantine).
from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.integrity.signals import BRISK_MS, FOLLOW_BEFORE_MS

MIN_TEXT = 8  # shorter free texts ("很好", "满意") are said by everyone: never compared
_DROP = re.compile("[" + re.escape(" \t\r\n，。！？、,.!?;；:：~～…-—\"'“”‘’()（）") + "]+")


def text_key(text: str | None) -> str | None:
    """A short hash of the normalised text (spaces, punctuation and case dropped); the text itself
    is never kept in the integrity metadata."""
    if not text or len(text) < MIN_TEXT:
        return None
    normal = _DROP.sub("", text)
    if not unicodedata.is_normalized("NFKC", normal):  # (cheap to ask; most texts need it once)
        normal = _DROP.sub("", unicodedata.normalize("NFKC", normal))
    normal = normal.lower()
    if len(normal) < MIN_TEXT:
        return None
    return hashlib.blake2b(normal.encode(), digest_size=6).hexdigest()


def choice_signature(answers, segment_question_id: int | None = None) -> int:
    """The options chosen, question by question, as one number (the same choices, the same number).
    The segment question (which service the person came for) is left out: a room of phones rating
    the window 非常满意 across the board differs only in the service each claims to have used."""
    chosen = tuple([o for q, o, _ in answers if o and q != segment_question_id])
    return hash(chosen) & 0xFFFFFFFF  # a tuple of ints hashes the same in every process


@dataclass(slots=True)
class Facts:
    survey_id: int
    department_id: int
    ms: int  # submitted, ms since the epoch
    respondent_key: str
    ip: str | None
    ua: str | None
    scanned: bool | None
    completion_ms: int | None
    straightline: bool
    text: str | None  # text_key
    signature: int
    followed_ms: int | None = None
    left_ms: int | None = None
    response_id: int | None = None  # once stored
    # A signal of its own whatever the window holds: straight-lining, a new follower, a brisk
    # completion, a browser outside WeChat (score.suspects never passes over such a response).
    odd: bool | None = None  # (None: worked out from the fields above)
    source: Any = None  # the Submission these facts were read from, in the drain

    def __post_init__(self) -> None:
        if self.odd is None:
            self.odd = _odd(self.straightline, self.followed_ms, self.completion_ms, self.ua)


def answer_facts(answers, segment_question_id: int | None) -> dict[str, int | str]:
    """What the detector reads from the answers themselves, for the response's meta: the choice
    signature ("sig") and the first free text's key ("tx", when there is one). Worked out at intake,
    where the answers are in hand, so the drain does not go over them again."""
    facts: dict[str, int | str] = {"sig": choice_signature(answers, segment_question_id)}
    texts = [t for _, _, t in answers if t]  # (the first free text is the one compared)
    tx = text_key(texts[0]) if texts else None
    if tx:
        facts["tx"] = tx
    return facts


def from_submission(sub) -> Facts:
    """The facts of a Submission in the drain (its meta as intake left it; the answers' own facts
    worked out here for an entry queued without them), and marks it assessed with nothing found
    (score 0) until the detector finds something."""
    meta = sub.meta
    sig = meta.get("sig")
    if type(sig) is not int:
        meta.update(answer_facts(sub.answers, sub.segment_question_id))
        sig = meta["sig"]
    tx = meta.get("tx")
    ms = sub.ms or round(sub.submitted_at.timestamp() * 1000)
    followed = meta.get("fw")
    if followed is not None and not 0 <= ms - followed <= FOLLOW_BEFORE_MS:
        del meta["fw"]  # a follower of old: nothing to watch
        followed = None
    ua, completion_ms, straightline = meta.get("ua"), meta.get("completion_ms"), "straightline" in sub.flags
    odd = _odd(straightline, followed, completion_ms, ua)
    sub.score = 0  # (reasons stay None: nothing found)
    return Facts(
        sub.survey_id, sub.department_id, ms, sub.respondent_key, meta.get("ip"), ua, meta.get("scanned"),
        completion_ms, straightline, tx, sig, followed, None, None, odd, sub,
    )  # fmt: skip


def _odd(straightline: bool, followed: int | None, completion_ms: int | None, ua: str | None) -> bool:
    """A signal of the response's own (see Facts.odd)."""
    return (
        straightline
        or bool(followed)
        or (completion_ms is not None and completion_ms < BRISK_MS)
        or (ua is not None and ua != "wechat")
    )


def from_response(response) -> Facts:
    """The facts of a stored Response (its meta as the drain left it)."""
    meta = response.meta or {}
    submitted = response.submitted_at
    if submitted.tzinfo is None:
        submitted = submitted.replace(tzinfo=UTC)
    return Facts(
        response.survey_id, response.department_id, round(submitted.timestamp() * 1000),
        response.respondent_key,
        meta.get("ip"), meta.get("ua"), meta.get("scanned"), meta.get("completion_ms"),
        "straightline" in (response.flags or []), meta.get("tx"), int(meta.get("sig") or 0),
        meta.get("fw"), meta.get("left"), response.id,
    )  # fmt: skip


def moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
