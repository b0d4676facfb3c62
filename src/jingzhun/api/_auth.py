"""API keys, users, console sessions and the audit log (operational store tables).

- **API keys** (``jz_<prefix>_<secret>``, 192 random bits): stored as HMAC-SHA256 with the
  project secret ``api_keys``; the prefix finds the row, the hash is compared in constant time.
  A key is random, so a fast keyed hash is enough (no password stretching); verified keys are
  cached in the process for ``key_cache_seconds``, so a revocation takes at most that long.
- **Users**: scrypt password hashes (N=2^14, r=8, p=1, 16-byte salt; RFC 7914).
- **Sessions** (console login): a random token in an HttpOnly cookie, stored as a keyed hash
  with its expiry; logging out ends it on the server.
- **Audit log**: every read of personal data and every export, appended (never changed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from jingzhun.core import NotFoundError, Principal, Role, Scope, SpecError, SpecProblem
from jingzhun.store import ApiKey, ApiSession, ApiUser, AuditEntry, OperationalStore

SESSION_COOKIE = "jingzhun_session"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,80}$")
_KEY = re.compile(r"^jz_([0-9a-f]{8})_[A-Za-z0-9_-]{20,64}$")


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` of a password (salt and hash base64)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT
    )
    b64 = base64.b64encode
    return (
        f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}$"
        f"{b64(salt).decode()}${b64(digest).decode()}"
    )


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches a ``hash_password`` value (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


_DUMMY_HASH = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)


def _problem(field: str, message: str) -> SpecError:
    from pathlib import Path

    return SpecError([SpecProblem(Path("<api>"), None, field, message)])


def parse_scopes(scopes: Iterable[str]) -> frozenset[Scope]:
    """Scopes from names (``collect``, ``read``, ``write``, ``admin``); unknown names fail."""
    names = [s.strip() for s in scopes if s.strip()]
    allowed = ", ".join(s.value for s in Scope)
    unknown = [s for s in names if s not in {v.value for v in Scope}]
    if unknown or not names:
        raise _problem(
            "scopes",
            f"unknown scope(s) {', '.join(unknown)}; use {allowed}"
            if unknown
            else f"give at least one scope of {allowed}",
        )
    return frozenset(Scope(s) for s in names)


def _key_dict(row: ApiKey) -> dict[str, Any]:
    return {
        "name": row.name,
        "prefix": row.prefix,
        "scopes": row.scopes.split(","),
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "revoked": row.revoked_at is not None,
    }


def _user_dict(row: ApiUser) -> dict[str, Any]:
    return {
        "name": row.name,
        "role": row.role,
        "created_at": row.created_at.isoformat(),
        "disabled": row.disabled_at is not None,
    }


class AccessControl:
    """Who is calling: API keys, users and sessions in the store, and the audit log.

    Parameters
    ----------
    store
        The operational store, migrated.
    secret
        Key of the keyed hashes (``project.secret("api_keys")``), at least 16 bytes.
    """

    def __init__(
        self,
        store: OperationalStore,
        secret: bytes,
        *,
        key_cache_seconds: float = 30.0,
        session_hours: float = 12.0,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the API key secret must be at least 16 bytes")
        self.store = store
        self._secret = secret
        self.key_cache_seconds = key_cache_seconds
        self.session_hours = session_hours
        self._cache: dict[str, tuple[float, Principal]] = {}
        self._cache_lock = threading.Lock()

    def _hash(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    # -- API keys ------------------------------------------------------------------------

    def create_api_key(self, name: str, scopes: Iterable[str], *, created_by: str) -> str:
        """Make a key; the key itself is returned once and never stored."""
        if not _NAME.match(name):
            raise _problem("name", f"'{name}' is not a key name: letters, digits, _ . @ -")
        chosen = parse_scopes(scopes)
        prefix = secrets.token_hex(4)
        key = f"jz_{prefix}_{secrets.token_urlsafe(24)}"
        with self.store.session(write=True) as session:
            if session.scalar(select(ApiKey).where(ApiKey.name == name)) is not None:
                raise _problem("name", f"an API key named '{name}' exists already")
            session.add(
                ApiKey(
                    name=name,
                    prefix=prefix,
                    key_hash=self._hash(key),
                    scopes=",".join(sorted(s.value for s in chosen)),
                    created_by=created_by,
                    created_at=datetime.now(UTC),
                )
            )
        return key

    def revoke_api_key(self, name: str) -> None:
        """Revoke a key by name (takes effect within ``key_cache_seconds``)."""
        with self.store.session(write=True) as session:
            row = session.scalar(select(ApiKey).where(ApiKey.name == name))
            if row is None:
                raise NotFoundError(f"no API key named '{name}'")
            row.revoked_at = datetime.now(UTC)
        with self._cache_lock:
            self._cache.clear()

    def api_keys(self) -> list[dict[str, Any]]:
        """Every key without its secret: name, prefix, scopes, who made it, when, revoked."""
        with self.store.session() as session:
            return [_key_dict(k) for k in session.scalars(select(ApiKey).order_by(ApiKey.id))]

    def api_key(self, name: str) -> dict[str, Any]:
        """One key without its secret (as ``api_keys`` lists it); ``NotFoundError`` if unknown."""
        with self.store.session() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.name == name))
            if row is None:
                raise NotFoundError(f"no API key named '{name}'")
            return _key_dict(row)

    def principal_for_key(self, key: str) -> Principal | None:
        """The key's principal, or None for an unknown, malformed or revoked key."""
        match = _KEY.match(key)
        if match is None:
            return None
        digest = self._hash(key)
        now = time.monotonic()
        with self._cache_lock:
            cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        with self.store.session() as session:
            row = session.scalar(select(ApiKey).where(ApiKey.prefix == match.group(1)))
            if (
                row is None
                or row.revoked_at is not None
                or not hmac.compare_digest(row.key_hash, digest)
            ):
                return None
            principal = Principal.api_key(row.name, set(row.scopes.split(",")))
        with self._cache_lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (now + self.key_cache_seconds, principal)
        return principal

    # -- users and sessions ----------------------------------------------------------------

    def add_user(self, name: str, role: Role | str, password: str) -> None:
        """Add a console user (the password at least 8 characters)."""
        if not _NAME.match(name):
            raise _problem("name", f"'{name}' is not a user name: letters, digits, _ . @ -")
        try:
            chosen = Role(role)
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise _problem("role", f"'{role}' is not a role; use {roles}") from None
        if len(password) < 8:
            raise _problem("password", "a password needs at least 8 characters")
        with self.store.session(write=True) as session:
            if session.scalar(select(ApiUser).where(ApiUser.name == name)) is not None:
                raise _problem("name", f"a user named '{name}' exists already")
            session.add(
                ApiUser(
                    name=name,
                    role=chosen.value,
                    password_hash=hash_password(password),
                    created_at=datetime.now(UTC),
                )
            )

    def users(self) -> list[dict[str, Any]]:
        """Every user: name, role, created, disabled."""
        with self.store.session() as session:
            return [_user_dict(u) for u in session.scalars(select(ApiUser).order_by(ApiUser.id))]

    def user(self, name: str) -> dict[str, Any]:
        """One user (as ``users`` lists it); ``NotFoundError`` when there is none."""
        with self.store.session() as session:
            row = session.scalar(select(ApiUser).where(ApiUser.name == name))
            if row is None:
                raise NotFoundError(f"no user named '{name}'")
            return _user_dict(row)

    def update_user(
        self,
        name: str,
        *,
        role: Role | str | None = None,
        password: str | None = None,
        disabled: bool | None = None,
    ) -> dict[str, Any]:
        """Change a user's role, password or state (None: unchanged); returns the user.

        A new role applies to live sessions at once (each request reads the user's row). A new
        password or disabling ends every session of the user; enabling again does not bring
        them back. Checks as ``add_user``.
        """
        chosen = None
        if role is not None:
            try:
                chosen = Role(role)
            except ValueError:
                roles = ", ".join(r.value for r in Role)
                raise _problem("role", f"'{role}' is not a role; use {roles}") from None
        if password is not None and len(password) < 8:
            raise _problem("password", "a password needs at least 8 characters")
        now = datetime.now(UTC)
        with self.store.session(write=True) as session:
            row = session.scalar(select(ApiUser).where(ApiUser.name == name))
            if row is None:
                raise NotFoundError(f"no user named '{name}'")
            if chosen is not None:
                row.role = chosen.value
            if password is not None:
                row.password_hash = hash_password(password)
            if disabled is not None:
                row.disabled_at = (row.disabled_at or now) if disabled else None
            if password is not None or disabled:
                live = select(ApiSession).where(
                    ApiSession.user_name == name, ApiSession.ended_at.is_(None)
                )
                for live_session in session.scalars(live):
                    live_session.ended_at = now
            return _user_dict(row)

    def authenticate(self, name: str, password: str) -> Principal | None:
        """The user's principal when name and password match (and the user is enabled)."""
        with self.store.session() as session:
            row = session.scalar(select(ApiUser).where(ApiUser.name == name))
            stored = row.password_hash if row is not None else _DUMMY_HASH
            ok = check_password(password, stored)  # hashed either way: no timing oracle
            if row is None or not ok or row.disabled_at is not None:
                return None
            return Principal.user(row.name, row.role)

    def start_session(self, principal: Principal) -> str:
        """A new session for a logged-in user; returns the cookie's token."""
        token = secrets.token_urlsafe(32)
        now = datetime.now(UTC)
        with self.store.session(write=True) as session:
            session.add(
                ApiSession(
                    token_hash=self._hash(token),
                    user_name=principal.name,
                    created_at=now,
                    expires_at=now + timedelta(hours=self.session_hours),
                )
            )
        return token

    def principal_for_session(self, token: str) -> Principal | None:
        """The user of a live session (not ended, not expired, user enabled), else None."""
        if not token or len(token) > 200:
            return None
        now = datetime.now(UTC)
        with self.store.session() as session:
            row = session.scalar(
                select(ApiSession).where(ApiSession.token_hash == self._hash(token))
            )
            if row is None or row.ended_at is not None or row.expires_at <= now:
                return None
            user = session.scalar(select(ApiUser).where(ApiUser.name == row.user_name))
            if user is None or user.disabled_at is not None:
                return None
            return Principal.user(user.name, user.role)

    def end_session(self, token: str) -> None:
        """Log out: the session stops working at once."""
        with self.store.session(write=True) as session:
            row = session.scalar(
                select(ApiSession).where(ApiSession.token_hash == self._hash(token))
            )
            if row is not None and row.ended_at is None:
                row.ended_at = datetime.now(UTC)

    # -- audit -----------------------------------------------------------------------------

    def audit(
        self,
        principal: Principal,
        action: str,
        resource: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one audit row (a read of personal data, an export, a data-subject request)."""
        with self.store.session(write=True) as session:
            session.add(
                AuditEntry(
                    at=datetime.now(UTC),
                    principal=principal.name,
                    principal_kind=principal.kind,
                    action=action,
                    resource=resource[:2000],
                    detail=detail or {},
                )
            )

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest audit rows first."""
        with self.store.session() as session:
            rows = session.scalars(
                select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
            ).all()
            return [
                {
                    "id": r.id,
                    "at": r.at.isoformat(),
                    "principal": r.principal,
                    "principal_kind": r.principal_kind,
                    "action": r.action,
                    "resource": r.resource,
                    "detail": r.detail,
                }
                for r in rows
            ]
