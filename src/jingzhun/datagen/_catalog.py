"""Reference data the generator draws from: product categories, regions, names, cities.

Everything here is small, fixed and fictional (brands, shops); the distributions that use it
live in the modules that sample.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Category:
    """A product category: its brands, product nouns and price distribution.

    Prices are lognormal with median ``median_usd`` (converted by the region's rate) and shape
    ``sigma``; ``quantity_mean`` is the mean number of extra units per line (groceries come in
    several) and ``return_rate`` the chance that a bought line is sent back.
    """

    name: str
    weight: float
    median_usd: float
    sigma: float
    quantity_mean: float
    return_rate: float
    brands: tuple[str, ...]
    nouns: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category(
        "apparel",
        0.20,
        32.0,
        0.6,
        0.15,
        0.060,
        ("Linen & Loom", "Urban Thread", "Qingshan", "Maple Row", "Sora", "Northbay"),
        ("T-Shirt", "Jeans", "Hoodie", "Dress", "Jacket", "Scarf", "Sneakers", "Socks 3-Pack"),
    ),
    Category(
        "beauty",
        0.13,
        22.0,
        0.7,
        0.25,
        0.020,
        ("Lumière", "Yunshang", "Petal & Dew", "Aqua Vera", "Rouge Nine"),
        (
            "Face Serum",
            "Lipstick",
            "Sunscreen SPF50",
            "Sheet Masks 10-Pack",
            "Cleanser",
            "Eye Cream",
        ),
    ),
    Category(
        "electronics",
        0.10,
        95.0,
        1.0,
        0.05,
        0.035,
        ("Voltra", "Kestrel", "Mingtech", "Pixelo", "Soundwave"),
        ("Wireless Earbuds", "Charger", "Smartwatch", "Speaker", "Power Bank", "Tablet", "Cable"),
    ),
    Category(
        "home",
        0.11,
        38.0,
        0.8,
        0.10,
        0.020,
        ("Hearth & Co", "Nordhem", "Bamboo Lane", "Casa Viva"),
        ("Duvet Cover", "Cookware Set", "Table Lamp", "Storage Box", "Towel Set", "Rice Cooker"),
    ),
    Category(
        "grocery",
        0.16,
        6.0,
        0.6,
        0.90,
        0.004,
        ("Green Valley", "Golden Harvest", "Tianfu", "Daily Fresh", "Oak & Honey"),
        ("Oolong Tea", "Coffee Beans", "Olive Oil", "Jasmine Rice 5kg", "Dark Chocolate", "Nuts"),
    ),
    Category(
        "toys",
        0.06,
        18.0,
        0.8,
        0.10,
        0.015,
        ("Brickster", "Little Panda", "Funbox", "Starling"),
        ("Building Blocks", "Plush Panda", "Puzzle 1000pc", "RC Car", "Board Game"),
    ),
    Category(
        "sports",
        0.08,
        30.0,
        0.9,
        0.10,
        0.030,
        ("Peakline", "Stride", "Longma", "Tidal"),
        ("Yoga Mat", "Running Shoes", "Dumbbells", "Water Bottle", "Badminton Racket"),
    ),
    Category(
        "books",
        0.06,
        12.0,
        0.4,
        0.15,
        0.010,
        ("Lantern Press", "Red Pine Books", "Harbor House", "Inkwell"),
        ("Novel", "Cookbook", "Picture Book", "Travel Guide", "Business Handbook", "Poems"),
    ),
    Category(
        "pet",
        0.05,
        15.0,
        0.7,
        0.50,
        0.008,
        ("Pawsome", "Happy Tail", "Mao Mao"),
        ("Cat Food 2kg", "Dog Treats", "Cat Litter", "Pet Bed", "Chew Toy"),
    ),
    Category(
        "baby",
        0.05,
        20.0,
        0.7,
        0.40,
        0.015,
        ("Tiny Steps", "Bao Bei", "Cloudsoft"),
        ("Diapers 60-Pack", "Baby Wipes", "Formula 900g", "Baby Bottle", "Romper"),
    ),
)

ADJECTIVES: tuple[str, ...] = (
    "Classic",
    "Essential",
    "Premium",
    "Everyday",
    "Pro",
    "Lite",
    "Deluxe",
    "Organic",
    "Slim",
    "Eco",
    "Signature",
    "Mini",
    "Max",
    "Air",
    "Ultra",
)

CHANNELS: tuple[str, ...] = ("web", "app", "store", "marketplace")
WEB, APP, STORE, MARKETPLACE = range(4)

EVENT_TYPES: tuple[str, ...] = (
    "page",
    "app_opened",
    "product_viewed",
    "added_to_cart",
    "checkout_started",
    "order_completed",
    "identify",
    "alias",
    "email_opened",
    "email_clicked",
)
(
    PAGE,
    APP_OPENED,
    PRODUCT_VIEWED,
    ADDED_TO_CART,
    CHECKOUT_STARTED,
    ORDER_COMPLETED,
    IDENTIFY,
    ALIAS,
    EMAIL_OPENED,
    EMAIL_CLICKED,
) = range(len(EVENT_TYPES))
EVENT_CHANNELS: tuple[str, ...] = ("web", "app", "email")


@dataclass(frozen=True)
class City:
    """A city customers live in and stores stand in."""

    name: str
    country: str
    timezone: str
    weight: float
    stores: int
    area_codes: tuple[int, ...] = ()


@dataclass(frozen=True)
class Phones:
    """How a region writes phone numbers.

    ``formats`` are templates where ``d`` stands for a digit of the national number, with the
    share of primary records written that way (a format with share 0 appears only on second
    records, typed again by hand); ``prefixes`` are the three leading digits of mobile numbers
    (CN, GB) or, when empty, the city's area codes are used (US); ``placeholders`` are the junk
    numbers shop staff type when a customer gives none; ``shares`` the chance that a primary
    online / till record has a phone number.
    """

    digits: int
    formats: tuple[tuple[str, float], ...]
    prefixes: tuple[int, ...]
    placeholders: tuple[int, ...]
    shares: tuple[float, float]


@dataclass(frozen=True)
class Names:
    """A region's names as (written form, e-mail-safe Latin form, weight)."""

    family: tuple[tuple[str, str, float], ...]
    female: tuple[tuple[str, str, float], ...]
    male: tuple[tuple[str, str, float], ...]
    # CN given names are one or two characters combined; US and GB first names are whole.
    combine_given: bool


@dataclass(frozen=True)
class Region:
    """Everything that differs between markets: money, people, places, holidays."""

    code: str
    currency: str
    usd_rate: float  # local currency units per US dollar
    charm_cents: tuple[int, ...]  # price endings in 1/100 (99 -> 9.99, 90 -> 9.90)
    timezone: str  # where the company sits: e-mail send times, guests
    cities: tuple[City, ...]
    names: Names
    email_domains: tuple[tuple[str, float, str], ...]  # domain, share, a typo of it
    numeric_email_domain: str | None  # QQ mail: the local part is the QQ number
    phones: Phones
    shared_emails: tuple[str, ...]
    mean_age: float
    sd_age: float

    def spikes(self, day: dt.date) -> float:
        """Extra demand on shopping festivals and holidays (1.0 = an ordinary day)."""
        return _SPIKES[self.code](day)


# Chinese New Year's day; the week after is quiet and the days before busy.
_CNY = {
    2020: dt.date(2020, 1, 25),
    2021: dt.date(2021, 2, 12),
    2022: dt.date(2022, 2, 1),
    2023: dt.date(2023, 1, 22),
    2024: dt.date(2024, 2, 10),
    2025: dt.date(2025, 1, 29),
    2026: dt.date(2026, 2, 17),
    2027: dt.date(2027, 2, 6),
    2028: dt.date(2028, 1, 26),
    2029: dt.date(2029, 2, 13),
    2030: dt.date(2030, 2, 3),
}


def _cn_spikes(day: dt.date) -> float:
    # Singles' Day (11.11) is the year's largest sale, 618 (JD's anniversary) the second,
    # Double 12 the third; pre-sales start the evening before.
    factor = {
        (11, 10): 1.8,
        (11, 11): 5.0,
        (11, 12): 1.4,
        (6, 17): 1.4,
        (6, 18): 2.6,
        (12, 12): 2.0,
    }.get((day.month, day.day), 1.0)
    cny = _CNY.get(day.year)
    if cny is not None:
        offset = (day - cny).days
        if 0 <= offset < 7:
            factor *= 0.55
        elif -12 <= offset < 0:
            factor *= 1.25
    return factor


def _us_spikes(day: dt.date) -> float:
    # Black Friday is the day after the fourth Thursday of November; Cyber Monday follows.
    nov1 = dt.date(day.year, 11, 1)
    thanksgiving = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 21)
    offset = (day - thanksgiving).days
    factor = {0: 0.7, 1: 4.0, 2: 2.0, 3: 1.6, 4: 3.0}.get(offset, 1.0)
    if day.month == 12 and 1 <= day.day <= 21:
        factor *= 1.2
    elif day.month == 12 and day.day == 25:
        factor *= 0.4
    elif day.month == 7 and 9 <= day.day <= 10:  # a mid-July marketplace sale
        factor *= 1.7
    return factor


