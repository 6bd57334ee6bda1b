"""Exactly once over IMAP: a poller killed with SIGKILL at each point of a round — after
the fetch, after the commit, before the move — loses no mail and makes no second ticket
when a fresh poller takes over; a mail that kills it three times is suspended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from dovecot import ImapAccount
from mailgate_testing import raw_mail, write_config

REPO = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("imap_child.py")


def run_child(config: Path, point: str = "none", uid: str = "any") -> int:
    """One round of a poller in its own process; its exit code (-9 when it killed itself)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's code, not an installed one
    done = subprocess.run(
        [sys.executable, str(CHILD), str(config), "main", point, uid],
        cwd=REPO,
        env=env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert done.returncode in (0, -signal.SIGKILL), done.stderr.decode()
    return done.returncode


def query(store_url: str, sql: str) -> list[tuple[object, ...]]:
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["after_fetch", "after_commit", "before_move"])
def test_a_poller_killed_mid_round_loses_nothing_and_duplicates_nothing(
    point: str, tmp_path: Path, store_url: str, imap_account: ImapAccount
) -> None:
    for i in (1, 2, 3):
        imap_account.append(raw_mail(subject=f"Crash {i}", message_id=f"<crash-{i}@magazin.ro>"))
    config = write_config(tmp_path, store_url, imap_account.toml())

    # Die at mail 2 (the move is once per batch: before it, all three are committed).
    assert run_child(config, point, uid="any" if point == "before_move" else "2") == -signal.SIGKILL
    assert imap_account.count("INBOX") == 3  # nothing is moved before the whole batch is in
    committed = {"after_fetch": 1, "after_commit": 2, "before_move": 3}[point]
    assert query(store_url, "SELECT COUNT(*) FROM tickets") == [(committed,)]

    assert run_child(config) == 0
    assert (imap_account.count("INBOX"), imap_account.count("Processed")) == (0, 3)
    per_message = query(
        store_url,
        "SELECT message_id, COUNT(*) FROM messages WHERE direction = 'in' GROUP BY message_id",
    )
    assert sorted(per_message) == [(f"crash-{i}@magazin.ro", 1) for i in (1, 2, 3)]
    duplicates = query(store_url, "SELECT message_id FROM raw_mails WHERE outcome = 'duplicate'")
    # Killed between commit and bookkeeping, mail 2 went through the pipeline again and was
    # recognised; killed after the bookkeeping, nothing was run twice.
    assert duplicates == ([("crash-2@magazin.ro",)] if point == "after_commit" else [])


@pytest.mark.slow
def test_a_mail_that_kills_the_poller_three_times_is_suspended(
    tmp_path: Path, sqlite_url: str, imap_account: ImapAccount
) -> None:
    """SQLite only: four processes in a row are slow, and the attempt count is tested on
    both databases in-process (test_imap_poller.py)."""
    store_url = sqlite_url
    imap_account.append(raw_mail(subject="Poison", message_id="<poison@magazin.ro>"))
    imap_account.append(raw_mail(subject="Healthy", message_id="<healthy@magazin.ro>"))
    config = write_config(tmp_path, store_url, imap_account.toml())
    for _ in range(3):
        assert run_child(config, "after_fetch", uid="1") == -signal.SIGKILL
    assert imap_account.count("INBOX") == 2

    assert run_child(config) == 0
    assert (imap_account.count("INBOX"), imap_account.count("Processed")) == (0, 2)
    [(reason, detail)] = query(store_url, "SELECT reason, detail FROM suspended_mails")
    assert reason == "processing_error" and "crashed 3 tries" in detail
    assert query(store_url, "SELECT subject FROM tickets") == [("Healthy",)]
    assert query(store_url, "SELECT COUNT(*) FROM imap_attempts") == [(0,)]
