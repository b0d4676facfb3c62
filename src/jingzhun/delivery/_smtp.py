"""E-mail over SMTP: MIME multipart/alternative, unsubscribe headers, tracked links, one session.

The message is built by hand rather than with ``email.message.EmailMessage``: the standard
library's builder takes about 2 ms per message on a small machine, which alone would hold a
send run under 500 e-mails/s; the bytes written here are the same MIME (tests parse them back
with the standard library). Every part is UTF-8 in quoted-printable, and the boundary starts
with ``=_``, which quoted-printable text can never contain (RFC 2045, section 6.7).

Reply codes (RFC 5321, section 4.2.1): 2xx accepted; 4xx on any command is transient (retry);
5xx on ``RCPT TO`` means the mailbox does not exist or refuses mail (hard bounce, the address
is suppressed); 5xx on ``DATA`` rejects this message, not the address (failed, not retried).
"""

from __future__ import annotations

import binascii
import contextlib
import email.header
import email.utils
import re
import smtplib
import ssl
import time
from collections.abc import Iterable, Mapping
from enum import StrEnum

from jingzhun.core import EngineError
from jingzhun.delivery._channels import (
    DeliveryChannel,
    MessageLookup,
    OutboundMessage,
    SendResult,
    SendStatus,
    message_id,
)
from jingzhun.delivery._tracking import Tracker

_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]*$")
_UNSAFE = re.compile(r"[\s<>]")  # an address with these cannot go between <> in a command
_RESERVED = frozenset(
    name.lower()
    for name in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
    )
)


class SmtpSecurity(StrEnum):
    """How the SMTP connection is protected: not at all (a local relay), STARTTLS, or TLS."""

    NONE = "none"
    STARTTLS = "starttls"  # port 587 (RFC 3207)
    TLS = "tls"  # implicit TLS, port 465 (RFC 8314)


def _header_value(value: str) -> str:
    """A header value as ASCII: RFC 2047 encoded words when it is not ASCII or very long."""
    flat = " ".join(value.splitlines())
    if flat.isascii() and len(flat) < 900:
        return flat
    return email.header.Header(flat, "utf-8", maxlinelen=76).encode(linesep="\r\n")


