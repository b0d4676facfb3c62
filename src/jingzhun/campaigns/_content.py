"""Message content: templates per channel, rendered in a sandbox with fallbacks, SMS counting.

A template (``templates/NAME.yml``) has a subject, an HTML and a text part for e-mail and an
SMS part, written in Jinja2 and rendered in ``ImmutableSandboxedEnvironment``: a template can
read the customer's profile, their recommendations, the offer and links, and nothing of
Python's internals. A field the customer has no value for (missing, None or blank) prints the
template's fallback; without one, rendering stops with an error naming the template, part,
line and field. So a message never says "Hi None".
"""

from __future__ import annotations

import contextlib
import math
import re
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar, Literal, NoReturn

import ibis.expr.types as ir
import pyarrow as pa
import yaml
from jinja2 import FunctionLoader, Template, TemplateError, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.runtime import Context, Undefined, missing
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import pass_context

from jingzhun.campaigns._offers import Offer
from jingzhun.core import ExitCode, JingzhunError, NotFoundError, SpecError, SpecProblem
from jingzhun.core._yaml import load_yaml
from jingzhun.engine import Engine

PARTS = ("subject", "html", "text", "sms")
CHANNELS = ("email", "sms")
# The names a template may use; message_context fills them.
CONTEXT_NAMES = (
    "customer",
    "recommendations",
    "offer",
    "campaign",
    "links",
    "unsubscribe_url",
    "tracking_pixel_url",
    "currency",
)
TOP_RECOMMENDATIONS = 3
MAX_TEXT = 100_000  # the longest text a template may build with `*` (sandbox limit)
_TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_INDEX = re.compile(r"\[[^\]]*\]")

# GSM 03.38 (3GPP TS 23.038): the default alphabet without ESC, and the extension table
# whose characters are sent as ESC + character, two septets each.
GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("\f^{}\\[~]|€")
# Characters per message: one part alone, or each part of a concatenated message (the user
# data header takes 7 septets / 3 UCS-2 characters of every part).
SMS_LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


class ContentError(JingzhunError):
    """A template could not be rendered for a customer: which template, part, line and why."""

    exit_code = ExitCode.SPEC_ERROR

    def __init__(
        self,
        template: str,
        part: str,
        message: str,
        *,
        field: str | None = None,
        file: Path | None = None,
        line: int | None = None,
        customer_key: str | None = None,
    ) -> None:
        self.template = template
        self.part = part
        self.field = field
        self.file = file
        self.line = line
        self.customer_key = customer_key
        self.reason = message
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        who = f" (customer {customer_key})" if customer_key else ""
        super().__init__(f"{where}template '{template}', part '{part}'{who}: {message}")

    def to_dict(self) -> dict[str, object]:
        """Describe the error for ``--json`` output."""
        return {
            "error": type(self).__name__,
            "message": str(self),
            "template": self.template,
            "part": self.part,
            "field": self.field,
            "file": str(self.file) if self.file else None,
            "line": self.line,
        }


# -- what a template sees ---------------------------------------------------------------------


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class _Fields:
    """A record (customer, offer, one recommendation) as a template sees it.

    A missing, None or blank field is not there, so the template gets an undefined value that
    falls back or fails. Public attributes would shadow fields, so there are none.
    """

    __slots__ = ("_path", "_values")

    def __init__(self, path: str, values: Mapping[str, Any]) -> None:
        self._path = path
        self._values = {
            key: _wrap(f"{path}.{key}", value) for key, value in values.items() if not _blank(value)
        }

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __str__(self) -> str:
        raise TypeError(f"'{self._path}' is a record, not text; name one of its fields")


class _Items(tuple[Any, ...]):
    """A list (the recommendations) that knows its name, for fallbacks and errors."""

    _path: str

    def __new__(cls, path: str, values: Iterable[Any]) -> _Items:
        items = super().__new__(cls, (_wrap(path, value) for value in values))
        items._path = path
        return items


