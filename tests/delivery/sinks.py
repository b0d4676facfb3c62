"""Real local servers for the delivery tests: an SMTP server (aiosmtpd) and an HTTP server.

Both run on 127.0.0.1 in a thread of the test process and keep what they accepted, so a test
counts the messages that really arrived.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make a test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class SmtpSink:
    """aiosmtpd on 127.0.0.1 keeping every message it accepts.

    ``rcpt_reply(address)`` and ``data_reply(message)`` may return an SMTP reply to refuse;
    ``on_data(n, message)`` runs for the n-th complete message before it is accepted and may
    return False to refuse it (the tests kill a worker from there); ``delay`` slows DATA.
    """

    starttls: ssl.SSLContext | None = None
    implicit_tls: ssl.SSLContext | None = None
    users: dict[str, str] | None = None
    auth_exclude: tuple[str, ...] = ()
    rcpt_reply: Callable[[str], str | None] | None = None
    data_reply: Callable[[EmailMessage], str | None] | None = None
    on_data: Callable[[int, EmailMessage], bool] | None = None
    delay: float = 0.0
    messages: list[Received] = field(default_factory=list)
    auth_seen: list[str] = field(default_factory=list)
    tls_seen: list[bool] = field(default_factory=list)
    sessions: set[int] = field(default_factory=set)
    port: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.data_count = 0
        self._controller: Controller | None = None

    # aiosmtpd handler hooks -----------------------------------------------------------------

    async def handle_RCPT(
        self,
        server: Any,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply is not None:
            refused = self.rcpt_reply(address)
            if refused is not None:
                return refused
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        parsed = email.message_from_bytes(data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.tls_seen.append(server.transport.get_extra_info("ssl_object") is not None)
        self.sessions.add(id(session))
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.data_reply is not None:
            refused = self.data_reply(parsed)
            if refused is not None:
                return refused
        with self._lock:
            self.data_count += 1
            n = self.data_count
        if self.on_data is not None and not self.on_data(n, parsed):
            return "451 4.3.0 not now"
        with self._lock:
            self.messages.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), data, parsed)
            )
        return f"250 2.0.0 OK queued as Q{n}"

    def _authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if not isinstance(auth_data, LoginPassword) or self.users is None:
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode()
        ok = self.users.get(user) == auth_data.password.decode()
        if ok:
            self.auth_seen.append(mechanism)
        return AuthResult(success=ok, handled=False)

    # lifetime -------------------------------------------------------------------------------

    def start(self) -> SmtpSink:
        self.port = free_port()
        options: dict[str, Any] = {}
        if self.users is not None:
            options["authenticator"] = self._authenticate
            options["auth_require_tls"] = self.starttls is not None
            if self.auth_exclude:
                options["auth_exclude_mechanism"] = list(self.auth_exclude)
        if self.starttls is not None:
            options["tls_context"] = self.starttls
            options["require_starttls"] = True
        if self.implicit_tls is not None:
            options["ssl_context"] = self.implicit_tls
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # what arrived ---------------------------------------------------------------------------

    def message_ids(self) -> Counter[str]:
        with self._lock:
            return Counter(m.message_id for m in self.messages)

    def has(self, message_id: str) -> bool:
        return self.message_ids()[message_id] > 0


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Responder = Callable[[Request], tuple[int, dict[str, str], bytes]]


def ok_json(request: Request) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/json"}, b'{"id": "prov-1"}'


class HttpSink:
    """``ThreadingHTTPServer`` on 127.0.0.1 keeping every request; ``respond`` answers."""

    def __init__(self, respond: Responder = ok_json) -> None:
        self.respond = respond
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(
                    self.command, unquote(self.path), {k: v for k, v in self.headers.items()}, body
                )
                with sink._lock:
                    sink.requests.append(request)
                status, headers, content = sink.respond(request)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = _handle
            do_POST = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HttpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def posts(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST"]


def lookup_responder(smtp: SmtpSink) -> Responder:
    """A provider's "do you have this Message-ID?" API over what ``smtp`` accepted."""

    def respond(request: Request) -> tuple[int, dict[str, str], bytes]:
        wanted = request.path.removeprefix("/messages/")
        return (200, {}, b"{}") if smtp.has(wanted) else (404, {}, b"{}")

    return respond