def _qp(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line ends (RFC 2045, section 6.7)."""
    body = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(body, quotetabs=False, istext=True).replace(b"\n", b"\r\n")


def build_mime(
    *,
    from_header: str,
    to: str,
    subject: str,
    message_id: str,
    date: str,
    text: str,
    html: str,
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """The bytes of one e-mail: text and HTML as multipart/alternative (RFC 2046, 5.1.4).

    Parameters
    ----------
    from_header
        The ``From`` value, already encoded (``email.utils.formataddr``).
    message_id
        ``<id@domain>``; also makes the multipart boundary.
    headers
        Further ``(name, value)`` pairs; values are RFC 2047-encoded when not ASCII.
    """
    lines = [
        f"From: {from_header}",
        f"To: {to}",
        f"Subject: {_header_value(subject)}",
        f"Date: {date}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
    ]
    lines.extend(f"{name}: {_header_value(value)}" for name, value in headers)
    text_part = b'Content-Type: text/plain; charset="utf-8"'
    html_part = b'Content-Type: text/html; charset="utf-8"'
    encoding = b"Content-Transfer-Encoding: quoted-printable"
    if text and html:
        boundary = "=_jz_" + message_id.strip("<>").split("@", 1)[0].replace(".", "_")
        lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        mark = b"--" + boundary.encode("ascii")
        return b"\r\n".join(
            [
                "\r\n".join(lines).encode("ascii"),
                b"",
                mark,
                text_part,
                encoding,
                b"",
                _qp(text),
                mark,
                html_part,
                encoding,
                b"",
                _qp(html),
                mark + b"--",
                b"",
            ]
        )
    only_html = bool(html) and not text
    lines.append((html_part if only_html else text_part).decode("ascii"))
    lines.append(encoding.decode("ascii"))
    head = "\r\n".join(lines).encode("ascii")
    return head + b"\r\n\r\n" + _qp(html if only_html else text) + b"\r\n"


class _Unavailable(Exception):
    """The server could not be reached or dropped the connection before the message."""


class SmtpChannel(DeliveryChannel):
    """E-mail through an SMTP server, one connection kept open across messages.

    Parameters
    ----------
    host, port
        The submission server (587 with STARTTLS, 465 with TLS, 25 to a local relay).
    from_address
        ``Shop <news@example.com>``; its domain also names the ``Message-ID``.
    username, password
        Login (AUTH PLAIN or LOGIN, as the server offers); the password comes from an
        environment variable, never from a file.
    security
        ``none``, ``starttls`` or ``tls``. STARTTLS that the server does not offer is an error,
        not a silent fall-back to clear text.
    tracker
        Tracked links and the ``List-Unsubscribe`` headers; None sends the content as given.
    ssl_context
        Certificates to trust (default: the system's, with host name checks).
    lookup
        Asks the provider whether it holds a ``Message-ID`` (``already_sent``); without it,
        the fate of a message in flight when a worker died cannot be known.
    """

    kind = "email"

    def __init__(
        self,
        host: str,
        port: int,
        *,
        from_address: str,
        username: str | None = None,
        password: str | None = None,
        security: SmtpSecurity | str = SmtpSecurity.STARTTLS,
        tracker: Tracker | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        lookup: MessageLookup | None = None,
        local_hostname: str | None = None,
    ) -> None:
        super().__init__()
        name, address = email.utils.parseaddr(from_address)
        if "@" not in address or not address.isascii() or _UNSAFE.search(address):
            raise ValueError(f"from_address '{from_address}' is not an ASCII e-mail address")
        self.host = host
        self.port = port
        self.username = username
        self._password = password
        self.security = SmtpSecurity(security)
        self.tracker = tracker
        self.timeout = timeout
        self.lookup = lookup
        self.local_hostname = local_hostname
        self._from = address
        self._from_header = email.utils.formataddr((name, address), charset="utf-8")
        self._domain = address.rsplit("@", 1)[1].lower()
        self._ssl = ssl_context
        self._conn: smtplib.SMTP | None = None
        self._date_second = -1
        self._date = ""

    def __repr__(self) -> str:
        return f"SmtpChannel({self.host}:{self.port}, {self.security.value})"

    @property
    def where(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}"

    def message_id_for(self, idempotency_key: str) -> str:
        """``<jz.{32 hex}@{sender domain}>``: the same key always gives the same Message-ID."""
        return f"<{message_id(idempotency_key)}@{self._domain}>"

    def already_sent(self, idempotency_key: str) -> bool | None:
        """Ask the lookup (when configured) whether the provider holds the Message-ID."""
        known = super().already_sent(idempotency_key)
        if known or self.lookup is None:
            return known
        return self.lookup.has(self.message_id_for(idempotency_key))

    def _now(self) -> str:
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            self._date = email.utils.formatdate(second, usegmt=True)
        return self._date

    def build_message(self, message: OutboundMessage) -> bytes:
        """The bytes that ``send`` would transmit for ``message`` (tracked, with headers)."""
        key = message.idempotency_key
        html = message.html
        headers: list[tuple[str, str]] = []
        if self.tracker is not None:
            html = self.tracker.track_html(key, html)
            unsubscribe = self.tracker.list_unsubscribe(key)
            if unsubscribe:
                headers.append(("List-Unsubscribe", unsubscribe))
            if self.tracker.unsubscribe_base_url:
                # RFC 8058: the HTTPS URI above accepts a POST of this body.
                headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        headers.extend(_checked_headers(message.headers))
        return build_mime(
            from_header=self._from_header,
            to=message.recipient.strip(),
            subject=message.subject,
            message_id=self.message_id_for(key),
            date=self._now(),
            text=message.text,
            html=html,
            headers=headers,
        )

    def _deliver(self, message: OutboundMessage) -> SendResult:
        to = message.recipient.strip()
        local, at, domain = to.rpartition("@")
        if not at or not local or not domain or not to.isascii() or _UNSAFE.search(to):
            return SendResult(
                SendStatus.FAILED,
                detail="the address is not an ASCII e-mail address (SMTPUTF8 is not supported)",
            )
        if not (message.text or message.html):
            return SendResult(SendStatus.FAILED, detail="the message has neither text nor HTML")
        try:
            data = self.build_message(message)
        except ValueError as exc:
            return SendResult(SendStatus.FAILED, detail=str(exc))
        try:
            conn, code, reply = self._mail_from()
        except _Unavailable as exc:
            return SendResult(SendStatus.SOFT_FAIL, detail=str(exc), provider_down=True)
        try:
            if code != 250:
                self._reset(conn)
                if 400 <= code < 500:
                    return _soft(f"MAIL FROM: {code} {reply}")
                raise EngineError(
                    f"the SMTP server {self.where} refused the sender {self._from}: {code} {reply}"
                )
            # the address was checked above, so it goes into the command as is (smtplib's
            # rcpt() would parse it again with email.utils, a tenth of the time per message)
            code, raw = conn.docmd("rcpt", f"TO:<{to}>")
            reply = _text(raw)
            if code not in (250, 251):
                self._reset(conn)
                if 500 <= code < 600:
                    return SendResult(SendStatus.HARD_BOUNCE, detail=f"RCPT TO: {code} {reply}")
                return _soft(f"RCPT TO: {code} {reply}")
            try:
                code, raw = conn.data(data)
            except smtplib.SMTPDataError as exc:  # the DATA command itself was refused
                self._reset(conn)
                if 400 <= exc.smtp_code < 500:
                    return _soft(f"DATA: {exc.smtp_code} {_text(exc.smtp_error)}")
                return SendResult(
                    SendStatus.FAILED, detail=f"DATA: {exc.smtp_code} {_text(exc.smtp_error)}"
                )
            reply = _text(raw)
            if code == 250:
                return SendResult(SendStatus.SENT, provider_id=reply[:200] or None)
            if 400 <= code < 500:
                return _soft(f"end of DATA: {code} {reply}")
            return SendResult(SendStatus.FAILED, detail=f"end of DATA: {code} {reply}")
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self._drop()
            return SendResult(
                SendStatus.SOFT_FAIL,
                detail=f"connection to {self.where} lost during the transaction ({exc}); "
                "the message may have arrived",
            )
        except smtplib.SMTPException as exc:  # a reply smtplib could not make sense of
            self._drop()
            return SendResult(SendStatus.SOFT_FAIL, detail=f"SMTP error from {self.where}: {exc}")

    def _mail_from(self) -> tuple[smtplib.SMTP, int, str]:
        """Start a transaction; a kept connection the server has closed is opened again once
        (nothing of the message was sent yet, so that is safe).
        """
        for attempt in range(2):
            reused = self._conn is not None
            conn = self._connection()
            try:
                code, raw = conn.docmd("mail", f"FROM:<{self._from}>")
                return conn, code, _text(raw)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop()
                if not reused or attempt == 1:
                    raise _Unavailable(
                        f"SMTP server {self.where} dropped the connection: {exc}"
                    ) from None
        raise _Unavailable(f"SMTP server {self.where} dropped the connection")  # unreachable

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        context = self._ssl or ssl.create_default_context()
        conn: smtplib.SMTP | None = None
        try:
            if self.security is SmtpSecurity.TLS:
                conn = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    self.local_hostname,
                    timeout=self.timeout,
                    context=context,
                )
            else:
                conn = smtplib.SMTP(self.host, self.port, self.local_hostname, timeout=self.timeout)
            conn.ehlo()
            if self.security is SmtpSecurity.STARTTLS:
                if not conn.has_extn("starttls"):
                    raise EngineError(
                        f"the SMTP server {self.where} does not offer STARTTLS; set "
                        "email.security to 'tls' (port 465) or, for a local relay only, 'none'"
                    )
                conn.starttls(context=context)
                conn.ehlo()
            if self.username:
                conn.login(self.username, self._password or "")
        except smtplib.SMTPAuthenticationError as exc:
            _close(conn)
            raise EngineError(
                f"the SMTP server {self.where} refused the login of '{self.username}' "
                f"({exc.smtp_code} {_text(exc.smtp_error)}); check email.username and the "
                "password's environment variable"
            ) from None
        except smtplib.SMTPNotSupportedError:
            _close(conn)
            raise EngineError(
                f"the SMTP server {self.where} offers no login (AUTH); remove email.username or "
                "use STARTTLS / TLS, which many servers require before AUTH"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            _close(conn)
            raise EngineError(
                f"the TLS certificate of the SMTP server {self.where} is not trusted "
                f"({exc.verify_message}); set email.ca_file to the CA that signed it"
            ) from None
        except EngineError:
            _close(conn)
            raise
        except (smtplib.SMTPException, OSError) as exc:
            _close(conn)
            raise _Unavailable(f"cannot reach the SMTP server {self.where}: {exc}") from None
        self._conn = conn
        return conn

    def _reset(self, conn: smtplib.SMTP) -> None:
        try:
            conn.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        _close(conn)

    def close(self) -> None:
        """Say QUIT and close the connection (it is opened again by the next send)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            _close(conn)


def _close(conn: smtplib.SMTP | None) -> None:
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.close()


def _soft(detail: str) -> SendResult:
    return SendResult(SendStatus.SOFT_FAIL, detail=detail)


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


def _checked_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    """Extra headers of a message, refusing names that are not tokens or that delivery sets."""
    checked = []
    for name, value in headers.items():
        if not _HEADER_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid e-mail header name")
        if name.lower() in _RESERVED:
            raise ValueError(f"header '{name}' is set by delivery and cannot be given")
        checked.append((name, str(value)))
    return checked
