"""Helpers for the outbound tests: a real aiosmtpd relay, certificates, a hand-moved clock.

The relay is a real SMTP server (aiosmtpd) on 127.0.0.1 with a port picked by the kernel;
its handler records what it received and answers 550/451/554 for chosen addresses, so
the transports and the dispatcher are tested against the protocol, not against mocks.
The fixtures live in ``conftest.py``; tests import names from this module, whose name is
unique (every test folder has a ``conftest``, and ``import conftest`` would be ambiguous).
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

REJECTED = "nobody@shop.example"  # the relay answers 550 5.1.1 to this recipient
DEFERRED = "busy@shop.example"  # ... and 451 4.3.0 to this one
CONTENT_REJECTED = "SPAM-TEST"  # a subject containing this gets 554 after DATA
USER, PASSWORD = "mailgate", "s3cret-pass"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    peer: Any
    tls: bool
    login: str | None
    mechanism: str | None


@dataclass
class RelayHandler:
    """Records every accepted mail; refuses the addresses above."""

    received: list[Received] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address == REJECTED:
            return "550 5.1.1 no such user"
        if address == DEFERRED:
            return "451 4.3.0 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        if CONTENT_REJECTED.encode() in content:
            return "554 5.6.0 content rejected"
        auth = session.auth_data if session.authenticated else None
        self.received.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                content=content,
                peer=session.peer,
                tls=session.ssl is not None,
                login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
                mechanism=getattr(session, "auth_mechanism", None),
            )
        )
        return "250 2.0.0 queued"


def authenticator(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    """Accepts USER/PASSWORD only, and notes the mechanism used on the session."""
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == USER
        and auth_data.password.decode() == PASSWORD
    )
    if ok:
        session.auth_mechanism = mechanism  # type: ignore[attr-defined]
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


class LoopbackController(Controller):
    """aiosmtpd's Controller, able to listen on port 0 (it needs the real port to start)."""

    def _trigger_server(self) -> None:
        if self.port == 0 and isinstance(self.server, asyncio.Server):
            self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


@dataclass
class Relay:
    handler: RelayHandler
    controller: LoopbackController

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def received(self) -> list[Received]:
        return self.handler.received


RelayFactory = Callable[..., Relay]


@dataclass(frozen=True)
class Certificate:
    certfile: Path
    keyfile: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.certfile, self.keyfile)
        return context


def make_certificate(folder: Path) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost: with ``cryptography`` when
    it is installed, else with the ``openssl`` command."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        _make_certificate_with_cryptography(cert, key)
    except ImportError:
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert),
                "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
    return Certificate(cert, key)


def _make_certificate_with_cryptography(cert: Path, key: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


class Clock:
    """A clock the test moves by hand: no sleeps."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 11, 28, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, *, to: datetime | None = None) -> datetime:
        self.now = to if to is not None else self.now + timedelta(seconds=seconds)
        return self.now
