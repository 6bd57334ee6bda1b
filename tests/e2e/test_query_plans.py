"""Every question the pipeline asks the store for a mail reads an index, never a whole
table: a scan per mail grows with the store. The raw mails' Message-IDs were read that
way until revision 0006 (79 ms per mail at 300,000 raw mails, bench/README.md)."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from mailgate_testing import raw_mail

from mailgate.app import Gateway
from mailgate.clock import ManualClock
from mailgate.values import Arrival, Envelope, Source

# Tables that stay small whatever the traffic: read whole, once per transaction.
SMALL = {"agents", "meta", "shops", "sla_limits", "mailboxes"}


def _deliver(gateway: Gateway, clock: ManualClock, raw: bytes, sender: str) -> None:
    envelope = Envelope(sender, ("support@localhost",))
    gateway.pipeline.process(Arrival(raw, envelope, Source("pipe"), clock()))


def _asked(gateway: Gateway, clock: ManualClock) -> dict[str, Any]:
    """The SELECTs of a short conversation: a new request, the same mail again, a reply
    by reference, one by the ticket's tag, and one from an address it copied."""
    asked: dict[str, Any] = {}

    def note(*args: Any) -> None:
        statement, parameters = args[2], args[3]
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            asked.setdefault(statement, parameters)

    sa.event.listen(gateway.db.engine, "before_cursor_execute", note)
    try:
        first = raw_mail(message_id="<q1@magazin.ro>", cc="Ion <ion@magazin.ro>")
        _deliver(gateway, clock, first, "ana@magazin.ro")
        _deliver(gateway, clock, first, "ana@magazin.ro")
        reply = raw_mail(
            subject="Re: Plata", message_id="<q2@magazin.ro>", in_reply_to="<q1@magazin.ro>"
        )
        _deliver(gateway, clock, reply, "ana@magazin.ro")
        tagged = raw_mail(subject="[#1] Plata", message_id="<q3@magazin.ro>")
        _deliver(gateway, clock, tagged, "ana@magazin.ro")
        copied = raw_mail(
            sender="Ion <ion@magazin.ro>",
            subject="Re: Plata",
            message_id="<q4@magazin.ro>",
            in_reply_to="<q1@magazin.ro>",
        )
        _deliver(gateway, clock, copied, "ion@magazin.ro")
    finally:
        sa.event.remove(gateway.db.engine, "before_cursor_execute", note)
    assert len(asked) >= 5
    return asked


def _scanned(connection: sa.Connection, statement: str, parameters: Any) -> set[str]:
    """The tables a statement reads whole, by the database's own plan."""
    raw = connection.connection.driver_connection
    assert raw is not None
    if connection.dialect.name == "sqlite":
        cursor = raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
        plan = [row[3] for row in cursor.fetchall()]
        # "SCAN t" reads all of t (in an index's order with "USING INDEX"); SEARCH looks up.
        # json_each is a list given as one parameter (``store.reads.in_list``), not a table.
        scanned = {m[1] for line in plan if (m := re.match(r"SCAN (\w+)", line))}
        return scanned - {"CONSTANT", "json_each"}
    with raw.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # an index, if there is one
        cursor.execute(f"EXPLAIN {statement}", parameters)
        plan = [row[0] for row in cursor.fetchall()]
    return {m[1] for line in plan if (m := re.search(r"Seq Scan on (\w+)", line))}


def test_no_question_about_a_mail_reads_a_whole_table(gateway: Gateway, clock: ManualClock) -> None:
    asked = _asked(gateway, clock)
    whole: dict[str, set[str]] = {}
    with gateway.db.engine.begin() as connection:
        for statement, parameters in asked.items():
            tables = _scanned(connection, statement, parameters) - SMALL
            if tables:
                whole[" ".join(statement.split())[:120]] = tables
    assert whole == {}
