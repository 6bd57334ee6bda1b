"""Stage 10, the periodic jobs (``Scheduler.run_once``): auto-close, stand-by reminders,
SLA breach warnings and outbox retries, with time moved by ``ManualClock``; runners that
overlap; and ``serve`` running the same jobs on its own timer."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from email.message import EmailMessage
from pathlib import Path

from mailgate_testing import make_gateway, make_settings, raw_mail, running_listener
from sqlmodel import select

from mailgate.actions import TicketChanges
from mailgate.app import Gateway
from mailgate.clock import ManualClock
from mailgate.config import LimitSettings
from mailgate.outbound.transports import RecordingTransport
from mailgate.values import Arrival, Envelope, Source
from store import directory, outbox
from store.models import AuditEvent, OutboxMail, Ticket

MARIA = "maria@support.example"
ION = "ion@support.example"


def feed(gateway: Gateway, **mail: object) -> int:
    outcome = gateway.pipeline.process(
        Arrival(
            raw_mail(**mail),  # type: ignore[arg-type]
            Envelope("ana@magazin.ro", ("support@localhost",)),
            Source("pipe"),
            gateway.clock(),
        )
    )
    assert outcome.ticket_id is not None
    return outcome.ticket_id


def change(gateway: Gateway, ticket_id: int, **changes: str) -> None:
    with gateway.db.write() as s:
        gateway.actions.update(
            s, ticket_id, TicketChanges(**changes), actor=MARIA, now=gateway.clock()
        )


def ticket(gateway: Gateway, ticket_id: int) -> Ticket:
    with gateway.db.read() as s:
        found = s.get(Ticket, ticket_id)
        assert found is not None
        return found


def mails(sent: RecordingTransport, address: str) -> list[EmailMessage]:
    found = []
    for mail in sent.sent:
        if address in mail.recipients:
            msg = email.message_from_bytes(mail.raw, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            found.append(msg)
    return found


def outbox_kinds(gateway: Gateway, kind: str) -> list[int | None]:
    with gateway.db.read() as s:
        return list(s.exec(select(OutboxMail.ticket_id).where(OutboxMail.kind == kind)).all())


def add_agents(gateway: Gateway) -> None:
    with gateway.db.write() as s:
        for agent in (MARIA, ION):
            directory.add_agent(
                s,
                agent,
                name="",
                sectors=("support",),
                known_sectors=gateway.settings.workflow.sectors,
                now=gateway.clock(),
            )


def test_solved_tickets_close_after_auto_close_days(gateway: Gateway, clock: ManualClock) -> None:
    tid = feed(gateway)
    change(gateway, tid, status="solved")
    clock.advance(days=29, hours=23)
    assert gateway.scheduler.run_once().closed == 0
    assert ticket(gateway, tid).status == "solved"
    clock.advance(hours=1)
    report = gateway.scheduler.run_once()
    assert report.closed == 1
    closed = ticket(gateway, tid)
    assert (closed.status, closed.closed_at) == ("closed", clock())
    with gateway.db.read() as s:
        [event] = s.exec(
            select(AuditEvent).where(AuditEvent.ticket_id == tid, AuditEvent.new == "closed")
        ).all()
    assert event.actor == "scheduler"
    assert gateway.scheduler.run_once().closed == 0


def test_stand_by_tickets_get_a_reminder_naming_the_reason_every_48_hours(
    gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    tid = feed(gateway)
    change(gateway, tid, status="on_hold", reason="awaiting_it")
    gateway.dispatcher.run_once()
    before = len(mails(sent, "ana@magazin.ro"))
    clock.advance(hours=47)
    assert gateway.scheduler.run_once().reminded == 0
    clock.advance(hours=1)
    assert gateway.scheduler.run_once().reminded == 1
    reminder = mails(sent, "ana@magazin.ro")[-1]
    assert len(mails(sent, "ana@magazin.ro")) == before + 1
    assert "Încă în așteptare" in reminder["Subject"]  # the merchant wrote in Romanian
    body = reminder.get_body(("plain",))
    assert body is not None
    assert "deoarece echipa noastră tehnică lucrează la ea" in body.get_content()
    assert gateway.scheduler.run_once().reminded == 0  # once per interval
    clock.advance(hours=48)
    assert gateway.scheduler.run_once().reminded == 1

    # A new stand-by reason is a new stand-by: the 48 hours count from the change.
    clock.advance(hours=40)
    change(gateway, tid, status="on_hold", reason="propagation")
    clock.advance(hours=47)
    assert gateway.scheduler.run_once().reminded == 0
    clock.advance(hours=1)
    assert gateway.scheduler.run_once().reminded == 1
    last = mails(sent, "ana@magazin.ro")[-1].get_body(("plain",))
    assert last is not None and "în curs de propagare" in last.get_content()


def test_a_breached_deadline_warns_the_sector_then_the_assignee_once_per_phase(
    gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    add_agents(gateway)
    tid = feed(gateway, subject="Logo", body="Cum schimb logo-ul?")  # normal: 8 h
    gateway.dispatcher.run_once()
    clock.advance(hours=7, minutes=59)
    assert gateway.scheduler.run_once().warned == 0
    clock.advance(minutes=1)
    assert gateway.scheduler.run_once().warned == 1
    for agent in (MARIA, ION):  # nobody assigned: the sector's agents
        warning = mails(sent, agent)[-1]
        assert "SLA breached (first response)" in warning["Subject"]
    assert gateway.scheduler.run_once().warned == 0  # once

    with gateway.db.write() as s:
        gateway.actions.reply(s, tid, "Din setări.", agent=MARIA, now=clock())
    change(gateway, tid, assignee=MARIA)
    clock.advance(days=7)  # 40 business hours of resolution are long gone
    assert gateway.scheduler.run_once().warned == 1
    assert "SLA breached (resolution)" in mails(sent, MARIA)[-1]["Subject"]
    assert "resolution" not in mails(sent, ION)[-1]["Subject"]  # the assignee only
    assert ticket(gateway, tid).sla_warned == "resolution"


def test_schedule_run_sends_what_the_outbox_holds(
    gateway: Gateway, sent: RecordingTransport
) -> None:
    feed(gateway)
    report = gateway.scheduler.run_once()
    assert report.sent == 1 and len(sent.sent) == 1
    assert "1 sent" in report.summary()


def test_overlapping_runners_handle_each_ticket_once(gateway: Gateway, clock: ManualClock) -> None:
    ids = [feed(gateway, body=f"Cererea {n}") for n in range(12)]
    for n, tid in enumerate(ids):
        if n % 2:
            change(gateway, tid, status="solved")
        else:
            change(gateway, tid, status="on_hold", reason="long_analysis")
    clock.advance(days=31)
    reports = []
    start = threading.Barrier(3)

    def run() -> None:
        start.wait()
        reports.append(gateway.scheduler.run_once(outbox=False))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(r.closed for r in reports) == 6
    assert sum(r.reminded for r in reports) == 6
    assert sorted(outbox_kinds(gateway, "standby_reminder")) == sorted(ids[0::2])
    with gateway.db.read() as s:
        closes = s.exec(select(AuditEvent.ticket_id).where(AuditEvent.new == "closed")).all()
    assert sorted(closes) == sorted(ids[1::2])


def test_serve_runs_the_jobs_on_its_own_timer(gateway: Gateway, clock: ManualClock) -> None:
    tid = feed(gateway)
    change(gateway, tid, status="solved")
    clock.advance(days=31)
    with running_listener(gateway, schedule_interval=0.2):
        deadline = time.monotonic() + 20
        while ticket(gateway, tid).status != "closed" and time.monotonic() < deadline:
            time.sleep(0.1)
    closed = ticket(gateway, tid)
    assert (closed.status, closed.closed_at) == ("closed", clock())


def test_serve_sends_a_backlog_in_rounds_that_follow_each_other_at_once(
    gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    """A round sends at most 100 mails; with the outbox loop on its hourly test timer, a
    backlog of 250 goes out only if each full round is followed by the next at once."""
    with gateway.db.write() as session:
        for n in range(250):
            outbox.enqueue(
                session, ticket_id=None, kind="ack", message_id=f"backlog-{n}@localhost",
                mail_from="support@localhost", recipients=[f"m{n}@shop.example"],
                subject="Ticket", raw=b"Subject: Ticket\r\n\r\nHello\r\n", now=clock(),
            )  # fmt: skip
    with running_listener(gateway):
        deadline = time.monotonic() + 30
        while len(sent.sent) < 250 and time.monotonic() < deadline:
            time.sleep(0.1)
    assert len(sent.sent) == 250
    assert sorted(m.recipients[0] for m in sent.sent) == sorted(
        f"m{n}@shop.example" for n in range(250)
    )
    with gateway.db.read() as session:
        states = session.exec(select(OutboxMail.state)).all()
    assert set(states) == {"sent"}


def test_agents_hear_of_every_ticket_past_the_daily_cap_on_automatic_mail(
    tmp_path: Path, sqlite_url: str
) -> None:
    """The cap stops mail cannons aimed at merchants; it must not silence our own agents."""
    settings = make_settings(
        tmp_path, sqlite_url, limits=LimitSettings(automatic_per_address_per_day=2)
    )
    gateway, _, sent = make_gateway(settings)
    try:
        add_agents(gateway)
        for n in range(4):
            feed(gateway, sender=f"Client {n} <c{n}@shop{n}.example>", body=f"Cererea {n}")
        gateway.dispatcher.run_once()
        assert len(mails(sent, MARIA)) == 4
    finally:
        gateway.close()
