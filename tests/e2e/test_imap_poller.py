"""The IMAP poller against a real Dovecot: mail delivered by APPEND becomes tickets, moves
to the processed folder only after the commit, survives store outages, renumbered
folders, crashing mails and lost connections; IDLE takes new mail within seconds."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dovecot import Dovecot, ImapAccount, free_port
from mailgate_testing import make_gateway, make_settings, raw_mail
from sqlmodel import select

from mailgate.app import Gateway
from mailgate.config import ImapSettings, StoreSettings
from mailgate.sources.imap import Backoff, ImapPoller, PollerHooks
from store.errors import StoreUnavailable
from store.mailboxes import mailbox_statuses
from store.models import ImapAttempt, ImapMailbox, RawMail, SuspendedMail, Ticket

FAST = Backoff(base=0.05, cap=0.2)


def make_poller(gateway: Gateway, settings: ImapSettings, **options: object) -> ImapPoller:
    options.setdefault("backoff", FAST)
    return ImapPoller(settings, gateway.pipeline, gateway.db, gateway.clock, **options)  # type: ignore[arg-type]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - start


def tickets(gateway: Gateway) -> list[Ticket]:
    with gateway.db.read() as session:
        return list(session.exec(select(Ticket).order_by(Ticket.id)))  # type: ignore[arg-type]


def raws(gateway: Gateway) -> list[RawMail]:
    with gateway.db.read() as session:
        return list(session.exec(select(RawMail).order_by(RawMail.id)))  # type: ignore[arg-type]


@pytest.fixture
def running(gateway: Gateway) -> Iterator[Callable[[ImapPoller], None]]:
    """Starts pollers' ``run`` loops in threads; stops and joins them at the end."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(poller: ImapPoller) -> None:
        thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(15)
        assert not thread.is_alive(), "a poller did not stop"


# --- one round ------------------------------------------------------------------------


def test_a_waiting_mail_becomes_a_ticket_then_moves_to_processed(
    gateway: Gateway, imap_account: ImapAccount
) -> None:
    imap_account.append(raw_mail(subject="Plata nu merge", message_id="<imap-1@magazin.ro>"))
    poller = make_poller(gateway, imap_account.settings())
    report = poller.poll_once()
    poller.disconnect()

    assert [o.kind for o in report.outcomes] == ["ticket_created"] and report.moved == 1
    assert imap_account.count("INBOX") == 0
    [moved] = imap_account.messages("Processed")
    assert b"<imap-1@magazin.ro>" in moved
    [ticket] = tickets(gateway)
    assert ticket.subject == "Plata nu merge" and ticket.requester == "ana@magazin.ro"
    [raw] = raws(gateway)
    assert (raw.source, raw.mailbox, raw.ticket_id) == ("imap", "main", ticket.id)


def test_without_move_the_mail_is_copied_flagged_and_expunged(
    gateway: Gateway, imap_account: ImapAccount
) -> None:
    for i in range(2):
        imap_account.append(raw_mail(subject=f"Copy {i}", message_id=f"<copy-{i}@magazin.ro>"))
    poller = make_poller(gateway, imap_account.settings(), use_move=False)
    report = poller.poll_once()
    poller.disconnect()

    assert report.moved == 2 and len(tickets(gateway)) == 2
    assert imap_account.count("INBOX") == 0  # expunged, not just flagged \Deleted
    moved = imap_account.messages("Processed", deleted=True)
    assert [b"<copy-0@magazin.ro>" in moved[0], b"<copy-1@magazin.ro>" in moved[1]] == [True] * 2


def test_a_suspended_mail_counts_as_processed(gateway: Gateway, imap_account: ImapAccount) -> None:
    imap_account.append(
        raw_mail(subject="Automatic reply: away", headers={"Auto-Submitted": "auto-replied"})
    )
    poller = make_poller(gateway, imap_account.settings())
    [outcome] = poller.poll_once().outcomes
    poller.disconnect()

    assert (outcome.kind, outcome.reason) == ("suspended", "auto_reply")
    assert imap_account.count("INBOX") == 0 and imap_account.count("Processed") == 1
    assert tickets(gateway) == []


def test_a_round_takes_at_most_batch_size_mails_in_uid_order(
    gateway: Gateway, imap_account: ImapAccount
) -> None:
    for i in range(5):
        imap_account.append(raw_mail(subject=f"Batch {i}", message_id=f"<batch-{i}@magazin.ro>"))
    poller = make_poller(gateway, imap_account.settings(batch_size=2))
    first = poller.poll_once()
    assert (len(first.outcomes), first.more_waiting) == (2, True)
    assert (imap_account.count("INBOX"), imap_account.count("Processed")) == (3, 2)
    while poller.poll_once().more_waiting:
        pass
    poller.disconnect()
    assert [t.subject for t in tickets(gateway)] == [f"Batch {i}" for i in range(5)]
    assert imap_account.count("INBOX") == 0