def _gb_spikes(day: dt.date) -> float:
    # The US calendar's British cousin: Black Friday (same day as in the US, without a
    # Thanksgiving lull before it) and Cyber Monday, December's Christmas shopping, a quiet
    # Christmas Day (large shops must close), the Boxing Day sales and the week after, and
    # the same mid-July marketplace sale. No Singles' Day.
    nov1 = dt.date(day.year, 11, 1)
    black_friday = nov1 + dt.timedelta(days=(3 - nov1.weekday()) % 7 + 22)
    offset = (day - black_friday).days
    factor = {0: 3.5, 1: 1.8, 2: 1.5, 3: 2.6}.get(offset, 1.0)
    if day.month == 12 and 1 <= day.day <= 21:
        factor *= 1.2
    elif day.month == 12 and day.day == 25:
        factor *= 0.35
    elif day.month == 12 and day.day == 26:
        factor *= 2.6
    elif day.month == 12 and 27 <= day.day <= 31:
        factor *= 1.3
    elif day.month == 7 and 9 <= day.day <= 10:
        factor *= 1.7
    return factor


_SPIKES = {"CN": _cn_spikes, "US": _us_spikes, "GB": _gb_spikes}


# Demand by month (Jan..Dec) and weekday (Mon..Sun), on top of the spikes; the year ends high.
MONTH_FACTORS = (0.85, 0.82, 0.90, 0.92, 0.95, 1.00, 0.95, 0.95, 0.98, 1.02, 1.22, 1.38)
WEEKDAY_FACTORS = (0.92, 0.90, 0.93, 0.96, 1.03, 1.17, 1.14)
# Orders by local hour: quiet at night, a lunch bump and an evening peak.
HOUR_WEIGHTS = (
    0.9,
    0.5,
    0.3,
    0.2,
    0.2,
    0.3,
    0.6,
    1.2,
    2.2,
    3.2,
    3.8,
    4.0,
    4.6,
    4.2,
    3.8,
    3.8,
    3.9,
    4.0,
    4.3,
    5.0,
    5.8,
    6.0,
    4.8,
    2.4,
)


