"""The ticket store on SQLite and PostgreSQL: schema, writes, rules, queries, failures."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlmodel import col, select, text

from store import directory, plain
from store.db import Database
from store.enums import Direction, ParticipantRole, RawOutcome, StandbyReason, Status
from store.errors import IllegalTransition, InvalidInput, StoreUnavailable, TicketNotFound
from store.lifecycle import change_status
from store.loaded import as_loaded, column_defaults
from store.lookups import Delivery, StoreReader, load_ticket
from store.models import AuditEvent, Participant, RawMail, Ticket
from store.suspended import list_suspended, mark_deleted, mark_released
from store.tickets import (
    NewAttachment,
    NewMessage,
    NewRaw,
    NewTicket,
    add_message,
    add_participant,
    open_ticket,
    record_raw,
    suspend,
)
from store.views import TicketFilter, list_tickets, ticket_detail

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _raw(key: str = "k1", message_id: str = "m1@x") -> NewRaw:
    return NewRaw(
        "a" * 64, 10, NOW, "smtp", None, "ana@shop.example", ("support@localhost",), message_id, key
    )


def _ticket(db: Database, **kw: object) -> int:
    with db.write() as s:
        t = open_ticket(
            s,
            NewTicket(subject="Plata nu merge", requester="ana@shop.example", **kw),
            actor="ana@shop.example",
            now=NOW,
        )
        raw_id = record_raw(s, _raw(), RawOutcome.MESSAGE, ticket_id=t.id)
        add_message(
            s,
            t,
            NewMessage(
                direction=Direction.IN,
                body_text="Clienții nu pot plăti",
                reply_text="Clienții nu pot plăti",
                message_id="m1@x",
                from_address="ana@shop.example",
                to=("support@localhost",),
                attachments=(NewAttachment("screen.png", "image/png", 3, "b" * 64),),
            ),
            raw_id=raw_id,
            now=NOW,
        )
        assert t.id is not None
        return t.id


def test_upgrade_is_idempotent_and_sqlite_is_durable(db: Database) -> None:
    db.upgrade()
    if db.is_sqlite:
        with db.read() as s:
            assert s.exec(text("PRAGMA journal_mode")).one()[0] == "wal"
            assert s.exec(text("PRAGMA synchronous")).one()[0] == 2  # FULL


def test_ticket_round_trip_with_times_in_utc(db: Database) -> None:
    tid = _ticket(db)
    with db.read() as s:
        detail = ticket_detail(s, tid)
    assert detail.status == "new" and detail.requester == "ana@shop.example"
    assert detail.created_at == NOW and detail.created_at.tzinfo is not None
    data = detail.model_dump_contract()
    assert data["created_at"] == "2026-11-23T09:00:00+00:00"
    message = data["messages"][0]
    assert message["from"] == "ana@shop.example" and message["direction"] == "in"
    assert message["attachments"][0]["filename"] == "screen.png"
    assert json.dumps(data, ensure_ascii=False)  # serialisable as is


def test_an_opened_ticket_is_whole_in_its_session_and_later_changes_are_written(
    db: Database,
) -> None:
    """open_ticket writes the row itself; the object must still act as a loaded one."""
    statements: list[str] = []
    with db.write() as s:
        t = open_ticket(
            s, NewTicket(subject="Plata", requester="Ana@Shop.example"), actor="a", now=NOW
        )
        listen = s.connection()
        sa_event.listen(listen, "before_cursor_execute", lambda *a: statements.append(a[2]))
        values = {column.key: getattr(t, column.key) for column in Ticket.__table__.columns}
        assert values["id"] == t.id and values["status"] == "new" and values["due_at"] is None
        assert statements == []  # every column was there: nothing loaded back
        assert t in s and not s.is_modified(t)
        change_status(s, t, Status.OPEN, actor="agent@x", now=NOW + timedelta(minutes=5))
        s.flush()
        assert any(sql.startswith("UPDATE tickets") for sql in statements)
        assert s.exec(select(Ticket).where(Ticket.id == t.id)).one() is t  # one identity
    with db.read() as s:
        row = s.get(Ticket, t.id)
        assert row is not None and row.status == "open" and row.created_at == NOW
        roles = s.exec(
            select(Participant.email, Participant.role).where(Participant.ticket_id == t.id)
        )
        assert list(roles) == [("ana@shop.example", "requester")]


def test_a_ticket_built_as_loaded_holds_what_the_constructor_gives() -> None:
    """open_ticket builds its Ticket without the constructor (store/loaded.py): with the
    model's defaults it must hold every column, each with the constructor's value."""
    columns = [column.key for column in Ticket.__table__.columns]
    built = as_loaded(Ticket, column_defaults(Ticket) | {"requester": "ana@shop.example"})
    made = Ticket(requester="ana@shop.example")
    assert set(columns) <= set(vars(built))  # nothing left to load from the database
    assert {k: getattr(built, k) for k in columns} == {k: getattr(made, k) for k in columns}
    built.status = "open"  # still instrumented: a change is seen
    assert sa.inspect(built).attrs.status.history.added == ["open"]


def test_dedupe_key_is_unique_but_duplicates_are_recorded(db: Database) -> None:
    with db.write() as s:
        first = record_raw(s, _raw("same"), RawOutcome.MESSAGE)
        dup = record_raw(s, _raw("same"), RawOutcome.DUPLICATE, duplicate_of=first)
        assert s.exec(select(RawMail.dedupe_key).where(RawMail.id == dup)).one() is None
    with db.read() as s:
        assert StoreReader(s).duplicate_of("same") == first
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"), db.write() as s:
        record_raw(s, _raw("same"), RawOutcome.MESSAGE)


def test_a_batch_looked_up_ahead_gets_the_answers_of_one_mail_at_a_time(db: Database) -> None:
    """``StoreReader.look_ahead`` asks for a whole batch at once; each mail must still get
    what asking for it alone, in its turn, would give, batch mates' rows included."""
    with db.write() as s:
        record_raw(s, _raw("held", "reused@x"), RawOutcome.MESSAGE)
        directory.add_shop(s, "Magazin", locale="ro", rate=40, now=NOW)
        directory.add_user(s, "ana@magazin.ro", shop="Magazin", name="Ana", now=NOW)
        directory.add_agent(
            s, "maria@support.example", name="Maria", sectors=("payments",),
            known_sectors=("payments",), now=NOW,
        )  # fmt: skip
    batch = [
        Delivery("held", "reused@x", "Ana@Magazin.RO"),  # the same delivery again
        Delivery("other", "reused@x", None),  # other content, a Message-ID seen before
        Delivery("new", None, "eve@elsewhere.example"),
        Delivery("twice", "twice@x", None),  # twice in the batch: the second is a duplicate
        Delivery("twice", "twice@x", None),
        Delivery("shared", "shared@x", None),  # a Message-ID two mails of the batch carry
        Delivery("sharing", "shared@x", None),
    ]
    with db.write() as s:
        ahead, alone = StoreReader(s), StoreReader(s)
        ahead.look_ahead(batch)
        for d in batch:
            expected = alone.earlier_delivery(d.dedupe_key, d.message_id)
            assert ahead.earlier_delivery(d.dedupe_key, d.message_id) == expected
            if d.from_address:
                asked = d.from_address
                assert ahead.shop_user(asked) == alone.shop_user(asked)
            if expected.duplicate_of is None:  # what the pipeline records for the mail
                record_raw(s, _raw(d.dedupe_key, d.message_id or ""), RawOutcome.MESSAGE)
        user = ahead.shop_user("ana@magazin.ro")
        assert user is not None and user.shop_locale == "ro"
        maria = ahead.agent("Maria@Support.example")  # read with the batch's look-ahead
        assert maria is not None and maria.sectors == ("payments",)
        assert ahead.shop_user("eve@elsewhere.example") is None