def test_seen_flags_are_left_alone(gateway: Gateway, imap_account: ImapAccount) -> None:
    """The poller reads with BODY.PEEK: a person looking at the folder still sees it unread."""
    imap_account.append(raw_mail())
    poller = make_poller(gateway, imap_account.settings())
    poller.poll_once()
    poller.disconnect()
    with imap_account.client() as client:
        client.select_folder("Processed", readonly=True)
        assert client.search("UNSEEN") != []


# --- bookkeeping ----------------------------------------------------------------------


def test_the_status_records_polls_errors_and_mails_taken_in(
    gateway: Gateway, imap_account: ImapAccount, running: Callable[[ImapPoller], None]
) -> None:
    imap_account.append(raw_mail(message_id="<count-1@magazin.ro>"))
    imap_account.append(raw_mail(message_id="<count-1@magazin.ro>"))  # the same delivery twice
    poller = make_poller(gateway, imap_account.settings())
    kinds = [o.kind for o in poller.poll_once().outcomes]
    poller.disconnect()
    assert kinds == ["ticket_created", "duplicate"]

    running(make_poller(gateway, imap_account.settings(name="broken", folder="Nowhere")))
    wait_until(lambda: _last_error(gateway, "broken") is not None)

    with gateway.db.read() as session:
        statuses = mailbox_statuses(session, ("main", "broken"))
    assert statuses["main"].ingested == 1  # the duplicate delivery is not counted again
    assert statuses["main"].last_poll_at == gateway.clock()
    assert statuses["main"].last_error is None
    assert statuses["broken"].last_poll_at is None
    assert "folder 'Nowhere' does not exist" in (statuses["broken"].last_error or "")


def test_a_new_uidvalidity_makes_the_old_position_meaningless(
    gateway: Gateway, imap_account: ImapAccount
) -> None:
    """UID 1 of a renumbered folder is a new mail, not one committed under the old numbers."""
    with gateway.db.write() as session:
        session.add(ImapMailbox(name="main", folder="INBOX", uidvalidity=1, last_uid=1000))
        session.add(ImapAttempt(mailbox="main", uidvalidity=1, uid=1, attempts=3,
                                last_attempt_at=gateway.clock()))  # fmt: skip
    imap_account.append(raw_mail(message_id="<renumbered@magazin.ro>"))
    poller = make_poller(gateway, imap_account.settings())
    [outcome] = poller.poll_once().outcomes
    poller.disconnect()

    assert outcome.kind == "ticket_created"
    with gateway.db.read() as session:
        row = session.get(ImapMailbox, "main")
        assert row is not None and row.uidvalidity != 1 and row.last_uid == 1
        assert list(session.exec(select(ImapAttempt))) == []


# --- failures -------------------------------------------------------------------------


