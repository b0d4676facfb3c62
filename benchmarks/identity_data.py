"""Messy customer records with known truth, for measuring probabilistic matching.

Shared by ``tests/identity/test_match.py`` (small sets) and ``benchmarks/identity_match.py``
(large sets). From one seed it writes the cases issue 3 calls "the normal case":

- Chinese names in Hanzi and in pinyin (given and family name sometimes the other way round),
  Western names with accents that a second system drops;
- phones spelt ``13912345678``, ``139-1234-5678``, ``+86 139 1234 5678`` and more, fixed lines
  spelt ``010-62345678`` or ``+86 10 6234 5678``, a wrong digit now and then;
- birth dates as ISO, ``1990/3/5``, ``1990年3月5日``, day/month/year and month/day/year, and day
  and month swapped by the typist;
- one-letter typos (a wrong character from the input method for Hanzi), missing e-mails,
  missing phones, ``北京`` and ``北京市``;
- namesakes: many distinct people with one common name in one city (30 different 王伟 in 北京),
  each with their own phone and birth date;
- households: family members who share a fixed line or an e-mail address, with their own first
  names and birth dates.

The seeded generator's duplicates (``jingzhun.datagen``) can be appended with
:func:`generated_records`. Every record carries its true ``person_id``; ``group`` says whether the
person belongs to a namesake group or a household (``group_id`` names which), so false merges
of those can be counted apart.
"""

from __future__ import annotations

import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jingzhun.datagen import generate

COLUMNS = ["record_id", "first_name", "last_name", "email", "phone", "birth_date", "city", "gender"]

