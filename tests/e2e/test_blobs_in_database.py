"""``[store] blobs = "database"``: raw mails and attachments live in the store, so gateways
on one PostgreSQL need no shared disk. The whole path: SMTP in, attachment kept, raw mail
read back when an agent releases a suspended mail."""

from __future__ import annotations

import os
import smtplib
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

from mailgate_testing import make_gateway, make_settings, raw_mail, running_listener

from mailgate.config import StoreSettings
from store.models import Attachment, SuspendedMail
from store.views import ticket_detail


def test_mail_and_attachment_are_kept_in_the_database(tmp_path: Path, store_url: str) -> None:
    settings = make_settings(
        tmp_path,
        store_url,
        store=StoreSettings(
            url=store_url,
            raw=str(tmp_path / "raw"),
            attachments=str(tmp_path / "attachments"),
            blobs="database",
        ),
    )
    gateway, _, _ = make_gateway(settings)
    screenshot = os.urandom(2_500_000)
    mail = EmailMessage()
    mail["From"] = "Ana Pop <ana@magazin.ro>"
    mail["To"] = "support@localhost"
    mail["Subject"] = "Eroare la checkout"
    mail["Message-ID"] = "<shot@magazin.ro>"
    mail.set_content("Vedeți captura de ecran.")
    mail.add_attachment(screenshot, maintype="image", subtype="png", filename="eroare.png")
    out_of_office = raw_mail(subject="Out of office", headers={"Auto-Submitted": "auto-replied"})
    try:
        with running_listener(gateway) as (host, port), smtplib.SMTP(host, port) as client:
            client.sendmail("ana@magazin.ro", ["support@localhost"], mail.as_bytes(policy=SMTP))
            client.sendmail("ana@magazin.ro", ["support@localhost"], out_of_office)
        with gateway.db.read() as s:
            [attachment] = s.exec(Attachment.__table__.select()).all()  # type: ignore[attr-defined]
            [held] = s.exec(SuspendedMail.__table__.select()).all()  # type: ignore[attr-defined]
        assert gateway.blobs.read(attachment.sha256) == screenshot
        assert not (tmp_path / "raw").exists() and not (tmp_path / "attachments").exists()
        outcome = gateway.pipeline.release(held.id, actor="agent@support.example")
        assert outcome.kind == "ticket_created"  # the raw mail came back from the database
        with gateway.db.read() as s:
            assert ticket_detail(s, outcome.ticket_id or 0).subject == "Out of office"
    finally:
        gateway.close()
