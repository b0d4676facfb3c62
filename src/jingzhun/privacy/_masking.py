"""Masking by role where personal data leaves the system, and the minimum group size.

One rule for every exit (command line, API, console, exports): a principal without
``pii:read`` sees e-mails, phones, names and birth dates masked as the 360° view masks them,
source and device ids with their middle hidden, and counts below ``MIN_GROUP_SIZE`` as
``"<k"``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jingzhun.core import MIN_GROUP_SIZE, Principal, small_count
from jingzhun.privacy._match import column_kind
from jingzhun.profile import mask_attribute, mask_email, mask_phone

_ADDRESS_COLUMNS = frozenset({"address", "recipient", "to", "email_address", "phone_number"})
_DEVICE_COLUMNS = frozenset({"anonymous_id", "anonymousid", "device_id", "session_id"})


def mask_identifier(value: str) -> str:
    """A record or device id with its middle hidden (``W-00162321`` → ``W-***21``), as the
    360° view shows ids.
    """
    if len(value) <= 2:
        return "*" * len(value)
    keep = min(4, max(1, len(value) // 4))
    return f"{value[:keep]}***{value[-keep:]}"


def mask_value(column: str, value: Any) -> Any:
    """One value as a principal without ``pii:read`` sees it."""
    if value is None:
        return None
    name = column.lower()
    if name in _ADDRESS_COLUMNS:
        text = str(value)
        return mask_email(text) if "@" in text else mask_phone(text)
    if column_kind(name) == "id" or name in _DEVICE_COLUMNS:
        return mask_identifier(str(value))
    return mask_attribute(name, value)


def mask_record(record: Mapping[str, Any], principal: Principal) -> dict[str, Any]:
    """A row with its personal values masked unless the principal may read them."""
    if principal.sees_pii:
        return dict(record)
    return {k: mask_value(k, v) for k, v in record.items()}


def mask_records(
    records: Iterable[Mapping[str, Any]], principal: Principal
) -> list[dict[str, Any]]:
    """``mask_record`` over many rows."""
    return [mask_record(r, principal) for r in records]


def group_counts(
    counts: Mapping[str, int], principal: Principal, k: int = MIN_GROUP_SIZE
) -> dict[str, int | str]:
    """A breakdown with every cell below ``k`` shown as ``"<k"`` to principals without
    ``pii:read`` (zero stays zero: nobody is revealed by it).
    """
    return {name: small_count(int(value), principal, k) for name, value in counts.items()}