def _wrap(path: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return _Fields(path, value)
    if isinstance(value, list | tuple):
        return _Items(path, value)
    return value


class _NoValue(UndefinedError):
    """A field without a value: printed without a fallback, or used in a calculation."""

    def __init__(self, field: str, *, printed: bool = True) -> None:
        self.field = field
        self.printed = printed
        super().__init__(f"field '{field}' has no value")


class _Missing(Undefined):
    """A field the customer has no value for: false in ``if``, empty in ``for``; printed, it
    gives the template's fallback or stops the rendering. Never prints "None" or nothing.
    """

    __slots__ = ()
    fallbacks: ClassVar[Mapping[str, str]] = {}

    def _field(self) -> str | None:
        """The field's path as written (``customer.first_name``), when it is one."""
        obj, name = self._undefined_obj, self._undefined_name
        if self._undefined_hint is not None or self._undefined_exception is not UndefinedError:
            return None
        if obj is missing:
            return str(name)
        if isinstance(obj, _Fields):
            return f"{obj._path}.{name}"
        if isinstance(obj, _Items):
            return f"{obj._path}[{name}]"
        if isinstance(obj, _Missing):
            parent = obj._field()
            return None if parent is None else f"{parent}.{name}"
        return None

    def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Used in a calculation, a comparison or a call: name the field that has no value."""
        path = self._field()
        if path is not None:
            raise _NoValue(path, printed=False)
        super()._fail_with_undefined_error(*args, **kwargs)

    __add__ = __radd__ = __sub__ = __rsub__ = _fail_with_undefined_error
    __mul__ = __rmul__ = __div__ = __rdiv__ = _fail_with_undefined_error
    __truediv__ = __rtruediv__ = _fail_with_undefined_error
    __floordiv__ = __rfloordiv__ = _fail_with_undefined_error
    __mod__ = __rmod__ = _fail_with_undefined_error
    __pos__ = __neg__ = _fail_with_undefined_error
    __call__ = _fail_with_undefined_error
    __lt__ = __le__ = __gt__ = __ge__ = _fail_with_undefined_error
    __int__ = __float__ = __complex__ = _fail_with_undefined_error
    __pow__ = __rpow__ = _fail_with_undefined_error

    def _child(self, name: Any) -> Any:
        if self._field() is None:
            self._fail_with_undefined_error()
        return type(self)(obj=self, name=name)

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        return self._child(name)

    def __getitem__(self, key: Any) -> Any:
        return self._child(key)

    def __str__(self) -> str:
        path = self._field()
        if path is None:
            self._fail_with_undefined_error()
        for key in (path, _INDEX.sub("", path)):
            if key in self.fallbacks:
                return self.fallbacks[key]
        raise _NoValue(path)


def _no_none(value: Any) -> Any:
    """Every ``{{ … }}`` passes here: None (from a literal or a method) is never printed."""
    if value is None:
        raise UndefinedError("an expression gives None; name a field or add | default('…')")
    return value


# -- filters ------------------------------------------------------------------------------------

_SYMBOLS = {"GBP": "£", "EUR": "€", "USD": "$", "CNY": "¥", "JPY": "¥", "HKD": "HK$"}
_NO_CENTS = {"JPY", "KRW"}


@pass_context
def money(context: Context, value: Any, currency: str | None = None) -> Any:
    """``{{ offer.value | money }}`` → ``£10.00``: the amount with the currency's sign.

    The currency is the argument, else the context's ``currency`` (the project's); a code
    without a known sign is written after the amount (``10.00 CHF``).
    """
    if isinstance(value, Undefined):
        return value
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"money needs a number, got {value!r}") from None
    code = (currency or context.get("currency") or "").upper()
    digits = 0 if code in _NO_CENTS else 2
    text = f"{abs(amount):,.{digits}f}"
    sign = "-" if amount < 0 else ""
    if code in _SYMBOLS:
        return f"{sign}{_SYMBOLS[code]}{text}"
    return f"{sign}{text} {code}".rstrip()


def format_date(value: Any, format: str | None = None) -> Any:
    """``{{ offer.valid_until | date }}`` → ``31 January 2026``; ``date('%Y年%m月%d日')``.

    Takes dates, timestamps and ISO text.
    """
    if isinstance(value, Undefined):
        return value
    day = date.fromisoformat(value[:10]) if isinstance(value, str) else value
    if not isinstance(day, date):
        raise ValueError(f"date needs a date, got {value!r}")
    if format is None:
        return f"{day.day} {day:%B %Y}"
    return day.strftime(format)


def first_name_or(value: Any, fallback: str) -> Any:
    """``{{ customer | first_name_or('there') }}``: a first name fit to greet with, else
    the fallback.

    Applied to the customer (or to a name). A name in capitals or lower case is capitalised
    (``MARY`` → ``Mary``); one with an ``@`` or digits is not a name.
    """
    if isinstance(value, _Fields):
        value = value._values.get("first_name")
    if isinstance(value, Undefined) or not isinstance(value, str):
        return fallback
    name = " ".join(value.split())
    if not name or "@" in name or any(ch.isdigit() for ch in name):
        return fallback
    return name.title() if name.isupper() or name.islower() else name


FILTERS: dict[str, Callable[..., Any]] = {
    "money": money,
    "date": format_date,
    "first_name_or": first_name_or,
}


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, also refusing ``*`` and ``**`` that would build huge values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Refuse ``'x' * 10**9`` and ``9 ** 99999`` before they eat the machine."""
        if operator == "**" and isinstance(right, int | float) and abs(right) > 100:
            raise SecurityError(f"the power {right} is too large for a template")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if (
                    isinstance(sequence, str | list | tuple)
                    and isinstance(times, int)
                    and len(sequence) * times > MAX_TEXT
                ):
                    raise SecurityError(f"a repeated text longer than {MAX_TEXT:,} characters")
        return super().call_binop(context, operator, left, right)


