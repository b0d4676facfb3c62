"""Signed tracking and unsubscribe links: the open pixel, click redirects, one-click unsubscribe.

A token names what happened (``o`` open, ``c`` click, ``u`` unsubscribe) and which message
(its idempotency key), and carries an HMAC-SHA256 tag over both and, for a click, the target
URL. The HTTP API verifies the token before it counts an open, redirects a click (only to the
URL that was signed, so the redirect is not open to anyone) or unsubscribes someone.

Token: ``base64url(kind ":" key) "." base64url(tag)``, the tag being the first 16 bytes (128
bits) of HMAC-SHA256 (RFC 2104, section 5, allows truncation to at least half the output).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
from dataclasses import dataclass
from urllib.parse import quote

TOKEN_KINDS = ("o", "c", "u")
_TAG_BYTES = 16
_LINK = re.compile(r"(<a\b[^>]*?\bhref\s*=\s*)([\"'])(.*?)\2", re.IGNORECASE | re.DOTALL)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)


@dataclass(frozen=True)
class TrackingToken:
    """A verified token: what happened (``o``, ``c``, ``u``) to which message."""

    kind: str
    idempotency_key: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if len(key) < 16:
        raise ValueError("the tracking secret must be at least 16 bytes long")
    return key


def _tag(key: bytes, kind: str, idempotency_key: str, url: str) -> bytes:
    signed = f"{kind}\n{idempotency_key}\n{url}".encode()
    return hmac.new(key, signed, hashlib.sha256).digest()[:_TAG_BYTES]


def sign_token(secret: str | bytes, kind: str, idempotency_key: str, url: str = "") -> str:
    """A URL-safe token for an open (``o``), a click on ``url`` (``c``) or an unsubscribe (``u``).

    Parameters
    ----------
    secret
        The project's tracking secret (at least 16 bytes), from an environment variable.
    kind
        ``o``, ``c`` or ``u``.
    idempotency_key
        The message's key, as in the delivery log.
    url
        The click's target; the token is valid for that URL only (ignored for other kinds).
    """
    if kind not in TOKEN_KINDS:
        raise ValueError(f"token kind '{kind}' is not one of {', '.join(TOKEN_KINDS)}")
    payload = _b64(f"{kind}:{idempotency_key}".encode())
    signed_url = url if kind == "c" else ""
    return f"{payload}.{_b64(_tag(_secret(secret), kind, idempotency_key, signed_url))}"


def verify_token(secret: str | bytes, token: str, url: str = "") -> TrackingToken | None:
    """The token's kind and message key when its tag is right (for ``url``), else None.

    Parameters
    ----------
    secret
        The secret the token was signed with.
    token
        The text from the link (``/o/{token}.gif``, ``/c/{token}``, the unsubscribe URL).
    url
        For a click: the ``u`` query value, which must be the URL that was signed.
    """
    payload, dot, tag = token.partition(".")
    if not dot:
        return None
    try:
        kind, colon, key = _unb64(payload).decode("utf-8").partition(":")
        given = _unb64(tag)
    except (binascii.Error, ValueError):
        return None
    if not colon or kind not in TOKEN_KINDS:
        return None
    expected = _tag(_secret(secret), kind, key, url if kind == "c" else "")
    if not hmac.compare_digest(given, expected):
        return None
    return TrackingToken(kind, key)


class Tracker:
    """Builds the tracked links of one project: pixel, click redirects, unsubscribe URLs.

    Parameters
    ----------
    secret
        HMAC key of the tokens.
    tracking_base_url
        Where the API serves ``/o/{token}.gif`` and ``/c/{token}?u=...``; empty: no open
        pixel and no click rewriting.
    unsubscribe_base_url
        The one-click unsubscribe endpoint; the URL is ``{base}/{token}`` (RFC 8058 POSTs
        ``List-Unsubscribe=One-Click`` to it). Empty: no HTTPS unsubscribe link.
    unsubscribe_mailto
        A mailbox that unsubscribes whoever writes to it; empty: no mailto link.
    """

    def __init__(
        self,
        secret: str | bytes,
        *,
        tracking_base_url: str = "",
        unsubscribe_base_url: str = "",
        unsubscribe_mailto: str = "",
    ) -> None:
        self._key = _secret(secret)
        self.tracking_base_url = tracking_base_url.rstrip("/")
        self.unsubscribe_base_url = unsubscribe_base_url.rstrip("/")
        self.unsubscribe_mailto = unsubscribe_mailto

    def _token(self, kind: str, key: str, url: str = "") -> str:
        payload = _b64(f"{kind}:{key}".encode())
        return f"{payload}.{_b64(_tag(self._key, kind, key, url))}"

    def open_url(self, key: str) -> str:
        """The open pixel's URL for a message."""
        return f"{self.tracking_base_url}/o/{self._token('o', key)}.gif"

    def click_url(self, key: str, url: str) -> str:
        """The redirect URL that counts a click on ``url`` and then goes there."""
        return f"{self.tracking_base_url}/c/{self._token('c', key, url)}?u={quote(url, safe='')}"

    def unsubscribe_url(self, key: str) -> str:
        """The HTTPS one-click unsubscribe URL of a message ('' when not configured)."""
        if not self.unsubscribe_base_url:
            return ""
        return f"{self.unsubscribe_base_url}/{self._token('u', key)}"

    def list_unsubscribe(self, key: str) -> str:
        """The ``List-Unsubscribe`` header value (RFC 2369): mailto and HTTPS, '' when neither."""
        if not (self.unsubscribe_mailto or self.unsubscribe_base_url):
            return ""
        token = self._token("u", key)
        links = []
        if self.unsubscribe_mailto:
            subject = quote(f"unsubscribe {token}")
            links.append(f"<mailto:{self.unsubscribe_mailto}?subject={subject}>")
        if self.unsubscribe_base_url:
            links.append(f"<{self.unsubscribe_base_url}/{token}>")
        return ", ".join(links)

    def track_html(self, key: str, body: str) -> str:
        """``body`` with every http(s) link sent through the click redirect (except the
        unsubscribe link) and the open pixel placed before ``</body>``.
        """
        if not self.tracking_base_url or not body:
            return body
        skip = self.unsubscribe_base_url

        def rewrite(match: re.Match[str]) -> str:
            target = html.unescape(match.group(3)).strip()
            if not target.lower().startswith(("http://", "https://")):
                return match.group(0)
            if skip and target.startswith(skip):
                return match.group(0)
            quote_char = match.group(2)
            new = html.escape(self.click_url(key, target), quote=True)
            return f"{match.group(1)}{quote_char}{new}{quote_char}"

        tracked = _LINK.sub(rewrite, body)
        pixel = (
            f'<img src="{html.escape(self.open_url(key), quote=True)}" width="1" height="1" '
            'alt="" style="display:none">'
        )
        ends = list(_BODY_END.finditer(tracked))
        if ends:
            at = ends[-1].start()
            return tracked[:at] + pixel + tracked[at:]
        return tracked + pixel
