"""Table models: what the ticket store keeps. Only ``store/`` uses these classes.

Times are kept as naive UTC in the database (``UTCDateTime``) and come back as aware UTC,
so SQLite and PostgreSQL behave the same.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and returned as an aware UTC datetime."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use aware UTC times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _time(*, nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


def _text(*, nullable: bool = True) -> Any:
    return Field(default=None if nullable else "", sa_type=sa.Text, nullable=nullable)


class Shop(SQLModel, table=True):
    __tablename__ = "shops"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=200)
    # The language of its tickets; None: chosen per ticket from the mail (mailgate/language.py)
    locale: str | None = Field(default=None, max_length=8)
    hourly_rate: float = Field(default=0.0)
    created_at: datetime = _time()


class ShopUser(SQLModel, table=True):
    __tablename__ = "shop_users"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=320)
    name: str = Field(default="", max_length=200)
    shop_id: int = Field(foreign_key="shops.id", index=True)
    created_at: datetime = _time()


class Agent(SQLModel, table=True):
    __tablename__ = "agents"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=320)
    name: str = Field(default="", max_length=200)
    sectors: str = Field(default="", max_length=500)  # comma-separated sector names
    active: bool = Field(default=True)
    created_at: datetime = _time()

    @property
    def sector_list(self) -> list[str]:
        return [s for s in self.sectors.split(",") if s]


# The backlog is every ticket not closed: the agents' default view and the stats. It is a
# small part of a store that has run for years, so its indexes are partial (bench/README.md).
_BACKLOG = sa.text("status <> 'closed'")


_OPEN = sa.text("status NOT IN ('closed', 'solved')")  # open work: neither closed nor solved


def _backlog_index(name: str, *columns: Any) -> sa.Index:
    return sa.Index(name, *columns, postgresql_where=_BACKLOG, sqlite_where=_BACKLOG)


_RUNNING = sa.text("due_at IS NOT NULL AND merged_into IS NULL")
_SOLVED = sa.text("last_solved_at IS NOT NULL")
# The durations stats summarises, by their short names (``duration_days.measure``).
DURATIONS = {
    "fw": "first_response_wall_seconds",
    "fb": "first_response_business_seconds",
    "rw": "resolution_wall_seconds",
    "rb": "resolution_business_seconds",
}


def _value_index(measure: str, column: str) -> sa.Index:
    where = sa.text(f"merged_into IS NULL AND {column} IS NOT NULL")
    return sa.Index(
        f"ix_tickets_{measure}_value",
        column,
        "created_at",
        postgresql_where=where,
        sqlite_where=where,
    )


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (
        sa.Index("ix_tickets_queue", "status", "priority_rank", "created_at"),
        # tickets list (priority, then FIFO), a sector's queue, and stats. The index of
        # --sort due orders on an expression, which autogenerate cannot compare on SQLite:
        # it is made by migration 0002 (ix_tickets_backlog_due).
        _backlog_index("ix_tickets_backlog_queue", "priority_rank", "created_at", "id"),
        _backlog_index("ix_tickets_backlog_sector", "sector", "priority_rank", "created_at", "id"),
        # stats: each agent's open tickets not past their deadline (store/stats.py)
        sa.Index(
            "ix_tickets_open_due", "due_at", "assignee", postgresql_where=_OPEN, sqlite_where=_OPEN
        ),
        # stats: the values of one range of a duration, for its median (store/medians.py),
        # and the tickets whose deadline runs, for the verdicts "past due" (revision 0005)
        *(_value_index(measure, column) for measure, column in DURATIONS.items()),
        # stats: tickets solved, and of those reopened, since a time (revision 0005)
        sa.Index(
            "ix_tickets_solved",
            "last_solved_at",
            "last_reopened_at",
            postgresql_where=_SOLVED,
            sqlite_where=_SOLVED,
        ),
        sa.Index(
            "ix_tickets_running",
            *("created_at", "due_at", "priority", "type", "sector"),
            *("sla_first_response_seconds", "first_response_wall_seconds"),
            "sla_resolution_seconds",
            postgresql_where=_RUNNING,
            sqlite_where=_RUNNING,
        ),
        # stats over a reporting period (store/stats.py) also reads ix_tickets_stats (and
        # on SQLite ix_tickets_stats_responder): covering indexes whose column order differs
        # between the databases, made by migration 0003 (store/migrate.py HAND_MADE_INDEXES).
    )
    id: int | None = Field(default=None, primary_key=True)
    subject: str = Field(default="", max_length=998)
    status: str = Field(default="new", max_length=16, index=True)
    standby_reason: str | None = Field(default=None, max_length=40)
    type: str = Field(default="question", max_length=16)
    sector: str = Field(default="support", max_length=40, index=True)
    priority: str = Field(default="normal", max_length=16)
    priority_rank: int = Field(default=2)
    requester: str = Field(max_length=320, index=True)
    requester_name: str = Field(default="", max_length=200)
    shop_id: int | None = Field(default=None, foreign_key="shops.id", index=True)
    verified: bool = Field(default=False)
    verified_by: str | None = Field(default=None, max_length=20)
    confidential: bool = Field(default=False)
    assignee: str | None = Field(default=None, max_length=320, index=True)
    language: str = Field(default="en", max_length=8)
    created_at: datetime = _time(index=True)
    updated_at: datetime = _time()
    first_response_at: datetime | None = _time(nullable=True)
    solved_at: datetime | None = _time(nullable=True)
    closed_at: datetime | None = _time(nullable=True)
    due_at: datetime | None = _time(nullable=True)
    follow_up_of: int | None = Field(default=None, foreign_key="tickets.id")
    merged_into: int | None = Field(default=None, foreign_key="tickets.id")
    # Workflow (store/lifecycle.py, store/sla.py, store/development.py)
    status_since: datetime | None = _time(nullable=True)
    standby_reminded_at: datetime | None = _time(nullable=True)
    suggested_sector: str | None = Field(default=None, max_length=40)
    sla_clock: str = Field(default="paused", max_length=16)  # business | always | paused
    sla_since: datetime | None = _time(nullable=True)  # start of the running segment
    sla_used_seconds: float = Field(default=0.0)  # clock time spent before sla_since
    sla_first_response_seconds: float | None = Field(default=None)
    sla_resolution_seconds: float | None = Field(default=None)
    sla_warned: str | None = Field(default=None, max_length=16)  # phase already warned about
    budget_hours: float | None = Field(default=None)
    budget_rate: float | None = Field(default=None)
    budget_state: str | None = Field(default=None, max_length=16)
    deadline: date | None = Field(default=None, sa_type=sa.Date)
    # Durations kept when they happen, for stats (store/durations.py): from created_at to
    # the first response and to solved_at, wall-clock and business time (the SLA policy's
    # calendar); resolution values are cleared on reopen and measured again at the next solve.
    first_response_wall_seconds: float | None = Field(default=None)
    first_response_business_seconds: float | None = Field(default=None)
    first_responder: str | None = Field(default=None, max_length=320)  # first authored answer
    resolution_wall_seconds: float | None = Field(default=None)
    resolution_business_seconds: float | None = Field(default=None)
    # The latest status events to solved and from solved to open, for stats' reopen rate:
    # kept by triggers on audit_events (revision 0005), never set by the code.
    last_solved_at: datetime | None = _time(nullable=True)
    last_reopened_at: datetime | None = _time(nullable=True)


class TicketCount(SQLModel, table=True):
    """Rows of changes to the number of tickets per status, sector, priority and assignee
    ("" for none): their sums per group equal a COUNT(*) of ``tickets``. Written by
    triggers of revision 0004 in the transaction that changes the ticket, summed and
    compacted by ``store/counts.py``."""

    __tablename__ = "ticket_counts"
    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(max_length=16)
    sector: str = Field(max_length=40)
    priority: str = Field(max_length=16)
    assignee: str = Field(max_length=320)
    tickets: int


class ReplyCount(SQLModel, table=True):
    """Rows of changes to the number of replies (outbound messages with an author) per
    agent and UTC day of sending: their sums equal a COUNT(*) of ``messages``. Written by
    triggers of revision 0004, summed and compacted by ``store/counts.py``."""

    __tablename__ = "reply_counts"
    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(sa_type=sa.Date)
    author: str = Field(max_length=320)
    replies: int


class TicketDayTotal(SQLModel, table=True):
    """Rows of changes to the figures of the tickets (not merged away) created on one UTC
    day, per priority, type and sector: how many; count and sum of each stored duration;
    how many have each SLA phase measured, and how many of those met its target under the
    limits of ``sla_limits``. Their sums per group equal the aggregates of ``tickets``
    over that day. Written by triggers of revision 0005, read and compacted by
    ``store/day_totals.py``."""

    __tablename__ = "ticket_day_totals"
    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(sa_type=sa.Date, index=True)
    priority: str = Field(max_length=16)
    type: str = Field(max_length=40)
    sector: str = Field(max_length=40)
    tickets: int
    fw_n: int
    fw_sum: float
    fb_n: int
    fb_sum: float
    rw_n: int
    rw_sum: float
    rb_n: int
    rb_sum: float
    first_measured: int
    first_met: int
    done_measured: int
    done_met: int


class SlaLimit(SQLModel, table=True):
    """The SLA targets the counts of ``ticket_day_totals`` were judged against: a phase of
    a ticket of ``priority`` (and ``type``; "" for any type) met its target when its SLA
    seconds are under ``below`` (the target's whole seconds plus one)."""

    __tablename__ = "sla_limits"
    phase: str = Field(max_length=16, primary_key=True)
    priority: str = Field(max_length=16, primary_key=True)
    type: str = Field(max_length=40, primary_key=True)
    below: float


class DurationBucket(SQLModel, table=True):
    """The lower bounds of the value ranges ``duration_days`` counts durations in (fixed
    by revision 0005): a value belongs to the greatest bound not above it."""

    __tablename__ = "duration_buckets"
    low: float = Field(primary_key=True)


class DurationDay(SQLModel, table=True):
    """Rows of changes to how many durations of one kind (``measure``: fw, fb, rw, rb for
    first response and resolution, wall-clock and business) of the tickets created on one
    UTC day fall in the range starting at ``low``. Written by triggers of revision 0005;
    the medians of ``stats`` find the range of the middle value from them
    (``store/medians.py``)."""

    __tablename__ = "duration_days"
    __table_args__ = (sa.Index("ix_duration_days_read", "measure", "day", "low", "n"),)
    id: int | None = Field(default=None, primary_key=True)
    measure: str = Field(max_length=2)
    day: date = Field(sa_type=sa.Date)
    low: float
    n: int


class TimeEntry(SQLModel, table=True):
    """Minutes an agent spent on a ticket (``tickets log-time``, ``#time``); calls flagged."""

    __tablename__ = "time_entries"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    agent: str = Field(max_length=320)
    minutes: int
    call: bool = Field(default=False)
    note: str = Field(default="", max_length=500)
    at: datetime = _time(index=True)  # stats: minutes logged over a reporting period


class Participant(SQLModel, table=True):
    __tablename__ = "participants"
    __table_args__ = (sa.UniqueConstraint("ticket_id", "email"),)
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    email: str = Field(max_length=320, index=True)
    role: str = Field(max_length=16)


class RawMail(SQLModel, table=True):
    """Every accepted mail, as it arrived (the bytes live in the raw folder by sha256)."""

    __tablename__ = "raw_mails"
    id: int | None = Field(default=None, primary_key=True)
    sha256: str = Field(max_length=64, index=True)
    size: int
    received_at: datetime = _time()
    source: str = Field(max_length=16)
    mailbox: str | None = Field(default=None, max_length=100)
    mail_from: str | None = Field(default=None, max_length=998)
    rcpt_tos: str = _text(nullable=False)
    # Asked for every mail: did an earlier, different mail carry this Message-ID?
    message_id: str | None = Field(default=None, max_length=998, index=True)
    # sha256(Message-ID + content digest); unique so that two gateways cannot both take
    # the same delivery. Duplicates are recorded with dedupe_key NULL and duplicate_of set.
    dedupe_key: str | None = Field(default=None, max_length=64, unique=True)
    outcome: str = Field(max_length=16)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    duplicate_of: int | None = Field(default=None, foreign_key="raw_mails.id")


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    # stats: replies per agent over a reporting period, read from the index alone
    __table_args__ = (sa.Index("ix_messages_replies", "direction", "created_at", "author"),)
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    direction: str = Field(max_length=8)
    raw_id: int | None = Field(default=None, foreign_key="raw_mails.id")
    message_id: str | None = Field(default=None, max_length=998, index=True)
    in_reply_to: str | None = _text()
    reference_ids: str | None = _text()  # References, space-separated
    from_address: str | None = Field(default=None, max_length=320)
    from_name: str = Field(default="", max_length=200)
    to_addresses: str = _text(nullable=False)  # comma-separated
    cc_addresses: str = _text(nullable=False)
    subject: str = Field(default="", max_length=998)
    date: datetime | None = _time(nullable=True)
    body_text: str = _text(nullable=False)
    reply_text: str = _text(nullable=False)
    threaded_by: str = Field(default="new", max_length=16)
    thread_evidence: str = Field(default="", max_length=500)
    screen_verdict: str = Field(default="ok", max_length=16)
    screen_reason: str = Field(default="", max_length=500)
    auth: str = _text(nullable=False)  # JSON of the AuthResult
    author: str | None = Field(default=None, max_length=320)  # agent of an out/note message
    flags: str = Field(default="", max_length=500)  # comma-separated: message_id_reused, ...
    headers: str = _text(nullable=False)  # JSON: headers of record
    created_at: datetime = _time()


class Attachment(SQLModel, table=True):
    __tablename__ = "attachments"
    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", index=True)
    filename: str = Field(max_length=255)
    content_type: str = Field(max_length=255)
    size: int
    sha256: str = Field(max_length=64, index=True)
    content_id: str | None = Field(default=None, max_length=998)
    inline: bool = Field(default=False)
    # "stored" (bytes in the attachment folder) or "too_large" (bytes in the raw mail only)
    status: str = Field(default="stored", max_length=16)
    detected_type: str | None = Field(default=None, max_length=255)  # when the bytes disagree


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    # stats: tickets solved and reopened over a reporting period, read from the index alone
    __table_args__ = (
        sa.Index("ix_audit_events_status", "action", "new", "at", "old", "ticket_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    at: datetime = _time(index=True)
    actor: str = Field(max_length=320)
    action: str = Field(max_length=40)
    field_name: str | None = Field(default=None, max_length=40)
    old: str | None = Field(default=None, max_length=500)
    new: str | None = Field(default=None, max_length=500)
    detail: str = Field(default="", max_length=2000)


class SuspendedMail(SQLModel, table=True):
    __tablename__ = "suspended_mails"
    id: int | None = Field(default=None, primary_key=True)
    raw_id: int = Field(foreign_key="raw_mails.id", index=True)
    reason: str = Field(max_length=40, index=True)
    detail: str = Field(default="", max_length=2000)
    from_address: str | None = Field(default=None, max_length=320)
    subject: str = Field(default="", max_length=998)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id")
    state: str = Field(default="suspended", max_length=16, index=True)
    created_at: datetime = _time()
    resolved_at: datetime | None = _time(nullable=True)
    resolved_by: str | None = Field(default=None, max_length=320)


class OutboxMail(SQLModel, table=True):
    """A rendered notification waiting to be sent (or sent, or failed for good)."""

    __tablename__ = "outbox_mails"
    __table_args__ = (sa.Index("ix_outbox_due", "state", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    kind: str = Field(max_length=40)
    message_id: str = Field(max_length=998, index=True)
    mail_from: str = Field(max_length=320)
    recipients: str = _text(nullable=False)  # comma-separated envelope recipients
    subject: str = Field(default="", max_length=998)
    raw: bytes = Field(sa_type=sa.LargeBinary)
    state: str = Field(default="queued", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = _time()
    last_error: str | None = Field(default=None, max_length=2000)
    created_at: datetime = _time()
    sent_at: datetime | None = _time(nullable=True)


class MetaValue(SQLModel, table=True):
    """Small named values shared by every gateway on this store (server secret, peak mode)."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_type=sa.Text)


class NotificationLog(SQLModel, table=True):
    """One row per recipient of every mail put in the outbox: what the send limits count."""

    __tablename__ = "notification_log"
    __table_args__ = (sa.Index("ix_notification_log_email_at", "email", "created_at"),)
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id", index=True)
    email: str = Field(max_length=320)
    kind: str = Field(max_length=40)
    automatic: bool = Field(default=True)  # sent with Auto-Submitted (not an agent's answer)
    created_at: datetime = _time()


class BouncedAddress(SQLModel, table=True):
    """An address our mail bounced from for good: no automatic mail to it for a while."""

    __tablename__ = "bounced_addresses"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, max_length=320)
    bounced_at: datetime = _time()
    detail: str = Field(default="", max_length=500)
    raw_id: int | None = Field(default=None, foreign_key="raw_mails.id")


class IdentityConfirmation(SQLModel, table=True):
    """A one-time confirmation mailed to a registered address whose domain signs nothing."""

    __tablename__ = "identity_confirmations"
    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    email: str = Field(max_length=320)
    nonce: str = Field(max_length=32, unique=True)
    created_at: datetime = _time()
    expires_at: datetime = _time()
    confirmed_at: datetime | None = _time(nullable=True)
    confirmed_raw_id: int | None = Field(default=None, foreign_key="raw_mails.id")


class Blob(SQLModel, table=True):
    """Content kept in the database instead of a folder (``[store] blobs = "database"``)."""

    __tablename__ = "blobs"
    sha256: str = Field(primary_key=True, max_length=64)
    size: int = Field(sa_type=sa.BigInteger)
    chunks: int
    created_at: datetime = _time()


class BlobChunk(SQLModel, table=True):
    """One piece of a blob: rows of bounded size, so no value is ever a whole attachment."""

    __tablename__ = "blob_chunks"
    sha256: str = Field(foreign_key="blobs.sha256", primary_key=True, max_length=64)
    seq: int = Field(primary_key=True)
    data: bytes = Field(sa_type=sa.LargeBinary)


class ImapMailbox(SQLModel, table=True):
    """Where the poller of one ``[[imap]]`` mailbox stands, and how its last rounds went.

    UIDs below ``last_uid`` were committed; they are only valid while the folder keeps
    ``uidvalidity`` (RFC 3501 §2.3.1.1), so a change of either resets the position.
    """

    __tablename__ = "imap_mailboxes"
    name: str = Field(primary_key=True, max_length=40)
    folder: str = Field(default="", max_length=500)
    uidvalidity: int | None = Field(default=None, sa_type=sa.BigInteger)
    last_uid: int = Field(default=0, sa_type=sa.BigInteger)
    last_poll_at: datetime | None = _time(nullable=True)
    last_error: str | None = Field(default=None, max_length=2000)
    last_error_at: datetime | None = _time(nullable=True)


class ImapAttempt(SQLModel, table=True):
    """A mail the poller started on and has not finished: a row that survives a crash.

    Counted before the pipeline runs, deleted once the mail is committed; after three
    attempts the mail is suspended instead of crashing the poller forever.
    """

    __tablename__ = "imap_attempts"
    __table_args__ = (sa.UniqueConstraint("mailbox", "uidvalidity", "uid"),)
    id: int | None = Field(default=None, primary_key=True)
    mailbox: str = Field(max_length=40, index=True)
    uidvalidity: int = Field(sa_type=sa.BigInteger)
    uid: int = Field(sa_type=sa.BigInteger)
    attempts: int = Field(default=0)
    last_attempt_at: datetime = _time()
