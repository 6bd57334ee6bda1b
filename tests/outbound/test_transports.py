"""Stage 9 transports: a real maildir, and smtplib against a real aiosmtpd relay on loopback."""

from __future__ import annotations

import mailbox
import threading
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from outbound_support import (
    CONTENT_REJECTED,
    DEFERRED,
    PASSWORD,
    REJECTED,
    USER,
    Certificate,
    RelayFactory,
    authenticator,
)

from mailgate.config import OutboundSettings
from mailgate.errors import ConfigError, TransportError
from mailgate.outbound.transports import (
    MaildirTransport,
    RecordingTransport,
    SmtpTransport,
    transport_from_settings,
)
from store import durable

FROM = "support@example.com"
# aiosmtpd warns when AUTH is allowed without TLS; these tests do it on loopback on purpose.
AUTH_WITHOUT_TLS = pytest.mark.filterwarnings(
    "ignore:Requiring AUTH while not requiring TLS:UserWarning"
)
TO = "ana@shop.example"


def raw_mail(subject: str = "[#7] Hello", to: str = TO) -> bytes:
    return (
        f"From: Support <{FROM}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <mg.7.test@example.com>\r\n\r\nBody line\r\n"
    ).encode()


def plain(port: int, **kwargs: object) -> SmtpTransport:
    return SmtpTransport("127.0.0.1", port, starttls="off", timeout=10, **kwargs)  # type: ignore[arg-type]


# -- maildir ------------------------------------------------------------------------------


def test_maildir_transport_writes_a_readable_mail_with_its_envelope(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path / "outbound")
    transport.send(FROM, [TO, "cc@shop.example"], raw_mail())

    box = mailbox.Maildir(tmp_path / "outbound", factory=None, create=False)
    keys = box.keys()
    assert len(keys) == 1
    msg = message_from_bytes(box.get_bytes(keys[0]), policy=policy.default)
    assert msg["Subject"] == "[#7] Hello"
    assert msg["Return-Path"] == f"<{FROM}>"
    assert msg["X-Envelope-To"] == f"{TO}, cc@shop.example"
    assert msg.get_content().strip() == "Body line"
    assert not list((tmp_path / "outbound" / "tmp").iterdir()), "nothing left half-written"


def test_maildir_transport_creates_missing_folders(tmp_path: Path) -> None:
    MaildirTransport(tmp_path / "a" / "b").send(FROM, [TO], raw_mail())
    assert len(list((tmp_path / "a" / "b" / "new").iterdir())) == 1


def test_maildir_mails_are_synced_together_when_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``send`` writes and links without an fsync; ``flush`` syncs the mails sent since
    the last flush, with one syncfs, or (without it) each file, ``new/`` and the root."""
    calls: list[object] = []
    monkeypatch.setattr(durable, "fsync_file", calls.append)
    monkeypatch.setattr(durable, "fsync_dir", calls.append)
    monkeypatch.setattr(durable, "syncfs", None)
    box = tmp_path / "outbound"
    transport = MaildirTransport(box)
    for subject in ("[#7] one", "[#7] two"):
        transport.send(FROM, [TO], raw_mail(subject))
    assert calls == []
    transport.flush()
    delivered = sorted((box / "new").iterdir())
    assert len(delivered) == 2 and sorted(calls[:2]) == delivered  # type: ignore[type-var]
    assert calls[2:] == [box / "new", box]
    calls.clear()
    transport.flush()  # nothing sent since
    assert calls == []

    monkeypatch.setattr(durable, "syncfs", lambda fd: calls.append(fd) or 0)
    transport.send(FROM, [TO], raw_mail("[#7] three"))
    transport.flush()
    assert len(calls) == 1 and isinstance(calls[0], int)


def test_a_maildir_mail_a_flush_failed_to_sync_is_synced_by_the_next_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever flushes next must not find the list empty and say all is synced."""
    synced: list[Path] = []

    def full_disk(path: Path) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(durable, "syncfs", None)
    monkeypatch.setattr(durable, "fsync_dir", lambda folder: None)
    monkeypatch.setattr(durable, "fsync_file", full_disk)
    transport = MaildirTransport(tmp_path)
    transport.send(FROM, [TO], raw_mail("[#7] one"))
    with pytest.raises(TransportError, match="Input/output error"):
        transport.flush()
    monkeypatch.setattr(durable, "fsync_file", synced.append)
    transport.send(FROM, [TO], raw_mail("[#7] two"))
    transport.flush()
    assert sorted(synced) == sorted((tmp_path / "new").iterdir())
    assert len(synced) == 2


