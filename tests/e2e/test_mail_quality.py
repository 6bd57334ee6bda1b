"""Through the pipeline: the ticket's language, the admins' template overrides, and the
attachment policy (size limits, types checked against the bytes, files stored once)."""

from __future__ import annotations

import email
import email.policy
import json
import logging
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import pytest
from mailgate_testing import START, make_settings, raw_mail
from sqlmodel import Session, select
from typer.testing import CliRunner

from cli.main import app
from mailgate.actions import TicketChanges
from mailgate.app import Gateway, build_gateway
from mailgate.clock import ManualClock
from mailgate.config import AttachmentSettings, Settings, TemplateSettings
from mailgate.errors import ConfigError
from mailgate.outbound.compose import megabytes
from mailgate.outbound.transports import RecordingTransport
from mailgate.values import Arrival, Envelope, Source
from store import directory
from store.models import AuditEvent, RawMail, Ticket
from store.views import TicketFilter, list_tickets, ticket_detail

MAX_FILE = 40_000
MAX_MAIL = 60_000
SCREENSHOT = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 20  # 5 KiB
VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"\x11" * (MAX_FILE + 1)


@pytest.fixture
def overrides(tmp_path: Path) -> Path:
    """The admins' template folder named in the configuration (empty until a test writes)."""
    folder = tmp_path / "overrides"
    folder.mkdir()
    return folder


@pytest.fixture
def settings(tmp_path: Path, store_url: str, overrides: Path) -> Settings:
    """Small attachment limits, and an override folder, on SQLite or PostgreSQL."""
    return make_settings(
        tmp_path,
        store_url,
        attachments=AttachmentSettings(max_size=MAX_FILE, max_total_size=MAX_MAIL),
        templates=TemplateSettings(override_dir=str(overrides)),
    )


def mail(
    *,
    sender: str = "Ana Pop <ana@magazin.ro>",
    subject: str = "Plata nu merge",
    body: str = "Bună ziua,\nClienții nu pot plăti cu cardul.\nMulțumesc,\nAna",
    files: tuple[tuple[str, str, bytes], ...] = (),
    headers: dict[str, str] | None = None,
    in_reply_to: str | None = None,
) -> bytes:
    """A merchant's mail with attachments given as (filename, declared type, bytes)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@localhost"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(START)
    msg["Message-ID"] = make_msgid(domain="magazin.ro")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(body)
    for filename, content_type, content in files:
        maintype, subtype = content_type.split("/")
        msg.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    for name, value in (headers or {}).items():  # last: set_content drops Content-* headers
        msg[name] = value
    return bytes(msg)


def outbox_mails(gateway: Gateway, sent: RecordingTransport) -> list[EmailMessage]:
    gateway.dispatcher.run_once()
    found = []
    for item in sent.sent:
        msg = email.message_from_bytes(item.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        found.append(msg)
    return found


def plain(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert isinstance(body, EmailMessage)
    return str(body.get_content())


def only_ticket(gateway: Gateway) -> Ticket:
    with gateway.db.read() as s:
        [ticket] = s.exec(select(Ticket)).all()
        return ticket


def attachments_of(gateway: Gateway, ticket_id: int) -> list[dict[str, Any]]:
    with gateway.db.read() as s:
        detail = ticket_detail(s, ticket_id).model_dump_contract()
    return [a for m in detail["messages"] for a in m["attachments"]]


def add_shop(gateway: Gateway, clock: ManualClock, locale: str | None) -> None:
    with gateway.db.write() as s:
        directory.add_shop(s, "Magazin", locale=locale, rate=40, now=clock())
        directory.add_user(s, "ana@magazin.ro", shop="Magazin", name="Ana", now=clock())


# -- the ticket's language ------------------------------------------------------------------


def test_a_dutch_mail_gets_a_dutch_ticket_and_acknowledgement(
    deliver: Any, gateway: Gateway, sent: RecordingTransport
) -> None:
    deliver(
        mail(
            sender="Pieter de Vries <pieter@winkel.nl>",
            subject="Bestelling 20931 staat op onbetaald",
            body="Goedemiddag,\n\nDe klant heeft wel betaald met iDEAL, maar de bestelling "
            "staat nog op onbetaald.\n\nMet vriendelijke groet,\nPieter",
        ),
        mail_from="pieter@winkel.nl",
    )
    ticket = only_ticket(gateway)
    assert ticket.language == "nl"
    [ack] = outbox_mails(gateway, sent)
    assert ack["Content-Language"] == "nl"
    assert "We hebben uw vraag ontvangen" in ack["Subject"]
    assert "Beste Pieter de Vries," in plain(ack)
    with gateway.db.read() as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "language")).all()
    assert [e.detail.split(" (")[0] for e in events] == ["nl: detected from the text"]


def test_the_language_is_detected_before_the_transaction(
    gateway: Gateway, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A likely new request is detected in prepare; the commit, which holds the store's
    write lock, then uses that result and never runs the detector itself."""
    dutch = mail(
        sender="Pieter de Vries <pieter@winkel.nl>",
        subject="Bestelling 20931 staat op onbetaald",
        body="Goedemiddag,\n\nDe klant heeft wel betaald met iDEAL, maar de bestelling "
        "staat nog op onbetaald.\n\nMet vriendelijke groet,\nPieter",
    )
    envelope = Envelope("pieter@winkel.nl", ("support@localhost",))
    prepared = gateway.pipeline.prepare(Arrival(dutch, envelope, Source("smtp"), clock()))
    assert prepared.detected is not None and prepared.detected.guess is not None
    assert prepared.detected.guess[0] == "nl"

    def no_detection(text: str) -> None:
        raise AssertionError("the commit ran the language detector")

    monkeypatch.setattr("mailgate.language.detect_language", no_detection)
    [outcome] = gateway.pipeline.commit([prepared])
    assert outcome.kind == "ticket_created"
    assert only_ticket(gateway).language == "nl"


