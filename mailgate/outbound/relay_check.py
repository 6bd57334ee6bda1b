"""``outbound test``: send one mail through the configured transport, now.

Not through the outbox: the admin wants to know at once whether the relay takes mail
(TLS, login, sender accepted), and a test mail has no ticket to belong to. It carries
``Auto-Submitted: auto-generated`` so that no responder answers it.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr

from mailgate.clock import Clock
from mailgate.config import OutboundSettings
from mailgate.outbound.transports import SmtpTransport, Transport


def send_test_mail(
    settings: OutboundSettings, transport: Transport, *, to: str | None, clock: Clock
) -> str:
    """Send a test mail to ``to`` (default: our own From address); returns one line
    saying where it went. Raises ``TransportError`` when the transport refuses it."""
    sender = parseaddr(settings.from_)[1]
    recipient = to or sender
    message = EmailMessage()
    message["From"] = settings.from_
    message["To"] = recipient
    message["Subject"] = "Mailgate relay test"
    message["Date"] = format_datetime(clock())
    message["Message-ID"] = make_msgid("mailgate-test", domain=sender.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        "This is a test mail sent by `mailgate outbound test`.\n"
        "If you can read it, notifications will reach their recipients the same way.\n"
    )
    transport.send(sender, [recipient], bytes(message))
    return f"test mail sent to {recipient} through {describe_transport(settings, transport)}"


def describe_transport(settings: OutboundSettings, transport: Transport) -> str:
    """How mail leaves, in words: the transport, its TLS and its login."""
    if not isinstance(transport, SmtpTransport):
        return settings.transport
    tls = (
        "implicit TLS"
        if transport.implicit_tls
        else {"auto": "STARTTLS when offered", "required": "STARTTLS", "off": "no TLS"}[
            transport.starttls
        ]
    )
    login = f", login {transport.user}" if transport.user else ""
    return f"{settings.transport} ({tls}{login})"
