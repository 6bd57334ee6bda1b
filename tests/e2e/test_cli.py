"""The ``mailgate`` command as agents and admins use it (Typer's CliRunner, plus one real
subprocess per exit code of ``ingest``)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mailgate_testing import raw_mail
from typer.testing import CliRunner

from cli.errors import EX_SOFTWARE, guarded
from cli.main import app
from mailgate.sources.exits import EX_DATAERR, EX_IOERR, EX_OK, EX_TEMPFAIL

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples" / "eml"


@pytest.fixture
def env(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Configuration through the environment only: no file, MAILGATE_<SECTION>_<KEY>."""
    values = {
        "MAILGATE_STORE_URL": store_url,
        "MAILGATE_STORE_RAW": str(tmp_path / "raw"),
        "MAILGATE_STORE_ATTACHMENTS": str(tmp_path / "attachments"),
        "MAILGATE_OUTBOUND_TRANSPORT": f"maildir:{tmp_path}/outbound",
        "MAILGATE_AGENT": "maria@support.example",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return values


def run(*args: str, input: bytes | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str, input: bytes | None = None) -> str:
    code, out, err = run(*args, input=input)
    assert code == 0, (code, out, err)
    return out


def test_admin_then_mail_then_agent_work(env: dict[str, str], tmp_path: Path) -> None:
    ok("shops", "add", "Magazin Exemplu", "--locale", "ro", "--rate", "45")
    ok("users", "add", "ana@magazin.ro", "--shop", "Magazin Exemplu", "--name", "Ana Pop")
    ok("agents", "add", "maria@support.example", "--sector", "payments")
    assert json.loads(ok("users", "list", "--json"))[0]["shop"] == "Magazin Exemplu"
    mail = tmp_path / "m.eml"
    mail.write_bytes(raw_mail())
    assert "new ticket #1" in ok("ingest", str(mail))

    [ticket] = json.loads(ok("tickets", "list", "--json"))
    for key in (
        "id",
        "subject",
        "status",
        "type",
        "sector",
        "priority",
        "requester",
        "shop",
        "verified",
        "confidential",
        "assignee",
        "created_at",
        "updated_at",
        "due_at",
        "follow_up_of",
    ):
        assert key in ticket
    assert ticket["shop"] == "Magazin Exemplu" and ticket["verified"] is False
    assert ticket["created_at"].endswith("+00:00")

    ok("tickets", "reply", "1", "--message", "Verificăm acum.", "--status", "pending")
    ok("tickets", "note", "1", "--message", "checked the gateway logs")
    ok("tickets", "set", "1", "--priority", "high", "--assignee", "maria@support.example")
    shown = json.loads(ok("tickets", "show", "1", "--json"))
    assert [m["direction"] for m in shown["messages"]] == ["in", "out", "note"]
    assert shown["messages"][0]["threaded_by"] == "new"
    assert {"filename", "content_type", "size", "sha256"} <= set(
        shown["messages"][0].get("attachments", [{}])[0]
        if shown["messages"][0]["attachments"]
        else {"filename", "content_type", "size", "sha256"}
    )
    assert (shown["status"], shown["priority"]) == ("pending", "high")
    text = ok("tickets", "show", "1")
    assert "threaded by new" in text and "Verificăm acum." in text

    outbox = json.loads(ok("outbox", "list", "--json"))
    assert [o["kind"] for o in outbox] == ["agent_reply", "ack"] or sorted(
        o["kind"] for o in outbox
    ) == ["ack", "agent_reply"]
    assert "2 sent" in ok("schedule", "run")
    assert len(list((tmp_path / "outbound" / "new").iterdir())) == 2

    stats = json.loads(ok("stats", "--json"))
    assert stats["by_status"]["pending"] == 1


def test_assign_by_name_list_by_name_and_deactivate_an_agent(
    env: dict[str, str], tmp_path: Path
) -> None:
    ok("agents", "add", "maria@support.example", "--name", "Maria Ionescu")
    ok("agents", "add", "ion@support.example", "--name", "Ion Pop")
    mail = tmp_path / "m.eml"
    mail.write_bytes(raw_mail(sender="Ana <ana@magazin.ro>"))
    ok("ingest", str(mail))
    assert "assignee: None -> ion@support.example" in ok("tickets", "set", "1", "--assignee", "Ion")
    [mine] = json.loads(ok("tickets", "list", "--assignee", "ion", "--json"))
    assert mine["id"] == 1 and mine["assignee"] == "ion@support.example"
    assert "(not an active agent" in ok("tickets", "set", "1", "--assignee", "ioan@x.example")
    ok("tickets", "set", "1", "--assignee", "ion@support.example")

    out = ok("agents", "deactivate", "ION@support.example")
    assert "agent ion@support.example deactivated; 1 tickets unassigned" in out
    assert json.loads(ok("tickets", "show", "1", "--json"))["assignee"] is None
    listed = {a["email"]: a["active"] for a in json.loads(ok("agents", "list", "--json"))}
    assert listed == {"ion@support.example": False, "maria@support.example": True}
    # "ion" names no active agent now: kept as written, and said so
    assert "(not an active agent" in ok("tickets", "set", "1", "--assignee", "ion")
    assert "agent ion@support.example activated" in ok("agents", "activate", "ion@support.example")
    code, _, err = run("agents", "deactivate", "nobody@support.example")
    assert code != 0 and "not an agent" in err
    code, _, err = run("tickets", "set", "1", "--assignee", "x" * 400)
    assert code == 2 and "at most 320 characters" in err and len(err.splitlines()) == 1


def test_errors_are_one_line_without_traceback(env: dict[str, str]) -> None:
    for args, code in (
        (("tickets", "show", "999"), 3),
        (("tickets", "set", "1"), 2),
        (("shops", "add", "X", "--locale", "de"), 2),
        (("users", "add", "nobody", "--shop", "none"), 2),
        (("tickets", "list", "--status", "bogus"), 2),
        (("suspended", "release", "5"), 3),
    ):
        got, out, err = run(*args)
        assert got == code, (args, got, out, err)
        assert err.startswith("mailgate: ") and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1


def test_a_reply_and_a_note_from_a_file_with_a_nul_are_stored_without_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A --file that holds a NUL (a binary file by mistake, or a broken editor): PostgreSQL
    refused the row, and the CLI printed the SQL. The control characters are left out."""
    mail = tmp_path / "m.eml"
    mail.write_bytes(raw_mail())
    ok("ingest", str(mail))
    text = tmp_path / "reply.txt"
    text.write_bytes(b"Verific\x00am acum.\r\n")
    ok("tickets", "reply", "1", "--file", str(text))
    ok("tickets", "note", "1", "--file", str(text))
    shown = json.loads(ok("tickets", "show", "1", "--json"))
    assert [m["body_text"] for m in shown["messages"][1:]] == ["Verificam acum."] * 2
    text.write_bytes(b"\x00\x01\n")
    code, _, err = run("tickets", "note", "1", "--file", str(text))
    assert (code, err.strip()) == (2, "mailgate: the note is empty")


def test_an_internal_error_is_one_line_even_when_its_text_is_not() -> None:
    def broken() -> None:
        raise RuntimeError("(driver.Error) refused\n[SQL: INSERT ...]\n[parameters: ...]")

    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stderr(io.StringIO()) as err:
        guarded(broken)
    assert exit_info.value.code == EX_SOFTWARE
    assert err.getvalue().splitlines() == [
        "mailgate: internal error: RuntimeError: (driver.Error) refused"
        " (run with MAILGATE_DEBUG=1 for details)"
    ]


def test_numbers_out_of_range_and_overlong_names_are_usage_errors(env: dict[str, str]) -> None:
    """Each was refused by PostgreSQL (integer out of range, value too long) and came out
    as an internal error, or stored as given (an hourly rate of nan)."""
    ok("shops", "add", "Magazin", "--rate", "45")
    too_big = str(2**64)
    for args in (
        ("tickets", "show", too_big),
        ("tickets", "set", "0", "--priority", "high"),
        ("suspended", "release", too_big),
        ("outbox", "retry", too_big),
        ("suspended", "list", "--limit", too_big),
        ("shops", "add", "x" * 201),
        ("shops", "add", "Alt", "--rate", "nan"),
        ("shops", "add", "Alt", "--rate", "inf"),
        ("users", "add", "ana@magazin.ro", "--shop", "Magazin", "--name", "x" * 201),
        ("agents", "add", "maria@support.example", "--name", "x" * 201),
    ):
        code, out, err = run(*args)
        assert code == 2 and "internal error" not in out + err, (args, code, out, err)
    ok("shops", "add", "x" * 200, "--rate", "0")


def test_bad_config_file_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[smtp]\nport = 'not a number'\n")
    code, _, err = run("--config", str(bad), "tickets", "list")
    assert code == 78 and "smtp.port" in err
    code, _, err = run("--config", str(tmp_path / "missing.toml"), "tickets", "list")
    assert code == 78 and "not found" in err


def test_import_is_safe_to_run_twice(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "mails"
    folder.mkdir()
    for i in range(5):
        (folder / f"{i}.eml").write_bytes(
            raw_mail(subject=f"Problem {i}", message_id=f"<import-{i}@magazin.ro>")
        )
    first = json.loads(ok("import", str(folder), "--json"))
    assert first == {"total": 5, "ticket_created": 5}
    second = json.loads(ok("import", str(folder), "--json"))
    assert second == {"total": 5, "duplicate": 5}
    assert len(json.loads(ok("tickets", "list", "--json"))) == 5


def test_a_large_import_is_prepared_in_a_child_process(env: dict[str, str], tmp_path: Path) -> None:
    """From 200 mails on the import prepares in ``[smtp] prepare_processes`` children while
    it commits: every mail still lands once, replies in their tickets, and again is a no-op."""
    import mailbox

    box = mailbox.mbox(tmp_path / "many.mbox")
    for i in range(150):
        box.add(raw_mail(subject=f"Comanda {i} nu apare", message_id=f"<bulk-{i}@magazin.ro>"))
    for i in range(60):
        box.add(
            raw_mail(
                subject=f"Re: Comanda {i} nu apare",
                message_id=f"<bulk-reply-{i}@magazin.ro>",
                in_reply_to=f"<bulk-{i}@magazin.ro>",
            )
        )
    box.close()
    first = json.loads(ok("import", str(tmp_path / "many.mbox"), "--json"))
    assert first == {"total": 210, "ticket_created": 150, "message_added": 60}
    second = json.loads(ok("import", str(tmp_path / "many.mbox"), "--json"))
    assert second == {"total": 210, "duplicate": 210}


def test_import_mbox_and_maildir(env: dict[str, str], tmp_path: Path) -> None:
    import mailbox

    box = mailbox.mbox(tmp_path / "box.mbox")
    maildir = mailbox.Maildir(tmp_path / "md")
    for i in range(3):
        box.add(raw_mail(subject=f"mbox {i}"))
        maildir.add(raw_mail(subject=f"maildir {i}"))
    box.close()
    assert json.loads(ok("import", str(tmp_path / "box.mbox"), "--json"))["total"] == 3
    assert json.loads(ok("import", str(tmp_path / "md"), "--json"))["total"] == 3


def test_suspended_list_and_release(env: dict[str, str]) -> None:
    ok(
        "ingest",
        input=raw_mail(subject="Automatic reply: away", headers={"Auto-Submitted": "auto-replied"}),
    )
    [held] = json.loads(ok("suspended", "list", "--json"))
    assert held["reason"] == "auto_reply"
    assert "new ticket" in ok("suspended", "release", str(held["id"]))
    assert json.loads(ok("suspended", "list", "--json")) == []
    assert len(json.loads(ok("tickets", "list", "--json"))) == 1


def test_parse_json_shows_every_field(env: dict[str, str], tmp_path: Path) -> None:
    mail = tmp_path / "m.eml"
    mail.write_bytes(raw_mail(in_reply_to="<x@y>"))
    data = json.loads(ok("parse", str(mail), "--json").splitlines()[0])
    for key in (
        "from_address",
        "from_name",
        "to",
        "cc",
        "subject",
        "date",
        "message_id",
        "in_reply_to",
        "references",
        "body_text",
        "reply_text",
        "attachments",
        "screen",
        "auth",
    ):
        assert key in data
    assert data["screen"]["verdict"] == "ok" and data["in_reply_to"] == ["x@y"]
    assert set(data["auth"]) >= {"verified_domain", "dkim", "dmarc", "source"}


def _ingest_process(
    args: list[str], env: dict[str, str], stdin: bytes
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        input=stdin,
        capture_output=True,
        env={**os.environ, **env},
        cwd=REPO,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_ingest_exit_codes_as_a_real_process(tmp_path: Path) -> None:
    env = {
        "MAILGATE_STORE_URL": f"sqlite:///{tmp_path}/m.db",
        "MAILGATE_STORE_RAW": str(tmp_path / "raw"),
        "MAILGATE_STORE_ATTACHMENTS": str(tmp_path / "att"),
        "MAILGATE_OUTBOUND_TRANSPORT": f"maildir:{tmp_path}/out",
    }
    assert _ingest_process(["ingest"], env, raw_mail()).returncode == EX_OK
    empty = _ingest_process(["ingest"], env, b"")
    assert empty.returncode == EX_DATAERR and b"Traceback" not in empty.stderr
    down = {**env, "MAILGATE_STORE_URL": "postgresql+psycopg://postgres@127.0.0.1:1/none"}
    failed = _ingest_process(["ingest"], down, raw_mail())
    assert failed.returncode == EX_TEMPFAIL, failed.stderr
    assert b"Traceback" not in failed.stderr


def test_usage_errors_are_clicks_own(env: dict[str, str]) -> None:
    code, _, err = run("tickets", "show", "not-a-number")
    assert code == 2 and "Invalid value" in err and "internal error" not in err


def test_reply_without_text_opens_the_editor(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mail = tmp_path / "m.eml"
    mail.write_bytes(raw_mail())
    ok("ingest", str(mail))
    editor = tmp_path / "editor.sh"
    editor.write_text('#!/bin/sh\nprintf "Written in the editor.\\n" > "$1"\n')
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    ok("tickets", "reply", "1")
    shown = json.loads(ok("tickets", "show", "1", "--json"))
    assert shown["messages"][-1]["body_text"] == "Written in the editor."
    editor.write_text("#!/bin/sh\nexit 0\n")  # the agent saves nothing: nothing is sent
    code, _, err = run("tickets", "reply", "1")
    assert code == 1 and "nothing sent" in err


def test_an_editor_that_cannot_start_or_writes_latin_1_is_no_internal_error(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mail = tmp_path / "m.eml"
    mail.write_bytes(raw_mail())
    ok("ingest", str(mail))
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(tmp_path / "no-such-editor"))
    code, _, err = run("tickets", "note", "1")
    assert code == 1 and "cannot start the editor" in err and "internal error" not in err
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nprintf 'Verific\\343m.\\n' > \"$1\"\n")  # ă in ISO-8859-2
    editor.chmod(0o755)
    monkeypatch.setenv("EDITOR", str(editor))
    ok("tickets", "note", "1")
    shown = json.loads(ok("tickets", "show", "1", "--json"))
    assert shown["messages"][-1]["body_text"] == "Verific\ufffdm."


def test_ingest_refuses_a_mail_over_the_size_limit_without_reading_it_all(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILGATE_SMTP_MAX_MESSAGE_SIZE", "2000")
    big = raw_mail(body="x" * 5000)
    code, _, err = run("ingest", input=big)
    assert code == EX_DATAERR and "over the size limit of 2000 bytes" in err
    assert ok("ingest", input=raw_mail()).strip() == "new ticket #1"


def test_import_names_the_files_it_cannot_read_and_imports_the_rest(
    env: dict[str, str], tmp_path: Path
) -> None:
    """A dangling link and a link loop among the ``.eml`` files are not passed over in
    silence: the summary counts them, stderr names them, and the exit code (EX_IOERR) says
    that the import is not complete. A second run, once they are fixed, takes them."""
    folder = tmp_path / "mails"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.eml").write_bytes(raw_mail(subject=f"Problem {i}"))
    (folder / "gone.eml").symlink_to(tmp_path / "moved-away.eml")
    (folder / "loop.eml").symlink_to(folder / "loop.eml")
    (folder / "folder.eml").mkdir()  # not a mail file at all: not counted
    code, out, err = run("import", str(folder), "--json")
    assert code == EX_IOERR, err
    assert json.loads(out) == {"total": 5, "ticket_created": 3, "unreadable": 2}
    assert f"cannot read {folder / 'gone.eml'}: No such file or directory" in err
    assert f"cannot read {folder / 'loop.eml'}: Too many levels of symbolic links" in err
    assert "2 mail files could not be read; the others were imported" in err
    assert "Traceback" not in err and "internal error" not in err
    (tmp_path / "moved-away.eml").write_bytes(raw_mail(subject="Problem 4"))
    (folder / "loop.eml").unlink()
    again = json.loads(ok("import", str(folder), "--json"))
    assert again == {"total": 4, "duplicate": 3, "ticket_created": 1}