def _zipf(
    items: list[tuple[str, str]], exponent: float = 0.8
) -> tuple[tuple[str, str, float], ...]:
    return tuple((a, b, 1.0 / (rank + 1) ** exponent) for rank, (a, b) in enumerate(items))


def _pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for token in text.split():
        written, latin = token.split(":")
        out.append((written, latin))
    return out


_CN_FAMILY = _pairs(
    "王:wang 李:li 张:zhang 刘:liu 陈:chen 杨:yang 黄:huang 赵:zhao 吴:wu 周:zhou 徐:xu 孙:sun "
    "马:ma 朱:zhu 胡:hu 郭:guo 何:he 高:gao 林:lin 罗:luo 郑:zheng 梁:liang 谢:xie 宋:song "
    "唐:tang 许:xu 韩:han 冯:feng 邓:deng 曹:cao 彭:peng 曾:zeng 肖:xiao 田:tian 董:dong "
    "袁:yuan 潘:pan 于:yu 蒋:jiang 蔡:cai 余:yu 杜:du 叶:ye 程:cheng 欧阳:ouyang 司马:sima"
)
_CN_FEMALE = _pairs(
    "芳:fang 娜:na 敏:min 静:jing 丽:li 艳:yan 婷:ting 雪:xue 慧:hui 玲:ling 燕:yan 倩:qian "
    "琳:lin 欣:xin 怡:yi 佳:jia 梅:mei 颖:ying 洁:jie 萍:ping 红:hong 兰:lan 月:yue 媛:yuan "
    "雯:wen 诗:shi 梦:meng 涵:han 思:si 欢:huan"
)
_CN_MALE = _pairs(
    "伟:wei 强:qiang 磊:lei 军:jun 洋:yang 勇:yong 杰:jie 涛:tao 明:ming 超:chao 刚:gang "
    "平:ping 辉:hui 鹏:peng 华:hua 飞:fei 鑫:xin 波:bo 斌:bin 宇:yu 浩:hao 凯:kai 健:jian "
    "俊:jun 峰:feng 建:jian 国:guo 志:zhi 文:wen 博:bo 晨:chen 睿:rui 轩:xuan 成:cheng"
)


