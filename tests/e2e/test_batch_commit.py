"""A batch of mails commits in one transaction, first without a savepoint per mail; a mail
that fails takes the batch back, and the batch is done again with one savepoint per mail:
that mail is suspended (``processing_error``), the others are committed once each. A batch
that the database rolls back for another gateway's (a deadlock) is committed again. A
batch's files are synced together, before its transaction."""

from __future__ import annotations

import errno
import hashlib
import re
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from mailgate_testing import make_gateway, make_settings, raw_mail
from sqlalchemy import event as sa_event
from sqlalchemy import func
from sqlmodel import select

from mailgate import pipeline as pipeline_module
from mailgate.app import Gateway
from mailgate.apply import Applier, Outcome
from mailgate.clock import ManualClock
from mailgate.config import LimitSettings, Settings
from mailgate.preparer import Prepared
from mailgate.values import Arrival, Envelope, Source
from store import durable, plain
from store.errors import StoreUnavailable
from store.models import AuditEvent, NotificationLog, OutboxMail, RawMail, SuspendedMail, Ticket
from store.raw import BlobStore


def _prepared(gateway: Gateway, clock: ManualClock, raws: list[bytes]) -> list[Prepared]:
    envelope = Envelope("ana@magazin.ro", ("support@localhost",))
    return [gateway.pipeline.prepare(Arrival(r, envelope, Source("pipe"), clock())) for r in raws]


class _BrokenFor:
    """The apply stage with a bug for one subject, as a stage bug would show."""

    def __init__(self, applier: Applier, subject: str) -> None:
        self.applier, self.subject, self.calls = applier, subject, 0

    def apply(self, session: Any, disposition: Any, facts: Any, *args: Any) -> Outcome:
        self.calls += 1
        outcome = self.applier.apply(session, disposition, facts, *args)
        if facts.mail.subject == self.subject:  # after its rows were written
            raise RuntimeError("a bug in the apply stage")
        return outcome

    def __getattr__(self, name: str) -> Any:
        return getattr(self.applier, name)


def _counts(gateway: Gateway) -> tuple[int, int, int]:
    with gateway.db.read() as session:
        return (
            session.exec(select(func.count()).select_from(RawMail)).one(),
            session.exec(select(func.count()).select_from(Ticket)).one(),
            session.exec(select(func.count()).select_from(SuspendedMail)).one(),
        )