def test_replies_and_mails_that_name_their_language_are_not_detected(
    gateway: Gateway, clock: ManualClock
) -> None:
    envelope = Envelope("ana@magazin.ro", ("support@localhost",))
    tagged = mail(subject="Re: [#12] Plata nu merge")
    answering = mail(subject="Re: Plata nu merge", in_reply_to="<earlier@magazin.ro>")
    named = mail(headers={"Content-Language": "ro"})
    for raw in (tagged, answering, named):
        prepared = gateway.pipeline.prepare(Arrival(raw, envelope, Source("smtp"), clock()))
        assert prepared.detected is None


def test_the_shops_locale_wins_over_the_mails_own_language(
    gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    add_shop(gateway, clock, "pl")
    deliver_in_process(gateway, mail(headers={"Content-Language": "ro"}))
    assert only_ticket(gateway).language == "pl"
    [ack] = outbox_mails(gateway, sent)
    assert ack["Content-Language"] == "pl"
    assert "Otrzymaliśmy Państwa zgłoszenie" in ack["Subject"]


def test_content_language_decides_for_a_shop_without_a_locale(
    gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    add_shop(gateway, clock, None)
    deliver_in_process(
        gateway,
        mail(
            subject="Checkout", body="Customers cannot pay.", headers={"Content-Language": "pt-PT"}
        ),
    )
    assert only_ticket(gateway).language == "pt"
    [ack] = outbox_mails(gateway, sent)
    assert "Recebemos o seu pedido de suporte" in ack["Subject"]


def test_english_when_nothing_tells_the_language(
    gateway: Gateway, sent: RecordingTransport
) -> None:
    deliver_in_process(gateway, mail(sender="x@shop.example", subject="?", body="OK"))
    assert only_ticket(gateway).language == "en"


def test_later_notifications_keep_the_tickets_language(
    gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    deliver_in_process(gateway, raw_mail(sender="Ana Pop <ana@magazin.ro>"))  # Romanian
    ticket = only_ticket(gateway)
    assert ticket.language == "ro" and ticket.id is not None
    clock.advance(minutes=10)
    with gateway.db.write() as s:
        gateway.actions.reply(
            s, ticket.id, "Can you send the order number?", agent="ion@support.example",
            now=clock(), status="pending",
        )  # fmt: skip
    # The merchant answers in English this time: the ticket keeps its language.
    [_ack, answer] = outbox_mails(gateway, sent)
    clock.advance(minutes=10)
    english = raw_mail(
        subject="Re: order", body="It is order 1042.", in_reply_to=answer["Message-ID"]
    )
    deliver_in_process(gateway, english)
    with gateway.db.write() as s:
        gateway.actions.update(
            s, ticket.id, TicketChanges(status="solved"), actor="ion@support.example", now=clock()
        )
    mails = outbox_mails(gateway, sent)  # ack, the agent's answer, "solved"
    assert only_ticket(gateway).language == "ro"
    assert [m["Content-Language"] for m in mails] == ["ro", "ro", "ro"]
    assert "Solicitarea #" in plain(answer)  # the footer under the agent's own words
    assert "Status nou: rezolvat" in mails[2]["Subject"]


# -- template overrides from the configuration ----------------------------------------------


def test_an_override_in_the_configured_folder_replaces_the_builtin(
    gateway: Gateway, overrides: Path, sent: RecordingTransport
) -> None:
    (overrides / "ro").mkdir()
    (overrides / "ro" / "ack.txt.j2").write_text(
        "{% block subject %}[#{{ ticket.id }}] Mulțumim, {{ ticket.requester_name }}!{% endblock %}"
        "{% block body %}Magazinul nostru vă răspunde azi.{% endblock %}",
        encoding="utf-8",
    )
    deliver_in_process(gateway, raw_mail())
    [ack] = outbox_mails(gateway, sent)
    assert ack["Subject"].endswith("Mulțumim, Ana Pop!")
    assert ack.get_content_type() == "text/plain"  # the HTML part comes from the same folder
    assert plain(ack).strip() == "Magazinul nostru vă răspunde azi."


def test_a_broken_override_falls_back_to_the_builtin_and_is_logged(
    gateway: Gateway, overrides: Path, sent: RecordingTransport, caplog: pytest.LogCaptureFixture
) -> None:
    (overrides / "ro").mkdir()
    (overrides / "ro" / "ack.txt.j2").write_text(
        "{% block subject %}{{ ticket.no_such_field.upper() }}{% endblock %}", encoding="utf-8"
    )
    with caplog.at_level(logging.ERROR, logger="mailgate.outbound.compose"):
        deliver_in_process(gateway, raw_mail())
    [ack] = outbox_mails(gateway, sent)
    assert "Am primit solicitarea dumneavoastră" in ack["Subject"]  # built-in Romanian
    assert ack.get_content_type() == "multipart/alternative"
    assert any(str(overrides / "ro") in r.getMessage() for r in caplog.records)


def test_a_missing_override_folder_is_a_config_error(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(
        tmp_path, sqlite_url, templates=TemplateSettings(override_dir=str(tmp_path / "nope"))
    )
    with pytest.raises(ConfigError, match=r"templates\.override_dir"):
        build_gateway(settings)


def test_the_cli_says_so_in_one_line(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILGATE_STORE_URL", sqlite_url)
    monkeypatch.setenv("MAILGATE_TEMPLATES_OVERRIDE_DIR", str(tmp_path / "nope"))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["tickets", "list"], catch_exceptions=False)
    assert result.exit_code == 78
    assert result.stderr.strip().count("\n") == 0
    assert "templates.override_dir is not a folder" in result.stderr


# -- the attachment policy ------------------------------------------------------------------


def test_a_too_large_attachment_stays_in_the_raw_mail_and_the_merchant_is_told(
    deliver: Any, gateway: Gateway, sent: RecordingTransport
) -> None:
    raw = mail(
        files=(("screenshot.png", "image/png", SCREENSHOT), ("video.mp4", "video/mp4", VIDEO))
    )
    deliver(raw)
    ticket = only_ticket(gateway)
    assert ticket.id is not None
    shot, video = attachments_of(gateway, ticket.id)
    assert (shot["filename"], shot["status"], shot["size"]) == (
        "screenshot.png", "stored", len(SCREENSHOT)
    )  # fmt: skip
    assert (video["filename"], video["status"], video["size"]) == (
        "video.mp4", "too_large", len(VIDEO)
    )  # fmt: skip
    assert gateway.blobs.exists(shot["sha256"])
    assert not gateway.blobs.exists(video["sha256"])
    # The raw mail is kept whole, so the file can still be recovered from it.
    with gateway.db.read() as s:
        raw_sha = ticket_raw_sha(s, ticket.id)
    kept = email.message_from_bytes(gateway.raws.read(raw_sha), policy=email.policy.default)
    payloads = [p.get_payload(decode=True) for p in kept.walk() if p.get_filename()]
    assert VIDEO in payloads

    [ack] = outbox_mails(gateway, sent)
    for part in ("plain", "html"):
        body = ack.get_body((part,))
        assert isinstance(body, EmailMessage)
        text = str(body.get_content())
        assert "video.mp4" in text
        assert "screenshot.png" not in text
        assert "prea mari" in text  # the ticket is in Romanian: so is the notice


def test_tickets_show_tells_the_agent_what_is_missing(
    gateway: Gateway, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliver_in_process(gateway, mail(files=(("video.mp4", "video/mp4", VIDEO),)))
    for key, value in {
        "STORE_URL": settings.store.url,
        "STORE_RAW": settings.store.raw,
        "STORE_ATTACHMENTS": settings.store.attachments,
        "TEMPLATES_OVERRIDE_DIR": str(settings.templates.override_dir),
    }.items():
        monkeypatch.setenv(f"MAILGATE_{key}", value)
    result = CliRunner().invoke(app, ["tickets", "show", "1"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert "video.mp4 (video/mp4, " in result.stdout
    assert "too large: not stored, kept in the raw mail only" in result.stdout


def test_a_reply_with_a_too_large_attachment_gets_a_notice(
    gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    first = mail()
    deliver_in_process(gateway, first)
    [ack] = outbox_mails(gateway, sent)
    clock.advance(minutes=5)
    reply = mail(
        subject=f"Re: {ack['Subject']}",
        body="Am atașat înregistrarea ecranului.",
        files=(("video.mp4", "video/mp4", VIDEO),),
        in_reply_to=ack["Message-ID"],
    )
    deliver_in_process(gateway, reply)
    notice = outbox_mails(gateway, sent)[-1]
    reply_id = email.message_from_bytes(reply, policy=email.policy.default)["Message-ID"]
    assert notice["In-Reply-To"] == reply_id
    assert notice["To"] == "ana@magazin.ro"
    assert "Unele atașamente nu au ajuns la noi" in notice["Subject"]
    assert "video.mp4" in plain(notice)
    assert f"de cel mult {megabytes(MAX_FILE, 'ro')} fiecare" in plain(notice)


def test_attachments_within_the_limits_send_no_notice(
    gateway: Gateway, clock: ManualClock, sent: RecordingTransport
) -> None:
    deliver_in_process(gateway, mail(files=(("screenshot.png", "image/png", SCREENSHOT),)))
    [ack] = outbox_mails(gateway, sent)
    assert "prea mari" not in plain(ack)
    clock.advance(minutes=5)
    deliver_in_process(
        gateway,
        mail(
            subject=f"Re: {ack['Subject']}",
            files=(("screenshot.png", "image/png", SCREENSHOT),),
            in_reply_to=ack["Message-ID"],
        ),
    )
    assert len(outbox_mails(gateway, sent)) == 1


def test_identical_files_are_stored_once(
    gateway: Gateway, settings: Settings, clock: ManualClock
) -> None:
    for subject in ("Logo pe pagina de produs", "Alt subiect, aceeași semnătură"):
        deliver_in_process(
            gateway, mail(subject=subject, files=(("logo.png", "image/png", SCREENSHOT),))
        )
        clock.advance(minutes=1)
    with gateway.db.read() as s:
        tickets = list_tickets(s, TicketFilter(statuses=("all",)))
    assert len(tickets) == 2
    shas = {a["sha256"] for t in tickets for a in attachments_of(gateway, t.id)}
    assert len(shas) == 1
    stored = [p for p in Path(settings.store.attachments).rglob("*") if p.is_file()]
    assert [p.name for p in stored] == list(shas)


def test_a_declared_type_that_lies_is_recorded(gateway: Gateway) -> None:
    program = bytearray(b"MZ" + b"\x00" * 62)
    program[60:64] = (64).to_bytes(4, "little")
    program += b"PE\x00\x00" + b"\x00" * 200
    deliver_in_process(
        gateway,
        mail(files=(("factura.pdf", "application/pdf", bytes(program)),
                    ("captura.png", "image/png", SCREENSHOT))),
    )  # fmt: skip
    ticket = only_ticket(gateway)
    assert ticket.id is not None
    invoice, shot = attachments_of(gateway, ticket.id)
    assert invoice["content_type"] == "application/pdf"  # what the sender said, as said
    assert invoice["detected_type"] == "application/x-msdownload"
    assert shot["detected_type"] is None


# -- helpers ----------------------------------------------------------------------------------


def deliver_in_process(gateway: Gateway, raw: bytes) -> None:
    """Hand ``raw`` to the pipeline as an MTA pipe would, from its From address."""
    sender = email.message_from_bytes(raw, policy=email.policy.default)["From"].addresses[0]
    envelope = Envelope(sender.addr_spec, ("support@localhost",))
    gateway.pipeline.process(Arrival(raw, envelope, Source("pipe"), gateway.clock()))


def ticket_raw_sha(session: Session, ticket_id: int) -> str:
    row = session.exec(select(RawMail).where(RawMail.ticket_id == ticket_id)).first()
    assert row is not None
    return str(row.sha256)


# -- what admins and agents see -------------------------------------------------------------


def test_parse_shows_the_policy_and_the_language_before_anything_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILGATE_ATTACHMENTS_MAX_SIZE", str(MAX_FILE))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "mail.eml"
    path.write_bytes(
        mail(
            sender="Joana Silva <joana@loja.pt>",
            subject="Fatura em falta",
            body="Bom dia, não recebi a fatura da encomenda 30412. Podem enviá-la de novo?",
            files=(("fatura.pdf", "application/octet-stream", b"%PDF-1.7\n" + b"0" * 100),
                   ("video.mp4", "video/mp4", VIDEO)),
        )
    )  # fmt: skip
    result = CliRunner().invoke(app, ["parse", "--json", str(path)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["language"] == {"code": "pt", "source": "detected"}
    invoice, video = report["attachments"]
    assert (invoice["status"], invoice["detected_type"]) == ("stored", "application/pdf")
    assert (video["status"], video["detected_type"]) == ("too_large", None)
    assert not (tmp_path / "var").exists(), "parse stores nothing"

    result = CliRunner().invoke(app, ["parse", str(path)], catch_exceptions=False)
    assert "fatura.pdf (application/octet-stream, 109 bytes) — the bytes are application/pdf" in (
        result.stdout
    )
    assert "video.mp4" in result.stdout and "too large" in result.stdout
