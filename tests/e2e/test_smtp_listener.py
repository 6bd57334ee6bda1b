"""The SMTP listener keeps DESIGN.md's promises, checked with a real client on loopback."""

from __future__ import annotations

import hashlib
import logging
import smtplib
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from mailgate_testing import make_gateway, make_settings, raw_mail, running_listener

from mailgate import language
from mailgate.app import Gateway
from mailgate.config import SmtpSettings, StoreSettings
from mailgate.sources import replies
from store.views import TicketFilter, list_tickets


def _code(reply: str) -> int:
    return int(reply.split(maxsplit=1)[0])


def _count(gateway: Gateway) -> int:
    with gateway.db.read() as s:
        return len(list_tickets(s, TicketFilter(statuses=("all",))))


@pytest.fixture
def listener(tmp_path: Path, sqlite_url: str):  # type: ignore[no-untyped-def]
    """A gateway on SQLite with its SMTP listener running; yields (gateway, host, port)."""
    settings = make_settings(
        tmp_path,
        sqlite_url,
        smtp=SmtpSettings(
            port=0, addresses=("support@localhost",), max_message_size=200_000, max_recipients=3
        ),
    )
    gateway, _, _ = make_gateway(settings)
    with running_listener(gateway) as (host, port):
        yield gateway, host, port
    gateway.close()


def test_reply_constants_carry_the_code_their_name_says() -> None:
    assert replies.ACCEPTED.startswith("250 2.")
    assert replies.UNKNOWN_RECIPIENT.startswith("550 5.1.1")
    assert replies.TOO_BIG.startswith("552 5.3.4")
    assert replies.STORE_UNAVAILABLE.startswith("451 4.3.0")
    assert replies.POLICY_REJECTED.startswith("554 5.7.1")
    assert replies.TOO_MANY_RECIPIENTS.startswith("452 4.5.3")


def test_accepted_mail_is_committed_before_250(listener) -> None:  # type: ignore[no-untyped-def]
    gateway, host, port = listener
    with smtplib.SMTP(host, port) as client:
        client.sendmail("ana@magazin.ro", ["support@localhost"], raw_mail())
        # smtplib returned, so 250 was read: the ticket must already be there.
        assert _count(gateway) == 1


def test_unknown_recipient_is_550_and_plus_address_is_ours(listener) -> None:  # type: ignore[no-untyped-def]
    _, host, port = listener
    with smtplib.SMTP(host, port) as client:
        client.ehlo()
        client.mail("ana@magazin.ro")
        code, text = client.rcpt("someone@elsewhere.example")
        assert f"{code} {text.decode()}" == replies.UNKNOWN_RECIPIENT
        assert client.rcpt("support+42@localhost")[0] == 250
        assert client.rcpt("SUPPORT@LOCALHOST")[0] == 250
        # A control character makes no address: not a plus address of ours either.
        assert client.rcpt("support+\x0042@localhost")[0] == 550
        assert client.rcpt("support+4 2@localhost")[0] == 550


def test_too_many_recipients_is_452(listener) -> None:  # type: ignore[no-untyped-def]
    _, host, port = listener
    with smtplib.SMTP(host, port) as client:
        client.ehlo()
        client.mail("ana@magazin.ro")
        for i in range(3):
            assert client.rcpt(f"support+{i}@localhost")[0] == 250
        code, text = client.rcpt("support+9@localhost")
        assert f"{code} {text.decode()}" == replies.TOO_MANY_RECIPIENTS


def test_over_size_is_552_with_enhanced_code(listener) -> None:  # type: ignore[no-untyped-def]
    gateway, host, port = listener
    big = raw_mail(body="x" * 76 + "\n") + (b"y" * 70 + b"\r\n") * 4000
    with smtplib.SMTP(host, port) as client:
        client.ehlo()
        client.mail("ana@magazin.ro")  # no SIZE declared: the limit must hold during DATA
        client.rcpt("support@localhost")
        code, text = client.data(big)
    assert f"{code} {text.decode()}" == replies.TOO_BIG
    assert _count(gateway) == 0


