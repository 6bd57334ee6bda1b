"""IMAP bookkeeping in the store, on SQLite and PostgreSQL: positions per folder
incarnation, attempt counts that survive a crash, and what ``mailboxes list`` shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.db import Database
from store.enums import RawOutcome
from store.mailboxes import (
    count_attempt,
    mailbox_statuses,
    mark_committed,
    open_position,
    record_error,
    record_poll,
)
from store.tickets import NewRaw, record_raw

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_a_position_survives_until_the_folder_or_its_uidvalidity_changes(db: Database) -> None:
    with db.write() as s:
        assert open_position(s, "main", "INBOX", 7).last_uid == 0
        count_attempt(s, "main", 7, 3, NOW)
        mark_committed(s, "main", 7, 3)
    with db.write() as s:
        assert open_position(s, "main", "INBOX", 7).last_uid == 3
    with db.write() as s:
        count_attempt(s, "main", 7, 4, NOW)  # in flight when the folder was renumbered
        assert open_position(s, "main", "INBOX", 8).last_uid == 0
        assert count_attempt(s, "main", 8, 4, NOW) == 1  # the old count is gone
    with db.write() as s:
        mark_committed(s, "main", 8, 4)
        assert open_position(s, "main", "Support", 8).last_uid == 0  # another folder


def test_attempts_count_up_until_committed_and_again_false_continues_one(db: Database) -> None:
    with db.write() as s:
        open_position(s, "main", "INBOX", 1)
    for expected in (1, 2):
        with db.write() as s:
            assert count_attempt(s, "main", 1, 5, NOW) == expected
    with db.write() as s:
        assert count_attempt(s, "main", 1, 5, NOW, again=False) == 2
        assert count_attempt(s, "main", 1, 6, NOW, again=False) == 1  # a first try counts
        mark_committed(s, "main", 1, 5)
    with db.write() as s:
        assert count_attempt(s, "main", 1, 5, NOW) == 1
        assert open_position(s, "main", "INBOX", 1).last_uid == 5


def test_statuses_show_polls_errors_and_mails_taken_in(db: Database) -> None:
    with db.write() as s:
        record_poll(s, "main", NOW)
        record_error(s, "main", "mailbox main: x" * 500, NOW + timedelta(minutes=1))
        for i, outcome in enumerate(
            (RawOutcome.MESSAGE, RawOutcome.SUSPENDED, RawOutcome.DUPLICATE)
        ):
            raw = NewRaw(f"{i:064x}", 10, NOW, "imap", "main", None, (), None, f"key{i}")
            record_raw(s, raw, outcome)
        record_raw(
            s, NewRaw("f" * 64, 10, NOW, "smtp", None, None, (), None, "k"), RawOutcome.MESSAGE
        )
    with db.read() as s:
        statuses = mailbox_statuses(s, ("main", "never"))
    assert statuses["main"].ingested == 2  # a message and a suspended mail; not the duplicate
    assert statuses["main"].last_poll_at == NOW
    assert statuses["main"].last_error_at == NOW + timedelta(minutes=1)
    assert len(statuses["main"].last_error or "") == 2000
    assert statuses["never"].ingested == 0 and statuses["never"].last_poll_at is None
