"""The database: engine, sessions, SQLite pragmas, error mapping and schema upgrades.

``Database.write()`` opens one transaction (``BEGIN IMMEDIATE`` on SQLite, so writers queue
on the busy timeout instead of failing on a lock upgrade, and the writers of one process
take turns in order: ``store.turns``); ``Database.read()`` a read-only one. Driver errors
that mean "not now" (locked, refused, gone) become ``StoreUnavailable``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlmodel import Session

from store.errors import StoreUnavailable, TransactionConflict
from store.turns import WriteTurns

MIGRATIONS = Path(__file__).parent / "migrations"
TURN_TIMEOUT_FACTOR = 4


class Database:
    """One engine and the sessions made from it."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        # The line ahead of a writer holds at most a few writers, each bounded by the busy
        # timeout: waiting in it must not fail a writer that SQLite itself would serve.
        self._turn_timeout = TURN_TIMEOUT_FACTOR * busy_timeout_ms / 1000
        self._turns = WriteTurns() if self.is_sqlite else None
        self.engine = _make_engine(url, busy_timeout_ms=busy_timeout_ms, echo=echo)
        self._writer = (
            self.engine.execution_options(sqlite_begin="IMMEDIATE")
            if self.is_sqlite
            else self.engine
        )

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A session whose work is committed at the end of the block, or rolled back."""
        with (
            self._turns.turn(self._turn_timeout) if self._turns else nullcontext(),
            _unavailable_on_driver_errors("write"),
            Session(self._writer, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for queries; nothing it does is committed."""
        # Closing (not rolling back) ends the transaction and keeps loaded rows readable.
        with (
            _unavailable_on_driver_errors("read"),
            Session(self.engine, expire_on_commit=False) as session,
        ):
            yield session

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (cheap when it already is)."""
        from store.migrate import upgrade

        with _unavailable_on_driver_errors("upgrade"):
            upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def _make_engine(url: str, *, busy_timeout_ms: int, echo: bool) -> Engine:
    if url.startswith("sqlite"):
        sa_url = sa.make_url(url)
        if sa_url.database and sa_url.database != ":memory:":
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
        )
        _configure_sqlite(engine, busy_timeout_ms)
        return engine
    return sa.create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=10)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, not only a killed process (NORMAL's limit).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def _unavailable_on_driver_errors(operation: str) -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) in _CONFLICTS:
            raise TransactionConflict(
                f"store conflict: {_first_line(exc)}", operation=operation
            ) from exc
        raise StoreUnavailable(
            f"store unavailable: {_first_line(exc)}", operation=operation
        ) from exc
    except DBAPIError as exc:
        if exc.connection_invalidated:
            raise StoreUnavailable(
                f"store connection lost: {_first_line(exc)}", operation=operation
            ) from exc
        raise


# PostgreSQL's SQLSTATEs for a transaction it rolled back for another's sake:
# serialization_failure and deadlock_detected.
_CONFLICTS = frozenset({"40001", "40P01"})


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