def test_a_failing_mail_is_suspended_and_the_rest_of_its_batch_commits(
    gateway: Gateway, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    subjects = ["Plata nu merge", "Importul se oprește", "Factura lipsește"]
    raws = [raw_mail(subject=s, message_id=f"<b{i}@magazin.ro>") for i, s in enumerate(subjects)]
    broken = _BrokenFor(gateway.pipeline.applier, "Importul se oprește")
    monkeypatch.setattr(gateway.pipeline, "applier", broken)

    outcomes = gateway.pipeline.commit(_prepared(gateway, clock, raws))

    assert [o.kind for o in outcomes] == ["ticket_created", "suspended", "ticket_created"]
    assert outcomes[1].reason == "processing_error"
    # Unguarded: the first two mails, then the batch again with a savepoint per mail.
    assert broken.calls == 2 + 3
    # Nothing of the rolled-back attempt stays: one raw mail each, two tickets.
    assert _counts(gateway) == (3, 2, 1)
    with gateway.db.read() as session:
        [held] = session.exec(select(SuspendedMail))
        assert "a bug in the apply stage" in held.detail
        tickets = session.exec(select(Ticket).order_by(Ticket.id)).all()
        assert [t.subject for t in tickets] == ["Plata nu merge", "Factura lipsește"]
        assert [t.id for t in tickets] == [outcomes[0].ticket_id, outcomes[2].ticket_id]


def test_a_batch_without_failures_is_one_pass(
    gateway: Gateway, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    raws = [raw_mail(subject=f"Comanda {i}", message_id=f"<ok{i}@magazin.ro>") for i in range(4)]
    counted = _BrokenFor(gateway.pipeline.applier, "no such subject")
    monkeypatch.setattr(gateway.pipeline, "applier", counted)
    # The same delivery twice in one batch: the second is a duplicate, not a failure.
    batch = _prepared(gateway, clock, [*raws, raws[0]])

    outcomes = gateway.pipeline.commit(batch)

    assert [o.kind for o in outcomes] == ["ticket_created"] * 4 + ["duplicate"]
    assert counted.calls == 4
    assert _counts(gateway) == (5, 4, 0)


class _WaitsAfterFirstMail:
    """The apply stage of one gateway, which, in its first batch only, waits after its
    first mail for the other gateway to have applied its own first mail."""

    def __init__(self, applier: Applier, barrier: threading.Barrier) -> None:
        self.applier, self.barrier, self.calls = applier, barrier, 0

    def apply(self, session: Any, disposition: Any, facts: Any, *args: Any) -> Outcome:
        self.calls += 1
        outcome = self.applier.apply(session, disposition, facts, *args)
        if self.calls == 1:
            self.barrier.wait(timeout=30)
        return outcome

    def __getattr__(self, name: str) -> Any:
        return getattr(self.applier, name)


def test_two_gateways_replying_to_two_tickets_in_opposite_orders_both_commit(
    gateway: Gateway, clock: ManualClock, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: gateway A's batch replies to tickets X then Y, gateway B's to Y then X,
    at the same time. Each holds the row the other needs next: a deadlock, in which
    PostgreSQL rolls one batch back. That batch is committed again instead of answering
    451 for each of its mails."""
    if gateway.db.is_sqlite:
        pytest.skip("SQLite has one writer at a time: its batches never hold rows together")
    x, y = (f"<{name}@magazin.ro>" for name in ("x", "y"))
    opened = gateway.pipeline.commit(
        _prepared(gateway, clock, [raw_mail(message_id=x), raw_mail(message_id=y)])
    )
    ticket_x, ticket_y = (o.ticket_id for o in opened)
    other, _, _ = make_gateway(settings)
    barrier = threading.Barrier(2)
    batches = {
        "a": (gateway, [(x, "a1"), (y, "a2")]),
        "b": (other, [(y, "b1"), (x, "b2")]),
    }
    outcomes: dict[str, list[Outcome]] = {}
    errors: list[BaseException] = []

    def commit(name: str) -> None:
        gw, replies = batches[name]
        monkeypatch.setattr(
            gw.pipeline, "applier", _WaitsAfterFirstMail(gw.pipeline.applier, barrier)
        )
        raws = [raw_mail(message_id=f"<{r}@magazin.ro>", in_reply_to=to) for to, r in replies]
        try:
            outcomes[name] = gw.pipeline.commit(_prepared(gw, clock, raws))
        except BaseException as exc:
            errors.append(exc)

    try:
        threads = [threading.Thread(target=commit, args=(name,)) for name in batches]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        other.close()
    assert not errors
    assert [[o.kind for o in outcomes[n]] for n in "ab"] == [["message_added"] * 2] * 2
    assert [[o.ticket_id for o in outcomes[n]] for n in "ab"] == [
        [ticket_x, ticket_y],
        [ticket_y, ticket_x],
    ]
    assert _counts(gateway) == (6, 2, 0)  # each mail once: nothing of the rolled-back try


def _with_screenshot(subject: str, picture: bytes) -> bytes:
    message = message_from_bytes(raw_mail(subject=subject), policy=policy.default)
    assert isinstance(message, EmailMessage)
    message.add_attachment(picture, maintype="image", subtype="png", filename="ecran.png")
    return bytes(message)


def test_a_batch_s_files_are_synced_before_its_transaction(
    gateway: Gateway, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preparer writes raw mails and attachments without syncing them; the commit
    syncs all of a batch's files (here one at a time, as where there is no syncfs), and
    only then writes the rows that point at them."""
    synced: list[tuple[Path, int]] = []

    def recorded(path: Path) -> None:
        synced.append((path, _counts(gateway)[0]))  # raw mails committed at that moment

    monkeypatch.setattr(durable, "syncfs", None)
    monkeypatch.setattr(durable, "fsync_file", recorded)
    picture = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    raws = [_with_screenshot("Eroare la import", picture), raw_mail(subject="Factura")]
    batch = _prepared(gateway, clock, raws)
    assert synced == []

    assert [o.kind for o in gateway.pipeline.commit(batch)] == ["ticket_created"] * 2
    assert isinstance(gateway.raws, BlobStore) and isinstance(gateway.blobs, BlobStore)
    raw_paths = {gateway.raws.path_for(p.raw.sha256) for p in batch}
    picture_path = gateway.blobs.path_for(hashlib.sha256(picture).hexdigest())
    assert {path for path, _ in synced} == raw_paths | {picture_path}
    assert all(committed == 0 for _, committed in synced)
    assert _counts(gateway)[0] == 2


def test_a_batch_commits_only_once_its_files_sync_beside_its_statements_has_ended(
    gateway: Gateway, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sync runs in a thread of its own while the batch's statements run: the batch
    must still wait for it to end before committing. A slow sync here: what the store
    holds when it ends is what a commit that did not wait would already have written."""
    at_the_end: list[int] = []
    threads: list[str] = []

    def slow(path: Path) -> None:
        threads.append(threading.current_thread().name)
        time.sleep(0.2)  # the batch's statements take milliseconds
        at_the_end.append(_counts(gateway)[0])

    monkeypatch.setattr(durable, "syncfs", None)
    monkeypatch.setattr(durable, "fsync_file", slow)
    batch = _prepared(gateway, clock, [raw_mail(subject="Plata"), raw_mail(subject="Factura")])

    assert [o.kind for o in gateway.pipeline.commit(batch)] == ["ticket_created"] * 2
    assert at_the_end == [0, 0]
    assert threads and threading.current_thread().name not in threads
    assert _counts(gateway)[0] == 2


def test_batches_sync_their_files_in_one_thread_that_ends_with_the_gateway(
    gateway: Gateway, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting a thread per batch cost the writer about 1 ms under load: one sync thread
    serves batch after batch, and closing the gateway lets it go."""
    threads: list[threading.Thread] = []

    def noted(path: Path) -> None:
        threads.append(threading.current_thread())

    monkeypatch.setattr(durable, "syncfs", None)
    monkeypatch.setattr(durable, "fsync_file", noted)
    for subject in ("Plata", "Factura", "Retur"):
        batch = _prepared(gateway, clock, [raw_mail(subject=subject)])
        assert [o.kind for o in gateway.pipeline.commit(batch)] == ["ticket_created"]

    assert len(threads) >= 3 and len(set(threads)) == 1
    assert threads[0].name.startswith("batch-sync") and threads[0].is_alive()
    gateway.close()
    assert not threads[0].is_alive()


def test_a_batch_whose_files_cannot_be_synced_commits_nothing(
    gateway: Gateway, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk that refuses the sync fails the whole batch (451 for each of its mails) and
    leaves no sync running behind it."""

    running: list[Path] = []

    def refused(path: Path) -> None:
        running.append(path)
        try:
            time.sleep(0.05)
            raise OSError(errno.EIO, "Input/output error")
        finally:
            running.remove(path)

    monkeypatch.setattr(durable, "syncfs", None)
    monkeypatch.setattr(durable, "fsync_file", refused)
    batch = _prepared(gateway, clock, [raw_mail(subject="Plata"), raw_mail(subject="Factura")])

    with pytest.raises(StoreUnavailable):
        gateway.pipeline.commit(batch)
    assert _counts(gateway) == (0, 0, 0)
    assert not running


def _rows(gateway: Gateway, model: Any) -> int:
    with gateway.db.read() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_a_batch_s_audit_events_outbox_and_log_go_in_one_statement_per_table(
    gateway: Gateway, clock: ManualClock
) -> None:
    raws = [
        raw_mail(
            sender=f"Client {i} <c{i}@magazin.ro>",
            subject=f"Comanda {i}",
            message_id=f"<h{i}@magazin.ro>",
        )
        for i in range(4)
    ]
    batch = _prepared(gateway, clock, raws)
    inserts: list[tuple[str, bool]] = []

    def note(*args: Any) -> None:
        # On PostgreSQL one statement may write two tables (plain.insert_row_with).
        inserts.extend((table, args[5]) for table in re.findall(r"INSERT INTO (\w+)", args[2]))

    sa_event.listen(gateway.db.engine, "before_cursor_execute", note)
    try:
        outcomes = gateway.pipeline.commit(batch)
    finally:
        sa_event.remove(gateway.db.engine, "before_cursor_execute", note)

    assert [o.kind for o in outcomes] == ["ticket_created"] * 4
    for table in ("audit_events", "outbox_mails", "notification_log"):
        assert inserts.count((table, True)) == 1, table
        assert (table, False) not in inserts, table
    assert inserts.count(("tickets", False)) == 4
    assert _rows(gateway, OutboxMail) == 4 and _rows(gateway, NotificationLog) == 4
    with gateway.db.read() as session:
        created = session.exec(select(AuditEvent.ticket_id).where(AuditEvent.action == "created"))
        assert sorted(created) == sorted(o.ticket_id for o in outcomes)


def test_the_daily_limit_holds_inside_one_batch(tmp_path: Path, store_url: str) -> None:
    settings = make_settings(
        tmp_path, store_url, limits=LimitSettings(automatic_per_address_per_day=2)
    )
    gateway, clock, _ = make_gateway(settings)
    try:
        raws = [raw_mail(subject=f"Cerere {i}", message_id=f"<d{i}@magazin.ro>") for i in range(4)]
        outcomes = gateway.pipeline.commit(_prepared(gateway, clock, raws))
        assert [o.kind for o in outcomes] == ["ticket_created"] * 4
        assert _rows(gateway, OutboxMail) == 2  # two acknowledgements, then the limit
        with gateway.db.read() as session:
            withheld = session.exec(
                select(AuditEvent.detail).where(AuditEvent.action == "withheld")
            ).all()
        assert withheld == ["ack to ana@magazin.ro: 2 automatic mails to it in 24 hours"] * 2
    finally:
        gateway.close()


def test_held_rows_the_database_refuses_take_the_batch_back(
    gateway: Gateway, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The held rows are written after the batch's mails: a refusal there cannot be put
    on one mail, so the batch is done again with a savepoint per mail, rows written at once."""
    insert_rows = plain.insert_rows
    refused: list[str] = []

    def refuse_the_first_outbox_rows(session: Any, table: sa.Table, rows: Any) -> None:
        if table.name == "outbox_mails" and not refused:
            refused.append(table.name)
            raise sa.exc.IntegrityError("INSERT INTO outbox_mails", {}, Exception("refused"))
        insert_rows(session, table, rows)

    monkeypatch.setattr(plain, "insert_rows", refuse_the_first_outbox_rows)
    raws = [raw_mail(subject=f"Retur {i}", message_id=f"<r{i}@magazin.ro>") for i in range(3)]

    outcomes = gateway.pipeline.commit(_prepared(gateway, clock, raws))

    assert refused == ["outbox_mails"]
    assert [o.kind for o in outcomes] == ["ticket_created"] * 3
    assert _counts(gateway) == (3, 3, 0)
    assert _rows(gateway, OutboxMail) == 3  # nothing twice, nothing of the first pass


def test_a_mail_whose_threading_hints_cannot_be_read_still_commits_with_its_batch(
    gateway: Gateway, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-ahead's references and named tickets are hints: a failure reading them
    for one mail costs that mail its hints, not the batch its commit."""
    named_tickets = pipeline_module.named_tickets

    def broken_for_one(mail: Any, *args: Any) -> set[int]:
        if mail.subject == "Factura":
            raise ValueError("an address no one foresaw")
        return named_tickets(mail, *args)

    monkeypatch.setattr(pipeline_module, "named_tickets", broken_for_one)
    raws = [
        raw_mail(subject=s, message_id=f"<n{i}@magazin.ro>")
        for i, s in enumerate(["Plata", "Factura"])
    ]

    outcomes = gateway.pipeline.commit(_prepared(gateway, clock, raws))

    assert [o.kind for o in outcomes] == ["ticket_created", "ticket_created"]