# (Hanzi, pinyin, weight): the most common family names of mainland China, roughly by the 2020
# census share, plus compound names the column splitter must keep whole.
_FAMILY = [
    ("王", "Wang", 7.1), ("李", "Li", 7.0), ("张", "Zhang", 6.8), ("刘", "Liu", 5.4),
    ("陈", "Chen", 4.6), ("杨", "Yang", 3.1), ("黄", "Huang", 2.5), ("赵", "Zhao", 2.3),
    ("吴", "Wu", 2.0), ("周", "Zhou", 1.9), ("徐", "Xu", 1.3), ("孙", "Sun", 1.3),
    ("马", "Ma", 1.2), ("朱", "Zhu", 1.2), ("胡", "Hu", 1.1), ("郭", "Guo", 1.1),
    ("何", "He", 1.0), ("林", "Lin", 0.9), ("高", "Gao", 0.9), ("罗", "Luo", 0.9),
    ("郑", "Zheng", 0.9), ("梁", "Liang", 0.8), ("谢", "Xie", 0.7), ("宋", "Song", 0.7),
    ("唐", "Tang", 0.7), ("许", "Xu", 0.6), ("韩", "Han", 0.6), ("冯", "Feng", 0.6),
    ("邓", "Deng", 0.6), ("曹", "Cao", 0.5), ("彭", "Peng", 0.5), ("曾", "Zeng", 0.5),
    ("欧阳", "Ouyang", 0.1), ("司马", "Sima", 0.03), ("诸葛", "Zhuge", 0.02),
    ("上官", "Shangguan", 0.02),
]  # fmt: skip
_GIVEN_F = [
    ("芳", "Fang", 5), ("娜", "Na", 5), ("秀英", "Xiuying", 4), ("敏", "Min", 4), ("静", "Jing", 4),
    ("丽", "Li", 3), ("艳", "Yan", 3), ("娟", "Juan", 2), ("霞", "Xia", 2), ("玲", "Ling", 2),
    ("婷", "Ting", 2), ("雪", "Xue", 2), ("欣怡", "Xinyi", 2), ("子涵", "Zihan", 1),
    ("梓萱", "Zixuan", 1), ("雨桐", "Yutong", 1), ("佳怡", "Jiayi", 1), ("桂英", "Guiying", 1),
    ("慧", "Hui", 1), ("晓燕", "Xiaoyan", 1), ("丹", "Dan", 1), ("萍", "Ping", 1),
]  # fmt: skip
_GIVEN_M = [
    ("伟", "Wei", 6), ("强", "Qiang", 4), ("磊", "Lei", 4), ("军", "Jun", 3), ("洋", "Yang", 3),
    ("勇", "Yong", 3), ("杰", "Jie", 3), ("涛", "Tao", 2), ("明", "Ming", 2), ("超", "Chao", 2),
    ("刚", "Gang", 2), ("平", "Ping", 2), ("建华", "Jianhua", 1), ("建国", "Jianguo", 1),
    ("志强", "Zhiqiang", 1), ("浩然", "Haoran", 1), ("宇轩", "Yuxuan", 1), ("俊杰", "Junjie", 1),
    ("子轩", "Zixuan", 1), ("浩", "Hao", 1), ("鹏", "Peng", 1), ("斌", "Bin", 1),
    ("文博", "Wenbo", 1), ("思远", "Siyuan", 1),
]  # fmt: skip
# Characters an input method offers for the same syllable: a mistyped Hanzi name gets one.
# fmt: off
_HOMOPHONES = {
    "王": "汪往", "李": "里理黎", "张": "章彰", "刘": "柳留", "陈": "晨沉", "杨": "阳洋",
    "黄": "皇煌", "赵": "照兆", "吴": "武伍", "周": "州舟", "徐": "许旭", "孙": "荪损",
    "马": "玛码", "朱": "珠诸", "胡": "湖虎", "郭": "国果", "何": "和贺", "林": "琳霖",
    "高": "糕皋", "罗": "萝洛", "郑": "正政", "梁": "良凉", "谢": "泻械", "宋": "送颂",
    "唐": "堂糖", "许": "徐旭", "韩": "寒涵", "冯": "峰丰", "邓": "登等", "曹": "槽草",
    "彭": "鹏朋", "曾": "增僧", "欧": "鸥偶", "阳": "杨洋", "司": "思丝", "诸": "朱珠",
    "葛": "歌格", "上": "尚赏", "官": "关观", "芳": "方放", "娜": "纳那", "秀": "绣修",
    "英": "婴莹", "敏": "民闵", "静": "晶净", "丽": "莉力", "艳": "燕雁", "娟": "涓鹃",
    "霞": "侠夏", "玲": "琳铃", "婷": "亭庭", "雪": "学薛", "欣": "新心", "怡": "宜仪",
    "子": "紫梓", "涵": "寒含", "梓": "子紫", "萱": "宣轩", "雨": "宇语", "桐": "童彤",
    "佳": "家嘉", "桂": "贵归", "慧": "惠会", "晓": "小笑", "燕": "艳雁", "丹": "单担",
    "萍": "平苹", "伟": "玮炜", "强": "墙蔷", "磊": "蕾垒", "军": "君均", "洋": "阳杨",
    "勇": "永涌", "杰": "洁捷", "涛": "韬滔", "明": "铭鸣", "超": "潮朝", "刚": "钢纲",
    "平": "萍评", "建": "健剑", "华": "花桦", "国": "果郭", "志": "智治", "浩": "皓昊",
    "然": "燃冉", "宇": "雨羽", "轩": "萱宣", "俊": "骏峻", "鹏": "朋彭", "斌": "彬滨",
    "文": "闻雯", "博": "波搏", "思": "斯丝", "远": "源元",
}
# fmt: on
_WEST_SURNAMES = [
    ("Smith", 10),
    ("Jones", 6),
    ("Williams", 5),
    ("Brown", 5),
    ("Taylor", 4),
    ("Johnson", 4),
    ("Miller", 3),
    ("Davis", 3),
    ("Wilson", 3),
    ("Anderson", 2),
    ("Thomas", 2),
    ("Moore", 2),
    ("Martin", 2),
    ("Müller", 2),
    ("García", 2),
    ("Martínez", 1),
    ("Schmidt", 1),
    ("Dubois", 1),
    ("O'Brien", 1),
    ("Lefèvre", 1),
    ("Kowalski", 1),
    ("Rossi", 1),
    ("Novak", 1),
    ("Walker", 1),
]  # fmt: skip
_WEST_FIRST_F = [
    ("Mary", 5), ("Sarah", 4), ("Emma", 4), ("Anna", 3), ("Laura", 3), ("Sophie", 2),
    ("Zoë", 2), ("Renée", 1), ("Chloé", 1), ("Hannah", 2), ("Olivia", 2), ("Julia", 2),
    ("Claire", 1), ("Elena", 1), ("Marta", 1),
]  # fmt: skip
_WEST_FIRST_M = [
    ("David", 5), ("John", 5), ("Michael", 4), ("James", 4), ("Robert", 3), ("Thomas", 3),
    ("Peter", 2), ("José", 2), ("François", 1), ("Jürgen", 1), ("Daniel", 2), ("Paul", 2),
    ("Mark", 2), ("Andrew", 2), ("Luca", 1),
]  # fmt: skip
# (city, weight, fixed-line area code)
_CITIES = [
    ("北京", 14, "10"), ("上海", 14, "21"), ("广州", 8, "20"), ("深圳", 8, "755"),
    ("成都", 6, "28"), ("杭州", 5, "571"), ("武汉", 5, "27"), ("重庆", 5, "23"),
    ("西安", 4, "29"), ("南京", 4, "25"), ("天津", 4, "22"), ("苏州", 3, "512"),
    ("长沙", 3, "731"), ("郑州", 3, "371"), ("沈阳", 2, "24"), ("青岛", 2, "532"),
]  # fmt: skip
_TWO_DIGIT_AREAS = {c for _, _, c in _CITIES if len(c) == 2}
_MOBILE_PREFIXES = [
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
    "156", "158", "159", "166", "176", "177", "180", "181", "186", "187", "188", "189", "199",
]  # fmt: skip
_DOMAINS = ["163.com", "qq.com", "126.com", "sina.com", "gmail.com", "outlook.com", "foxmail.com"]
_DOMAIN_TYPOS = {
    "163.com": "163.cm",
    "qq.com": "qq.con",
    "126.com": "126.co",
    "sina.com": "sian.com",
    "gmail.com": "gmial.com",
    "outlook.com": "outlok.com",
    "foxmail.com": "foxmial.com",
}
# (first, last, city, style): the namesake groups, most common name first.
_NAMESAKES = [
    ("伟", "王", "北京", "hanzi"),
    ("娜", "李", "上海", "hanzi"),
    ("伟", "张", "北京", "hanzi"),
    ("Wei", "Wang", "北京", "pinyin"),
    ("David", "Smith", "上海", "western"),
    ("芳", "王", "广州", "hanzi"),
    ("洋", "刘", "深圳", "hanzi"),
    ("静", "陈", "成都", "hanzi"),
]


