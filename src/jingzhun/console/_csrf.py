"""CSRF protection of the console's forms and JSON calls: a signed double-submit cookie.

The console sets a random nonce in a cookie (``HttpOnly``, ``SameSite=Strict``, path
``/console``) and puts ``HMAC-SHA256(secret, user : nonce)`` into every form and into a
``<meta>`` tag the page's script sends back as the ``X-CSRF-Token`` header. A write is
accepted only when the token matches the cookie's nonce for the logged-in user. Another site
can neither read the cookie nor compute the token, and a cookie planted from a sibling domain
does not help without the project's secret (OWASP's "signed double-submit cookie"). The
secret is the project's ``console`` key (``state/keys/console.key``), so tokens survive a
restart and no server-side session is needed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

COOKIE = "jz_console_csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"


def new_nonce() -> str:
    """A fresh random nonce for the cookie."""
    return secrets.token_urlsafe(32)


def token_for(secret: bytes, user: str, nonce: str) -> str:
    """The token a form of ``user`` carries for the cookie's ``nonce``."""
    mac = hmac.new(secret, f"console-csrf:{user}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def token_ok(secret: bytes, user: str, nonce: str | None, token: str | None) -> bool:
    """Whether ``token`` was issued to ``user`` for the cookie's ``nonce``."""
    if not nonce or not token:
        return False
    return hmac.compare_digest(token_for(secret, user, nonce), token)
