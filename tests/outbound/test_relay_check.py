"""``mailgate outbound test``: one mail through the configured relay, one line back —
against a real SMTP relay on loopback (STARTTLS and implicit TLS with a certificate made
for the run, AUTH), and the maildir transport."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path

import pytest
from outbound_support import PASSWORD, USER, Certificate, RelayFactory, authenticator
from typer.testing import CliRunner

from cli.main import app


def outbound_test(tmp_path: Path, outbound: str, *args: str) -> tuple[int, str, str]:
    """Run ``mailgate outbound test`` with ``outbound`` as the [outbound] section."""
    config = tmp_path / "mailgate.toml"
    config.write_text(f'[outbound]\nfrom = "Support <support@example.com>"\n{outbound}')
    result = CliRunner().invoke(app, ["--config", str(config), "outbound", "test", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def relay_password(monkeypatch: pytest.MonkeyPatch) -> str:
    """The relay's password, in the variable the config names."""
    monkeypatch.setenv("MAILGATE_RELAY_PASSWORD", PASSWORD)
    return "MAILGATE_RELAY_PASSWORD"


def test_a_test_mail_over_starttls_with_login(
    tmp_path: Path, start_relay: RelayFactory, certificate: Certificate, relay_password: str
) -> None:
    relay = start_relay(
        tls_context=certificate.server_context(),
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    code, out, err = outbound_test(
        tmp_path,
        f'transport = "smtp://127.0.0.1:{relay.port}"\nstarttls = "required"\n'
        f'cafile = "{certificate.certfile}"\nuser = "{USER}"\npassword_env = "{relay_password}"\n',
        "--to", "ana@magazin.ro",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == (
        f"test mail sent to ana@magazin.ro through smtp://127.0.0.1:{relay.port} "
        f"(STARTTLS, login {USER})"
    )
    [got] = relay.received
    assert (got.tls, got.login, got.rcpt_tos) == (True, USER, ["ana@magazin.ro"])
    assert got.mail_from == "support@example.com"
    mail = message_from_bytes(got.content)
    assert mail["Subject"] == "Mailgate relay test" and mail["Auto-Submitted"] == "auto-generated"


def test_a_test_mail_over_implicit_tls_goes_to_our_own_address_by_default(
    tmp_path: Path, start_relay: RelayFactory, certificate: Certificate
) -> None:
    relay = start_relay(ssl_context=certificate.server_context())
    code, out, err = outbound_test(
        tmp_path,
        f'transport = "smtps://127.0.0.1:{relay.port}"\ncafile = "{certificate.certfile}"\n',
    )
    assert code == 0, err
    assert "sent to support@example.com" in out and "(implicit TLS)" in out
    assert relay.received[0].rcpt_tos == ["support@example.com"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_a_refused_login_is_one_line(tmp_path: Path, start_relay: RelayFactory) -> None:
    relay = start_relay(authenticator=authenticator, auth_required=True, auth_require_tls=False)
    code, out, err = outbound_test(
        tmp_path,
        f'transport = "smtp://127.0.0.1:{relay.port}"\nuser = "{USER}"\n'
        'password_env = "MAILGATE_TEST_WRONG_PASSWORD"\n',
    )
    assert code == 1 and out == ""
    assert err.startswith("mailgate: outbound test failed: ") and len(err.splitlines()) == 1
    assert f"no password for relay user {USER}" in err
    assert relay.received == []


def test_an_untrusted_certificate_and_a_relay_that_is_down_are_one_line(
    tmp_path: Path, start_relay: RelayFactory, certificate: Certificate, free_port: int
) -> None:
    relay = start_relay(tls_context=certificate.server_context())
    code, _, err = outbound_test(tmp_path, f'transport = "smtp://127.0.0.1:{relay.port}"\n')
    assert code == 1 and "CERTIFICATE_VERIFY_FAILED" in err and len(err.splitlines()) == 1
    code, _, err = outbound_test(tmp_path, f'transport = "smtp://127.0.0.1:{free_port}"\n')
    assert code == 1 and "Connection refused" in err and len(err.splitlines()) == 1


def test_the_maildir_transport_writes_the_test_mail(tmp_path: Path) -> None:
    code, out, _ = outbound_test(tmp_path, f'transport = "maildir:{tmp_path}/out"\n')
    assert code == 0 and f"through maildir:{tmp_path}/out" in out
    [written] = (tmp_path / "out" / "new").iterdir()
    assert b"Subject: Mailgate relay test" in written.read_bytes()
