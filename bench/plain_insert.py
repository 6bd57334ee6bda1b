"""What one hot INSERT of the commit costs: ``python -m bench.plain_insert [--rows N]
[--url URL]``.

Writes ``N`` audit events (the commit's commonest row) into a fresh store (SQLite under
``var/`` unless ``--url`` names an empty database) three ways, in one transaction each,
and prints the CPU time per row of each (``thread_time``: this thread only):

- ``sqlalchemy``: ``Connection.execute(sa.insert(table), row)``, what the commit did
  before ``store.plain.insert_row``;
- ``insert_row``: ``store.plain.insert_row`` (the statement straight through the driver);
- ``driver``: the driver's own ``cursor.execute`` on a prepared parameter tuple, the floor.

``--pairs``: instead, tickets with their requester as participant, written ``apart``
(two ``insert_row``, the second waiting for the first's id) and ``together``
(``plain.insert_row_with``: one statement on PostgreSQL), 200 a transaction, in turns;
wall and CPU ms per ticket.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from bench.smtp_load import discard, run_folder
from store import plain
from store.db import Database
from store.models import AuditEvent, Participant, Ticket

TABLE: sa.Table = AuditEvent.__table__  # type: ignore[attr-defined]


def _row() -> dict[str, Any]:
    return {"ticket_id": None, "at": datetime.now(UTC), "actor": "bench", "action": "created"}


def _through_sqlalchemy(session: Session, rows: int) -> None:
    statement, connection = sa.insert(TABLE), session.connection()
    for _ in range(rows):
        connection.execute(statement, _row())


def _through_insert_row(session: Session, rows: int) -> None:
    for _ in range(rows):
        plain.insert_row(session, TABLE, _row())


def _through_driver(session: Session, rows: int) -> None:
    plan = plain._plan(TABLE, session.connection().dialect)
    raw = session.connection().connection.dbapi_connection
    assert raw is not None
    cursor = raw.cursor()
    values = plan.values(_row())
    for _ in range(rows):
        cursor.execute(plan.sql_one, values)
    cursor.close()


def _ticket(n: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "subject": f"Plata {n}",
        "requester": f"owner{n}@shop.ro",
        "created_at": now,
        "updated_at": now,
        "status_since": now,
    }


def _apart(session: Session, n: int) -> None:
    tables = Ticket.__table__, Participant.__table__  # type: ignore[attr-defined]
    ticket_id = plain.insert_row(session, tables[0], _ticket(n))
    plain.insert_row(
        session, tables[1], {"ticket_id": ticket_id, "email": f"owner{n}@shop.ro", "role": "r"}
    )


def _together(session: Session, n: int) -> None:
    tables = Ticket.__table__, Participant.__table__  # type: ignore[attr-defined]
    requester = {"email": f"owner{n}@shop.ro", "role": "r"}
    plain.insert_row_with(session, tables[0], _ticket(n), (tables[1], "ticket_id", requester))


def pairs(db: Database, rounds: int) -> None:
    ways = [("apart", _apart), ("together", _together)]
    print(f"tickets with their requester, 200 a transaction, {db.engine.dialect.name}")
    print("| way | wall ms/ticket | CPU ms/ticket |")
    print("|---|---:|---:|")
    n = 0
    for round_ in range(rounds):
        for name, write in ways[round_ % 2 :] + ways[: round_ % 2]:
            with db.write() as session:
                wall, cpu = time.perf_counter(), time.thread_time()
                for _ in range(200):
                    write(session, n)
                    n += 1
                wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            print(f"| {name} | {wall / 200 * 1000:.3f} | {cpu / 200 * 1000:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="an empty database (default: SQLite under var/)")
    parser.add_argument("--pairs", action="store_true", help="tickets with their requester")
    args = parser.parse_args()
    work = run_folder("plain-insert-")
    db = Database(args.url or f"sqlite:///{work}/mailgate.db")
    db.upgrade()
    if args.pairs:
        try:
            pairs(db, args.rounds)
        finally:
            db.dispose()
            discard(work)
        return
    ways: list[tuple[str, Callable[[Session, int], None]]] = [
        ("sqlalchemy", _through_sqlalchemy),
        ("insert_row", _through_insert_row),
        ("driver", _through_driver),
    ]
    print(f"{args.rows} audit events per way and round, {db.engine.dialect.name}")
    print("| way | CPU µs/row |")
    print("|---|---:|")
    try:
        for round_ in range(args.rounds):
            for name, insert_all in ways[round_ % 3 :] + ways[: round_ % 3]:
                with db.write() as session:
                    insert_all(session, 200)  # warm: statement caches, compiled plan
                    cpu = time.thread_time()
                    insert_all(session, args.rows)
                    cpu = time.thread_time() - cpu
                print(f"| {name} | {cpu / args.rows * 1e6:.1f} |")
    finally:
        db.dispose()
        discard(work)


if __name__ == "__main__":
    main()