# -- templates ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageTemplate:
    """A message in several parts (subject, HTML, text, SMS), each a Jinja2 template.

    Parameters
    ----------
    defaults
        Fallback text per field path as written in the template (``customer.first_name``,
        ``offer.code``, ``recommendations.name`` for every recommendation), printed when the
        customer has no value for it.
    file, lines
        Where the template was read, and the file line each part starts on, for errors.

    Every part is compiled when the template is made; a syntax error or an unknown name
    raises ``SpecError`` with the file and line.
    """

    name: str
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    sms: str | None = None
    defaults: Mapping[str, str] = field(default_factory=dict)
    description: str = ""
    file: Path | None = None
    lines: Mapping[str, int] = field(default_factory=dict)
    _compiled: dict[str, Template] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        undefined = type("_Fallbacks", (_Missing,), {"__slots__": (), "fallbacks": self.defaults})
        sources = self.parts
        env = _Sandbox(
            loader=FunctionLoader(
                lambda part: (
                    (sources[part], self._marker(part), lambda: True) if part in sources else None
                )
            ),
            undefined=undefined,
            autoescape=lambda part: part == "html",
            finalize=_no_none,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        env.filters.update(FILTERS)
        problems: list[SpecProblem] = []
        compiled: dict[str, Template] = {}
        known = set(CONTEXT_NAMES) | set(env.globals)
        for part, source in sources.items():
            try:
                tree = env.parse(source)
                compiled[part] = env.get_template(part)
            except TemplateSyntaxError as exc:
                problems.append(self._problem(part, exc.lineno, f"template error: {exc.message}"))
                continue
            for unknown in sorted(meta.find_undeclared_variables(tree) - known):
                first = next(n for n in tree.find_all(nodes.Name) if n.name == unknown)
                problems.append(
                    self._problem(
                        part,
                        first.lineno,
                        f"unknown name '{unknown}'; a template can use {', '.join(CONTEXT_NAMES)}",
                    )
                )
        if problems:
            raise SpecError(problems)
        object.__setattr__(self, "_compiled", compiled)

    @property
    def parts(self) -> dict[str, str]:
        """The parts this template has, by name (``subject``, ``html``, ``text``, ``sms``)."""
        values = {"subject": self.subject, "html": self.html, "text": self.text, "sms": self.sms}
        return {part: source for part, source in values.items() if source is not None}

    @property
    def channels(self) -> list[str]:
        """The channels this template can render: ``email`` (subject and a body), ``sms``."""
        found = []
        if self.subject is not None and (self.html is not None or self.text is not None):
            found.append("email")
        if self.sms is not None:
            found.append("sms")
        return found

    @property
    def source_file(self) -> Path:
        """The file the template came from (``templates/NAME.yml`` when made in Python)."""
        return self.file or Path("templates") / f"{self.name}.yml"

    def _marker(self, part: str) -> str:
        # The "file name" Jinja gives a part's frames in a traceback, to find the line.
        return f"<template {self.name}:{part}>"

    def file_line(self, part: str, line: int | None) -> int | None:
        """The file line of line ``line`` of a part (``line`` itself without a file)."""
        if line is None:
            return None
        return self.lines.get(part, 1) + line - 1

    def _problem(self, part: str, line: int | None, message: str) -> SpecProblem:
        return SpecProblem(self.source_file, self.file_line(part, line), part, message)

    def render_part(self, part: str, context: Mapping[str, Any]) -> str:
        """One part rendered for one customer; failures become ``ContentError``."""
        customer = context.get("customer")
        key = customer.get("customer_key") if isinstance(customer, Mapping) else None
        if part not in self._compiled:
            raise ContentError(
                self.name, part, "the template has no such part", file=self.source_file
            )
        values = {name: _wrap(name, value) for name, value in context.items() if not _blank(value)}
        field_name = None
        cause: Exception
        try:
            return self._compiled[part].render(values)
        except _NoValue as exc:
            field_name, cause = exc.field, exc
            if exc.printed:
                message = (
                    f"field '{exc.field}' has no value and the template gives no fallback; "
                    f"add '{_INDEX.sub('', exc.field)}: …' under defaults or write "
                    f"{{{{ {exc.field} | default('…') }}}}"
                )
            else:
                message = (
                    f"field '{exc.field}' has no value to calculate with; write "
                    f"({exc.field} | default(…)) or test it first with {{% if {exc.field} %}}"
                )
        except SecurityError as exc:
            cause, message = exc, f"not allowed in a template: {exc}"
        except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError) as exc:
            cause, message = exc, f"{type(exc).__name__}: {exc}"
        raise ContentError(
            self.name,
            part,
            message,
            field=field_name,
            file=self.source_file,
            line=self.file_line(part, self._line_of(part, cause)),
            customer_key=key,
        ) from cause

    def _line_of(self, part: str, exc: BaseException) -> int | None:
        """The part's line where rendering failed (Jinja rewrites its traceback for this)."""
        marker = self._marker(part)
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == marker]
        return lines[-1] if lines else None