def test_status_rules(db: Database) -> None:
    tid = _ticket(db)
    with db.write() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        with pytest.raises(IllegalTransition, match="needs a reason"):
            change_status(s, t, Status.ON_HOLD, actor="a", now=NOW)
        change_status(s, t, Status.ON_HOLD, actor="a", now=NOW, reason=StandbyReason.AWAITING_IT)
        assert t.standby_reason == "awaiting_it"
        change_status(s, t, Status.SOLVED, actor="a", now=NOW)
        assert t.solved_at == NOW and t.standby_reason is None
        with pytest.raises(IllegalTransition):
            change_status(s, t, Status.PENDING, actor="a", now=NOW)
        change_status(s, t, Status.CLOSED, actor="a", now=NOW)
        with pytest.raises(IllegalTransition, match="final"):
            change_status(s, t, Status.OPEN, actor="a", now=NOW)
    with db.read() as s:
        events = s.exec(
            select(AuditEvent)
            .where(AuditEvent.ticket_id == tid, AuditEvent.action == "status")
            .order_by(col(AuditEvent.id))  # no order is promised without it
        ).all()
    assert [(e.old, e.new) for e in events] == [
        ("new", "on_hold"),
        ("on_hold", "solved"),
        ("solved", "closed"),
    ]


def test_queue_order_and_filters(db: Database) -> None:
    with db.write() as s:
        for i, prio in enumerate(["low", "immediate", "normal", "immediate"]):
            open_ticket(
                s,
                NewTicket(
                    subject=f"t{i}",
                    requester=f"u{i}@x.example",
                    priority=prio,
                    sector="payments" if i % 2 else "support",
                ),
                actor="x",
                now=NOW + timedelta(minutes=i),
            )
    with db.read() as s:
        queue = list_tickets(s, TicketFilter())
        assert [t.subject for t in queue] == ["t1", "t3", "t2", "t0"]  # priority, then FIFO
        assert [t.subject for t in list_tickets(s, TicketFilter(sector="payments"))] == ["t1", "t3"]
        assert list_tickets(s, TicketFilter(sort="created"))[0].subject == "t3"
        with pytest.raises(InvalidInput):
            list_tickets(s, TicketFilter(statuses=("bogus",)))


