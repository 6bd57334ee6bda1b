"""Cluster-wide named locks: one holder at a time, taken over when the holder dies.

Several gateways share one store; some work must be done by one of them only (poll an
IMAP mailbox, run a periodic job). ``LockKeeper.try_acquire(name)`` never waits: the
gateway that gets the lock does the work, the others try again on their next round.

- PostgreSQL: session-level advisory locks (``pg_try_advisory_lock``) held on one
  connection of their own per process. When the holder dies, its connection closes and
  the server releases every lock it held at once; when its machine vanishes, the TCP
  keepalives set on that connection let the server notice within about half a minute.
- SQLite (one machine): ``flock`` on a file beside the database, which the kernel
  releases when the holding process dies, however it dies.

``holds(name)`` checks that the lock is really still held (the connection may have been
cut); a holder calls it before each round of work and stops when it answers False.
For work that fits in one transaction, ``try_transaction_lock`` is simpler: the lock
ends with the transaction. ``lock_in_order`` waits instead, for transactions that must
not run side by side on the same things (two gateways committing the same mail).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from store.db import Database

log = logging.getLogger(__name__)

# Server-side keepalives of the lock connection: a holder whose machine is gone is
# noticed after idle + interval * count seconds, and its locks are released.
_KEEPALIVE = {"tcp_keepalives_idle": 10, "tcp_keepalives_interval": 5, "tcp_keepalives_count": 3}


def lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of ``name`` (stable across processes)."""
    digest = hashlib.sha256(b"mailgate-lock:" + name.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_transaction_lock(session: Session, name: str) -> bool:
    """Take ``name`` until the end of ``session``'s transaction, if nobody holds it.

    PostgreSQL: ``pg_try_advisory_xact_lock``. SQLite: True, because a write transaction
    (``Database.write``) already excludes every other writer.
    """
    if session.get_bind().dialect.name != "postgresql":
        return True
    taken = session.execute(
        sa.text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": lock_key(name)}
    ).scalar_one()
    return bool(taken)


def lock_in_order(session: Session, names: Iterable[str]) -> None:
    """Take every lock of ``names`` until the end of the transaction, waiting for each.

    The locks are taken in one global order (by key), before the caller writes anything,
    so two transactions that need some of the same names queue one behind the other
    instead of deadlocking. PostgreSQL only; SQLite's write transactions exclude each
    other already.
    """
    keys = sorted({lock_key(name) for name in names})
    if not keys or session.get_bind().dialect.name != "postgresql":
        return
    # A subquery with ORDER BY is never flattened: the locks are taken in sorted order.
    session.execute(
        sa.text(
            "SELECT COUNT(pg_advisory_xact_lock(key)) FROM"
            " (SELECT unnest(CAST(:keys AS bigint[])) AS key ORDER BY 1) AS ordered"
        ),
        {"keys": keys},
    )


class LockKeeper:
    """The named locks this process holds on one store. Thread-safe."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._mutex = threading.Lock()
        self._held: dict[str, int] = {}
        self._connection: Connection | None = None
        self._engine: sa.Engine | None = None
        self._files: dict[str, int] = {}  # SQLite: name -> open descriptor holding the flock
        self._lock_dir = _lock_dir(db.url) if db.is_sqlite else None

    def try_acquire(self, name: str) -> bool:
        """Take ``name`` if nobody holds it; True when this process holds it now."""
        with self._mutex:
            if self._lock_dir is not None:
                return self._try_file_lock(name)
            self._refresh()
            if name in self._held:
                return True
            try:
                connection = self._lock_connection()
                taken = connection.execute(
                    sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": lock_key(name)}
                ).scalar_one()
            except DBAPIError as exc:
                log.warning("lock %s: store unreachable: %s", name, exc.orig or exc)
                self._drop_connection()
                return False
            if taken:
                self._held[name] = lock_key(name)
            return bool(taken)

    def holds(self, name: str) -> bool:
        """True while this process still holds ``name`` (checks the lock connection)."""
        with self._mutex:
            if self._lock_dir is not None:
                return name in self._files
            self._refresh()
            return name in self._held

    def release(self, name: str) -> None:
        """Give ``name`` up (nothing happens when it was not held)."""
        with self._mutex:
            if self._lock_dir is not None:
                fd = self._files.pop(name, None)
                if fd is not None:
                    os.close(fd)  # closing the descriptor drops the flock
                return
            key = self._held.pop(name, None)
            if key is None or self._connection is None:
                return
            try:
                self._connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
            except DBAPIError:
                self._drop_connection()  # a closed connection has released it anyway

    def close(self) -> None:
        """Release every lock this keeper holds."""
        with self._mutex:
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()
            self._drop_connection()

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        """``with keeper.hold(name) as mine:`` — mine is True when taken; released after."""
        mine = self.try_acquire(name)
        try:
            yield mine
        finally:
            if mine:
                self.release(name)

    # --- PostgreSQL -----------------------------------------------------------------
    def _lock_connection(self) -> Connection:
        if self._connection is None:
            # Not from the shared pool: this connection lives as long as the locks do,
            # and must never be handed to another thread's transaction.
            self._engine = sa.create_engine(self._db.url, poolclass=NullPool)
            connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            for setting, value in _KEEPALIVE.items():
                connection.execute(sa.text(f"SET {setting} = {int(value)}"))
            self._connection = connection
        return self._connection

    def _refresh(self) -> None:
        """Ask the server which locks are still ours; forget the others."""
        if not self._held:
            return
        if self._connection is None:
            self._held.clear()
            return
        try:
            held = set(
                self._connection.execute(
                    sa.text(
                        "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks"
                        " WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                        " AND objsubid = 1 AND granted"
                    )
                ).scalars()
            )
        except DBAPIError:
            self._drop_connection()
            return
        # The server shows a key as two 32-bit halves; rejoined they give the signed key.
        for name, key in list(self._held.items()):
            if key not in held:
                del self._held[name]

    def _drop_connection(self) -> None:
        self._held.clear()
        if self._connection is not None:
            with suppress(DBAPIError):  # already broken: closing was a courtesy
                self._connection.close()
            self._connection = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # --- SQLite -----------------------------------------------------------------------
    def _try_file_lock(self, name: str) -> bool:
        if name in self._files:
            return True
        assert self._lock_dir is not None
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        path = self._lock_dir / f"{_safe(name)}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._files[name] = fd
        return True


def _lock_dir(url: str) -> Path:
    database = sa.make_url(url).database
    if not database or database == ":memory:":
        # One process owns an in-memory store; a private folder keeps flock's semantics.
        return Path(tempfile.gettempdir()) / f"mailgate-locks-{os.getpid()}"
    return Path(database + ".locks")


def _safe(name: str) -> str:
    """A file name for ``name``: readable part plus a digest, so distinct names never meet."""
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
    return f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