@dataclass(frozen=True)
class MessyRecords:
    """Customer records (``COLUMNS``, all text) and the truth for each record."""

    records: pa.Table
    truth: pa.Table  # record_id, person_id, group ("single" | "namesake" | "household"), group_id
    seed: int


@dataclass
class _Person:
    person_id: str
    first: str
    last: str
    style: str  # "hanzi", "pinyin" or "western"
    latin: str  # the name in Latin letters, for e-mail addresses
    birth: np.datetime64 | None
    city: str
    gender: str
    mobile: str | None  # 11 digits, or an E.164 foreign number
    email: str | None
    landline: str | None = None  # area code + 8 digits, shared within a household
    family_email: str | None = None
    group: str = "single"
    group_id: str = ""


class _Maker:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.used_mobiles: set[str] = set()
        self.used_emails: set[str] = set()
        self.used_births: dict[str, set[np.datetime64]] = {}

    # -- draws ----------------------------------------------------------------------------
    def pick(self, pool: list[tuple[str, ...]], weight_at: int = -1) -> tuple[str, ...]:
        weights = np.array([float(p[weight_at]) for p in pool])
        return pool[int(self.rng.choice(len(pool), p=weights / weights.sum()))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def birth(self, mean_age: float = 38.0, sd: float = 13.0) -> np.datetime64:
        age = float(np.clip(self.rng.normal(mean_age, sd), 1.0, 90.0))
        days = int(age * 365.25 + self.rng.integers(0, 365))
        return np.datetime64("2025-01-01") - np.timedelta64(days, "D")

    def mobile(self) -> str:
        while True:
            prefix = _MOBILE_PREFIXES[int(self.rng.integers(0, len(_MOBILE_PREFIXES)))]
            number = prefix + "".join(str(d) for d in self.rng.integers(0, 10, 8))
            if number not in self.used_mobiles and len(set(number[3:])) > 2:
                self.used_mobiles.add(number)
                return number

    def landline(self, city: str) -> str:
        code = next(c for name, _, c in _CITIES if name == city)
        while True:
            number = (
                code
                + str(int(self.rng.integers(2, 9)))
                + "".join(str(d) for d in self.rng.integers(0, 10, 7))
            )
            if number not in self.used_mobiles:
                self.used_mobiles.add(number)
                return number

    def email(self, local: str) -> str:
        local = _ascii(local).lower().replace(" ", "").replace("'", "")
        while True:
            tail = str(int(self.rng.integers(1, 9999))) if self.chance(0.8) else ""
            sep = "." if self.chance(0.2) else ""
            address = f"{local}{sep}{tail}@{_DOMAINS[int(self.rng.integers(0, len(_DOMAINS)))]}"
            if address not in self.used_emails:
                self.used_emails.add(address)
                return address

    def city(self) -> str:
        return str(self.pick([(c, w) for c, w, _ in _CITIES])[0])

    def person(
        self, person_id: str, *, city: str | None = None, style: str | None = None
    ) -> _Person:
        female = self.chance(0.5)
        if style is None:
            style = "western" if self.chance(0.15) else "pinyin" if self.chance(0.2) else "hanzi"
        if style == "western":
            last = str(self.pick(_WEST_SURNAMES)[0])
            first = str(self.pick(_WEST_FIRST_F if female else _WEST_FIRST_M)[0])
            latin_first, latin_last = _ascii(first), _ascii(last)
        else:
            family = self.pick(_FAMILY)
            given = self.pick(_GIVEN_F if female else _GIVEN_M)
            latin_first, latin_last = str(given[1]), str(family[1])
            first, last = (
                (latin_first, latin_last) if style == "pinyin" else (str(given[0]), str(family[0]))
            )
        mobile = self.mobile() if self.chance(0.92) else None
        if style == "western" and mobile and self.chance(0.3):
            mobile = "+44 77" + "".join(str(d) for d in self.rng.integers(0, 10, 8))
        email = self.email(
            latin_first + latin_last if self.chance(0.6) else latin_last + latin_first[:1]
        )
        return _Person(
            person_id=person_id,
            first=first,
            last=last,
            style=style,
            latin=latin_last,
            birth=self.birth() if self.chance(0.9) else None,
            city=city or self.city(),
            gender="F" if female else "M",
            mobile=mobile,
            email=email if self.chance(0.75) else None,
        )

    def household(self, first_id: int, hid: str) -> list[_Person]:
        """Two to four people at one address sharing a fixed line, an e-mail or both."""
        size = int(self.rng.choice([2, 3, 4], p=[0.45, 0.35, 0.2]))
        head = self.person(f"M-{first_id:07d}")
        line = self.landline(head.city) if self.chance(0.65) else None
        family_email = self.email(head.latin + "jia") if line is None or self.chance(0.3) else None
        # Parents 45 to 75 years old: their children (22 to 38 years younger) are born by 2018.
        parent_birth = np.datetime64("2025-01-01") - np.timedelta64(
            int(self.rng.integers(45 * 365, 75 * 365)), "D"
        )
        head.birth = parent_birth
        members = [head]
        for k in range(1, size):
            member = self.person(f"M-{first_id + k:07d}", city=head.city, style=head.style)
            if self.chance(0.7):
                member.last = head.last  # children and some spouses share the family name
            while member.first in {m.first for m in members}:
                member.first = self.person("", style=head.style).first
            # A spouse within seven years of the head, children 22 to 38 years younger.
            days = self.rng.integers(-2500, 2500) if k == 1 else self.rng.integers(8000, 14000)
            member.birth = parent_birth + np.timedelta64(int(days), "D")
            members.append(member)
        for member in members:
            member.landline, member.family_email = line, family_email
            if line and self.chance(0.35):
                member.mobile = None  # reachable only on the family's fixed line
            member.group, member.group_id = "household", hid
        return members

    # -- record rendering -----------------------------------------------------------------
    def records_of(self, person: _Person) -> list[dict[str, str | None]]:
        count = 1 + int(self.rng.choice(4, p=[0.58, 0.30, 0.09, 0.03]))
        return [self.render(person, duplicate=i > 0) for i in range(count)]

    def render(self, p: _Person, *, duplicate: bool) -> dict[str, str | None]:
        first, last = p.first, p.last
        if duplicate and self.chance(0.25):
            if self.chance(0.5):
                first = self.typo(first)
            else:
                last = self.typo(last)
        if p.style == "pinyin" and self.chance(0.15):
            first, last = last, first  # "Wei Wang" typed as given name "Wang", family "Wei"
        if p.style != "hanzi" and self.chance(0.15):
            first, last = first.upper(), last.upper()
        if duplicate and p.style == "western" and self.chance(0.3):
            first, last = _ascii(first), _ascii(last)  # a second system drops the accents
        if self.chance(0.05):
            first = f" {first} "

        phone: str | None
        if p.landline and (p.mobile is None or self.chance(0.6)):
            phone = self.fixed_spelling(p.landline)
        else:
            phone = self.mobile_spelling(p.mobile) if p.mobile else None
        if phone and duplicate and self.chance(0.03):
            phone = self.wrong_digit(phone)
        if self.chance(0.12 if duplicate else 0.05):
            phone = None

        email = p.family_email if p.family_email and self.chance(0.7) else p.email
        if email is not None:
            if self.chance(0.35 if duplicate else 0.15):
                email = None  # missing e-mails
            elif duplicate and self.chance(0.08):
                local, domain = email.split("@")
                email = f"{local}@{_DOMAIN_TYPOS.get(domain, domain)}"
            elif self.chance(0.15):
                email = email.upper() if self.chance(0.5) else f" {email.capitalize()} "

        birth = None
        if p.birth is not None and self.chance(0.85 if duplicate else 0.95):
            birth = self.date_spelling(p.birth, swap=duplicate and self.chance(0.1))

        city: str | None = p.city
        if self.chance(0.08):
            city = None
        elif self.chance(0.1):
            city = p.city + "市"
        gender: str | None = p.gender
        if self.chance(0.3):
            gender = {"F": "女", "M": "男"}[p.gender] if self.chance(0.5) else None
        return {
            "first_name": first,
            "last_name": last,
            "email": email,
            "phone": phone,
            "birth_date": birth,
            "city": city,
            "gender": gender,
        }

    def typo(self, word: str) -> str:
        """One-letter typo: neighbours swapped, one dropped or one replaced (not the first)."""
        if word and not word[0].isascii():
            at = int(self.rng.integers(0, len(word)))
            wrong = _HOMOPHONES.get(word[at], "某")
            return word[:at] + wrong[int(self.rng.integers(0, len(wrong)))] + word[at + 1 :]
        if len(word) < 3:
            return word
        op = int(self.rng.integers(0, 3))
        at = int(self.rng.integers(1, len(word) - 1))
        if op == 0:
            return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
        if op == 1:
            return word[:at] + word[at + 1 :]
        letter = "abcdefghijklmnopqrstuvwxyz"[int(self.rng.integers(0, 26))]
        return word[:at] + letter + word[at + 1 :]

    def wrong_digit(self, phone: str) -> str:
        spots = [i for i, c in enumerate(phone) if c.isdigit()][-6:]
        at = spots[int(self.rng.integers(0, len(spots)))]
        digit = str((int(phone[at]) + int(self.rng.integers(1, 10))) % 10)
        return phone[:at] + digit + phone[at + 1 :]

    def mobile_spelling(self, number: str) -> str:
        if number.startswith("+"):
            return number
        a, b, c = number[:3], number[3:7], number[7:]
        spellings = [
            number,
            f"{a}-{b}-{c}",
            f"+86 {a} {b} {c}",
            f"{a} {b} {c}",
            f"+86{number}",
            f"0086 {number}",
        ]
        return spellings[int(self.rng.integers(0, len(spellings)))]

    def fixed_spelling(self, number: str) -> str:
        code_length = 2 if number[:2] in _TWO_DIGIT_AREAS else 3
        code, local = number[:code_length], number[code_length:]
        spellings = [
            f"0{code}-{local}",
            f"(0{code}) {local[:4]} {local[4:]}",
            f"+86 {code} {local[:4]} {local[4:]}",
            f"0{code}{local}",
        ]
        return spellings[int(self.rng.integers(0, len(spellings)))]

    def date_spelling(self, day: np.datetime64, *, swap: bool) -> str:
        y, m, d = (int(x) for x in str(day).split("-"))
        if swap and d <= 12 and d != m:
            m, d = d, m  # the typist swapped day and month
        style = int(self.rng.choice(6, p=[0.45, 0.15, 0.1, 0.15, 0.1, 0.05]))
        if style == 0:
            return f"{y:04d}-{m:02d}-{d:02d}"
        if style == 1:
            return f"{y}/{m}/{d}"
        if style == 2:
            return f"{y}年{m}月{d}日"
        if style == 3:
            return f"{d:02d}/{m:02d}/{y}"  # day/month/year
        if style == 4:
            return f"{m:02d}/{d:02d}/{y}"  # month/day/year
        return f"{y:04d}{m:02d}{d:02d}"


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def make_messy_records(
    persons: int, *, seed: int, namesakes: int = 30, household_share: float = 0.15
) -> MessyRecords:
    """Records of ``persons`` people: ordinary ones, namesake groups and households.

    For every 400 persons (at least twice) ``namesakes`` more people share one of eight common
    names in one city (王伟 in 北京, David Smith in 上海, ...), each with a birth date of their
    own; ``household_share`` of the persons live in households of two to four.
    """
    maker = _Maker(seed)
    people: list[_Person] = []
    groups = max(2, persons // 400)
    for g in range(groups):
        name = g % len(_NAMESAKES)  # later groups add people to the earlier names
        first, last, city, style = _NAMESAKES[name]
        births = maker.used_births.setdefault(f"N-{name}", set())
        for _ in range(namesakes):
            p = maker.person(f"M-{len(people):07d}", city=city, style=style)
            p.first, p.last = first, last
            p.group, p.group_id = "namesake", f"N-{name}"
            # Distinct people: a birth date (nor its day/month mirror) no other namesake has.
            while p.birth is None or p.birth in births:
                p.birth = maker.birth()
            births.add(p.birth)
            births.add(_mirror(p.birth))
            people.append(p)
    households = 0
    while len(people) < persons:
        if maker.chance(household_share / 2.8):  # 2.8 members on average
            people.extend(maker.household(len(people), f"H-{households:05d}"))
            households += 1
        else:
            people.append(maker.person(f"M-{len(people):07d}"))

    rows: dict[str, list[str | None]] = {c: [] for c in COLUMNS}
    truth: dict[str, list[str]] = {"record_id": [], "person_id": [], "group": [], "group_id": []}
    records = [(p, r) for p in people for r in maker.records_of(p)]
    order = maker.rng.permutation(len(records))
    for n, i in enumerate(order):
        person, record = records[int(i)]
        record_id = f"R{n:07d}"
        rows["record_id"].append(record_id)
        for column in COLUMNS[1:]:
            rows[column].append(record[column])
        truth["record_id"].append(record_id)
        truth["person_id"].append(person.person_id)
        truth["group"].append(person.group)
        truth["group_id"].append(person.group_id)
    table = pa.table({c: pa.array(v, pa.string()) for c, v in rows.items()})
    return MessyRecords(table, pa.table(truth), seed)


def _mirror(day: np.datetime64) -> np.datetime64:
    y, m, d = (int(x) for x in str(day).split("-"))
    if d > 12:
        return day
    return np.datetime64(f"{y:04d}-{d:02d}-{m:02d}")


def generated_records(customers: int, *, seed: int, region: str = "CN") -> MessyRecords:
    """The seeded generator's customer records (3 % of persons typed twice), as text."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), customers=customers, days=1, seed=seed, region=region)
        customers_table = pq.read_table(Path(tmp) / "customers.parquet")
        truth = pq.read_table(Path(tmp) / "identity_truth.parquet")
    person = dict(
        zip(truth["customer_id"].to_pylist(), truth["person_id"].to_pylist(), strict=True)
    )
    ids = customers_table["customer_id"].to_pylist()
    records = pa.table(
        {
            "record_id": pa.array(ids, pa.string()),
            "first_name": customers_table["first_name"].cast(pa.string()),
            "last_name": customers_table["last_name"].cast(pa.string()),
            "email": customers_table["email"].cast(pa.string()),
            "phone": customers_table["phone"].cast(pa.string()),
            "birth_date": customers_table["birth_date"].cast(pa.string()),
            "city": customers_table["city"].cast(pa.string()),
            "gender": customers_table["gender"].cast(pa.string()),
        }
    )
    truth_table = pa.table(
        {
            "record_id": ids,
            "person_id": [f"G{seed}-{person[i]}" for i in ids],
            "group": ["generated"] * len(ids),
            "group_id": [""] * len(ids),
        }
    )
    return MessyRecords(records, truth_table, seed)


def combine(*parts: MessyRecords) -> MessyRecords:
    """One table of records (and of truth) from several parts; record ids must not collide."""
    records = pa.concat_tables([p.records for p in parts])
    truth = pa.concat_tables([p.truth for p in parts])
    if len(set(records["record_id"].to_pylist())) != records.num_rows:
        raise ValueError("record ids collide between parts")
    return MessyRecords(records, truth, parts[0].seed)


@dataclass(frozen=True)
class PairScores:
    """Pairwise precision and recall of predicted clusters against the truth."""

    precision: float
    recall: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    false_merges_namesake: int  # predicted together, different people of one namesake group
    false_merges_household: int  # predicted together, different people of one household
    false_merges_other: int

    def to_dict(self) -> dict[str, float | int]:
        """The scores as plain numbers."""
        return dict(self.__dict__)


def pair_scores(clusters: pa.Table, truth: pa.Table, *, id_column: str = "id") -> PairScores:
    """Count record pairs within predicted clusters and within true persons (pairwise P/R)."""
    cluster_of = dict(
        zip(clusters[id_column].to_pylist(), clusters["cluster_id"].to_pylist(), strict=True)
    )
    person_of = dict(
        zip(truth["record_id"].to_pylist(), truth["person_id"].to_pylist(), strict=True)
    )
    group_of = dict(
        zip(
            truth["person_id"].to_pylist(),
            zip(truth["group"].to_pylist(), truth["group_id"].to_pylist(), strict=True),
            strict=True,
        )
    )

    def pairs(key: dict[str, str]) -> set[tuple[str, str]]:
        members: dict[str, list[str]] = {}
        for record, k in key.items():
            members.setdefault(k, []).append(record)
        out: set[tuple[str, str]] = set()
        for group in members.values():
            group.sort()
            out.update((a, b) for i, a in enumerate(group) for b in group[i + 1 :])
        return out

    true_pairs = pairs(person_of)
    predicted = pairs(cluster_of)
    correct = predicted & true_pairs
    namesake = household = other = 0
    for a, b in predicted - true_pairs:
        ga, gb = group_of[person_of[a]], group_of[person_of[b]]
        if ga == gb and ga[0] == "namesake":
            namesake += 1
        elif ga == gb and ga[0] == "household":
            household += 1
        else:
            other += 1
    return PairScores(
        precision=len(correct) / len(predicted) if predicted else 1.0,
        recall=len(correct) / len(true_pairs) if true_pairs else 1.0,
        true_pairs=len(true_pairs),
        predicted_pairs=len(predicted),
        correct_pairs=len(correct),
        false_merges_namesake=namesake,
        false_merges_household=household,
        false_merges_other=other,
    )
