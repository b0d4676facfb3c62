"""A tiny CRM project (one customers source) for the fast privacy tests."""

from __future__ import annotations

from pathlib import Path

from jingzhun.core import init_project

CRM_HEADER = "customer_id,email,phone,email_consent,city,birth_date\n"
CRM_SPEC = """\
name: crm
path: data/*.csv
target: customers
columns:
  customer_id: customer_id
  email: email
  phone: phone
  email_consent: {from: email_consent, type: boolean}
  city: city
  birth_date: {from: birth_date, type: date}
"""


def crm_project(root: Path, lines: list[str]) -> Path:
    """A project whose ``crm`` source reads ``data/*.csv`` with ``CRM_HEADER``'s columns."""
    init_project(root, name="crm_shop", region="GB")
    (root / "data").mkdir()
    write_crm(root, "crm.csv", lines)
    (root / "sources" / "crm.yml").write_text(CRM_SPEC, encoding="utf-8")
    return root


def write_crm(root: Path, name: str, lines: list[str]) -> Path:
    """Another file for the ``crm`` source."""
    path = root / "data" / name
    path.write_text(CRM_HEADER + "".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path
