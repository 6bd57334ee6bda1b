"""What one hot INSERT of the commit costs: ``python -m bench.plain_insert [--rows N]
[--url URL]``.

Writes ``N`` audit events (the commit's commonest row) into a fresh store (SQLite under
``var/`` unless ``--url`` names an empty database) three ways, in one transaction each,
and prints the CPU time per row of each (``thread_time``: this thread only):

- ``sqlalchemy``: ``Connection.execute(sa.insert(table), row)``, what the commit did
  before ``store.plain.insert_row``;
- ``insert_row``: ``store.plain.insert_row`` (the statement straight through the driver);
- ``driver``: the driver's own ``cursor.execute`` on a prepared parameter tuple, the floor.
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
from store.models import AuditEvent

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="an empty database (default: SQLite under var/)")
    args = parser.parse_args()
    work = run_folder("plain-insert-")
    db = Database(args.url or f"sqlite:///{work}/mailgate.db")
    db.upgrade()
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
