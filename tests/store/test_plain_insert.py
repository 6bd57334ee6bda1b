"""``plain.insert_row`` and ``insert_rows``: the driver-level INSERTs of the commit's hot
rows must write what SQLAlchemy's own insert writes, and fail as it fails, on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from store import plain
from store.db import Database
from store.enums import Direction, RawOutcome
from store.errors import StoreUnavailable
from store.models import (
    Attachment,
    AuditEvent,
    Message,
    NotificationLog,
    OutboxMail,
    Participant,
    RawMail,
    Ticket,
)
from store.tickets import (
    NewAttachment,
    NewMessage,
    NewRaw,
    NewTicket,
    add_message,
    open_ticket,
    record_raw,
    record_raw_with_message,
)

NOW = datetime(2026, 11, 24, 9, 30, 15, 123456, tzinfo=UTC)


def _table(model: Any) -> sa.Table:
    table: sa.Table = model.__table__
    return table


def _rows(db: Database, model: Any, ids: list[int]) -> list[dict[str, Any]]:
    table = _table(model)
    with db.read() as s:
        found = s.execute(sa.select(table).where(table.c.id.in_(ids)).order_by(table.c.id))
        return [{k: v for k, v in row._mapping.items() if k != "id"} for row in found]


def _ticket(db: Database) -> int:
    with db.write() as s:
        ticket = open_ticket(
            s, NewTicket(subject="Plata", requester="ana@x.ro"), actor="a", now=NOW
        )
        assert ticket.id is not None
        return ticket.id


@pytest.mark.parametrize(
    ("model", "row"),
    [
        (
            OutboxMail,
            {
                "kind": "acknowledgement",
                "message_id": "<o1@mailgate>",
                "mail_from": "support@x",
                "recipients": "ana@x.ro",
                "raw": b"Subject: Plat\xc4\x83\r\n\r\nbody",
                "next_attempt_at": NOW + timedelta(minutes=5),
                "created_at": NOW,
            },  # state, attempts and subject left to their column defaults
        ),
        (
            AuditEvent,
            {"at": NOW, "actor": "ana@x.ro", "action": "created", "old": None, "new": "open"},
        ),
        (
            NotificationLog,
            {"email": "ana@x.ro", "kind": "acknowledgement", "automatic": False, "created_at": NOW},
        ),
        (
            Message,
            {
                "direction": "in",
                "message_id": "<m1@x.ro>",
                "from_address": "ana@x.ro",
                "subject": "Plată eșuată — comanda #1234",
                "body_text": "Bună ziua,\nplata nu merge.\t",
                "date": NOW - timedelta(hours=3),
                "created_at": NOW,
            },
        ),
    ],
)
def test_a_row_is_written_as_sqlalchemy_s_insert_writes_it(
    db: Database, model: Any, row: dict[str, Any]
) -> None:
    ticket_id = _ticket(db)
    row = {"ticket_id": ticket_id, **row}
    table = _table(model)
    with db.write() as s:
        ours = plain.insert_row(s, table, row)
        theirs = s.execute(sa.insert(table).returning(table.c.id), row).scalar_one()
    assert isinstance(ours, int) and ours != theirs
    written, expected = _rows(db, model, [ours, theirs])
    if model is Message:  # the same Message-ID twice is not what is compared here
        written.pop("message_id"), expected.pop("message_id")
    assert written == expected
    assert written["created_at" if "created_at" in written else "at"] == NOW


def test_many_rows_are_written_in_one_call(db: Database) -> None:
    ticket_id = _ticket(db)
    emails = [f"user{n}@x.ro" for n in range(5)]
    rows = [
        {"ticket_id": ticket_id, "email": e, "kind": "reply", "automatic": True, "created_at": NOW}
        for e in emails
    ]
    with db.write() as s:
        plain.insert_rows(s, _table(NotificationLog), rows)
        plain.insert_rows(s, _table(NotificationLog), [])  # nothing, and no statement
    with db.read() as s:
        got = s.execute(
            sa.select(NotificationLog.email).where(NotificationLog.kind == "reply")  # type: ignore[arg-type]
        )
        assert sorted(got.scalars()) == emails


def test_the_new_ids_are_the_rows_ids(db: Database) -> None:
    with db.write() as s:
        first = open_ticket(s, NewTicket(subject="A", requester="a@x.ro"), actor="a", now=NOW)
        second = open_ticket(s, NewTicket(subject="B", requester="b@x.ro"), actor="a", now=NOW)
    with db.read() as s:
        subjects = dict(s.execute(sa.select(Ticket.id, Ticket.subject)).all())  # type: ignore[call-overload]
    assert subjects[first.id] == "A" and subjects[second.id] == "B"


def _new_raw(key: str) -> NewRaw:
    return NewRaw(
        sha256="0" * 64,
        size=10,
        received_at=NOW,
        source="smtp",
        mailbox=None,
        mail_from="ana@x.ro",
        rcpt_tos=("support@x",),
        message_id="m@x.ro",
        dedupe_key=key,
    )


def test_a_delivery_taken_twice_fails_as_sqlalchemy_s_integrity_error(db: Database) -> None:
    with db.write() as s:
        record_raw(s, _new_raw("k1"), RawOutcome.MESSAGE)
    with pytest.raises(sa.exc.IntegrityError), db.write() as s:
        record_raw(s, _new_raw("k1"), RawOutcome.MESSAGE)
    with db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(_table(RawMail))).scalar() == 1


def test_listeners_see_the_statement(db: Database) -> None:
    seen: list[tuple[str, bool]] = []

    def note(*args: Any) -> None:
        seen.append((args[2], args[5]))

    sa_event.listen(db.engine, "before_cursor_execute", note)
    try:
        with db.write() as s:
            record_raw(s, _new_raw("k2"), RawOutcome.SUSPENDED)
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", note)
    assert any(sql.startswith("INSERT INTO raw_mails") and not many for sql, many in seen)


def test_an_unknown_column_is_refused(db: Database) -> None:
    with pytest.raises(KeyError, match="no such column: colour"), db.write() as s:
        plain.insert_row(
            s, _table(AuditEvent), {"at": NOW, "actor": "a", "action": "b", "colour": 1}
        )


def test_a_lost_connection_is_invalidated_and_the_store_unavailable(
    db: Database, store_url: str
) -> None:
    if db.is_sqlite:
        pytest.skip("a SQLite connection cannot be lost to a server")
    with pytest.raises(StoreUnavailable), db.write() as s:
        own = s.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        with db.engine.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": own})
        plain.insert_row(s, _table(AuditEvent), {"at": NOW, "actor": "a", "action": "b"})
    with db.write() as s:  # the pool gives a live connection again
        assert plain.insert_row(s, _table(AuditEvent), {"at": NOW, "actor": "a", "action": "c"})


# -- a row and another that refers to it -------------------------------------------------


def _statements(db: Database) -> tuple[list[str], Any]:
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(str(args[2]))

    sa_event.listen(db.engine, "before_cursor_execute", note)
    return seen, note


def test_a_ticket_and_its_requester_go_in_one_statement_on_postgresql(db: Database) -> None:
    seen, note = _statements(db)
    try:
        with db.write() as s:
            ticket = open_ticket(
                s, NewTicket(subject="Plata", requester="Ana@X.ro"), actor="a", now=NOW
            )
            inserts = [sql for sql in seen if "INSERT INTO" in sql]
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", note)
    tickets = [sql for sql in inserts if "INSERT INTO tickets" in sql]
    participants = [sql for sql in inserts if "INSERT INTO participants" in sql]
    if db.is_sqlite:
        assert len(tickets) == 1 and len(participants) == 1 and tickets != participants
    else:
        assert len(tickets) == 1 and participants == tickets  # one statement holds both
    with db.read() as s:
        found = s.execute(
            sa.select(_table(Participant).c.ticket_id, _table(Participant).c.email,
                      _table(Participant).c.role)
        ).all()  # fmt: skip
        written = s.execute(sa.select(_table(Ticket).c.id, _table(Ticket).c.requester)).all()
    assert [tuple(r) for r in found] == [(ticket.id, "ana@x.ro", "requester")]
    assert [tuple(r) for r in written] == [(ticket.id, "Ana@X.ro")]


def _ticket_row(subject: str, requester: str) -> dict[str, Any]:
    return {
        "subject": subject,
        "requester": requester,
        "created_at": NOW,
        "updated_at": NOW,
        "status_since": NOW,
    }


def test_the_child_row_is_written_as_insert_row_writes_it(db: Database) -> None:
    first = _ticket(db)
    with db.write() as s:
        new_id, first_child = plain.insert_row_with(
            s,
            _table(Ticket),
            _ticket_row("Factura", "ion@y.ro"),
            (_table(Participant), "ticket_id", {"email": "ion@y.ro", "role": "cc"}),
        )
        again, second_child = plain.insert_row_with(
            s,
            _table(Ticket),
            _ticket_row("Export", "eva@z.ro"),
            (_table(Participant), "ticket_id", {"email": "eva@z.ro", "role": "requester"}),
        )
    assert first < new_id < again
    assert first_child < second_child
    with db.read() as s:
        participants = _table(Participant)
        rows = s.execute(
            sa.select(participants.c.ticket_id, participants.c.email, participants.c.role)
            .where(participants.c.id.in_([first_child, second_child]))
            .order_by(participants.c.id)
        ).all()
        ticket = s.get(Ticket, new_id)
        assert ticket is not None
        assert (ticket.subject, ticket.status, ticket.created_at) == ("Factura", "new", NOW)
    assert [tuple(r) for r in rows] == [
        (new_id, "ion@y.ro", "cc"),
        (again, "eva@z.ro", "requester"),
    ]


def test_a_child_row_refused_takes_its_parent_back(db: Database) -> None:
    with pytest.raises(sa.exc.IntegrityError), db.write() as s:
        plain.insert_row_with(
            s,
            _table(Ticket),
            _ticket_row("Plata", "ana@x.ro"),
            (_table(Participant), "ticket_id", {"email": None, "role": "requester"}),
        )
    with db.read() as s:
        assert s.execute(sa.select(sa.func.count()).select_from(_table(Ticket))).scalar() == 0


def test_a_child_column_that_does_not_exist_is_refused(db: Database) -> None:
    with pytest.raises(KeyError, match="no such column: colour"), db.write() as s:
        plain.insert_row_with(
            s,
            _table(Ticket),
            _ticket_row("Plata", "ana@x.ro"),
            (_table(Participant), "ticket_id", {"email": "a@x.ro", "colour": 1}),
        )


def test_a_raw_mail_and_its_message_are_written_as_apart(db: Database) -> None:
    ticket_id = _ticket(db)
    new = NewMessage(
        direction=Direction.IN,
        message_id="<m1@x.ro>",
        in_reply_to=("<a@x.ro>",),
        references=("<a@x.ro>", "<b@x.ro>"),
        from_address="ana@x.ro",
        from_name="Ana Pop",
        to=("support@x",),
        subject="Re: Plata",
        body_text="Tot nu merge.\n> citat",
        reply_text="Tot nu merge.",
        threaded_by="reference",
        attachments=(
            NewAttachment(filename="ecran.png", content_type="image/png", size=3,
                          sha256="c" * 64),
        ),
    )  # fmt: skip
    seen, note = _statements(db)
    try:
        with db.write() as s:
            ticket = s.get(Ticket, ticket_id)
            assert ticket is not None
            together = record_raw_with_message(s, _new_raw("t1"), ticket, new, now=NOW)
            during = list(seen)
            raw_id = record_raw(s, _new_raw("t2"), RawOutcome.MESSAGE, ticket_id=ticket_id)
            apart = (raw_id, add_message(s, ticket, new, raw_id=raw_id, now=NOW))
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", note)
    assert len([sql for sql in during if "INSERT INTO raw_mails" in sql]) == 1
    assert len([sql for sql in during if "INSERT INTO messages" in sql]) == 1
    assert len([sql for sql in during if "INSERT INTO" in sql]) == (3 if db.is_sqlite else 2)
    raws = _rows(db, RawMail, [together[0], apart[0]])
    assert raws[0] == {**raws[1], "dedupe_key": "t1"}
    messages = _rows(db, Message, [together[1], apart[1]])
    assert messages[0] == {**messages[1], "raw_id": together[0]}
    with db.read() as s:
        attachments = _table(Attachment)
        owners = (
            s.execute(sa.select(attachments.c.message_id).order_by(attachments.c.id))
            .scalars()
            .all()
        )
    assert owners == [together[1], apart[1]]


# -- rows held to the end of a unit of work ------------------------------------------------


def _audit_count(s: Any) -> int:
    return int(s.execute(sa.select(sa.func.count()).select_from(_table(AuditEvent))).scalar())


def test_held_rows_are_written_when_the_block_ends_one_statement_per_table(
    db: Database,
) -> None:
    ticket_id = _ticket(db)
    seen: list[tuple[str, bool]] = []

    def note(*args: Any) -> None:
        seen.append((args[2], args[5]))

    events = [
        {"ticket_id": ticket_id, "at": NOW, "actor": "a", "action": f"e{n}"} for n in range(3)
    ]
    log = {"ticket_id": ticket_id, "email": "ana@x.ro", "kind": "ack", "automatic": True}
    with db.write() as s:
        before = _audit_count(s)
        sa_event.listen(db.engine, "before_cursor_execute", note)
        try:
            with plain.held_inserts(s):
                assert plain.holding(s)
                plain.insert_later(s, _table(AuditEvent), events[:2])
                plain.insert_later(s, _table(NotificationLog), [log | {"created_at": NOW}])
                plain.insert_later(s, _table(AuditEvent), events[2:])
                assert _audit_count(s) == before  # held, not yet in the database
                assert [r["action"] for r in plain.held_rows(s, _table(AuditEvent))] == [
                    "e0",
                    "e1",
                    "e2",
                ]
                seen.clear()
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", note)
        assert not plain.holding(s)
        assert plain.held_rows(s, _table(AuditEvent)) == ()
        # one executemany per table, the audit events in one though given in two calls
        assert [many for _, many in seen] == [True, True]
    with db.read() as s:
        actions = s.execute(
            sa.select(AuditEvent.action)  # type: ignore[call-overload]
            .where(AuditEvent.ticket_id == ticket_id, AuditEvent.action.startswith("e"))  # type: ignore[attr-defined]
            .order_by(AuditEvent.id)
        ).scalars()
        assert list(actions) == ["e0", "e1", "e2"]  # in the order they were given


def test_outside_a_held_block_insert_later_writes_at_once(db: Database) -> None:
    ticket_id = _ticket(db)
    with db.write() as s:
        before = _audit_count(s)
        plain.insert_later(
            s,
            _table(AuditEvent),
            [{"ticket_id": ticket_id, "at": NOW, "actor": "a", "action": "x"}],
        )
        assert _audit_count(s) == before + 1


def test_a_held_block_that_raises_writes_nothing_and_can_be_opened_again(db: Database) -> None:
    ticket_id = _ticket(db)
    row = {"ticket_id": ticket_id, "at": NOW, "actor": "a", "action": "lost"}
    with db.write() as s:
        before = _audit_count(s)
        with pytest.raises(ValueError), plain.held_inserts(s):
            plain.insert_later(s, _table(AuditEvent), [row])
            raise ValueError("a mail failed")
        assert not plain.holding(s) and _audit_count(s) == before
        with plain.held_inserts(s):
            with pytest.raises(RuntimeError, match="does not nest"), plain.held_inserts(s):
                pass
            with pytest.raises(KeyError, match="no such column: colour"):
                plain.insert_later(s, _table(AuditEvent), [row | {"colour": 1}])
            with pytest.raises(KeyError, match="no such column: id"):
                plain.insert_later(s, _table(AuditEvent), [row | {"id": 1}])
        assert _audit_count(s) == before


def test_a_savepoint_rolled_back_takes_back_its_own_rows_and_no_held_one(db: Database) -> None:
    ticket_id = _ticket(db)

    def event(action: str) -> dict[str, Any]:
        return {"ticket_id": ticket_id, "at": NOW, "actor": "a", "action": action}

    with db.write() as s, plain.held_inserts(s):
        plain.insert_later(s, _table(AuditEvent), [event("before")])
        with pytest.raises(ValueError), plain.savepoint(s):
            plain.insert_later(s, _table(AuditEvent), [event("inside")])  # written at once
            raise ValueError("a refused command")
        plain.insert_later(s, _table(AuditEvent), [event("after")])
        # a savepoint opened without plain.savepoint while rows are held
        with s.begin_nested(), pytest.raises(RuntimeError, match="held across a savepoint"):
            plain.insert_later(s, _table(AuditEvent), [event("lost")])
    with db.read() as s:
        actions = s.execute(
            sa.select(AuditEvent.action)  # type: ignore[call-overload]
            .where(AuditEvent.ticket_id == ticket_id, AuditEvent.actor == "a")
            .order_by(AuditEvent.id)
        ).scalars()
        assert [a for a in actions if a != "created"] == ["before", "after"]
