"""``store.reads.fetch`` and ``in_list``: the driver-level reads of every batch must return
what SQLAlchemy's own execution returns, and fail as it fails, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from store import lookups, sendlog
from store.db import Database
from store.enums import RawOutcome
from store.models import RawMail, Ticket
from store.reads import column_names, fetch, fetch_together, in_list
from store.tickets import NewRaw, NewTicket, open_ticket, record_raw

NOW = datetime(2026, 11, 25, 9, 30, 15, 123456, tzinfo=UTC)
_RAW: sa.Table = RawMail.__table__  # type: ignore[attr-defined]
_TICKETS: sa.Table = Ticket.__table__  # type: ignore[attr-defined]
_BY_KEY = sa.select(_RAW.c.id, _RAW.c.dedupe_key, _RAW.c.received_at).where(
    in_list(_RAW.c.dedupe_key, "keys")
)
_BY_ID = sa.select(_TICKETS).where(in_list(_TICKETS.c.id, "ids")).order_by(_TICKETS.c.id)


def _raw(db: Database, n: int, message_id: str | None = None) -> int:
    new = NewRaw(
        sha256=f"{n:064x}", size=10, received_at=NOW + timedelta(seconds=n), source="smtp",
        mailbox=None, mail_from="ana@x.ro", rcpt_tos=("support@x",), message_id=message_id,
        dedupe_key=f"key-{n}",
    )  # fmt: skip
    with db.write() as s:
        return record_raw(s, new, RawOutcome.MESSAGE)


def _sqlalchemys(db: Database, statement: Any, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What SQLAlchemy's own execution returns (its expanding IN for ``in_list``)."""
    with db.read() as s:
        return [tuple(row) for row in s.execute(statement, params)]


def test_rows_come_back_as_sqlalchemy_gives_them(db: Database) -> None:
    """Dates with their zone, floats, NULLs and booleans converted as the ORM converts them."""
    with db.write() as s:
        ticket = open_ticket(
            s, NewTicket(subject="Plată", requester="ana@x.ro"), actor="a", now=NOW
        )
        ticket.budget_hours = 2.5
        other = open_ticket(
            s, NewTicket(subject="Factura", requester="ion@x.ro"), actor="a", now=NOW
        )
    ids = [ticket.id, other.id]
    with db.read() as s:
        got = fetch(s, _BY_ID, {"ids": ids})
    assert got == _sqlalchemys(db, _BY_ID, {"ids": ids})
    row = dict(zip(column_names(_BY_ID), got[0], strict=True))
    assert row["created_at"] == NOW and row["created_at"].tzinfo is not None
    assert row["budget_hours"] == 2.5 and row["budget_rate"] is None
    assert row["subject"] == "Plată"


def test_a_list_is_one_parameter_whatever_its_length(db: Database) -> None:
    """Empty: no row. Longer than SQLite's old limit of 999 parameters: one all the same."""
    found = {_raw(db, n): f"key-{n}" for n in range(3)}
    keys = [f"key-{n}" for n in range(1500)]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if sql.startswith("SELECT"):
            statements.append(sql)

    sa_event.listen(db.engine, "before_cursor_execute", seen)
    try:
        with db.read() as s:
            assert fetch(s, _BY_KEY, {"keys": []}) == []
            many = fetch(s, _BY_KEY, {"keys": keys})
            one = fetch(s, _BY_KEY, {"keys": ["key-1", "nobody"]})
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", seen)
    assert {row[0]: row[1] for row in many} == found
    assert [(row[1], row[2]) for row in one] == [("key-1", NOW + timedelta(seconds=1))]
    assert len(statements) == 3 and len(set(statements)) == 1, "the same SQL for every length"


