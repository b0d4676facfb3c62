"""Message content: templates, sandbox, fallbacks, text parts, SMS counting, real profiles."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from jinja2.exceptions import SecurityError

from helpers import REPO
from jingzhun.campaigns._content import (
    ContentError,
    MessageTemplate,
    html_to_text,
    load_templates,
    message_context,
    message_contexts,
    render_message,
    sms_parts,
)
from jingzhun.campaigns._offers import OfferSpec, issue_codes, offer_for
from jingzhun.core import NotFoundError, SpecError
from jingzhun.demo import run_demo
from jingzhun.engine import Engine
from jingzhun.workspace import Workspace

WINBACK = """\
description: Win back customers who have gone quiet
subject: "{{ customer | first_name_or('Hello') }}, {{ offer.value }}% off for you"
html: |
  <p>Hi {{ customer.first_name }},</p>
  <p>We miss you in {{ customer.city }}.</p>
  <ul>
  {% for item in recommendations %}
    <li>{{ item.name }}</li>
  {% endfor %}
  </ul>
  <p>Use <b>{{ offer.code }}</b> by {{ offer.valid_until | date }}.</p>
  <p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
  <img src="{{ tracking_pixel_url }}" width="1" height="1" alt="">
sms: "{{ customer | first_name_or('Hi') }}: {{ offer.value }}% off with {{ offer.code }}"
defaults:
  customer.first_name: there
  customer.city: your town
  recommendations.name: one of our favourites