def test_closed_tickets_hidden_by_default_and_search(db: Database) -> None:
    tid = _ticket(db)
    with db.read() as s:
        assert [t.id for t in list_tickets(s, TicketFilter(search="pot plăti"))] == [tid]
        assert [t.id for t in list_tickets(s, TicketFilter(search="PLATA"))] == [tid]
    with db.write() as s:
        t = s.get(Ticket, tid)
        assert t is not None
        change_status(s, t, Status.CLOSED, actor="a", now=NOW)
    with db.read() as s:
        assert list_tickets(s, TicketFilter()) == []
        assert len(list_tickets(s, TicketFilter(statuses=("all",)))) == 1


def test_a_ticket_loaded_plainly_is_the_one_the_orm_loads(db: Database) -> None:
    """``load_ticket`` reads a ticket without the ORM's loading: the object must hold what
    ``session.get`` gives, be the session's own, and have its changes written."""
    tid = _ticket(db)
    with db.read() as s:
        by_orm = s.get(Ticket, tid)
        assert by_orm is not None
        expected = {c.key: getattr(by_orm, c.key) for c in Ticket.__table__.columns}
    with db.write() as s:
        ticket = load_ticket(s, tid)
        assert ticket is not None
        assert {c.key: getattr(ticket, c.key) for c in Ticket.__table__.columns} == expected
        assert s.get(Ticket, tid) is ticket and load_ticket(s, tid) is ticket
        assert load_ticket(s, 999) is None
        ticket.subject = "Plata merge"
    with db.read() as s:
        assert s.get(Ticket, tid).subject == "Plata merge"  # type: ignore[union-attr]