def _given(chars: list[tuple[str, str]]) -> tuple[tuple[str, str, float], ...]:
    # One in three given names is a single character; the rest pair two different ones.
    weights = [1.0 / (rank + 1) ** 0.7 for rank in range(len(chars))]
    singles = [(c, p, w) for (c, p), w in zip(chars, weights, strict=True)]
    pairs = [
        (ca + cb, pa + pb, wa * wb)
        for (ca, pa, wa), (cb, pb, wb) in itertools.permutations(singles, 2)
    ]
    single_total = sum(w for _, _, w in singles)
    pair_total = sum(w for _, _, w in pairs)
    return tuple(
        [(c, p, 0.35 * w / single_total) for c, p, w in singles]
        + [(c, p, 0.65 * w / pair_total) for c, p, w in pairs]
    )


def _latin(text: str) -> list[tuple[str, str]]:
    return [(n, n.lower().replace("'", "")) for n in text.split()]


_US_FAMILY = _latin(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris "
    "Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill "
    "Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Chen Kim Patel "
    "O'Brien Murphy Cook Rogers Morgan Cooper Peterson Reed Bailey Bell Howard Ward Cox Richardson"
)
_US_FEMALE = _latin(
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy Betty "
    "Sandra Ashley Emily Michelle Amanda Melissa Stephanie Rebecca Laura Emma Olivia Sophia "
    "Isabella Hannah Grace Chloe Natalie Megan Rachel Katherine Victoria Lauren Julia"
)
_US_MALE = _latin(
    "James Robert John Michael David William Richard Joseph Thomas Christopher Charles Daniel "
    "Matthew Anthony Mark Steven Andrew Joshua Kevin Brian Ryan Jacob Nicholas Eric Jonathan "
    "Justin Brandon Samuel Benjamin Ethan Alexander Tyler Aaron Nathan Patrick Gregory"
)


# Great Britain: the most frequent surnames of England, Wales, Scotland and Northern Ireland in
# about their order, with the South Asian, African, Chinese and Polish names of today's UK
# among them; first names span the generations (Sarah and David next to Olivia and Noah).
_GB_FAMILY = _latin(
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson "
    "Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson "
    "Wood Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen "
    "James Scott Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook "
    "Carter Richardson Bailey Collins Bell Shaw Murphy Miller Cox Richards Khan Marshall "
    "Anderson Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray "
    "Mason Ali Hunt Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd "
    "Butler Russell Barker Fisher Stewart Stevens Jenkins Murray Dixon Harvey Ahmed Reid "
    "MacDonald Robertson Fraser O'Neill Kaur Rahman Doherty Shah Chowdhury Sharma Nowak "
    "Okafor Chen Mensah Kowalski Nguyen Adeyemi Wong"
)
_GB_FEMALE = _latin(
    "Sarah Emma Laura Claire Rebecca Emily Jessica Charlotte Sophie Hannah Lucy Amy Olivia "
    "Rachel Nicola Louise Helen Amelia Karen Susan Julie Chloe Gemma Lisa Michelle Victoria "
    "Katie Lauren Joanne Isla Grace Elizabeth Ava Megan Jennifer Margaret Lily Ella Zoe "
    "Samantha Catherine Fiona Freya Jade Kirsty Alison Poppy Mia Niamh Fatima Anna Aisha Sian "
    "Siobhan Rhiannon Zara Priya Eilidh Maryam Amira Agnieszka"
)
_GB_MALE = _latin(
    "David James John Michael Paul Andrew Daniel Thomas Mark Richard Christopher Matthew Robert "
    "Oliver Jack Stephen Peter George Harry William Ian Steven Simon Samuel Joshua Adam Benjamin "
    "Gary Craig Lee Scott Stuart Jamie Charlie Noah Muhammad Callum Connor Liam Ryan Lewis Alfie "
    "Oscar Leo Jacob Dylan Kieran Sean Rhys Owen Gareth Ewan Mohammed Aidan Ali Omar Hamish "
    "Arjun Jakub Luca Tomasz Kwame Dafydd"
)


