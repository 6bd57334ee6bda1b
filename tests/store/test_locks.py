"""Cluster-wide named locks: one holder at a time, taken over when the holder dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from store.db import Database
from store.locks import LockKeeper, lock_in_order, lock_key, try_transaction_lock

REPO = Path(__file__).resolve().parents[2]


def test_lock_has_one_holder_until_released(db: Database) -> None:
    first, second = LockKeeper(db), LockKeeper(db)
    try:
        assert first.try_acquire("imap:main")
        assert first.try_acquire("imap:main")  # asking again while holding is harmless
        assert not second.try_acquire("imap:main")
        assert second.try_acquire("imap:other")  # names are independent
        assert first.holds("imap:main") and not second.holds("imap:main")
        first.release("imap:main")
        assert not first.holds("imap:main")
        assert second.try_acquire("imap:main")
    finally:
        first.close()
        second.close()


def test_hold_releases_at_the_end_of_the_block(db: Database) -> None:
    keeper, other = LockKeeper(db), LockKeeper(db)
    try:
        with keeper.hold("schedule:auto-close") as mine:
            assert mine
            with other.hold("schedule:auto-close") as theirs:
                assert not theirs
        assert other.try_acquire("schedule:auto-close")
    finally:
        keeper.close()
        other.close()


@pytest.mark.slow
def test_lock_of_a_killed_holder_is_taken_over(db: Database) -> None:
    """kill -9 of the holder frees the lock: the kernel (flock) or the server releases it."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from store.db import Database
                from store.locks import LockKeeper
                keeper = LockKeeper(Database({db.url!r}))
                assert keeper.try_acquire("imap:main")
                print("held", flush=True)
                time.sleep(600)
                """
            ),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
    )
    keeper = LockKeeper(db)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        assert not keeper.try_acquire("imap:main")
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        deadline = time.monotonic() + 10
        while not keeper.try_acquire("imap:main"):
            assert time.monotonic() < deadline, "the dead holder's lock was never released"
            time.sleep(0.1)
        assert keeper.holds("imap:main")
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
        keeper.close()


@pytest.mark.postgres
def test_holder_learns_that_its_lock_connection_was_cut(pg_database: str) -> None:
    """A lock held on a connection the server ended is no longer held, and says so."""
    db = Database(pg_database)
    keeper, other = LockKeeper(db), LockKeeper(db)
    admin = sa.create_engine(pg_database)
    try:
        assert keeper.try_acquire("imap:cut")
        with admin.begin() as conn:
            holder_pid = conn.execute(
                sa.text(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory'"
                    " AND ((classid::bigint << 32) | objid::bigint) = :key"
                ),
                {"key": lock_key("imap:cut")},
            ).scalar_one()
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": holder_pid})
        deadline = time.monotonic() + 10
        while not other.try_acquire("imap:cut"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert not keeper.holds("imap:cut")
        assert not keeper.try_acquire("imap:cut")  # reconnects, and finds it taken
    finally:
        keeper.close()
        other.close()
        admin.dispose()
        db.dispose()


@pytest.mark.postgres
def test_transaction_lock_ends_with_its_transaction(pg_database: str) -> None:
    db = Database(pg_database)
    try:
        with db.write() as first:
            assert try_transaction_lock(first, "schedule:reminders")
            with db.write() as second:
                assert not try_transaction_lock(second, "schedule:reminders")
        with db.write() as third:
            assert try_transaction_lock(third, "schedule:reminders")
    finally:
        db.dispose()


def test_transaction_lock_on_sqlite_is_the_write_transaction(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    try:
        with db.write() as session:
            assert try_transaction_lock(session, "schedule:reminders")
    finally:
        db.dispose()


def test_lock_keys_are_stable_signed_64_bit_numbers() -> None:
    assert lock_key("imap:main") == lock_key("imap:main") != lock_key("imap:other")
    assert -(2**63) <= lock_key("imap:main") < 2**63


@pytest.mark.postgres
def test_transactions_locking_the_same_names_queue_instead_of_deadlocking(
    pg_database: str,
) -> None:
    """Two batches holding the same mails in opposite orders: the second waits for the
    first to commit, whatever order each names them in."""
    db = Database(pg_database)
    events: list[str] = []
    first_holds = threading.Event()

    def first() -> None:
        with db.write() as session:
            lock_in_order(session, ["delivery:a", "delivery:b", "delivery:c"])
            first_holds.set()
            time.sleep(0.5)
            events.append("first commits")

    def second() -> None:
        first_holds.wait(10)
        with db.write() as session:
            lock_in_order(session, ["delivery:c", "delivery:b", "delivery:x"])
            events.append("second holds")

    try:
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert events == ["first commits", "second holds"]
    finally:
        db.dispose()
