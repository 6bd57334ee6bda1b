"""Control characters where a mail's headers have none (a NUL from a broken client or a
corrupted mbox, found by mutating the corpus's mails). PostgreSQL refuses a NUL in a text
column, and one such value made the whole batch fail there: a 451 for every mail in it,
again at each retry. On both databases, each such mail is now read as its sender meant
it or set aside for what it is, its batch-mates are committed, and no stored value holds
a control character."""

from __future__ import annotations

import logging
import re
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from mailgate_testing import raw_mail, stored_text

from mailgate.app import Gateway
from mailgate.clock import ManualClock
from mailgate.values import Arrival, Envelope, Source

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _with_nul_in_content_type() -> bytes:
    mail = EmailMessage()
    mail["From"] = "Ana Pop <ana@magazin.ro>"
    mail["To"] = "support@localhost"
    mail["Subject"] = "Eroare la import"
    mail["Message-ID"] = "<typed@magazin.ro>"
    mail.set_content("Importul se oprește, vedeți fișierul.")
    mail.add_attachment(b"<p>raport</p>", maintype="text", subtype="html", filename="r.html")
    return bytes(mail).replace(b"Content-Type: text/html", b"Content-Type: \x00text/html")


def _commit(gateway: Gateway, clock: ManualClock, mails: list[tuple[bytes, Envelope]]) -> list[str]:
    source = Source("pipe")
    prepared = [gateway.pipeline.prepare(Arrival(r, e, source, clock())) for r, e in mails]
    return [outcome.kind for outcome in gateway.pipeline.commit(prepared)]


def test_a_batch_with_control_characters_in_headers_is_committed_whole(
    gateway: Gateway, clock: ManualClock
) -> None:
    envelope = Envelope("ana@magazin.ro", ("support@localhost",))
    opening = raw_mail(subject="Plata nu merge", message_id="<first@magazin.ro>")
    mails = [
        (opening, envelope),
        (raw_mail(subject="Factura", message_id="<in\x00voice@magazin.ro>"), envelope),
        (
            raw_mail(
                subject="Re: Plata nu merge",
                message_id="<reply@magazin.ro>",
                in_reply_to="<fi\x00rst@magazin.ro>",
            ),
            envelope,
        ),
        (raw_mail(sender="Ana <an\x00a@magazin.ro>", subject="Contul meu"), envelope),
        (_with_nul_in_content_type(), envelope),
        (raw_mail(subject="Livrare"), Envelope("an\x00a@magazin.ro", ("support@localhost",))),
    ]

    kinds = _commit(gateway, clock, mails)

    # The reply's reference is read without its NUL and joins the first ticket. The From
    # address with a NUL is not used as written: parse's repair finds the mailbox a reader
    # would see, noted as a defect, so it is never trusted as a known user's.
    assert kinds == ["ticket_created", "ticket_created", "message_added", *["ticket_created"] * 3]
    with gateway.db.engine.connect() as connection:
        types = connection.execute(sa.text("SELECT content_type FROM attachments")).scalars()
        assert list(types) == ["text/html"]
        requesters = connection.execute(sa.text("SELECT requester FROM tickets")).scalars()
        assert "a@magazin.ro" in list(requesters)
    stored = stored_text(gateway)
    assert "invoice@magazin.ro" in stored and "first@magazin.ro" in stored
    assert not [value for value in stored if _CONTROL.search(value)]


def test_a_blank_mail_is_suspended_without_a_logged_error(
    gateway: Gateway, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Bytes with no mail in them (blank lines, a NUL) are no bug of ours: kept and set
    aside with the reason, and no error with a traceback in the log."""
    envelope = Envelope("ana@magazin.ro", ("support@localhost",))
    mails = [(b"\r\n \x00\r\n", envelope), (raw_mail(subject="Plata nu merge"), envelope)]

    with caplog.at_level(logging.WARNING):
        kinds = _commit(gateway, clock, mails)

    assert kinds == ["suspended", "ticket_created"]
    with gateway.db.engine.connect() as connection:
        (suspended,) = connection.execute(sa.text("SELECT reason, detail FROM suspended_mails"))
    assert tuple(suspended) == ("processing_error", "the message is empty")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