@cache
def region_data(code: str) -> Region:
    """The reference data of one supported market (``CN``, ``US`` or ``GB``)."""
    if code == "CN":
        return Region(
            code="CN",
            currency="CNY",
            usd_rate=7.0,
            charm_cents=(0, 0, 90, 80, 99),
            timezone="Asia/Shanghai",
            cities=(
                City("上海", "CN", "Asia/Shanghai", 0.10, 8),
                City("北京", "CN", "Asia/Shanghai", 0.10, 8),
                City("广州", "CN", "Asia/Shanghai", 0.07, 5),
                City("深圳", "CN", "Asia/Shanghai", 0.08, 6),
                City("成都", "CN", "Asia/Shanghai", 0.06, 4),
                City("杭州", "CN", "Asia/Shanghai", 0.06, 4),
                City("重庆", "CN", "Asia/Shanghai", 0.05, 3),
                City("武汉", "CN", "Asia/Shanghai", 0.05, 3),
                City("西安", "CN", "Asia/Shanghai", 0.04, 3),
                City("南京", "CN", "Asia/Shanghai", 0.05, 3),
                City("苏州", "CN", "Asia/Shanghai", 0.04, 3),
                City("天津", "CN", "Asia/Shanghai", 0.04, 2),
                City("长沙", "CN", "Asia/Shanghai", 0.03, 2),
                City("郑州", "CN", "Asia/Shanghai", 0.03, 2),
                City("青岛", "CN", "Asia/Shanghai", 0.03, 2),
                City("沈阳", "CN", "Asia/Shanghai", 0.03, 2),
                City("厦门", "CN", "Asia/Shanghai", 0.02, 1),
                City("昆明", "CN", "Asia/Shanghai", 0.02, 1),
                City("哈尔滨", "CN", "Asia/Shanghai", 0.02, 1),
                City("乌鲁木齐", "CN", "Asia/Urumqi", 0.015, 1),
                City("香港", "HK", "Asia/Hong_Kong", 0.03, 2),
                City("澳门", "MO", "Asia/Macau", 0.005, 1),
                City("新加坡", "SG", "Asia/Singapore", 0.01, 1),
            ),
            names=Names(
                family=_zipf(_CN_FAMILY, 0.9),
                female=_given(_CN_FEMALE),
                male=_given(_CN_MALE),
                combine_given=True,
            ),
            email_domains=(
                ("qq.com", 0.36, "qq.con"),
                ("163.com", 0.22, "163.cm"),
                ("126.com", 0.08, "126.con"),
                ("sina.com", 0.05, "sian.com"),
                ("gmail.com", 0.07, "gmial.com"),
                ("outlook.com", 0.06, "outlok.com"),
                ("foxmail.com", 0.06, "foxmial.com"),
                ("icloud.com", 0.10, "icoud.com"),
            ),
            numeric_email_domain="qq.com",
            phones=Phones(
                digits=11,
                formats=(
                    ("ddddddddddd", 0.80),
                    ("+86 ddd dddd dddd", 0.08),
                    ("+86ddddddddddd", 0.05),
                    ("ddd-dddd-dddd", 0.04),
                    ("ddd dddd dddd", 0.03),
                ),
                prefixes=(
                    *range(130, 140),
                    *(150, 151, 152, 155, 156, 157, 158, 159, 176, 177),
                    *range(180, 190),
                    *(198, 199),
                ),
                # 13800138000 is China Mobile's service line, a classic "any number" entry.
                placeholders=(13800000000, 13800138000),
                shares=(0.93, 0.95),
            ),
            shared_emails=("store@example.com", "noemail@example.com"),
            mean_age=34.0,
            sd_age=11.0,
        )
    if code == "US":
        return Region(
            code="US",
            currency="USD",
            usd_rate=1.0,
            charm_cents=(99, 99, 49, 0, 95),
            timezone="America/New_York",
            cities=(
                City("New York", "US", "America/New_York", 0.12, 8, (212, 718, 917, 646)),
                City("Los Angeles", "US", "America/Los_Angeles", 0.09, 6, (213, 310, 323)),
                City("Chicago", "US", "America/Chicago", 0.07, 5, (312, 773)),
                City("Houston", "US", "America/Chicago", 0.06, 4, (713, 832)),
                City("Phoenix", "US", "America/Phoenix", 0.04, 3, (602, 480)),
                City("Philadelphia", "US", "America/New_York", 0.04, 3, (215, 267)),
                City("San Antonio", "US", "America/Chicago", 0.03, 2, (210,)),
                City("San Diego", "US", "America/Los_Angeles", 0.03, 2, (619, 858)),
                City("Dallas", "US", "America/Chicago", 0.04, 3, (214, 972)),
                City("Seattle", "US", "America/Los_Angeles", 0.04, 3, (206, 425)),
                City("Denver", "US", "America/Denver", 0.03, 2, (303, 720)),
                City("Boston", "US", "America/New_York", 0.04, 3, (617, 857)),
                City("Miami", "US", "America/New_York", 0.04, 3, (305, 786)),
                City("Atlanta", "US", "America/New_York", 0.04, 3, (404, 678)),
                City("Detroit", "US", "America/Detroit", 0.02, 1, (313,)),
                City("Minneapolis", "US", "America/Chicago", 0.02, 1, (612,)),
                City("Portland", "US", "America/Los_Angeles", 0.02, 1, (503, 971)),
                City("Salt Lake City", "US", "America/Denver", 0.015, 1, (801,)),
                City("Anchorage", "US", "America/Anchorage", 0.005, 1, (907,)),
                City("Honolulu", "US", "Pacific/Honolulu", 0.01, 1, (808,)),
                City("Toronto", "CA", "America/Toronto", 0.02, 1, (416, 647)),
            ),
            names=Names(
                family=_zipf(_US_FAMILY, 0.7),
                female=_zipf(_US_FEMALE, 0.7),
                male=_zipf(_US_MALE, 0.7),
                combine_given=False,
            ),
            email_domains=(
                ("gmail.com", 0.45, "gmial.com"),
                ("yahoo.com", 0.14, "yaho.com"),
                ("outlook.com", 0.09, "outlok.com"),
                ("hotmail.com", 0.09, "hotmial.com"),
                ("icloud.com", 0.13, "icoud.com"),
                ("aol.com", 0.03, "aol.cm"),
                ("comcast.net", 0.07, "comcast.ne"),
            ),
            numeric_email_domain=None,
            phones=Phones(
                digits=10,
                formats=(
                    ("(ddd) ddd-dddd", 0.40),
                    ("ddd-ddd-dddd", 0.25),
                    ("+1 ddd ddd dddd", 0.10),
                    ("dddddddddd", 0.15),
                    ("+1dddddddddd", 0.10),
                ),
                prefixes=(),
                placeholders=(5555555555, 1234567890),
                shares=(0.60, 0.85),
            ),
            shared_emails=("store@example.com", "noemail@example.com"),
            mean_age=40.0,
            sd_age=14.0,
        )
    if code == "GB":
        return Region(
            code="GB",
            currency="GBP",
            usd_rate=0.8,
            charm_cents=(99, 99, 0, 0, 50),
            timezone="Europe/London",
            cities=(
                City("London", "GB", "Europe/London", 0.25, 10),
                City("Birmingham", "GB", "Europe/London", 0.07, 4),
                City("Manchester", "GB", "Europe/London", 0.07, 4),
                City("Leeds", "GB", "Europe/London", 0.045, 3),
                City("Glasgow", "GB", "Europe/London", 0.045, 3),
                City("Liverpool", "GB", "Europe/London", 0.035, 2),
                City("Bristol", "GB", "Europe/London", 0.035, 2),
                City("Newcastle upon Tyne", "GB", "Europe/London", 0.03, 2),
                City("Sheffield", "GB", "Europe/London", 0.03, 2),
                City("Nottingham", "GB", "Europe/London", 0.03, 2),
                City("Edinburgh", "GB", "Europe/London", 0.03, 2),
                City("Leicester", "GB", "Europe/London", 0.025, 2),
                City("Cardiff", "GB", "Europe/London", 0.025, 2),
                City("Belfast", "GB", "Europe/London", 0.025, 2),
                City("Southampton", "GB", "Europe/London", 0.02, 1),
                City("Coventry", "GB", "Europe/London", 0.015, 1),
                City("Brighton", "GB", "Europe/London", 0.015, 1),
                City("Portsmouth", "GB", "Europe/London", 0.012, 1),
                City("Hull", "GB", "Europe/London", 0.012, 1),
                City("Stoke-on-Trent", "GB", "Europe/London", 0.012, 1),
                City("Plymouth", "GB", "Europe/London", 0.012, 1),
                City("Reading", "GB", "Europe/London", 0.012, 1),
                City("Milton Keynes", "GB", "Europe/London", 0.01, 1),
                City("Norwich", "GB", "Europe/London", 0.01, 1),
                City("Aberdeen", "GB", "Europe/London", 0.01, 1),
                City("Swansea", "GB", "Europe/London", 0.01, 1),
                City("Cambridge", "GB", "Europe/London", 0.01, 1),
                City("Oxford", "GB", "Europe/London", 0.01, 1),
            ),
            names=Names(
                family=_zipf(_GB_FAMILY, 0.7),
                female=_zipf(_GB_FEMALE, 0.7),
                male=_zipf(_GB_MALE, 0.7),
                combine_given=False,
            ),
            email_domains=(
                ("gmail.com", 0.36, "gmial.com"),
                ("hotmail.co.uk", 0.14, "hotmail.co"),
                ("icloud.com", 0.12, "icoud.com"),
                ("outlook.com", 0.09, "outlok.com"),
                ("yahoo.co.uk", 0.08, "yaho.co.uk"),
                ("btinternet.com", 0.07, "btinternet.co"),
                ("googlemail.com", 0.05, "googlemial.com"),
                ("sky.com", 0.05, "sky.con"),
                ("live.co.uk", 0.04, "live.co.k"),
            ),
            numeric_email_domain=None,
            phones=Phones(
                # The ten digits after the trunk 0 (or +44) of a mobile number: 7xxx xxxxxx.
                # Systems store it as entered through a validating form, in E.164; typed again
                # by hand it comes in the national or a spaced international form.
                digits=10,
                formats=(
                    ("+44dddddddddd", 1.0),
                    ("0dddd dddddd", 0.0),
                    ("0dddddddddd", 0.0),
                    ("+44 dddd dddddd", 0.0),
                    ("+44 (0)dddd dddddd", 0.0),
                ),
                # Mobile ranges 071-075 and 077-079. 07700 holds Ofcom's drama numbers and
                # 07123 456789 is the keyboard run typed for "no number": both stay placeholders.
                prefixes=(*range(710, 712), *range(713, 760), *range(771, 800)),
                placeholders=(7700900000, 7123456789),
                shares=(0.75, 0.60),
            ),
            shared_emails=("store@example.com", "noemail@example.com"),
            mean_age=39.0,
            sd_age=14.0,
        )
    raise ValueError(f"region '{code}' is not supported; choose one of: {', '.join(REGIONS)}")


REGIONS: tuple[str, ...] = ("CN", "US", "GB")