def test_a_plain_statement_leaves_changed_tickets_for_later_but_not_new_rows(
    db: Database,
) -> None:
    """``plain.execute`` runs without writing changed tickets first (the commit or the next
    read of them does); anything else pending is written first, as autoflush would."""
    tid = _ticket(db)
    count = sa.select(sa.func.count()).select_from(AuditEvent).where(AuditEvent.ticket_id == tid)
    subject = sa.select(Ticket.subject).where(Ticket.id == tid)
    with db.write() as s:
        ticket = s.get(Ticket, tid)
        assert ticket is not None
        events = plain.execute(s, count).scalar_one()
        ticket.subject = "Plata merge"
        assert plain.execute(s, subject).scalar_one() == "Plata nu merge"  # not written yet
        assert s.execute(subject).scalar_one() == "Plata merge"  # a read through the session
        ticket.subject = "Plata merge iar"
        s.add(AuditEvent(ticket_id=tid, at=NOW, actor="a", action="note", detail=""))
        assert plain.execute(s, count).scalar_one() == events + 1  # a new row: all written
        assert plain.execute(s, subject).scalar_one() == "Plata merge iar"
        ticket.subject = "Plata merge, gata"
    with db.read() as s:
        assert s.execute(subject).scalar_one() == "Plata merge, gata"  # at the commit


def test_participants_and_reader(db: Database) -> None:
    tid = _ticket(db)
    with db.write() as s:
        assert add_participant(s, tid, "Bob@Partner.example", ParticipantRole.CC)
        assert not add_participant(s, tid, "bob@partner.example", ParticipantRole.CC)
    with db.read() as s:
        reader = StoreReader(s)
        ref = reader.ticket(tid)
        assert ref is not None
        assert reader.participant_role(ref, "bob@partner.example", None) == "cc"
        assert reader.participant_role(ref, "eve@evil.example", None) is None
        assert reader.tickets_for_message_ids(("m1@x", "unknown@x")) == {"m1@x": tid}
        assert reader.ticket(999) is None


def test_directory(db: Database) -> None:
    with db.write() as s:
        directory.add_shop(s, "Magazin", locale="ro", rate=40, now=NOW)
        directory.add_user(s, "Ana@Magazin.RO", shop="Magazin", name="Ana", now=NOW)
        directory.add_agent(
            s,
            "maria@support.example",
            name="Maria",
            sectors=("payments",),
            known_sectors=("support", "payments"),
            now=NOW,
        )
    with db.read() as s:
        user = StoreReader(s).shop_user("ana@magazin.ro")
        assert user is not None and user.shop_locale == "ro"
    for bad in (
        lambda s: directory.add_shop(s, "Magazin", locale="ro", rate=1, now=NOW),
        lambda s: directory.add_shop(s, "X", locale="de", rate=1, now=NOW),
        lambda s: directory.add_user(s, "not-an-address", shop="Magazin", name="", now=NOW),
        lambda s: directory.add_user(s, "ana@magazin.ro", shop="Magazin", name="", now=NOW),
        lambda s: directory.add_user(s, "maria@support.example", shop="Magazin", name="", now=NOW),
        lambda s: directory.add_agent(
            s, "x@y.example", name="", sectors=("nope",), known_sectors=("support",), now=NOW
        ),
    ):
        with pytest.raises(InvalidInput), db.write() as s:
            bad(s)
    with db.write() as s:
        directory.remove_user(s, "ana@magazin.ro")
    with db.read() as s:
        assert StoreReader(s).shop_user("ana@magazin.ro") is None


