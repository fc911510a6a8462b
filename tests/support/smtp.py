"""A real SMTP server (aiosmtpd) on loopback for the tests of invites the server e-mails
itself (tests/test_mail.py, tests/browser/test_mail.py): STARTTLS, TLS or plain text,
with a certificate of its own, a user to sign in as, and an inbox of what it accepted.
It can answer the next messages with a temporary failure (451), as a busy server does."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.certs import self_signed

USER, PASSWORD = "assist", "mail-password-1"
SENDER = "Acme Heating <assist@acme.example>"


@dataclass
class Inbox:
    """What the SMTP server accepted, and who signed in to it over what."""
    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)  # (user, inside TLS)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0
    ca_file: Path | None = None
    refuse: int = 0  # how many of the next messages to answer 451 (try again later)
    refused: int = 0  # how many were

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        if self.refuse > 0:
            self.refuse -= 1
            self.refused += 1
            return "451 4.3.0 Busy, try again later"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        self.arrived.set()
        return "250 OK"

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope,
                     mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((user, session.ssl is not None))
        ok = (user, password) == (USER, PASSWORD)
        return AuthResult(success=ok, handled=False)  # refused: 535, answered by aiosmtpd

    async def one(self, timeout: float = 10.0, index: int = 0
                  ) -> tuple[Envelope, EmailMessage]:
        """The message accepted ``index``-th (the first by default), once it is."""
        async with asyncio.timeout(timeout):
            while len(self.messages) <= index:
                self.arrived.clear()
                await self.arrived.wait()
        return self.messages[index]


async def smtp_server(directory: Path, security: str) -> AsyncIterator[Inbox]:
    """An SMTP server on 127.0.0.1 with a certificate of its own (its CA file in the
    inbox), offering STARTTLS (``starttls``), speaking TLS from the first byte
    (``tls``), or plain text only (``none``)."""
    inbox = Inbox()
    await asyncio.to_thread(directory.mkdir)
    cert, key = self_signed(directory)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox.ca_file = cert
    loop = asyncio.get_running_loop()
    starttls = security == "starttls"
    server = await loop.create_server(
        lambda: SMTP(inbox, hostname="mail.acme.example",
                     tls_context=context if starttls else None, require_starttls=starttls,
                     authenticator=inbox.authenticate, auth_require_tls=starttls),
        "127.0.0.1", 0, ssl=context if security == "tls" else None)
    inbox.port = server.sockets[0].getsockname()[1]
    yield inbox
    server.close()
    await server.wait_closed()
