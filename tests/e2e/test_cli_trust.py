"""The trust commands as admins and agents use them: ``users import``, ``tickets set
--confidential``, ``tickets reply --confirm-identity``, and ``parse --json``'s verdicts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dkim_support import shared_key, sign
from dns_server import LoopbackDns
from mailgate_testing import raw_mail
from typer.testing import CliRunner

from cli.errors import EX_NOPERM, EX_USAGE
from cli.main import app

SHOP_KEY = shared_key("cli.magazin.example")


@pytest.fixture
def env(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Configuration through the environment only; the store on SQLite or PostgreSQL."""
    for key, value in {
        "MAILGATE_STORE_URL": store_url,
        "MAILGATE_STORE_RAW": str(tmp_path / "raw"),
        "MAILGATE_STORE_ATTACHMENTS": str(tmp_path / "attachments"),
        "MAILGATE_OUTBOUND_TRANSPORT": f"maildir:{tmp_path}/outbound",
        "MAILGATE_AGENT": "maria@support.example",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = run(*args)
    assert code == 0, (code, out, err)
    return out


def users(env: Path) -> list[dict[str, str]]:
    return list(json.loads(ok("users", "list", "--json")))


def test_users_import_registers_every_row_and_can_run_twice(env: Path) -> None:
    ok("shops", "add", "Magazin")
    ok("shops", "add", "Winkel", "--locale", "nl")
    csv = env / "users.csv"
    csv.write_text(
        "\ufeffemail,shop,name\n"
        "Ana@Magazin.example,Magazin,Ana Pop\n"
        "\n"
        'jan@winkel.example, Winkel ,"de Vries, Jan"\n',
        encoding="utf-8",
    )
    assert "2 user(s) registered, 0 already registered" in ok("users", "import", str(csv))
    assert [(u["email"], u["shop"], u["name"]) for u in users(env)] == [
        ("ana@magazin.example", "Magazin", "Ana Pop"),
        ("jan@winkel.example", "Winkel", "de Vries, Jan"),
    ]
    assert "0 user(s) registered, 2 already registered" in ok("users", "import", str(csv))


def test_users_import_with_a_bad_row_imports_nothing_and_names_the_lines(env: Path) -> None:
    ok("shops", "add", "Magazin")
    ok("shops", "add", "Winkel")
    ok("users", "add", "jan@winkel.example", "--shop", "Winkel")
    ok("agents", "add", "maria@support.example")
    csv = env / "users.csv"
    csv.write_text(
        "email,shop\n"
        "ana@magazin.example,Magazin\n"
        "not-an-address,Magazin\n"
        "ion@magazin.example,Nowhere\n"
        "jan@winkel.example,Magazin\n"
        "maria@support.example,Magazin\n"
        "ANA@magazin.example,Magazin\n"
        "eva@magazin.example,\n"
    )
    code, _, err = run("users", "import", str(csv))
    assert code == EX_USAGE
    assert err.count("\n") == 1 and "Traceback" not in err  # one line
    for expected in (
        "6 bad row(s), nothing imported",
        "line 3: not a mail address: 'not-an-address'",
        "line 4: ion@magazin.example: no shop named 'Nowhere'",
        "line 5: jan@winkel.example is already registered for shop 'Winkel'",
        "line 6: maria@support.example is an agent",
        "line 7: ana@magazin.example also on line 2",
        "line 8: eva@magazin.example: no shop given",
    ):
        assert expected in err, expected
    assert [u["email"] for u in users(env)] == ["jan@winkel.example"]  # ana was not imported


def test_users_import_needs_a_header_line(env: Path) -> None:
    csv = env / "users.csv"
    csv.write_text("ana@magazin.example,Magazin\n")
    code, _, err = run("users", "import", str(csv))
    assert code == EX_USAGE and "first line must name the columns (email,shop,name)" in err
    code, _, err = run("users", "import", str(env / "missing.csv"))
    assert code == 66 and "cannot read" in err


def test_agent_marks_a_ticket_confidential_and_must_confirm_identity_to_answer(
    env: Path,
) -> None:
    ok("shops", "add", "Magazin")
    ok("users", "add", "ana@magazin.ro", "--shop", "Magazin")
    mail = env / "m.eml"
    mail.write_bytes(raw_mail(subject="Question", body="Where is my parcel?"))
    ok("ingest", str(mail))
    ticket = json.loads(ok("tickets", "show", "1", "--json"))
    assert (ticket["confidential"], ticket["verified"]) == (False, False)

    assert "confidential: no -> yes" in ok("tickets", "set", "1", "--confidential")
    ticket = json.loads(ok("tickets", "show", "1", "--json"))
    assert ticket["confidential"] is True
    assert [e["action"] for e in ticket["events"]][-2:] == ["confidential", "held"]
    assert "nothing changed" in ok("tickets", "set", "1", "--confidential")

    assert "HELD:" in ok("tickets", "show", "1")
    code, _, err = run("tickets", "reply", "1", "--message", "Here you are.")
    assert code == EX_NOPERM and "--confirm-identity" in err and err.count("\n") == 1
    assert "reply" in ok(
        "tickets", "reply", "1", "--message", "As agreed by phone.", "--confirm-identity"
    )
    events = json.loads(ok("tickets", "show", "1", "--json"))["events"]
    assert [e["actor"] for e in events if e["action"] == "identity_confirmed"] == [
        "maria@support.example"
    ]


def test_parse_json_shows_the_authentication_verdict(env: Path, dns: LoopbackDns) -> None:
    dns.publish("mail._domainkey.cli.magazin.example", SHOP_KEY.record())
    dns.publish("_dmarc.cli.magazin.example", "v=DMARC1; p=reject")
    body = "Please change our IBAN.\n"
    good = sign(
        raw_mail(sender="ana@cli.magazin.example", body=body),
        domain="cli.magazin.example",
        key=SHOP_KEY,
        length=True,
    )
    (env / "good.eml").write_bytes(good + b"PS: the new one is RO49EVIL\n")
    (env / "bad.eml").write_bytes(good.replace(b"IBAN", b"IBAM"))
    lines = ok("parse", "--json", str(env / "good.eml"), str(env / "bad.eml")).splitlines()
    first, second = (json.loads(line) for line in lines)
    assert first["auth"]["verified_domain"] == "cli.magazin.example"
    assert (first["auth"]["dkim"], first["auth"]["dmarc"], first["auth"]["source"]) == (
        "pass",
        "pass",
        "dkim",
    )
    assert first["auth"]["signed_body_length"] is not None
    assert "EVIL" not in first["body_text"] and first["confidential"] == "bank_details: 'iban'"
    assert (second["auth"]["verified_domain"], second["auth"]["dkim"]) == (None, "fail")