def _part_starts(path: Path) -> dict[str, int]:
    """The file line where each part's text starts (the line after ``|`` for a block)."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    starts: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(value, yaml.ScalarNode):
                block = value.style in ("|", ">")
                starts[str(key.value)] = value.start_mark.line + 1 + int(block)
    return starts


def _template_from(path: Path, problems: list[SpecProblem]) -> MessageTemplate | None:
    found = len(problems)
    try:
        doc = load_yaml(path)
    except SpecError as exc:
        problems.extend(exc.problems)
        return None

    def problem(field: str, message: str, loc: tuple[str, ...] = ()) -> None:
        problems.append(SpecProblem(path, doc.line_of(loc or (field,)), field, message))

    data = doc.data
    if not isinstance(data, dict):
        problem("", "must be a YAML mapping with subject, html, text, sms, defaults")
        return None
    if not _TEMPLATE_NAME.match(path.stem):
        problem("", f"'{path.stem}' is not a template name: use letters, digits, _ and -")
    allowed = {*PARTS, "defaults", "description"}
    for key in data:
        if key not in allowed:
            problem(str(key), f"is not a known field here; use {', '.join(sorted(allowed))}")
    sources: dict[str, str] = {}
    for part in PARTS:
        value = data.get(part)
        if value is None:
            continue
        if not isinstance(value, str):
            problem(part, "must be text (a Jinja2 template); quote it or use '|' for a block")
        else:
            sources[part] = value
    if not {"html", "text", "sms"} & set(sources):
        problem("", "a template needs at least one of html, text (e-mail) or sms")
    if ({"html", "text"} & set(sources)) and "subject" not in sources:
        problem("subject", "an e-mail template (html or text) needs a subject")
    if "subject" in sources and not ({"html", "text"} & set(sources)):
        problem("subject", "a subject needs an e-mail body: add html or text")
    defaults: dict[str, str] = {}
    raw_defaults = data.get("defaults") or {}
    if not isinstance(raw_defaults, dict):
        problem("defaults", "must be a mapping of field: fallback text")
        raw_defaults = {}
    for key, value in raw_defaults.items():
        root = str(key).split(".")[0].split("[")[0]
        loc = ("defaults", key)
        if root not in CONTEXT_NAMES:
            problem(
                f"defaults.{key}", f"names no field; start with {', '.join(CONTEXT_NAMES)}", loc
            )
        elif value is None or isinstance(value, dict | list):
            problem(f"defaults.{key}", "give the fallback text ('' prints nothing)", loc)
        else:
            defaults[str(key)] = str(value)
    description = data.get("description") or ""
    if not isinstance(description, str):
        problem("description", "must be text")
    starts = _part_starts(path)
    try:
        template = MessageTemplate(
            name=path.stem,
            description=str(description),
            defaults=defaults,
            file=path,
            lines={part: starts.get(part, doc.line_of((part,)) or 1) for part in sources},
            **sources,
        )
    except SpecError as exc:  # template errors, reported with the file's other problems
        problems.extend(exc.problems)
        return None
    return None if len(problems) > found else template


def load_templates(folder: Path) -> dict[str, MessageTemplate]:
    """Read every ``folder/*.yml`` template (files starting with ``_`` are skipped).

    Each part is compiled now, so every syntax error, unknown name and misplaced field of
    every file is reported at once as one ``SpecError`` with file, line and field.
    """
    if not folder.is_dir():
        return {}
    files = sorted(
        p
        for p in [*folder.glob("*.yml"), *folder.glob("*.yaml")]
        if p.is_file() and not p.name.startswith("_")
    )
    problems: list[SpecProblem] = []
    templates: dict[str, MessageTemplate] = {}
    for path in files:
        template = _template_from(path, problems)
        if template is None:
            continue
        if template.name in templates:
            other = templates[template.name].source_file
            problems.append(SpecProblem(path, 1, "", f"template '{template.name}' is also {other}"))
            continue
        templates[template.name] = template
    if problems:
        raise SpecError(problems)
    return templates


# -- rendering ------------------------------------------------------------------------------------


class _TextOfHtml(HTMLParser):
    """Plain text of an HTML message: paragraphs kept, links written as ``text (url)``."""

    _BLOCKS = frozenset(
        {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "table", "tr", "hr"}
        | {"blockquote", "section", "article", "header", "footer", "center"}
    )
    _HIDDEN = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.hidden = 0
        self.links: list[tuple[str | None, int]] = []

    def _break(self, lines: int) -> None:
        """End the output with at least ``lines`` line breaks (blocks do not add up)."""
        tail = re.search(r"[ \n]*$", "".join(self.out[-8:]))
        have = tail.group().count("\n") if self.out and tail else lines
        if have < lines:
            self.out.append("\n" * (lines - have))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Open a block, a line break, a list item, a link or an image's alt text."""
        if tag in self._HIDDEN:
            self.hidden += 1
        elif self.hidden:
            return
        elif tag == "br":
            self.out.append("\n")
        elif tag in self._BLOCKS:
            self._break(2)
        elif tag == "li":
            self._break(1)
            self.out.append("- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.out)))
        elif tag == "img":
            alt = (dict(attrs).get("alt") or "").strip()
            if alt:
                self.out.append(alt)

    def handle_endtag(self, tag: str) -> None:
        """Close a block, or write a link's address after its text."""
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif self.hidden:
            return
        elif tag in self._BLOCKS:
            self._break(2)
        elif tag == "li":
            self._break(1)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            url = (href or "").strip()
            if not url or url.startswith("#"):
                return
            url = url.removeprefix("mailto:")
            text = "".join(self.out[start:]).strip()
            if not text or text == url:
                self.out[start:] = [url]
            else:
                self.out.append(f" ({url})")

    def handle_data(self, data: str) -> None:
        """Text, with runs of HTML white space read as one space (as a browser shows it)."""
        if not self.hidden:
            self.out.append(re.sub(r"[ \t\n\r\f]+", " ", data))

    def text(self) -> str:
        """The text, one space at most between words, one blank line between blocks."""
        lines = [line.strip() for line in "".join(self.out).split("\n")]
        text = "\n".join(lines)
        return re.sub(r"\n{3,}", "\n\n", text).strip()


def html_to_text(html: str) -> str:
    r"""The text part for an HTML message: tags stripped, links kept as ``text (url)``.

    Examples
    --------
    >>> html_to_text('<p>Hi Ann,</p><p><a href="https://s.example/x">Shop now</a></p>')
    'Hi Ann,\n\nShop now (https://s.example/x)'
    """
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    return parser.text()


def sms_parts(text: str) -> tuple[Literal["GSM-7", "UCS-2"], int, int]:
    r"""How an SMS is sent: encoding, characters as the network counts them, and parts.

    GSM-7 when every character is in the GSM 03.38 alphabet (its extension characters
    ``€ [ ] { } \ ^ ~ |`` and form feed count 2); otherwise UCS-2, counting UTF-16 code units
    (an emoji counts 2). One part holds 160 GSM-7 / 70 UCS-2 characters; a longer message is
    split into parts of 153 / 67, and a two-unit character is never split across parts. An
    empty text has no parts.

    Examples
    --------
    >>> sms_parts("a" * 161)
    ('GSM-7', 161, 2)
    >>> sms_parts("您好" * 36)
    ('UCS-2', 72, 2)
    """
    weights: list[int]
    encoding: Literal["GSM-7", "UCS-2"]
    if all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text):
        encoding = "GSM-7"
        weights = [2 if ch in GSM_EXTENSION else 1 for ch in text]
    else:
        encoding = "UCS-2"
        weights = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    characters = sum(weights)
    single, each = SMS_LIMITS[encoding]
    if characters == 0:
        return encoding, 0, 0
    if characters <= single:
        return encoding, characters, 1
    parts, used = 1, 0
    for weight in weights:
        if used + weight > each:
            parts, used = parts + 1, 0
        used += weight
    return encoding, characters, parts


@dataclass(frozen=True)
class RenderedMessage:
    """One customer's message for one channel; the parts of other channels are None.

    An e-mail always has ``text`` (derived from ``html`` when the template has no text part);
    an SMS has ``sms`` with its encoding, characters as counted by the network and parts.
    """

    template: str
    channel: str
    subject: str | None = None
    html: str | None = None
    text: str | None = None
    sms: str | None = None
    sms_encoding: Literal["GSM-7", "UCS-2"] | None = None
    sms_parts: int | None = None
    sms_chars: int | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain values for ``--json`` and previews."""
        return {
            "template": self.template,
            "channel": self.channel,
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
            "sms": self.sms,
            "sms_encoding": self.sms_encoding,
            "sms_parts": self.sms_parts,
            "sms_chars": self.sms_chars,
        }


def render_message(
    template: MessageTemplate, context: Mapping[str, Any], channel: str
) -> RenderedMessage:
    """Render a template for one customer (``message_context``) on ``email`` or ``sms``.

    Raises
    ------
    ContentError
        A field without value or fallback, a part the channel needs and the template lacks,
        an empty subject or SMS, or anything the sandbox refuses.
    """
    channel = str(channel).lower()
    if channel not in CHANNELS:
        raise ValueError(f"channel '{channel}' has no content; use {' or '.join(CHANNELS)}")
    customer = context.get("customer")
    key = customer.get("customer_key") if isinstance(customer, Mapping) else None

    def lacking(part: str, message: str) -> ContentError:
        return ContentError(
            template.name, part, message, file=template.source_file, customer_key=key
        )

    if channel not in template.channels:
        if channel == "email":
            raise lacking("subject", "an email message needs a subject and html or text")
        raise lacking("sms", "an sms message needs an sms part")
    if channel == "sms":
        sms = template.render_part("sms", context).strip()
        if not sms:
            raise lacking("sms", "the SMS renders empty")
        encoding, characters, parts = sms_parts(sms)
        return RenderedMessage(
            template.name,
            channel,
            sms=sms,
            sms_encoding=encoding,
            sms_parts=parts,
            sms_chars=characters,
        )
    # A subject is one header line: line breaks in it would inject headers.
    subject = " ".join(template.render_part("subject", context).split())
    if not subject:
        raise lacking("subject", "the subject renders empty")
    html = template.render_part("html", context).strip() if template.html is not None else None
    if template.text is not None:
        text = template.render_part("text", context).strip()
    else:
        text = html_to_text(html or "")
    if not text:
        raise lacking("text", "the message body renders empty")
    return RenderedMessage(template.name, channel, subject=subject, html=html, text=text)


# -- the context of one customer ----------------------------------------------------------------


@contextlib.contextmanager
def _registered(engine: Engine, data: pa.Table) -> Iterator[ir.Table]:
    name = f"_jz_content_{uuid.uuid4().hex[:12]}"
    table = engine.register(name, data)
    try:
        yield table
    finally:
        engine.unregister(name)


def _recommendations(engine: Engine, keys: ir.Table) -> dict[str, list[dict[str, Any]]]:
    """Each customer's top recommendations (rank order; an item once) with product names."""
    if not engine.exists("recommendations"):
        return {}
    recs = engine.read("recommendations")
    columns = ("customer_key", "item_id", "rank", "score", "method", "reason")
    present = [c for c in columns if c in recs.columns]
    rows = engine.execute(recs.semi_join(keys, "customer_key").select(*present)).to_pylist()
    rows.sort(
        key=lambda r: (
            r["customer_key"],
            r.get("rank") if r.get("rank") is not None else math.inf,
            -(r.get("score") or 0.0),
            str(r.get("method") or ""),
            str(r["item_id"]),
        )
    )
    top: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        chosen = top.setdefault(row["customer_key"], [])
        if len(chosen) < TOP_RECOMMENDATIONS and all(
            c["item_id"] != row["item_id"] for c in chosen
        ):
            chosen.append(row)
    names = _product_names(engine, {str(r["item_id"]) for c in top.values() for r in c})
    return {
        key: [
            {
                "item_id": row["item_id"],
                "name": names.get(str(row["item_id"])),
                "rank": position,
                "reason": row.get("reason"),
                "score": row.get("score"),
                "method": row.get("method"),
            }
            for position, row in enumerate(chosen, start=1)
        ]
        for key, chosen in top.items()
    }


def _product_names(engine: Engine, skus: set[str]) -> dict[str, str]:
    """The latest non-blank name of each SKU in ``raw_products`` (any source)."""
    if not skus or not engine.exists("raw_products"):
        return {}
    products = engine.read("raw_products")
    with _registered(engine, pa.table({"sku": sorted(skus)})) as wanted:
        rows = engine.execute(
            products.semi_join(wanted, "sku").select(
                "sku", "name", "_loaded_at", "_batch_id", "_row"
            )
        ).to_pylist()
    rows = [r for r in rows if not _blank(r["name"])]
    rows.sort(key=lambda r: (r["_loaded_at"], r["_batch_id"], r["_row"]))
    return {str(r["sku"]): str(r["name"]).strip() for r in rows}


def _offer_context(offer: Offer | Mapping[str, Any] | None, code: str | None) -> Any:
    if offer is None:
        return {"code": code} if code else None
    if isinstance(offer, Offer):
        return offer.to_context(code)
    return {**offer, **({"code": code} if code else {})}


def message_contexts(
    engine: Engine,
    customer_keys: Sequence[str],
    *,
    offers: Mapping[str, Offer | Mapping[str, Any]] | None = None,
    coupons: Mapping[str, str] | None = None,
    campaign: Mapping[str, Any] | None = None,
    links: Mapping[str, Mapping[str, str]] | None = None,
    currency: str | None = None,
) -> dict[str, dict[str, Any]]:
    """``message_context`` for many customers with one read of each table.

    ``offers``, ``coupons`` and ``links`` are per customer key; ``campaign`` and ``currency``
    are the same for all. Every key must have a profile.
    """
    if not engine.exists("profiles"):
        raise NotFoundError("the warehouse has no profiles; build them first (jingzhun build)")
    keys = sorted(set(customer_keys))
    with _registered(engine, pa.table({"customer_key": pa.array(keys, pa.string())})) as chosen:
        profiles = engine.read("profiles")
        rows = engine.execute(profiles.semi_join(chosen, "customer_key")).to_pylist()
        recommendations = _recommendations(engine, chosen)
    found = {row["customer_key"]: row for row in rows}
    absent = [key for key in keys if key not in found]
    if absent:
        raise NotFoundError(
            f"{len(absent)} customer(s) have no profile, e.g. '{absent[0]}'; "
            "check the key (find_customer_key) or rebuild profiles"
        )
    contexts: dict[str, dict[str, Any]] = {}
    for key in keys:
        own_links = dict((links or {}).get(key) or {})
        contexts[key] = {
            "customer": found[key],
            "recommendations": recommendations.get(key, []),
            "offer": _offer_context((offers or {}).get(key), (coupons or {}).get(key)),
            "campaign": dict(campaign) if campaign else None,
            "links": own_links,
            "unsubscribe_url": own_links.get("unsubscribe_url"),
            "tracking_pixel_url": own_links.get("tracking_pixel_url"),
            "currency": currency,
        }
    return contexts


def message_context(
    engine: Engine,
    customer_key: str,
    *,
    offer: Offer | Mapping[str, Any] | None = None,
    coupon: str | None = None,
    campaign: Mapping[str, Any] | None = None,
    links: Mapping[str, str] | None = None,
    currency: str | None = None,
) -> dict[str, Any]:
    """What a template sees for one customer.

    ``customer`` (their ``profiles`` row), ``recommendations`` (top 3 of the
    ``recommendations`` table when there is one, as ``item_id, name, rank, reason, score,
    method``; names from ``raw_products``), ``offer`` (``Offer.to_context`` with ``code`` =
    the coupon), ``campaign``, ``links`` with ``unsubscribe_url`` and ``tracking_pixel_url``
    also at the top, and ``currency`` (for the ``money`` filter).

    Raises
    ------
    NotFoundError
        The customer has no profile.
    """
    return message_contexts(
        engine,
        [customer_key],
        offers={customer_key: offer} if offer is not None else None,
        coupons={customer_key: coupon} if coupon else None,
        campaign=campaign,
        links={customer_key: links} if links else None,
        currency=currency,
    )[customer_key]
