"""Which columns of a customer export hold a person's name, contacts and birth date.

A CRM export names its columns as its author liked: ``First Name``, ``first_name``, ``FIRSTNAME``,
``名``. Headers are compared after Unicode compatibility folding (full-width letters become
ASCII), lower-casing and dropping spaces, underscores, hyphens and dots, so all of those are one
name. Explicit mappings win over recognition; every other column is carried through untouched.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace

# Field -> header spellings (already folded by ``header_key``), most specific first.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "first_name": (
        "firstname", "givenname", "forename", "fname", "first", "名", "名字",
    ),
    "last_name": ("lastname", "surname", "familyname", "lname", "last", "姓", "姓氏"),
    "full_name": (
        "fullname", "name", "customername", "contactname", "personname",
        "姓名", "客户姓名", "客户名称", "联系人", "会员姓名",
    ),
    "email": ("email", "emailaddress", "mail", "邮箱", "电子邮箱", "电子邮件", "邮件", "邮箱地址"),
    "phone": (
        "phone", "phonenumber", "mobile", "mobilephone", "mobilenumber", "mobileno", "cell",
        "cellphone", "tel", "telephone", "telno", "手机", "手机号", "手机号码", "电话",
        "电话号码", "联系电话", "联系方式",
    ),
    "birth_date": (
        "birthdate", "dateofbirth", "dob", "birthday", "born", "生日", "出生日期", "出生年月日",
    ),
    "city": ("city", "town", "城市", "所在城市", "市"),
    "postcode": ("postcode", "postalcode", "zip", "zipcode", "邮编", "邮政编码"),
    "address": ("address", "streetaddress", "address1", "addressline1", "地址", "住址", "联系地址"),
    "gender": ("gender", "sex", "性别"),
}  # fmt: skip

# Chinese compound family names (复姓): a full name starting with one of these keeps both
# characters as the family name. The common ones of the Hundred Family Surnames (百家姓).
COMPOUND_SURNAMES = frozenset(
    [
        "欧阳", "司马", "诸葛", "上官", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "夏侯",
        "轩辕", "令狐", "司徒", "司空", "宇文", "端木", "独孤", "南宫", "西门", "百里", "呼延",
        "万俟", "闻人", "赫连", "钟离", "宗政", "濮阳", "太史", "申屠", "东郭", "第五", "拓跋",
        "左丘", "单于", "公冶", "澹台", "公羊", "闾丘", "仲孙", "叔孙", "乐正", "漆雕", "谷梁",
        "梁丘", "鲜于", "完颜",
    ]
)  # fmt: skip

_HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class ColumnMap:
    """Source column per person field (None: the export has no such column)."""

    first_name: str | None = None
    last_name: str | None = None
    full_name: str | None = None
    email: str | None = None
    phone: str | None = None
    birth_date: str | None = None
    city: str | None = None
    postcode: str | None = None
    address: str | None = None
    gender: str | None = None

    def mapped(self) -> dict[str, str]:
        """Field -> source column, only for fields the export has."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    @property
    def has_person_columns(self) -> bool:
        """True when at least one column says who a record is (a name, contact or birth date)."""
        return any(
            getattr(self, name) is not None
            for name in ("first_name", "last_name", "full_name", "email", "phone", "birth_date")
        )


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ColumnMap))


def header_key(header: str) -> str:
    """Fold a header for comparison: NFKC, lower case, no spaces, underscores, hyphens or dots."""
    folded = unicodedata.normalize("NFKC", header).lower()
    return re.sub(r"[\s_\-.·:：/()（）]+", "", folded)


def recognise_columns(
    columns: Sequence[str], overrides: Mapping[str, str | None] | None = None
) -> ColumnMap:
    """Map person fields to the export's columns by common header names, then apply overrides.

    Parameters
    ----------
    columns
        The export's header, in file order.
    overrides
        Field -> column, winning over recognition; a field mapped to None or "" is not used.

    Raises
    ------
    ValueError
        An override names an unknown field or a column the export does not have.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(FIELDS))
    if unknown:
        raise ValueError(f"unknown person field(s) {unknown}; known fields: {', '.join(FIELDS)}")
    missing = sorted(v for v in overrides.values() if v and v not in columns)
    if missing:
        raise ValueError(f"column(s) {missing} named in the mapping are not in the header")

    taken = {v for v in overrides.values() if v}
    by_key: dict[str, str] = {}
    for column in columns:
        by_key.setdefault(header_key(column), column)
    found: dict[str, str | None] = {}
    for field_name in FIELDS:
        if field_name in overrides:
            found[field_name] = overrides[field_name] or None
            continue
        for synonym in _SYNONYMS[field_name]:
            match = by_key.get(synonym)
            if match is not None and match not in taken:
                found[field_name] = match
                taken.add(match)
                break
    return replace(ColumnMap(), **found)


def split_full_name(name: str | None) -> tuple[str | None, str | None]:
    """Split a full name into (given name, family name).

    Hanzi names without spaces: the family name is the first character, or the first two for
    a compound family name (欧阳娜娜 -> 娜娜, 欧阳). ``约翰·史密斯`` (a transliterated Western
    name) splits at the dot, family name last. ``Smith, John`` puts the family name first.
    Otherwise the last space separates the family name ("Mary Ann Smith" -> "Mary Ann",
    "Smith"); a pinyin "Wang Wei" thus splits as given "Wang", family "Wei", which the matcher
    treats as the same name as "Wei Wang" (it compares sorted name tokens too).
    """
    if name is None:
        return None, None
    text = " ".join(unicodedata.normalize("NFKC", name).split())
    if not text:
        return None, None
    if "," in text:
        family, _, given = (part.strip() for part in text.partition(","))
        return given or None, family or None
    if "·" in text or "•" in text:
        parts = [p for p in re.split(r"[·•]", text) if p.strip()]
        if len(parts) >= 2:
            return " ".join(parts[:-1]).strip(), parts[-1].strip()
    compact = text.replace(" ", "")
    if _HAN.match(compact) and all(_HAN.match(ch) for ch in compact):
        cut = 2 if compact[:2] in COMPOUND_SURNAMES and len(compact) > 2 else 1
        if len(compact) == 1:
            return None, compact
        return compact[cut:], compact[:cut]
    given, _, family = text.rpartition(" ")
    return (given or None), family


def split_full_names(names: Iterable[str | None]) -> tuple[list[str | None], list[str | None]]:
    """Split many full names; see :func:`split_full_name`."""
    given: list[str | None] = []
    family: list[str | None] = []
    for name in names:
        g, f = split_full_name(name)
        given.append(g)
        family.append(f)
    return given, family