def test_size_declared_in_mail_from_is_refused_early(listener) -> None:  # type: ignore[no-untyped-def]
    _, host, port = listener
    with smtplib.SMTP(host, port) as client:
        client.ehlo()
        code, text = client.mail("ana@magazin.ro", ["SIZE=900000"])
        assert (code, text[:5]) == (552, b"5.3.4")


def test_long_lines_are_accepted(listener) -> None:  # type: ignore[no-untyped-def]
    gateway, host, port = listener
    mail = raw_mail(body="Eroare: " + "a" * 5000)
    with smtplib.SMTP(host, port) as client:
        client.sendmail("ana@magazin.ro", ["support@localhost"], mail)
    assert _count(gateway) == 1


def test_store_unavailable_is_451_and_nothing_is_half_written(tmp_path: Path) -> None:
    db_path = tmp_path / "mailgate.db"
    settings = make_settings(tmp_path, f"sqlite:///{db_path}")
    settings = settings.model_copy(
        update={"store": settings.store.model_copy(update={"busy_timeout_ms": 300})}
    )
    gateway, _, _ = make_gateway(settings)
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        with running_listener(gateway) as (host, port):
            blocker.execute("BEGIN EXCLUSIVE")
            with smtplib.SMTP(host, port) as client, pytest.raises(smtplib.SMTPDataError) as info:
                client.sendmail("ana@magazin.ro", ["support@localhost"], raw_mail())
            assert (
                f"{info.value.smtp_code} {info.value.smtp_error.decode()}"
                == replies.STORE_UNAVAILABLE
            )
            blocker.execute("ROLLBACK")
            assert _count(gateway) == 0
            # The sender retries once the store is back: accepted, and stored once.
            with smtplib.SMTP(host, port) as client:
                client.sendmail("ana@magazin.ro", ["support@localhost"], raw_mail())
            assert _count(gateway) == 1
    finally:
        blocker.close()
        gateway.close()


def test_a_mail_that_cannot_be_kept_is_451_and_never_reaches_the_committer(
    tmp_path: Path, sqlite_url: str
) -> None:
    """A failure while preparing (here the raw mail cannot be written, in the prepare
    process) is answered 451 without a commit; the committer, handed each prepared mail
    by the thread that prepared it, still commits the next one."""
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the raw folder should be")
    settings = make_settings(tmp_path, sqlite_url)
    settings = settings.model_copy(
        update={"store": settings.store.model_copy(update={"raw": str(blocked)})}
    )
    gateway, _, _ = make_gateway(settings)
    committed: list[int] = []
    commit = gateway.pipeline.commit

    def counting(batch: list[object]) -> object:
        committed.append(len(batch))
        return commit(batch)  # type: ignore[arg-type]

    gateway.pipeline.commit = counting  # type: ignore[method-assign]
    try:
        with running_listener(gateway) as (host, port):
            with smtplib.SMTP(host, port) as client, pytest.raises(smtplib.SMTPDataError) as info:
                client.sendmail("ana@magazin.ro", ["support@localhost"], raw_mail())
            assert info.value.smtp_code == 451 and committed == []
            blocked.unlink()  # the folder can be made now: the sender's retry is taken
            with smtplib.SMTP(host, port) as client:
                client.sendmail("ana@magazin.ro", ["support@localhost"], raw_mail())
            assert committed == [1] and _count(gateway) == 1
    finally:
        gateway.close()


