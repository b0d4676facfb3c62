"""Who may do what: roles of console users, scopes of API keys, and the permissions they give.

One vocabulary for the API, the console and the command line. A permission names an action on
a kind of resource (``segments:write``); ``pii:read`` is the permission to see personal data
unmasked (names, e-mails, phones, addresses, exact small counts). Roles are for people, scopes
for API keys; both resolve to the same permissions, so every check reads ``principal.can(...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Permission(StrEnum):
    """What a principal may do."""

    COLLECT = "collect"  # send events to the collection endpoints
    READ = "read"  # profiles (masked), segments, campaigns, models, reports
    PII_READ = "pii:read"  # personal data unmasked, counts below the minimum group size
    SEGMENTS_WRITE = "segments:write"
    CAMPAIGNS_WRITE = "campaigns:write"  # plan and launch
    CAMPAIGNS_APPROVE = "campaigns:approve"
    MODELS_WRITE = "models:write"
    CONSENT_WRITE = "consent:write"
    PRIVACY_ADMIN = "privacy:admin"  # data-subject requests: export, correct, erase
    USERS_ADMIN = "users:admin"  # users and API keys


class Role(StrEnum):
    """Roles of console and API users."""

    ADMIN = "admin"
    MARKETER = "marketer"
    ANALYST = "analyst"
    VIEWER = "viewer"


class Scope(StrEnum):
    """Scopes of API keys."""

    COLLECT = "collect"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


_ALL = frozenset(Permission)

# Marketers work with people (they see contacts, plan, launch and approve campaigns);
# analysts work with aggregates and models and see personal data masked; viewers only look.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: _ALL,
    Role.MARKETER: frozenset(
        {
            Permission.READ,
            Permission.PII_READ,
            Permission.SEGMENTS_WRITE,
            Permission.CAMPAIGNS_WRITE,
            Permission.CAMPAIGNS_APPROVE,
            Permission.CONSENT_WRITE,
        }
    ),
    Role.ANALYST: frozenset({Permission.READ, Permission.SEGMENTS_WRITE, Permission.MODELS_WRITE}),
    Role.VIEWER: frozenset({Permission.READ}),
}

# A key made for an app's tracking code can only collect; ``pii:read`` comes only with admin.
SCOPE_PERMISSIONS: dict[Scope, frozenset[Permission]] = {
    Scope.COLLECT: frozenset({Permission.COLLECT}),
    Scope.READ: frozenset({Permission.READ}),
    Scope.WRITE: frozenset(
        {
            Permission.READ,
            Permission.SEGMENTS_WRITE,
            Permission.CAMPAIGNS_WRITE,
            Permission.MODELS_WRITE,
            Permission.CONSENT_WRITE,
        }
    ),
    Scope.ADMIN: _ALL,
}


@dataclass(frozen=True)
class Principal:
    """A user (by role) or an API key (by scopes) and what it may do."""

    name: str
    kind: str  # "user" or "api_key"
    permissions: frozenset[Permission] = field(default_factory=frozenset)
    role: Role | None = None
    scopes: frozenset[Scope] = field(default_factory=frozenset)

    @classmethod
    def user(cls, name: str, role: Role | str) -> Principal:
        r = Role(role)
        return cls(name=name, kind="user", permissions=ROLE_PERMISSIONS[r], role=r)

    @classmethod
    def api_key(cls, name: str, scopes: set[Scope] | set[str] | frozenset[Scope]) -> Principal:
        given = frozenset(Scope(s) for s in scopes)
        permissions: frozenset[Permission] = frozenset().union(
            *(SCOPE_PERMISSIONS[s] for s in given)
        )
        return cls(name=name, kind="api_key", permissions=permissions, scopes=given)

    def can(self, permission: Permission | str) -> bool:
        return Permission(permission) in self.permissions

    @property
    def sees_pii(self) -> bool:
        return self.can(Permission.PII_READ)


# Counts and breakdown cells below this are shown as "<k" to principals without pii:read.
MIN_GROUP_SIZE = 5


def small_count(value: int, principal: Principal, k: int = MIN_GROUP_SIZE) -> int | str:
    """``value``, or ``"<k"`` when it is below ``k`` and the principal may not see it exactly.

    Zero is shown: knowing that nobody matches reveals nobody.
    """
    if principal.sees_pii or value == 0 or value >= k:
        return value
    return f"<{k}"
