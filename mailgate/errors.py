"""Errors of the mail side, drawn as a tree::

    MailgateError
    ├── ConfigError(MailgateError, ValueError)      bad or missing configuration
    ├── ParseFailure(MailgateError, ValueError)     bytes no parser could read (suspended)
    ├── RejectedMail(MailgateError, ValueError)     policy rejection: 554 / exit 65
    ├── TransportError(MailgateError, ConnectionError)   an outbound send failed (retried)
    ├── MailboxError(MailgateError, ConnectionError)     an IMAP mailbox cannot be used now
    │                                                    (.mailbox, .kind: dns, tls, ...)
    ├── DnsUnavailable(MailgateError, ConnectionError)   a DNS look-up failed for now (temperror)
    └── IdentityNotConfirmed(MailgateError, PermissionError)   a reply to a held confidential ticket

Store failures come from ``store.errors`` (``StoreUnavailable`` means: answer 451 / exit 75).
Expected outcomes (a suspended mail, a duplicate) are values, never exceptions.
"""

from __future__ import annotations


class MailgateError(Exception):
    """Base of every error raised by the ``mailgate`` package."""


class ConfigError(MailgateError, ValueError):
    """The configuration cannot be read or is invalid."""


class ParseFailure(MailgateError, ValueError):
    """The raw bytes cannot be read as a mail at all."""


class RejectedMail(MailgateError, ValueError):
    """The mail is refused by explicit policy (SMTP 554, pipe exit 65)."""


class TransportError(MailgateError, ConnectionError):
    """An outbound transport could not hand a mail over; the outbox retries it."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class DnsUnavailable(MailgateError, ConnectionError):
    """A DNS look-up timed out or the server failed: "unknown for now", never an answer."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"DNS look-up of {name} failed: {why}")
        self.name = name


class IdentityNotConfirmed(MailgateError, PermissionError):
    """An agent tried to answer a confidential request whose sender is not verified."""

    def __init__(self, ticket_id: int) -> None:
        super().__init__(
            f"ticket #{ticket_id} is a confidential request from an unverified sender; "
            "confirm the merchant's identity another way (phone, the registered address), "
            "then reply with --confirm-identity"
        )
        self.ticket_id = ticket_id


class MailboxError(MailgateError, ConnectionError):
    """An IMAP mailbox cannot be reached or used; the message is one line fit for an admin.

    ``kind`` says what went wrong: ``dns``, ``connect``, ``tls``, ``login``, ``password``,
    ``folder`` or ``protocol``. The poller retries with backoff whatever the kind.
    """

    def __init__(self, mailbox: str, kind: str, message: str) -> None:
        super().__init__(f"mailbox {mailbox}: {message}")
        self.mailbox = mailbox
        self.kind = kind