"""


def _context(**customer: Any) -> dict[str, Any]:
    person = {"customer_key": "ck_1", "first_name": "Ann", "city": "Leeds", "orders": 3}
    person.update(customer)
    return {
        "customer": person,
        "recommendations": [
            {"item_id": "85123A", "name": "White hanging heart", "rank": 1, "reason": None},
            {"item_id": "22633", "name": None, "rank": 2, "reason": None},
        ],
        "offer": {"name": "ten_off", "kind": "discount_percent", "value": Decimal("10")}
        | {"code": "WB-7KQ2M9XH4P", "valid_until": dt.date(2026, 1, 31)},
        "campaign": {"name": "winback"},
        "links": {"unsubscribe_url": "https://shop.example/u/abc"},
        "unsubscribe_url": "https://shop.example/u/abc",
        "tracking_pixel_url": "https://shop.example/o/abc.gif",
        "currency": "GBP",
    }


@pytest.fixture
def winback(tmp_path: Path) -> MessageTemplate:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "winback.yml").write_text(WINBACK, encoding="utf-8")
    return load_templates(folder)["winback"]


# -- loading ------------------------------------------------------------------------------------


def test_load_templates_reads_parts_and_where_they_start(winback: MessageTemplate) -> None:
    assert winback.name == "winback"
    assert winback.description.startswith("Win back")
    assert set(winback.parts) == {"subject", "html", "sms"}
    assert winback.channels == ["email", "sms"]
    assert winback.defaults["customer.city"] == "your town"
    # subject is on line 2; the html block's text starts on line 4, after "html: |"
    assert winback.lines == {"subject": 2, "html": 4, "sms": 14}


def test_load_templates_reports_every_problem_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text(
        'subject: "Hi"\nhtml: |\n  <p>ok</p>\n  <p>{% if customer.city %}</p>\n', "utf-8"
    )
    (tmp_path / "typo.yml").write_text(
        'subject: "Hi {{ cusomer.first_name }}"\ntext: body\ncolour: red\n'
        "defaults:\n  name: x\n  customer.city: [a, b]\n",
        "utf-8",
    )
    (tmp_path / "no_subject.yml").write_text("html: <p>hi</p>\n", "utf-8")
    (tmp_path / "bad_yaml.yml").write_text("subject: [unclosed\n", "utf-8")
    (tmp_path / "_partial.yml").write_text("not: a template\n", "utf-8")  # skipped
    with pytest.raises(SpecError) as caught:
        load_templates(tmp_path)
    found = {(p.file.name, p.line, p.field): p.message for p in caught.value.problems}
    # the block starts on line 3; the unclosed {% if %} is on file line 4
    assert "template error" in found[("broken.yml", 4, "html")]
    assert "unknown name 'cusomer'" in found[("typo.yml", 1, "subject")]
    assert "not a known field" in found[("typo.yml", 3, "colour")]
    assert "names no field" in found[("typo.yml", 5, "defaults.name")]
    assert "fallback text" in found[("typo.yml", 6, "defaults.customer.city")]
    assert "needs a subject" in found[("no_subject.yml", 1, "subject")]
    assert any(f == "bad_yaml.yml" and "invalid YAML" in m for (f, _, _), m in found.items())
    assert len(found) == 7


def test_load_templates_without_a_folder_is_empty(tmp_path: Path) -> None:
    assert load_templates(tmp_path / "templates") == {}


# -- rendering and fallbacks ------------------------------------------------------------------


def test_email_renders_fields_fallbacks_and_a_text_part(winback: MessageTemplate) -> None:
    message = render_message(winback, _context(city=None), "email")
    assert message.subject == "Ann, 10% off for you"
    assert message.html is not None
    assert "<p>Hi Ann,</p>" in message.html
    assert "We miss you in your town." in message.html  # city is None: the fallback
    assert "<li>one of our favourites</li>" in message.html  # a recommendation without name
    assert "31 January 2026" in message.html
    # no text part in the template: derived from the HTML, links kept as "text (url)"
    assert message.text == (
        "Hi Ann,\n\nWe miss you in your town.\n\n- White hanging heart\n"
        "- one of our favourites\n\nUse WB-7KQ2M9XH4P by 31 January 2026.\n\n"
        "Unsubscribe (https://shop.example/u/abc)"
    )
    assert message.sms is None and message.sms_parts is None


def test_none_never_appears(winback: MessageTemplate) -> None:
    context = _context(first_name=None, city="   ")  # None and blank are both "no value"
    message = render_message(winback, context, "email")
    for part in (message.subject, message.html, message.text):
        assert part is not None and "None" not in part
    assert message.subject == "Hello, 10% off for you"
    assert "Hi there," in message.text  # type: ignore[operator]
    # an expression that gives None itself (not a field) is refused too
    with pytest.raises(ContentError, match="gives None"):
        render_message(MessageTemplate("n", sms="{{ none }} {{ [1].pop }}"), context, "sms")


def test_a_field_without_value_or_fallback_names_template_part_line_and_field(
    tmp_path: Path,
) -> None:
    (tmp_path / "bare.yml").write_text(
        "subject: Hello\nhtml: |\n  <p>Dear customer,</p>\n"
        "  <p>See you in {{ customer.city }}</p>\n",
        "utf-8",
    )
    template = load_templates(tmp_path)["bare"]
    with pytest.raises(ContentError) as caught:
        render_message(template, _context(city=None), "email")
    error = caught.value
    assert (error.template, error.part, error.field, error.line) == (
        "bare",
        "html",
        "customer.city",
        4,
    )
    assert error.file == tmp_path / "bare.yml"
    assert error.customer_key == "ck_1"
    assert "under defaults" in str(error) and "default('…')" in str(error)
    assert error.to_dict()["field"] == "customer.city"


def test_inline_default_wins_over_the_templates_defaults() -> None:
    template = MessageTemplate(
        "greet",
        sms="{{ customer.first_name | default('Friend') }} / {{ customer.first_name }}",
        defaults={"customer.first_name": "there"},
    )
    assert render_message(template, _context(first_name=None), "sms").sms == "Friend / there"


def test_missing_records_chain_to_fallbacks_and_fail_in_calculations() -> None:
    context = _context()
    context["offer"] = None
    template = MessageTemplate(
        "chain",
        sms="{% if offer %}never{% endif %}{{ offer.code }} {{ recommendations[5].name }}",
        defaults={"offer.code": "no code", "recommendations.name": "a gift"},
    )
    assert render_message(template, context, "sms").sms == "no code a gift"
    sums = MessageTemplate("sums", sms="{{ customer.points + 1 }}")
    with pytest.raises(ContentError, match=r"'customer\.points' has no value to calculate"):
        render_message(sums, context, "sms")


@pytest.mark.parametrize(
    "source",
    [
        "{{ customer.__class__ }}",
        "{{ ().__class__.__mro__ }}",
        "{{ customer._values }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ recommendations.__class__.__base__.__subclasses__() }}",
        "{{ 'x' * 1000000 }}",
        "{{ 9 ** 999999 }}",
        "{% set seen = [] %}{{ seen.append(1) }}",
    ],
)
def test_the_sandbox_refuses_internals(source: str) -> None:
    template = MessageTemplate("evil", sms=source)
    with pytest.raises(ContentError, match="not allowed in a template") as caught:
        render_message(template, _context(), "sms")
    assert isinstance(caught.value.__cause__, SecurityError)


def test_html_is_escaped_and_plain_parts_are_not() -> None:
    name = "<script>alert('x')</script>"
    template = MessageTemplate(
        "esc",
        subject="Hi {{ customer.first_name }}",
        html="<p>Hi {{ customer.first_name }}</p>",
        text="Hi {{ customer.first_name }}",
    )
    message = render_message(template, _context(first_name=name), "email")
    assert message.html == "<p>Hi &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;</p>"
    assert "<script>" not in (message.html or "")
    assert message.subject == f"Hi {name}"
    assert message.text == f"Hi {name}"


def test_a_subject_is_one_line() -> None:
    template = MessageTemplate("s", subject="Hi\n{{ customer.first_name }}\r\nBcc: x", text="b")
    assert render_message(template, _context(), "email").subject == "Hi Ann Bcc: x"


def test_channels_need_their_parts() -> None:
    sms_only = MessageTemplate("s", sms="Hi")
    with pytest.raises(ContentError, match="needs a subject"):
        render_message(sms_only, _context(), "email")
    mail = MessageTemplate("m", subject="Hi", text="Body")
    with pytest.raises(ContentError, match="needs an sms part"):
        render_message(mail, _context(), "sms")
    with pytest.raises(ValueError, match="channel 'fax'"):
        render_message(mail, _context(), "fax")
    empty = MessageTemplate("e", sms="{% if customer.vip %}VIP{% endif %}")
    with pytest.raises(ContentError, match="renders empty"):
        render_message(empty, _context(), "sms")


def test_html_to_text_keeps_structure_and_links() -> None:
    html = (
        "<html><head><title>t</title><style>p {color: red}</style></head><body>"
        "<h1>Spring   sale</h1><p>Hello&nbsp;Ann &amp; co,<br>see\n   below.</p>"
        '<p><a href="https://x.example/a">Shop</a> or <a href="https://x.example/b">'
        'https://x.example/b</a> or <a href="mailto:help@x.example">write</a></p>'
        '<img src="p.gif" alt=""><img src="logo.png" alt="Logo">'
        "<script>var a = 1;</script></body></html>"
    )
    assert html_to_text(html) == (
        "Spring sale\n\nHello\xa0Ann & co,\nsee below.\n\n"
        "Shop (https://x.example/a) or https://x.example/b or write (help@x.example)\n\nLogo"
    )


def test_filters() -> None:
    template = MessageTemplate(
        "f",
        sms=(
            "{{ 1234.5 | money }}|{{ 8 | money('CNY') }}|{{ 500 | money('JPY') }}|"
            "{{ 3 | money('CHF') }}|{{ -2 | money }}|{{ '2026-03-04' | date }}|"
            "{{ offer.valid_until | date('%Y年%m月%d日') }}|{{ 'MARY' | first_name_or('x') }}|"
            "{{ 'a@b.c' | first_name_or('there') }}|{{ '李雷' | first_name_or('x') }}"
        ),
    )
    assert render_message(template, _context(), "sms").sms == (
        "£1,234.50|¥8.00|¥500|3.00 CHF|-£2.00|4 March 2026|2026年01月31日|Mary|there|李雷"
    )


# -- SMS counting ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, ("GSM-7", 160, 1)),
        ("a" * 161, ("GSM-7", 161, 2)),  # 153 + 8
        ("a" * 306, ("GSM-7", 306, 2)),
        ("a" * 307, ("GSM-7", 307, 3)),
        ("€" * 80, ("GSM-7", 160, 1)),  # extension characters count 2
        ("€" * 81, ("GSM-7", 162, 2)),
        ("[hi]", ("GSM-7", 6, 1)),
        # 152 + 2 does not fit 153: the € opens part 2, which then overflows into part 3
        ("a" * 152 + "€" + "a" * 152, ("GSM-7", 306, 3)),
        ("£5 off, Ç'est ça?", ("UCS-2", 17, 1)),  # lower-case ç is not in GSM 03.38
        ("您" * 70, ("UCS-2", 70, 1)),
        ("您" * 71, ("UCS-2", 71, 2)),  # 67 + 4
        ("您" * 134, ("UCS-2", 134, 2)),
        ("您" * 135, ("UCS-2", 135, 3)),
        ("Hi 🎉", ("UCS-2", 5, 1)),  # an emoji is two UTF-16 code units
        ("🎉" * 35, ("UCS-2", 70, 1)),
        ("a" * 66 + "🎉" + "a" * 66, ("UCS-2", 134, 3)),  # the emoji is not split
        ("", ("GSM-7", 0, 0)),
    ],
)
def test_sms_parts(text: str, expected: tuple[str, int, int]) -> None:
    assert sms_parts(text) == expected


def test_rendered_sms_counts_chinese() -> None:
    template = MessageTemplate(
        "cn", sms="{{ customer.first_name }}您好，您的优惠码是 {{ offer.code }}"
    )
    message = render_message(template, _context(first_name="李雷"), "sms")
    assert message.sms == "李雷您好，您的优惠码是 WB-7KQ2M9XH4P"
    assert (message.sms_encoding, message.sms_chars, message.sms_parts) == ("UCS-2", 25, 1)


# -- the README example runs ----------------------------------------------------------------------


def _readme_example() -> str:
    folder = REPO / "src" / "jingzhun" / "campaigns"
    for name in ("README_content.md", "README.md"):
        path = folder / name
        if path.exists() and "# templates/winback.yml" in path.read_text("utf-8"):
            text = path.read_text("utf-8")
            blocks = re.findall(r"```yaml\n(# templates/winback\.yml\n.*?)```", text, flags=re.S)
            return str(blocks[0])
    pytest.fail("the campaigns README lost its templates/winback.yml example")


def test_the_readme_example_renders(tmp_path: Path) -> None:
    (tmp_path / "winback.yml").write_text(_readme_example(), "utf-8")
    template = load_templates(tmp_path)["winback"]
    context = _context(first_name=None)
    mail = render_message(template, context, "email")
    sms = render_message(template, context, "sms")
    assert "None" not in f"{mail.subject}{mail.html}{mail.text}{sms.sms}"
    assert mail.text and "https://shop.example/u/abc" in mail.text
    assert sms.sms_parts == 1


# -- the context, from the warehouse --------------------------------------------------------------


def _table(engine: Engine, name: str, data: pa.Table) -> None:
    engine.create(name, data.schema)
    engine.write(name, data)


def test_message_context_reads_profile_recommendations_and_names(engine: Engine) -> None:
    loaded = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    _table(
        engine,
        "profiles",
        pa.table(
            {
                "customer_key": ["ck_1", "ck_2"],
                "first_name": ["Ann", None],
                "monetary": pa.array([Decimal("120.50"), Decimal("3.00")], pa.decimal128(18, 2)),
            }
        ),
    )
    with pytest.raises(NotFoundError):
        message_context(engine, "ck_9")
    alone = message_context(engine, "ck_2")
    assert alone["customer"] == {
        "customer_key": "ck_2",
        "first_name": None,
        "monetary": Decimal("3.00"),
    }
    assert alone["recommendations"] == []  # no recommendations table yet
    assert alone["offer"] is None

    _table(
        engine,
        "recommendations",
        pa.table(
            {
                "customer_key": ["ck_1"] * 5 + ["ck_2"],
                "item_id": ["A", "B", "C", "D", "A", "B"],
                "rank": [2, 1, 4, 3, 1, 1],
                "score": [0.5, 0.9, 0.1, 0.3, 0.95, 0.9],
                "method": ["als", "als", "als", "als", "rules", "als"],
                "reason": ["bought with X", None, None, None, None, None],
            }
        ),
    )
    later = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
    _table(
        engine,
        "raw_products",
        pa.table(
            {
                "sku": ["A", "A", "B", "D"],
                "name": ["Old lamp", "Lamp", " ", "Mug"],
                "_source": ["shop"] * 4,
                "_loaded_at": [loaded, later, later, loaded],
                "_batch_id": ["b1", "b2", "b2", "b1"],
                "_row": [1, 1, 2, 3],
            }
        ),
    )
    spec = OfferSpec.model_validate({"name": "ten_off", "kind": "discount_percent", "value": 10})
    codes = issue_codes("winback", ["ck_1"], secret=b"k" * 32)
    context = message_context(
        engine,
        "ck_1",
        offer=offer_for(spec, set(), issued_on=dt.date(2024, 3, 1)),
        coupon=codes["ck_1"],
        campaign={"name": "winback"},
        links={
            "unsubscribe_url": "https://u.example/1",
            "tracking_pixel_url": "https://t.example/1",
        },
        currency="GBP",
    )
    recs = context["recommendations"]
    # rank order, item A once (its best rank), top three, names from the latest product record
    assert [(r["item_id"], r["name"], r["rank"]) for r in recs] == [
        ("A", "Lamp", 1),
        ("B", None, 2),  # only a blank name: no name, so the template's fallback is used
        ("D", "Mug", 3),
    ]
    assert context["offer"]["code"] == codes["ck_1"]
    assert context["offer"]["valid_until"] == dt.date(2024, 3, 31)
    assert context["unsubscribe_url"] == "https://u.example/1"
    both = message_contexts(engine, ["ck_2", "ck_1"])
    assert list(both) == ["ck_1", "ck_2"]
    assert [r["item_id"] for r in both["ck_2"]["recommendations"]] == ["B"]


# -- a real profile from the demo -----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_champions(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Workspace, list[dict[str, Any]]]]:
    root = tmp_path_factory.mktemp("content_demo") / "demo"
    run_demo(root, customers=300, seed=7, shared_data=None)
    with Workspace.open(root) as ws:
        p = ws.engine.read("profiles")
        champions = ws.engine.execute(
            p.filter(p.rfm_segment == "Champions")
            .order_by([p.monetary.desc(), p.customer_key])
            .select("customer_key", "first_name", "city", "monetary")
        ).to_pylist()
        products = ws.engine.execute(
            ws.engine.read("raw_products").select("sku").distinct().order_by("sku").limit(4)
        ).to_pylist()
        skus = [row["sku"] for row in products]
        key = champions[0]["customer_key"]
        recs = pa.table(
            {
                "customer_key": [key] * 4,
                "item_id": skus,
                "rank": [1, 2, 3, 4],
                "score": [0.9, 0.8, 0.7, 0.6],
                "method": ["popular"] * 4,
                "reason": ["popular this month"] * 4,
            }
        )
        _table(ws.engine, "recommendations", recs)
        yield ws, champions


def test_render_for_a_real_champion(
    demo_champions: tuple[Workspace, list[dict[str, Any]]], winback: MessageTemplate
) -> None:
    ws, champions = demo_champions
    assert champions, "the demo has Champions"
    spec = OfferSpec.model_validate(
        {
            "name": "ten_off",
            "kind": "discount_percent",
            "value": 10,
            "variants": [
                {"segment": "best_customers", "offer": {"name": "vip", "kind": "priority_service"}}
            ],
        }
    )
    top = champions[0]["customer_key"]
    links = {"unsubscribe_url": "https://shop.example/u/1", "tracking_pixel_url": "https://t/1"}
    codes = issue_codes("winback", [c["customer_key"] for c in champions], secret=b"s" * 32)
    context = message_context(
        ws.engine,
        top,
        offer=offer_for(spec, set(), issued_on=dt.date(2011, 12, 10)),
        coupon=codes[top],
        links=links,
        currency="GBP",
    )
    assert context["customer"]["rfm_segment"] == "Champions"
    assert len(context["recommendations"]) == 3  # four written, top three read
    assert all(r["name"] for r in context["recommendations"])  # names from raw_products
    mail = render_message(winback, context, "email")
    sms = render_message(winback, context, "sms")
    for part in (mail.subject, mail.html, mail.text, sms.sms):
        assert part is not None and "None" not in part
    first = champions[0]["first_name"]
    assert f"Hi {first or 'there'}," in (mail.text or "")
    assert codes[top] in (mail.text or "") and codes[top] in (sms.sms or "")
    assert "9 January 2012" in (mail.text or "")  # issued 10 December 2011, valid 30 days
    for r in context["recommendations"]:
        assert f"- {r['name']}" in (mail.text or "")
    # a Champion without a first name (the Online Retail sample has no names) gets the fallback
    nameless = [c for c in champions if not c["first_name"]]
    named = [c for c in champions if c["first_name"]]
    assert nameless and named
    offer = offer_for(spec, set(), issued_on=dt.date(2011, 12, 10))
    for row, greeting in ((nameless[0], "Hi there,"), (named[0], f"Hi {named[0]['first_name']},")):
        key = row["customer_key"]
        own = message_context(
            ws.engine, key, offer=offer, coupon=codes[key], links=links, currency="GBP"
        )
        assert greeting in (render_message(winback, own, "email").text or "")
