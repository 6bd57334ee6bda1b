"""The vocabulary of DESIGN.md as enums: statuses, types, priorities, directions, states."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    SOLVED = "solved"
    CLOSED = "closed"


class StandbyReason(StrEnum):
    APPLYING_FIX = "applying_fix"
    AWAITING_MERCHANT_DATA = "awaiting_merchant_data"
    AWAITING_OTHER_SECTOR = "awaiting_other_sector"
    AWAITING_IT = "awaiting_it"
    LONG_ANALYSIS = "long_analysis"
    PROPAGATION = "propagation"
    DEADLINE_SET = "deadline_set"


class TicketType(StrEnum):
    QUESTION = "question"
    PROBLEM = "problem"
    DEVELOPMENT = "development"


class Priority(StrEnum):
    IMMEDIATE = "immediate"
    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        """Sort key: immediate first."""
        return list(Priority).index(self)


class Direction(StrEnum):
    IN = "in"
    OUT = "out"
    NOTE = "note"


class ParticipantRole(StrEnum):
    REQUESTER = "requester"
    CC = "cc"
    AGENT = "agent"


class RawOutcome(StrEnum):
    MESSAGE = "message"
    SUSPENDED = "suspended"
    DUPLICATE = "duplicate"


class SuspendedState(StrEnum):
    SUSPENDED = "suspended"
    RELEASED = "released"
    DELETED = "deleted"


class AttachmentStatus(StrEnum):
    STORED = "stored"  # the bytes are in the attachment folder
    TOO_LARGE = "too_large"  # over a size limit: the bytes stay in the raw mail only


class OutboxState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


LOCALES = ("en", "ro", "nl", "pt", "pl")
