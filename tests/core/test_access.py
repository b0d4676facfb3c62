"""Roles, scopes and the minimum group size."""

from __future__ import annotations

import pytest

from jingzhun.core import Permission, Principal, Role, Scope, small_count


def test_roles_give_what_the_console_needs() -> None:
    admin = Principal.user("ada", Role.ADMIN)
    marketer = Principal.user("mo", "marketer")
    analyst = Principal.user("an", Role.ANALYST)
    viewer = Principal.user("vi", Role.VIEWER)
    assert all(admin.can(p) for p in Permission)
    assert marketer.sees_pii and marketer.can("campaigns:approve")
    assert not analyst.sees_pii and analyst.can(Permission.MODELS_WRITE)
    assert viewer.can("read") and not viewer.can("segments:write") and not viewer.sees_pii


def test_scopes_union_and_collect_keys_cannot_read() -> None:
    collect = Principal.api_key("site", {"collect"})
    assert collect.can("collect") and not collect.can("read")
    both = Principal.api_key("etl", {Scope.READ, Scope.WRITE})
    assert both.can("segments:write") and not both.sees_pii
    assert Principal.api_key("ops", {"admin"}).sees_pii
    with pytest.raises(ValueError):
        Principal.api_key("bad", {"root"})


def test_small_counts_are_hidden_without_pii_read() -> None:
    analyst = Principal.user("an", Role.ANALYST)
    marketer = Principal.user("mo", Role.MARKETER)
    assert small_count(3, analyst) == "<5"
    assert small_count(0, analyst) == 0
    assert small_count(5, analyst) == 5
    assert small_count(3, marketer) == 3
