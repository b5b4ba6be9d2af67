# A survey campaign as a list of labelled events: organic citizens of a fictional city and several
# kinds of ballot stuffing (刷票), generated from a seed. app.dev.simulate plays it through the
# real intake path and measures the detector against the labels.
"""Kinds of stuffing (KINDS), each as a department would do it:

- office: staff told to rate their own office, from the office network over a working day or two,
  on PCs or PC WeChat, with a link passed around the work group instead of scanning the code.
- phone_room: a box of phones passed around at the service window: each scans the code and
  answers fast within half an hour, most on the office Wi-Fi.
- script: scripted submissions through accounts of a farm, rotating address prefixes and WeChat
  user agents, human-like completion times spread over the day, no scan.
- bought_followers: followers bought for the day follow through the department's code, rate it
  and unfollow within two hours.

Organic citizens: daily volumes per department, a daily rhythm (window departments mostly in
opening hours), 80% scan the code (30% of them follow for it; 8% of those unfollow later,
days later for most), mobile carriers' shared address prefixes, ratings from the department's
quality and the person's mood, sometimes a suggestion in their own words.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from app.clock import DEFAULT_ZONE

KINDS = ("office", "phone_room", "script", "bought_followers")
WINDOW_DEPARTMENTS = {"D09": "08:30-17:30", "D11": "08:30-17:30", "D17": "09:00-17:00", "D18": "08:30-17:30",
                      "D22": "08:30-17:00", "D25": "08:00-17:30"}  # fmt: skip
UA_WECHAT = (
    "Mozilla/5.0 (Linux; Android 13; V2241A Build/TP1A) AppleWebKit/537.36 Mobile Safari/537.36 "
    "MicroMessenger/8.0.{v}.2480 NetType/WIFI Language/zh_CN",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_{v} like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 "
    "MicroMessenger/8.0.{v}(0x18002a2d) NetType/4G Language/zh_CN",
)
UA_MOBILE = (
    "Mozilla/5.0 (Linux; Android 12; M2012K11AC) AppleWebKit/537.36 Chrome/11{v}.0 Mobile Safari/537.36"
)
UA_DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/12{v}.0 Safari/537.36"
SUBJECTS = ("窗口工作人员", "办事大厅", "网上办事系统", "咨询电话", "排队叫号", "停车场", "办事流程",
            "材料要求", "工作人员", "预约系统", "告知单", "指示牌")  # fmt: skip
REMARKS = ("态度很好很耐心", "效率有待提高", "希望再简化一些", "等候时间太长了", "讲解清楚明白",
           "经常打不通", "比去年进步很多", "应该更人性化", "字太小看不清", "需要更多座位", "服务很周到",
           "说明不够清楚")  # fmt: skip
SHORT = ("很好", "满意", "辛苦了", "谢谢", "加油", "不错")
PRAISE = ("服务热情周到，办事效率高！", "工作人员认真负责，为民服务好！", "办事方便快捷，非常满意！",
          "窗口服务规范，态度热情！", "为人民服务，点赞！")  # fmt: skip


@dataclass(order=True)
class Event:
    ms: int
    seq: int
    kind: str = field(compare=False)  # subscribe | scan | unsubscribe | answer
    openid: str = field(compare=False)
    department: str = field(compare=False)
    label: str = field(compare=False)  # organic or a stuffing kind
    answer: dict | None = field(default=None, compare=False)  # levels, text, ua, ip, completion_s


@dataclass
class Options:
    seed: int = 1
    days: int = 14
    organic_per_day: int = 500
    kinds: tuple[str, ...] = KINDS
    incidents: int = 3  # per kind
    size: float = 1.0  # multiplies each incident's number of stuffed answers
    start: datetime = datetime(2026, 3, 2, tzinfo=ZoneInfo(DEFAULT_ZONE))  # a Monday


class Campaign:
    def __init__(self, options: Options, departments: list[str]) -> None:
        self.o, self.departments = options, departments
        self.rng = random.Random(options.seed)
        self.events: list[Event] = []
        self.seq = 0
        r = self.rng
        self.carrier = [
            f"{a}.{r.randrange(1, 255)}.{r.randrange(0, 255)}" for a in (112, 117, 223) for _ in range(60)
        ]
        self.carrier_weights = [1 / (i % 60 + 1) ** 0.8 for i in range(len(self.carrier))]
        self.broadband = [
            f"{a}.{r.randrange(1, 255)}.{r.randrange(0, 255)}" for a in (58, 182) for _ in range(300)
        ]
        self.volume = {d: r.lognormvariate(0, 0.6) for d in departments}
        total = sum(self.volume.values())
        self.volume = {d: v / total * options.organic_per_day for d, v in self.volume.items()}
        self.quality = {d: r.uniform(0.55, 0.9) for d in departments}
        self.office = {d: f"61.{r.randrange(1, 255)}.{r.randrange(0, 255)}" for d in departments}

    # --- building blocks ---------------------------------------------------------------------------

    def add(self, ms: int, kind: str, openid: str, dept: str, label: str, answer: dict | None = None) -> None:
        self.seq += 1
        self.events.append(Event(ms, self.seq, kind, openid, dept, label, answer))

    def at(self, day: int, hour: float) -> int:
        moment = self.o.start + timedelta(days=day, hours=hour)
        return int(moment.timestamp() * 1000)

    def ip(self, pool: str = "citizen") -> str:
        r = self.rng
        if pool == "citizen":
            if r.random() < 0.75:
                prefix = r.choices(self.carrier, self.carrier_weights)[0]
            else:
                prefix = r.choice(self.broadband)
        else:  # anywhere in the country
            prefix = f"{r.randrange(1, 224)}.{r.randrange(0, 255)}.{r.randrange(0, 255)}"
        return f"{prefix}.{r.randrange(1, 255)}"

    def ua(self, kind: str = "wechat") -> str:
        v = self.rng.randrange(30, 50)
        if kind == "wechat":
            return self.rng.choice(UA_WECHAT).format(v=v)
        return (UA_MOBILE if kind == "mobile" else UA_DESKTOP).format(v=v % 10)

    def levels(self, mood: float) -> list[int]:
        """Five ratings (0 = 非常满意 .. 4 = 非常不满意) around a mood in 0..1."""
        out = []
        for _ in range(5):
            x = mood + self.rng.gauss(0, 0.12)
            out.append(0 if x > 0.85 else 1 if x > 0.65 else 2 if x > 0.45 else 3 if x > 0.25 else 4)
        return out

    def answer(self, levels, ua, ip, completion_s, text=None) -> dict:
        return {"levels": levels, "ua": ua, "ip": ip, "completion_s": completion_s, "text": text,
                "type": self.rng.randrange(4)}  # fmt: skip

    def person(self, label: str) -> str:
        return f"sim-{label}-{self.seq + 1}-{self.rng.randrange(10**9)}"

    # --- organic citizens ----------------------------------------------------------------------------

    def organic_day(self, day: int) -> None:
        r = self.rng
        weekday = (self.o.start + timedelta(days=day)).weekday()
        for dept in self.departments:
            window = dept in WINDOW_DEPARTMENTS
            factor = (0.35 if window else 0.7) if weekday >= 5 else 1.0
            for _ in range(_poisson(r, self.volume[dept] * factor)):
                if window and r.random() < 0.85:
                    opens, closes = _hours(WINDOW_DEPARTMENTS[dept])
                    hour = r.uniform(opens, closes - 0.1)
                else:
                    hour = min(23.9, max(6.5, r.gauss(15, 4)))
                self.organic_one(dept, self.at(day, hour))

    def organic_one(self, dept: str, ms: int) -> None:
        r = self.rng
        openid = self.person("organic")
        if r.random() < 0.8:
            scan_ms = ms - int(r.uniform(0.5, 10) * 60_000)
            if r.random() < 0.3:
                self.add(scan_ms, "subscribe", openid, dept, "organic")
                if r.random() < 0.08:
                    self.add(
                        ms + int(r.expovariate(1 / (3 * 86_400_000))), "unsubscribe", openid, dept, "organic"
                    )
            else:
                self.add(scan_ms, "scan", openid, dept, "organic")
        text = None
        roll = r.random()
        if roll < 0.22:
            text = r.choice(SUBJECTS) + r.choice(REMARKS)
        elif roll < 0.3:
            text = r.choice(SHORT)
        ua = self.ua("wechat" if r.random() < 0.96 else "mobile" if r.random() < 0.75 else "desktop")
        mood = self.quality[dept] + r.gauss(0, 0.15)
        completion = r.lognormvariate(math.log(65), 0.6)
        self.add(
            ms,
            "answer",
            openid,
            dept,
            "organic",
            self.answer(self.levels(mood), ua, self.ip(), completion, text),
        )

    # --- stuffing ------------------------------------------------------------------------------------

    def stuffing(self, kind: str) -> None:
        r = self.rng
        for _ in range(self.o.incidents):
            day = r.randrange(min(3, self.o.days - 1), self.o.days)
            dept = r.choice(sorted(WINDOW_DEPARTMENTS) if kind == "phone_room" else self.departments)
            getattr(self, f"_{kind}")(dept, day)

    def _n(self, low: int, high: int) -> int:
        return max(1, round(self.rng.randint(low, high) * self.o.size))

    def _office(self, dept: str, day: int) -> None:
        r = self.rng
        second = f"61.{r.randrange(1, 255)}.{r.randrange(0, 255)}"
        for _ in range(self._n(25, 50)):
            openid = self.person("office")
            ms = self.at(day + r.choice((0, 0, 1)), r.uniform(9, 17.5))
            if r.random() < 0.1:
                self.add(ms - 60_000, "scan", openid, dept, "office")
            prefix = self.office[dept] if r.random() < 0.85 else second
            levels = [0] * 5 if r.random() < 0.85 else [0, 0, 1, 0, 0]
            text = r.choice(PRAISE) if r.random() < 0.25 else None
            ua = self.ua("desktop" if r.random() < 0.5 else "wechat")
            ip = f"{prefix}.{r.randrange(1, 255)}"
            self.add(ms, "answer", openid, dept, "office",
                     self.answer(levels, ua, ip, r.lognormvariate(math.log(35), 0.4), text))  # fmt: skip

    def _phone_room(self, dept: str, day: int) -> None:
        r = self.rng
        opens, closes = _hours(WINDOW_DEPARTMENTS[dept])
        begin = self.at(day, r.uniform(opens, closes - 1))
        span = r.uniform(20, 40) * 60_000
        for _ in range(self._n(15, 35)):
            openid = self.person("phone_room")
            ms = begin + int(r.uniform(0, span))
            self.add(ms - int(r.uniform(1, 3) * 60_000), "subscribe" if r.random() < 0.5 else "scan",
                     openid, dept, "phone_room")  # fmt: skip
            ip = f"{self.office[dept]}.{r.randrange(1, 255)}" if r.random() < 0.6 else self.ip()
            levels = [0] * 5 if r.random() < 0.9 else [0, 1, 0, 0, 0]
            self.add(ms, "answer", openid, dept, "phone_room",
                     self.answer(levels, self.ua(), ip, r.lognormvariate(math.log(15), 0.4)))  # fmt: skip

    def _script(self, dept: str, day: int) -> None:
        r = self.rng
        for _ in range(self._n(100, 200)):
            openid = self.person("script")
            ms = self.at(day, r.uniform(8, 22))
            levels = [0 if r.random() < 0.75 else 1 for _ in range(5)]
            text = r.choice(PRAISE) if r.random() < 0.2 else None
            ua = self.ua("wechat" if r.random() < 0.8 else "mobile")
            completion = r.lognormvariate(math.log(50), 0.5)
            self.add(
                ms, "answer", openid, dept, "script", self.answer(levels, ua, self.ip(), completion, text)
            )

    def _bought_followers(self, dept: str, day: int) -> None:
        r = self.rng
        begin = self.at(day, r.uniform(8, 20))
        for _ in range(self._n(50, 120)):
            openid = self.person("bought_followers")
            follow = begin + int(r.uniform(0, 3 * 3_600_000))
            ms = follow + int(r.uniform(1, 5) * 60_000)
            self.add(follow, "subscribe", openid, dept, "bought_followers")
            levels = [0] * 5 if r.random() < 0.95 else [0, 0, 0, 1, 0]
            self.add(
                ms,
                "answer",
                openid,
                dept,
                "bought_followers",
                self.answer(levels, self.ua(), self.ip("anywhere"), r.lognormvariate(math.log(20), 0.4)),
            )
            self.add(ms + int(r.uniform(10, 120) * 60_000), "unsubscribe", openid, dept, "bought_followers")

    def build(self) -> list[Event]:
        for day in range(self.o.days):
            self.organic_day(day)
        for kind in self.o.kinds:
            self.stuffing(kind)
        return sorted(self.events)


def _hours(text: str) -> tuple[float, float]:
    start, end = text.split("-")
    return tuple(int(p.split(":")[0]) + int(p.split(":")[1]) / 60 for p in (start, end))  # type: ignore[return-value]


def _poisson(r: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    if mean > 30:
        return max(0, round(r.gauss(mean, math.sqrt(mean))))
    while True:
        p *= r.random()
        if p <= limit:
            return k
        k += 1