def test_suspended_release_frees_the_dedupe_key(db: Database) -> None:
    with db.write() as s:
        raw_id = record_raw(s, _raw("held"), RawOutcome.SUSPENDED)
        one = suspend(
            s,
            raw_id=raw_id,
            reason="auto_reply",
            detail="x",
            from_address="a@x",
            subject="Out of office",
            now=NOW,
        )
        raw2 = record_raw(s, _raw("held2"), RawOutcome.SUSPENDED)
        two = suspend(
            s, raw_id=raw2, reason="bounce", detail="", from_address=None, subject="", now=NOW
        )
    with db.write() as s:
        assert one.id is not None and two.id is not None
        mark_released(s, one.id, actor="maria", now=NOW)
        mark_deleted(s, two.id, actor="maria", now=NOW)
        with pytest.raises(InvalidInput):
            mark_deleted(s, two.id, actor="maria", now=NOW)
    with db.read() as s:
        assert list_suspended(s) == []
        assert len(list_suspended(s, state=None)) == 2
        assert s.exec(select(RawMail.dedupe_key).where(RawMail.id == raw_id)).one() is None


def test_missing_ticket(db: Database) -> None:
    with db.read() as s, pytest.raises(TicketNotFound):
        ticket_detail(s, 12345)


def test_sqlite_locked_past_timeout_is_unavailable(tmp_path: object) -> None:
    path = f"{tmp_path}/locked.db"
    db = Database(f"sqlite:///{path}", busy_timeout_ms=200)
    db.upgrade()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreUnavailable), db.write() as s:
            record_raw(s, _raw(), RawOutcome.MESSAGE)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        db.dispose()


def test_postgres_refusing_connections_is_unavailable() -> None:
    db = Database("postgresql+psycopg://postgres@127.0.0.1:1/none")
    with pytest.raises(StoreUnavailable):
        db.upgrade()


def test_the_references_of_a_batch_are_looked_up_ahead_and_their_tickets_loaded(
    db: Database,
) -> None:
    """Message-IDs found ahead answer threading without a statement; one carried by a
    mail of the batch is asked again (a batch mate may have stored it meanwhile); the
    tickets the batch names or refers to are in the session before it needs them."""
    with db.write() as s:
        first = open_ticket(s, NewTicket(subject="A", requester="ana@x.ro"), actor="a", now=NOW)
        second = open_ticket(s, NewTicket(subject="B", requester="ion@x.ro"), actor="a", now=NOW)
        add_message(
            s, first, NewMessage(Direction.IN, "text", message_id="a1@x.ro"), raw_id=None, now=NOW
        )
        first_id, second_id = first.id, second.id
    assert first_id is not None and second_id is not None
    batch = [
        Delivery("k1", "r1@x.ro", "ana@x.ro", ("a1@x.ro", "unknown@x.ro")),
        Delivery("k2", "carried@x.ro", "ion@x.ro", (), (second_id,)),
        Delivery("k3", "r3@x.ro", "ion@x.ro", ("carried@x.ro",)),
    ]
    statements: list[str] = []

    def note(*args: object) -> None:
        statements.append(str(args[2]))

    with db.write() as s:
        ahead = StoreReader(s)
        ahead.look_ahead(batch)
        assert {o.id for o in s.identity_map.values() if isinstance(o, Ticket)} == {
            first_id,
            second_id,
        }
        sa_event.listen(db.engine, "before_cursor_execute", note)
        try:
            assert ahead.tickets_for_message_ids(("a1@x.ro", "unknown@x.ro")) == {
                "a1@x.ro": first_id
            }
            ticket = ahead.ticket(second_id)
            assert ticket is not None and ticket.requester == "ion@x.ro"
            assert ahead.agent("ion@x.ro") is None  # the agents came with the batch's reads
            assert statements == []  # all answered ahead
            held = s.get(Ticket, second_id)
            assert held is not None
            add_message(
                s,
                held,
                NewMessage(Direction.IN, "text", message_id="carried@x.ro"),
                raw_id=None,
                now=NOW,
            )
            statements.clear()
            assert ahead.tickets_for_message_ids(("carried@x.ro",)) == {"carried@x.ro": second_id}
            assert len(statements) == 1  # asked again
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", note)
