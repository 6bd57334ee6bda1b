"""Errors of the ticket store, drawn as a tree::

StoreError
├── StoreUnavailable(StoreError, ConnectionError)   database or disk not usable now: 451 / 75
├── NotFound(StoreError, LookupError)
│   ├── TicketNotFound                              .ticket_id
│   └── RecordNotFound                              shops, users, agents, outbox, suspended
├── IllegalTransition(StoreError, ValueError)       .ticket_id, .current, .target
└── InvalidInput(StoreError, ValueError)            a value the store refuses (bad locale...)
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error raised by ``store``."""


class StoreUnavailable(StoreError, ConnectionError):
    """The database or the mail folder cannot be used now; the caller retries later."""

    def __init__(self, message: str, *, operation: str = "") -> None:
        super().__init__(message)
        self.operation = operation


class TransactionConflict(StoreUnavailable):
    """The database ended this transaction for another's sake (a deadlock, a serialization
    failure) and rolled it back: done again, it will most likely go through."""


class NotFound(StoreError, LookupError):
    """A record that was asked for does not exist."""


class TicketNotFound(NotFound):
    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"ticket #{ticket_id} not found")
        self.ticket_id = ticket_id


class RecordNotFound(NotFound):
    """A shop, user, agent, outbox mail or suspended mail that does not exist."""


class IllegalTransition(StoreError, ValueError):
    def __init__(self, ticket_id: int, current: str, target: str, why: str = "") -> None:
        text = f"ticket #{ticket_id}: cannot go from {current} to {target}"
        super().__init__(f"{text} ({why})" if why else text)
        self.ticket_id = ticket_id
        self.current = current
        self.target = target


class InvalidInput(StoreError, ValueError):
    """A value the store refuses, with a message fit for the user."""