def test_a_bug_in_our_code_is_451_not_500(listener, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    gateway, host, port = listener

    def broken(batch: object) -> object:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(gateway.pipeline, "commit", broken)
    with smtplib.SMTP(host, port) as client, pytest.raises(smtplib.SMTPDataError) as info:
        client.sendmail("ana@magazin.ro", ["support@localhost"], raw_mail())
    assert info.value.smtp_code == 451
    assert b"secret" not in info.value.smtp_error


def test_garbage_is_accepted_and_suspended_or_ticketed(listener) -> None:  # type: ignore[no-untyped-def]
    gateway, host, port = listener
    garbage = (
        b"From: \xff\xfe broken\r\nSubject: =?x-unknown?Q?abc?=\r\n"
        b'Content-Type: multipart/mixed; boundary="zz"\r\n\r\n--zz\r\n'
        b"Content-Type: text/plain; charset=x-nope\r\n\r\n\x00NUL \xe2\x82 half\r\n"
    )
    with smtplib.SMTP(host, port) as client:
        client.sendmail("ana@magazin.ro", ["support@localhost"], garbage)
    with gateway.db.read() as s:
        from sqlmodel import select

        from store.models import RawMail

        assert len(s.exec(select(RawMail)).all()) == 1
    assert gateway.raws.exists(__import__("hashlib").sha256(garbage).hexdigest())


def test_bare_lf_smuggling_does_not_split_a_mail(listener) -> None:  # type: ignore[no-untyped-def]
    """SMTP smuggling: '\\n.\\n' inside DATA must not end the mail (aiosmtpd ≥ 1.4.5)."""
    gateway, host, port = listener
    smuggled = raw_mail(subject="first") + b"\n.\nMAIL FROM:<eve@evil.example>\r\n"
    with socket.create_connection((host, port)) as sock:
        f = sock.makefile("rb")
        f.readline()
        sock.sendall(b"EHLO x\r\n")
        while f.readline()[3:4] == b"-":  # the multi-line EHLO answer
            pass
        sock.sendall(b"MAIL FROM:<ana@magazin.ro>\r\n")
        f.readline()
        sock.sendall(b"RCPT TO:<support@localhost>\r\n")
        f.readline()
        sock.sendall(b"DATA\r\n")
        f.readline()
        sock.sendall(smuggled.replace(b"\r\n", b"\r\n") + b"\r\n.\r\n")
        assert f.readline().startswith(b"250")
        sock.sendall(b"QUIT\r\n")
    assert _count(gateway) == 1


def test_the_mail_is_kept_as_sent_with_its_dots_unstuffed(listener) -> None:  # type: ignore[no-untyped-def]
    """DATA is read into one buffer (not aiosmtpd's list of lines): lines starting with a
    dot (doubled by the client), a lone dot in the text, CRLF kept as sent."""
    gateway, host, port = listener
    mail = raw_mail(body=".\n..two\n. one\nmiddle\n.\n").replace(b"\n", b"\r\n")
    with smtplib.SMTP(host, port) as client:
        client.sendmail("ana@magazin.ro", ["support@localhost"], mail)
    assert gateway.raws.read(hashlib.sha256(mail).hexdigest()) == mail


def test_dots_are_unstuffed_after_a_bare_lf_as_smtplib_sends_bytes(listener) -> None:  # type: ignore[no-untyped-def]
    """Python's smtplib sends a mail given as bytes with its own line ends and doubles
    each dot after a LF (README's tour does this): the mail must be kept as it was, not
    with '..' where it had '.' (which also made it look like another mail reusing its
    Message-ID when the same file was imported)."""
    gateway, host, port = listener
    mail = raw_mail(body=".MsoNormal {}\nsee example\n.nl</a>\n..two\nend\n")
    assert b"\r\n" not in mail
    with smtplib.SMTP(host, port) as client:
        client.sendmail("ana@magazin.ro", ["support@localhost"], mail)
    sent = mail + b"\r\n"  # smtplib ends the data with a CRLF of its own
    assert gateway.raws.read(hashlib.sha256(sent).hexdigest()) == sent


def test_a_line_over_the_limit_is_500_after_the_whole_mail(tmp_path: Path, sqlite_url: str) -> None:
    settings = make_settings(
        tmp_path,
        sqlite_url,
        smtp=SmtpSettings(port=0, addresses=("support@localhost",), line_length_limit=1000),
    )
    gateway, _, _ = make_gateway(settings)
    with running_listener(gateway) as (host, port), smtplib.SMTP(host, port) as client:
        client.ehlo()
        client.mail("ana@magazin.ro")
        client.rcpt("support@localhost")
        code, text = client.data(raw_mail(body="a" * 1500))
        assert f"{code} {text.decode()}" == replies.LINE_TOO_LONG
        # The session goes on: the next mail is taken.
        client.sendmail("ana@magazin.ro", ["support@localhost"], raw_mail())
    assert _count(gateway) == 1
    gateway.close()


def test_the_language_model_is_loaded_before_the_listener_is_ready(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not with the first mail: no mail waits for it, and no mail's peak memory holds it."""
    monkeypatch.setattr(language, "_loaded", [])
    gateway, _, _ = make_gateway(make_settings(tmp_path, sqlite_url))
    with running_listener(gateway):
        assert len(language._loaded) == 1
    gateway.close()


def test_serve_writes_the_sla_targets_of_stats_when_it_starts(
    tmp_path: Path, sqlite_url: str
) -> None:
    from store.day_totals import limits_match

    gateway, _, _ = make_gateway(make_settings(tmp_path, sqlite_url))
    with gateway.db.read() as session:
        assert not limits_match(session, gateway.sla)
    with running_listener(gateway), gateway.db.read() as session:
        assert limits_match(session, gateway.sla)
    gateway.close()


def test_serve_starts_when_the_store_is_too_busy_to_write_the_sla_targets(
    tmp_path: Path, sqlite_url: str
) -> None:
    from store.day_totals import limits_match

    store = StoreSettings(
        url=sqlite_url, raw=str(tmp_path / "raw"), attachments=str(tmp_path / "attachments"),
        busy_timeout_ms=200,
    )  # fmt: skip
    gateway, _, _ = make_gateway(make_settings(tmp_path, sqlite_url, store=store))
    holder = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing
    try:
        with running_listener(gateway):
            holder.execute("ROLLBACK")
            with gateway.db.read() as session:
                assert not limits_match(session, gateway.sla)  # stats counts them itself
    finally:
        holder.close()
    gateway.close()


def _hang_up_after_data(host: str, port: int, mail: bytes) -> None:
    """Send one mail by hand and hang up right after its final dot, before the reply."""
    with socket.create_connection((host, port)) as sock, sock.makefile("rb") as replies_in:

        def say(line: bytes) -> bytes:
            sock.sendall(line + b"\r\n")
            reply = replies_in.readline()
            while reply[3:4] == b"-":  # a multi-line reply goes on to its last line
                reply = replies_in.readline()
            return reply

        replies_in.readline()  # the greeting
        assert say(b"EHLO client.example").startswith(b"250")
        assert say(b"MAIL FROM:<ana@magazin.ro>").startswith(b"250")
        assert say(b"RCPT TO:<support@localhost>").startswith(b"250")
        assert say(b"DATA").startswith(b"354")
        sock.sendall(mail.replace(b"\n", b"\r\n") + b"\r\n.\r\n")


def test_a_client_that_hangs_up_before_its_reply_leaves_the_mail_committed(  # type: ignore[no-untyped-def]
    listener, caplog: pytest.LogCaptureFixture
) -> None:
    gateway, host, port = listener
    with caplog.at_level(logging.WARNING):
        _hang_up_after_data(host, port, raw_mail(message_id="<gone@magazin.ro>"))
        deadline = time.monotonic() + 10
        while _count(gateway) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)  # the commit's callbacks have run
        with smtplib.SMTP(host, port) as client:  # the client's retry is a duplicate
            client.sendmail(
                "ana@magazin.ro", ["support@localhost"], raw_mail(message_id="<gone@magazin.ro>")
            )

    assert _count(gateway) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
