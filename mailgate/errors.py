"""Errors of the mail side, drawn as a tree::

    MailgateError
    ├── ConfigError(MailgateError, ValueError)      bad or missing configuration
    ├── ParseFailure(MailgateError, ValueError)     bytes no parser could read (suspended)
    ├── RejectedMail(MailgateError, ValueError)     policy rejection: 554 / exit 65
    ├── TransportError(MailgateError, ConnectionError)   an outbound send failed (retried)
    └── MailboxError(MailgateError, ConnectionError)     an IMAP mailbox cannot be used now
                                                         (.mailbox, .kind: dns, tls, ...)

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


class MailboxError(MailgateError, ConnectionError):
    """An IMAP mailbox cannot be reached or used; the message is one line fit for an admin.

    ``kind`` says what went wrong: ``dns``, ``connect``, ``tls``, ``login``, ``password``,
    ``folder`` or ``protocol``. The poller retries with backoff whatever the kind.
    """

    def __init__(self, mailbox: str, kind: str, message: str) -> None:
        super().__init__(f"mailbox {mailbox}: {message}")
        self.mailbox = mailbox
        self.kind = kind
