"""A local SMTP server (aiosmtpd on 127.0.0.1) that keeps what it receives: the demo sends its
campaign there instead of to real people.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class _Collector:
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message (aiosmtpd's handler hook)."""
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


class SmtpSink:
    """``with SmtpSink() as sink:`` — an SMTP server on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        # aiosmtpd logs every recipient and DATA line at DEBUG ("mail.log"): no personal data
        # in the demo's logs.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        self._collector = _Collector()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._controller = Controller(self._collector, hostname="127.0.0.1", port=self.port)

    @property
    def messages(self) -> list[EmailMessage]:
        """Every message received so far."""
        return self._collector.messages

    def __enter__(self) -> SmtpSink:
        self._controller.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._controller.stop()