def test_a_maildir_flush_waits_for_one_already_syncing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two dispatchers' flushes: the second finds nothing of its own left to sync, and
    must still not return before the first has synced the mails it took."""
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def slow_sync(paths: list[Path], root: Path) -> None:
        if not paths:  # as the real one: nothing to sync
            return
        started.set()
        assert release.wait(10)
        done.append("first synced")

    monkeypatch.setattr(durable, "sync_files", slow_sync)
    transport = MaildirTransport(tmp_path)
    transport.send(FROM, [TO], raw_mail())
    first = threading.Thread(target=transport.flush)
    first.start()
    assert started.wait(10)
    second = threading.Thread(target=lambda: (transport.flush(), done.append("second back")))
    second.start()
    second.join(0.2)
    assert done == [] and second.is_alive()
    release.set()
    first.join(10)
    second.join(10)
    assert done == ["first synced", "second back"]


def test_maildir_names_are_unique_and_nothing_stays_in_tmp(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path)
    for n in range(50):
        transport.send(FROM, [TO], raw_mail(f"[#7] mail {n}"))
    transport.flush()
    box = mailbox.Maildir(tmp_path, factory=None, create=False)
    subjects = {message_from_bytes(box.get_bytes(key))["Subject"] for key in box.iterkeys()}
    assert subjects == {f"[#7] mail {n}" for n in range(50)}
    assert not list((tmp_path / "tmp").iterdir())


# -- SMTP: plain, envelope, reply codes -----------------------------------------------------


def test_smtp_transport_delivers_envelope_and_bytes(start_relay: RelayFactory) -> None:
    relay = start_relay()
    plain(relay.port).send(FROM, [TO, "cc@shop.example"], raw_mail())

    (got,) = relay.received
    assert got.mail_from == FROM
    assert got.rcpt_tos == [TO, "cc@shop.example"]
    assert message_from_bytes(got.content, policy=policy.default)["Subject"] == "[#7] Hello"
    assert not got.tls


def test_550_from_the_relay_is_permanent(start_relay: RelayFactory) -> None:
    relay = start_relay()
    with pytest.raises(TransportError) as caught:
        plain(relay.port).send(FROM, [REJECTED], raw_mail(to=REJECTED))
    assert caught.value.permanent
    assert "550" in str(caught.value)
    assert relay.received == []


def test_451_from_the_relay_is_temporary(start_relay: RelayFactory) -> None:
    relay = start_relay()
    with pytest.raises(TransportError) as caught:
        plain(relay.port).send(FROM, [DEFERRED], raw_mail(to=DEFERRED))
    assert not caught.value.permanent
    assert "451" in str(caught.value)


def test_554_after_data_is_permanent(start_relay: RelayFactory) -> None:
    relay = start_relay()
    with pytest.raises(TransportError) as caught:
        plain(relay.port).send(FROM, [TO], raw_mail(subject=f"[#7] {CONTENT_REJECTED}"))
    assert caught.value.permanent


def test_one_refused_recipient_of_two_still_sends_to_the_other(start_relay: RelayFactory) -> None:
    """Sending again would duplicate the mail for the one who got it."""
    relay = start_relay()
    plain(relay.port).send(FROM, [TO, REJECTED], raw_mail())
    assert [r.rcpt_tos for r in relay.received] == [[TO]]


def test_relay_down_is_a_temporary_error(free_port: int) -> None:
    with pytest.raises(TransportError) as caught:
        plain(free_port).send(FROM, [TO], raw_mail())
    assert not caught.value.permanent


# -- SMTP: connection reuse -----------------------------------------------------------------


def test_two_sends_in_a_batch_share_one_connection(start_relay: RelayFactory) -> None:
    relay = start_relay()
    transport = plain(relay.port)
    with transport:
        transport.send(FROM, [TO], raw_mail("[#7] one"))
        transport.send(FROM, [TO], raw_mail("[#7] two"))
    assert transport.connections_opened == 1
    assert len(relay.received) == 2
    assert relay.received[0].peer == relay.received[1].peer  # same client socket


def test_sends_outside_a_batch_connect_each_time(start_relay: RelayFactory) -> None:
    relay = start_relay()
    transport = plain(relay.port)
    transport.send(FROM, [TO], raw_mail("[#7] one"))
    transport.send(FROM, [TO], raw_mail("[#7] two"))
    assert transport.connections_opened == 2
    assert relay.received[0].peer != relay.received[1].peer


def test_a_refused_mail_does_not_spoil_the_batch_connection(start_relay: RelayFactory) -> None:
    relay = start_relay()
    transport = plain(relay.port)
    with transport:
        with pytest.raises(TransportError):
            transport.send(FROM, [REJECTED], raw_mail(to=REJECTED))
        transport.send(FROM, [TO], raw_mail())
    assert transport.connections_opened == 1
    assert len(relay.received) == 1


def test_a_batch_redials_when_the_kept_connection_broke(start_relay: RelayFactory) -> None:
    """The relay restarts between two mails of a round: the second one still goes out."""
    first = start_relay()
    transport = plain(first.port)
    with transport:
        transport.send(FROM, [TO], raw_mail("[#7] one"))
        first.controller.stop()
        second = start_relay(port=first.port)
        transport.send(FROM, [TO], raw_mail("[#7] two"))
    assert transport.connections_opened == 2
    assert len(first.received) == 1
    assert len(second.received) == 1


def test_an_unreachable_relay_is_not_dialled_again_in_the_same_batch(free_port: int) -> None:
    transport = plain(free_port)
    with transport:
        for _ in range(3):
            with pytest.raises(TransportError) as caught:
                transport.send(FROM, [TO], raw_mail())
            assert not caught.value.permanent
        assert "not dialled again" in str(caught.value)


# -- SMTP: TLS ------------------------------------------------------------------------------


def test_starttls_with_a_verified_certificate(
    start_relay: RelayFactory, certificate: Certificate
) -> None:
    relay = start_relay(tls_context=certificate.server_context(), require_starttls=True)
    transport = SmtpTransport(
        "127.0.0.1", relay.port, starttls="required", cafile=str(certificate.certfile), timeout=10
    )
    transport.send(FROM, [TO], raw_mail())
    assert relay.received[0].tls


def test_starttls_auto_uses_tls_when_offered(
    start_relay: RelayFactory, certificate: Certificate
) -> None:
    relay = start_relay(tls_context=certificate.server_context())
    transport = SmtpTransport(
        "127.0.0.1", relay.port, starttls="auto", cafile=str(certificate.certfile), timeout=10
    )
    transport.send(FROM, [TO], raw_mail())
    assert relay.received[0].tls


def test_starttls_required_but_not_offered_is_temporary(start_relay: RelayFactory) -> None:
    relay = start_relay()
    transport = SmtpTransport("127.0.0.1", relay.port, starttls="required", timeout=10)
    with pytest.raises(TransportError) as caught:
        transport.send(FROM, [TO], raw_mail())
    assert not caught.value.permanent
    assert "STARTTLS" in str(caught.value)
    assert relay.received == []


def test_an_unverifiable_certificate_is_refused(
    start_relay: RelayFactory, certificate: Certificate
) -> None:
    """Without our CA the self-signed certificate does not verify: no mail goes out."""
    relay = start_relay(tls_context=certificate.server_context())
    transport = SmtpTransport("127.0.0.1", relay.port, starttls="auto", timeout=10)
    with pytest.raises(TransportError) as caught:
        transport.send(FROM, [TO], raw_mail())
    assert not caught.value.permanent
    assert relay.received == []


def test_implicit_tls(start_relay: RelayFactory, certificate: Certificate) -> None:
    relay = start_relay(ssl_context=certificate.server_context())
    transport = SmtpTransport(
        "127.0.0.1", relay.port, implicit_tls=True, cafile=str(certificate.certfile), timeout=10
    )
    transport.send(FROM, [TO], raw_mail())
    assert len(relay.received) == 1


# -- SMTP: AUTH -----------------------------------------------------------------------------


@AUTH_WITHOUT_TLS
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_auth_with_each_mechanism(start_relay: RelayFactory, mechanism: str) -> None:
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    relay = start_relay(
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=False,  # loopback only; see test_auth_over_starttls for the real thing
        auth_exclude_mechanism=[other],
    )
    plain(relay.port, user=USER, password=PASSWORD).send(FROM, [TO], raw_mail())
    (got,) = relay.received
    assert got.login == USER
    assert got.mechanism == mechanism


def test_auth_over_starttls(start_relay: RelayFactory, certificate: Certificate) -> None:
    relay = start_relay(
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    transport = SmtpTransport(
        "127.0.0.1",
        relay.port,
        starttls="required",
        cafile=str(certificate.certfile),
        user=USER,
        password=PASSWORD,
        timeout=10,
    )
    transport.send(FROM, [TO], raw_mail())
    assert relay.received[0].tls
    assert relay.received[0].login == USER


@AUTH_WITHOUT_TLS
def test_a_refused_login_is_temporary_not_permanent(start_relay: RelayFactory) -> None:
    """535 is a configuration problem: it must not fail every queued mail for good."""
    relay = start_relay(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    with pytest.raises(TransportError) as caught:
        plain(relay.port, user=USER, password="wrong").send(FROM, [TO], raw_mail())
    assert not caught.value.permanent
    assert "535" in str(caught.value)


@AUTH_WITHOUT_TLS
def test_a_missing_password_is_temporary(start_relay: RelayFactory) -> None:
    relay = start_relay(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    with pytest.raises(TransportError) as caught:
        plain(relay.port, user=USER, password=None).send(FROM, [TO], raw_mail())
    assert not caught.value.permanent


# -- recording and settings -----------------------------------------------------------------


def test_recording_transport_raises_its_failures_then_records() -> None:
    transport = RecordingTransport([TransportError("down")])
    with pytest.raises(TransportError):
        transport.send(FROM, [TO], b"x")
    transport.send(FROM, [TO], b"y")
    assert [m.raw for m in transport.sent] == [b"y"]
    assert transport.attempts == 2


def test_transport_from_settings_maildir(tmp_path: Path) -> None:
    transport = transport_from_settings(OutboundSettings(transport=f"maildir:{tmp_path}/out"))
    assert isinstance(transport, MaildirTransport)
    assert transport.path == tmp_path / "out"


def test_transport_from_settings_smtp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_PASSWORD", "pw")
    settings = OutboundSettings(
        transport="smtp://relay.example.com:587",
        user="u",
        password_env="RELAY_PASSWORD",
        starttls="required",
        cafile="/etc/ca.pem",
        timeout=7,
    )
    transport = transport_from_settings(settings)
    assert isinstance(transport, SmtpTransport)
    assert (transport.host, transport.port, transport.implicit_tls) == (
        "relay.example.com",
        587,
        False,
    )
    assert (transport.starttls, transport.user, transport.cafile) == (
        "required",
        "u",
        "/etc/ca.pem",
    )
    assert transport._password == "pw"
    assert transport.timeout == 7


@pytest.mark.parametrize(
    ("spec", "port", "implicit"),
    [("smtps://relay.example.com", 465, True), ("smtp://relay.example.com", 25, False)],
)
def test_transport_from_settings_default_ports(spec: str, port: int, implicit: bool) -> None:
    transport = transport_from_settings(OutboundSettings(transport=spec))
    assert isinstance(transport, SmtpTransport)
    assert (transport.port, transport.implicit_tls) == (port, implicit)


@pytest.mark.parametrize("spec", ["ftp://x", "maildir:", "smtp://", "smtp://host:notaport", "x"])
def test_transport_from_settings_rejects_unknown_specs(spec: str) -> None:
    with pytest.raises(ConfigError):
        transport_from_settings(OutboundSettings(transport=spec))