class StoreOutage:
    """Makes the store refuse writes for real, until ``end()``.

    SQLite: another connection holds the write lock (the gateway's busy timeout runs
    out). PostgreSQL: the database stops accepting connections and its sessions are ended.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._sqlite: sqlite3.Connection | None = None
        self._pg: sa.Connection | None = None
        self._engine: sa.Engine | None = None

    def begin(self) -> None:
        if self.url.startswith("sqlite"):
            self._sqlite = sqlite3.connect(
                sa.make_url(self.url).database or "", isolation_level=None
            )
            self._sqlite.execute("BEGIN EXCLUSIVE")
            return
        name = sa.make_url(self.url).database
        # From another database: PostgreSQL will not lock out the one it is connected to.
        admin = sa.make_url(self.url).set(database="postgres")
        self._engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
        self._pg = self._engine.connect()
        self._pg.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        self._pg.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )

    def end(self) -> None:
        if self._sqlite is not None:
            self._sqlite.rollback()
            self._sqlite.close()
        if self._pg is not None and self._engine is not None:
            name = sa.make_url(self.url).database
            self._pg.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            self._pg.close()
            self._engine.dispose()


def test_a_store_outage_leaves_the_mail_on_the_server_and_is_no_crash(
    tmp_path: Path, store_url: str, imap_account: ImapAccount
) -> None:
    settings = make_settings(
        tmp_path,
        store_url,
        store=StoreSettings(
            url=store_url, raw=str(tmp_path / "raw"), attachments=str(tmp_path / "att"),
            busy_timeout_ms=100,
        ),
    )  # fmt: skip
    gateway, _, _ = make_gateway(settings)
    outage = StoreOutage(store_url)
    imap_account.append(raw_mail(message_id="<outage@magazin.ro>"))
    # max_attempts=1: had the outage been counted as a crash, the next try would suspend.
    poller = make_poller(
        gateway,
        imap_account.settings(),
        hooks=PollerHooks(after_fetch=lambda uid: outage.begin()),
        max_attempts=1,
    )
    try:
        with pytest.raises(StoreUnavailable):
            poller.poll_once()
    finally:
        outage.end()
    poller.disconnect()
    assert (imap_account.count("INBOX"), imap_account.count("Processed")) == (1, 0)

    poller.hooks = PollerHooks()
    [outcome] = poller.poll_once().outcomes
    poller.disconnect()
    assert outcome.kind == "ticket_created"
    assert (imap_account.count("INBOX"), imap_account.count("Processed")) == (0, 1)
    gateway.close()


def test_a_mail_that_keeps_crashing_is_suspended_after_three_tries(
    gateway: Gateway, imap_account: ImapAccount
) -> None:
    imap_account.append(raw_mail(subject="Poison", message_id="<poison@magazin.ro>"))
    imap_account.append(raw_mail(subject="Healthy", message_id="<healthy@magazin.ro>"))

    crashes: list[int] = []

    def crash_on_poison(uid: int) -> None:  # as a stage would, on each of three tries
        if uid == 1 and len(crashes) < 3:
            crashes.append(uid)
            raise RuntimeError("a bug in some stage")

    poller = make_poller(
        gateway, imap_account.settings(), hooks=PollerHooks(after_fetch=crash_on_poison)
    )
    for _ in range(3):
        with pytest.raises(RuntimeError):
            poller.poll_once()
        poller.disconnect()  # what ``run`` does after a failed round
        assert imap_account.count("INBOX") == 2  # nothing moved, nothing lost
    report = poller.poll_once()
    poller.disconnect()

    assert [(o.kind, o.reason) for o in report.outcomes] == [
        ("suspended", "processing_error"),
        ("ticket_created", ""),
    ]
    with gateway.db.read() as session:
        [held] = session.exec(select(SuspendedMail))
    assert "crashed 3 tries" in held.detail
    assert imap_account.count("INBOX") == 0 and imap_account.count("Processed") == 2
    assert [t.subject for t in tickets(gateway)] == ["Healthy"]


def test_backoff_doubles_up_to_its_cap() -> None:
    backoff = Backoff(base=1.0, cap=10.0)
    delays = [backoff.delay(n) for n in range(1, 8)]
    for n, delay in enumerate(delays, start=1):
        assert 0.75 * min(10.0, 2 ** (n - 1)) <= delay <= min(10.0, 2 ** (n - 1))


# --- the loop: IDLE, polling, reconnecting ----------------------------------------------


def test_idle_takes_a_new_mail_within_seconds(
    gateway: Gateway, imap_account: ImapAccount, running: Callable[[ImapPoller], None]
) -> None:
    # Two minutes between polls: only IDLE can explain a quick pickup.
    poller = make_poller(gateway, imap_account.settings(poll_interval=120))
    running(poller)
    wait_until(lambda: _last_poll(gateway) is not None)
    time.sleep(0.3)  # in IDLE by now
    imap_account.append(raw_mail(message_id="<idle@magazin.ro>"))
    took = wait_until(lambda: len(tickets(gateway)) == 1, timeout=10)
    assert took < 5
    wait_until(lambda: imap_account.count("Processed") == 1)


def test_without_idle_the_poller_polls(
    gateway: Gateway, imap_account: ImapAccount, running: Callable[[ImapPoller], None]
) -> None:
    running(make_poller(gateway, imap_account.settings(idle=False, poll_interval=0.2)))
    wait_until(lambda: _last_poll(gateway) is not None)
    imap_account.append(raw_mail(message_id="<polled@magazin.ro>"))
    wait_until(lambda: len(tickets(gateway)) == 1)


def test_a_dropped_connection_is_reopened(
    gateway: Gateway,
    imap_account: ImapAccount,
    dovecot: Dovecot,
    running: Callable[[ImapPoller], None],
) -> None:
    running(make_poller(gateway, imap_account.settings(poll_interval=120)))
    wait_until(lambda: _last_poll(gateway) is not None)
    dovecot.kick(imap_account.user)  # the server ends the IDLE session
    wait_until(lambda: _last_error(gateway) is not None)
    imap_account.append(raw_mail(message_id="<after-kick@magazin.ro>"))
    wait_until(lambda: len(tickets(gateway)) == 1)


def test_the_poller_waits_for_a_server_that_is_down_then_takes_its_mail(
    gateway: Gateway, dovecot: Dovecot, running: Callable[[ImapPoller], None]
) -> None:
    later = Dovecot(dovecot.certfile, dovecot.keyfile)  # not started yet: nothing listens
    account = later.add_account(processed_folder=False)
    port = free_port()
    try:
        running(make_poller(gateway, account.settings(port=port)))
        wait_until(lambda: "refused the connection" in (_last_error(gateway) or ""))
        later.start(plain_port=port)
        wait_until(lambda: "'Processed' does not exist" in (_last_error(gateway) or ""))
        account.create_folder("Processed")
        account.append(raw_mail(message_id="<came-back@magazin.ro>"))
        wait_until(lambda: len(tickets(gateway)) == 1)
        wait_until(lambda: account.count("Processed") == 1)
    finally:
        later.remove()


def _last_poll(gateway: Gateway, name: str = "main") -> object:
    with gateway.db.read() as session:
        row = session.get(ImapMailbox, name)
        return row.last_poll_at if row else None


def _last_error(gateway: Gateway, name: str = "main") -> str | None:
    with gateway.db.read() as session:
        row = session.get(ImapMailbox, name)
        return row.last_error if row else None