def test_a_statement_with_a_list_is_compiled_once_by_sqlalchemy_too(db: Database) -> None:
    """An UPDATE run through ``Session.execute`` (the outbox's claims and marks): without
    a cache key SQLAlchemy compiled it at every execution. The key still tells apart two
    lists of other columns or other parameters."""
    table = _RAW
    touch = sa.update(table).where(in_list(table.c.dedupe_key, "keys")).values(size=11)
    compiled: list[object] = []

    def seen(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if sql.startswith("UPDATE"):
            compiled.append(args[1].compiled)  # the execution context's

    _raw(db, 1)
    sa_event.listen(db.engine, "before_cursor_execute", seen)
    try:
        for keys in (["key-1"], ["key-1", "key-2", "nobody"]):
            with db.write() as s:
                assert s.execute(touch, {"keys": keys}).rowcount == 1
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", seen)
    assert len(compiled) == 2 and compiled[0] is compiled[1]
    key = touch._generate_cache_key()
    assert key is not None
    other_column = sa.update(table).where(in_list(table.c.message_id, "keys")).values(size=11)
    other_name = sa.update(table).where(in_list(table.c.dedupe_key, "ids")).values(size=11)
    assert key != other_column._generate_cache_key() != other_name._generate_cache_key() != key


def test_a_row_the_session_holds_unwritten_is_read(db: Database) -> None:
    """As ``plain.execute``: a new object pending in the session is written first."""
    with db.write() as s:
        s.add(
            RawMail(
                sha256="f" * 64, size=1, received_at=NOW, source="smtp", rcpt_tos="", outcome="x",
                dedupe_key="pending",
            )
        )  # fmt: skip
        assert [row[1] for row in fetch(s, _BY_KEY, {"keys": ["pending"]})] == ["pending"]


def test_the_batch_statements_read_the_same_as_sqlalchemy(db: Database) -> None:
    """The look-ahead and send-limit statements, with their own bound values (a literal
    in a UNION, an enum value) and dates as parameters."""
    _raw(db, 1, message_id="<a@x>")
    params = {
        "keys": ["key-1", "key-2"],
        "ids": ["<a@x>", "<b@x>"],
        "emails": ["ana@x.ro"],
        "automatic": NOW - timedelta(days=1),
        "recent": NOW - timedelta(hours=1),
    }
    for statement in (
        lookups._DELIVERIES_HELD,
        lookups._MESSAGE_IDS_HELD,
        lookups._SHOP_USERS,
        lookups._KNOWN_MESSAGE_IDS,
        sendlog._AUTOMATIC_AHEAD,
        sendlog._RECENT_AHEAD,
        sendlog._BOUNCED_AHEAD,
    ):
        with db.read() as s:
            assert sorted(fetch(s, statement, params)) == sorted(
                _sqlalchemys(db, statement, params)
            )
    with db.read() as s:
        assert fetch(s, lookups._MESSAGE_IDS_HELD, params) == [("<a@x>",)]


def test_reads_fetched_together_answer_as_each_alone_in_one_round_trip(db: Database) -> None:
    """``fetch_together``: each statement's rows as ``fetch`` gives them, in order; on
    PostgreSQL every statement is sent in pipeline mode (no answer awaited in between),
    and the engine's listeners still see each one."""
    _raw(db, 1, message_id="<a@x>")
    _raw(db, 2)
    reads = [
        (_BY_KEY, {"keys": ["key-1", "key-2"]}),
        (lookups._MESSAGE_IDS_HELD, {"ids": ["<a@x>", "<b@x>"]}),
        (_BY_KEY, {"keys": []}),
        (lookups._SHOP_USERS, {"emails": ["ana@x.ro"]}),
    ]
    seen: list[tuple[str, bool]] = []

    def listener(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
        if sql.startswith("SELECT"):  # not SQLite's BEGIN
            pgconn = getattr(cursor.connection, "pgconn", None)  # psycopg's libpq connection
            seen.append((sql, bool(pgconn is not None and pgconn.pipeline_status)))

    sa_event.listen(db.engine, "before_cursor_execute", listener)
    try:
        with db.read() as s:
            together = fetch_together(s, *reads)
            assert fetch_together(s) == []
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", listener)
    with db.read() as s:
        assert together == [fetch(s, statement, params) for statement, params in reads]
    assert {row[1]: row[2] for row in together[0]} == {
        "key-1": NOW + timedelta(seconds=1),
        "key-2": NOW + timedelta(seconds=2),
    }
    assert together[1] == [("<a@x>",)] and together[2] == [] and together[3] == []
    assert len(seen) == 4
    assert all(piped == (not db.is_sqlite) for _, piped in seen), seen


def test_a_drivers_error_in_reads_fetched_together_is_sqlalchemys(db: Database) -> None:
    """A failing statement among others (raised when the answers are read, on
    PostgreSQL) comes out as SQLAlchemy's error, and the store is usable after."""
    missing = sa.select(sa.column("x")).select_from(sa.table("no_such_table"))
    with db.read() as s, pytest.raises(sa.exc.DBAPIError):
        fetch_together(s, (_BY_KEY, {"keys": ["key-1"]}), (missing, {}))
    _raw(db, 1)
    with db.read() as s:
        assert [row[1] for row in fetch(s, _BY_KEY, {"keys": ["key-1"]})] == ["key-1"]


def test_a_list_is_looked_up_through_the_columns_index(db: Database) -> None:
    with db.read() as s:
        connection = s.connection()
        sql = str(_BY_KEY.compile(dialect=connection.dialect))
        if connection.dialect.name == "sqlite":
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ('["k"]',)).all()
            assert any("USING INDEX" in str(step) for step in plan), plan
        else:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            text = sql.replace("%(keys)s", "ARRAY['k']")
            plan = connection.exec_driver_sql(f"EXPLAIN {text}").all()
            assert any("Index" in str(step) for step in plan), plan


def test_a_drivers_error_is_sqlalchemys_and_an_expanding_list_is_refused(db: Database) -> None:
    missing = sa.select(sa.column("x")).select_from(sa.table("no_such_table"))
    with db.read() as s, pytest.raises(sa.exc.DBAPIError):
        fetch(s, missing, {})
    expanding = sa.select(_RAW.c.id).where(_RAW.c.dedupe_key.in_(sa.bindparam("k", expanding=True)))
    with db.read() as s, pytest.raises(TypeError, match="in_list"):
        fetch(s, expanding, {"k": ["a"]})
