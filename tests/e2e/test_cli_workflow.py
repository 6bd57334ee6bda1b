"""The workflow commands as agents type them: budget, deadline, log-time, merge, peak,
schedule run, stats, and the queue sorted by deadline with breaches marked."""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from mailgate_testing import raw_mail
from typer.testing import CliRunner

from cli import render
from cli.main import app


@pytest.fixture
def env(tmp_path: Path, store_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Configuration through the environment, run from tmp_path; returns tmp_path."""
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
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = run(*args)
    assert code == 0, (args, code, out, err)
    return out


def ingest(folder: Path, **mail: str) -> None:
    path = folder / "in.eml"
    path.write_bytes(raw_mail(**mail))
    ok("ingest", str(path))


def shown(ticket_id: int) -> dict[str, object]:
    data = json.loads(ok("tickets", "show", str(ticket_id), "--json"))
    assert isinstance(data, dict)
    return data


def test_a_development_request_worked_from_the_cli(env: Path) -> None:
    ok("shops", "add", "Magazin", "--locale", "ro", "--rate", "45")
    ok("users", "add", "ana@magazin.ro", "--shop", "Magazin")
    ingest(env, subject="Funcționalitate nouă", body="Vrem o funcționalitate nouă: export.")
    assert shown(1)["type"] == "development"

    assert "360.00 EUR mailed for approval" in ok("tickets", "budget", "1", "--hours", "8")
    proposed = shown(1)
    assert (proposed["status"], proposed["budget_state"], proposed["budget_amount"]) == (
        "pending",
        "proposed",
        360.0,
    )
    ingest(env, subject="Re: [#1] Budget", body="Aprob")
    assert (shown(1)["status"], shown(1)["budget_state"]) == ("open", "approved")

    day = (date.today() + timedelta(days=30)).isoformat()
    assert f"deadline {day} mailed" in ok("tickets", "deadline", "1", "--date", day)
    scheduled = shown(1)
    assert (scheduled["status"], scheduled["deadline"]) == ("on_hold", day)

    assert "25 min logged (call); 25 min in all" in ok("tickets", "log-time", "1", "25", "--call")
    ok("tickets", "log-time", "1", "5")
    logged = shown(1)
    assert (logged["time_spent_minutes"], logged["calls"]) == (30, 1)
    assert "time spent 30 min (1 call(s))" in ok("tickets", "show", "1")

    ingest(env, subject="Export comenzi", body="Și exportul să fie în Excel, vă rog.")
    assert "#2 merged into #1" in ok("tickets", "merge", "2", "1")
    assert (shown(2)["merged_into"], shown(2)["status"]) == (1, "closed")
    assert len(shown(1)["messages"]) == 3  # type: ignore[arg-type]

    out = ok("schedule", "run")
    assert "auto-closed 0, stand-by reminders 0, SLA warnings 0" in out
    subjects = [
        str(message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"])
        for p in (env / "outbound" / "new").iterdir()
    ]
    assert "[#1] Buget spre aprobare: Funcționalitate nouă" in subjects  # the shop's language
    assert f"[#1] Data livrării: {day}" in subjects

    figures = json.loads(ok("stats", "--json"))
    assert figures["time_by_shop"]["Magazin"] == {"minutes": 30, "calls": 1}


def test_peak_mode_switch(env: Path) -> None:
    assert "peak mode is off" in ok("peak")
    assert "only immediate tickets keep their SLA clock" in ok("peak", "on")
    assert "peak mode is on" in ok("peak")
    ingest(env, subject="Logo", body="Cum schimb logo-ul?")
    assert shown(1)["due_at"] is None
    assert "(1 open tickets re-timed)" in ok("peak", "off")
    assert shown(1)["due_at"] is not None


def test_the_queue_by_deadline_marks_breaches(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(render.console, "width", 200)  # one line per ticket, nothing folded
    (env / "mailgate.toml").write_text(
        '[workflow]\nworking_days = ["mon","tue","wed","thu","fri","sat","sun"]\n'
        'working_hours = "00:00-24:00"\n\n'
        '[sla.first_response]\nnormal = "1s"\nlow = "30h"\n',
        encoding="utf-8",
    )
    ingest(env, subject="Logo", body="Cum schimb logo-ul?")  # normal: due in a second
    time.sleep(2.1)  # a deadline is rounded up to the whole second: up to 2 s from now
    ingest(env, subject="Factura", body="Nu e grabă, aștept.")
    ok("tickets", "set", "2", "--priority", "low")
    listed = json.loads(ok("tickets", "list", "--sort", "due", "--json"))
    assert [(t["id"], t["breached"]) for t in listed] == [(1, True), (2, False)]
    table = ok("tickets", "list", "--sort", "due")
    assert table.count("BREACHED") == 1


def test_stats_put_the_mean_first_response_first(env: Path) -> None:
    ingest(env)
    ok("tickets", "reply", "1", "--message", "Verificăm.")
    out = ok("stats")
    assert out.splitlines()[0].startswith("Mean first response: 0 min")
    figures = json.loads(ok("stats", "--json"))
    for key in (
        "first_response_minutes",
        "resolution_minutes",
        "sla",
        "backlog",
        "reopen",
        "agents",
        "by_status",
    ):
        assert key in figures
    assert figures["first_response_minutes"]["wall_clock"]["count"] == 1
    assert figures["agents"]["maria@support.example"]["replies"] == 1


def test_stats_reporting_period(env: Path) -> None:
    ingest(env)
    ok("tickets", "reply", "1", "--message", "Verificăm.")
    default = json.loads(ok("stats", "--json"))["period"]
    until = datetime.fromisoformat(default["until"])
    assert datetime.fromisoformat(default["since"]) == until - timedelta(days=30)
    assert default["tickets"] == "created" and default["business_time_complete"] is True
    week = json.loads(ok("stats", "--since", "7", "--json"))
    assert datetime.fromisoformat(week["period"]["since"]) < until - timedelta(days=6)
    assert week["first_response_minutes"]["wall_clock"]["count"] == 1
    later = json.loads(ok("stats", "--since", "2999-01-01", "--json"))
    assert later["period"]["since"] == "2999-01-01T00:00:00+00:00"
    assert later["first_response_minutes"]["wall_clock"]["count"] == 0
    assert later["by_status"]["open"] == 1  # counts are of the whole store
    assert json.loads(ok("stats", "--all", "--json"))["period"]["since"] is None
    assert "Period: tickets created since " in ok("stats")
    for args in (("--since", "last week"), ("--since", "7", "--all")):
        code, _, err = run("stats", *args)
        assert code == 2 and err.startswith("mailgate: ")


def test_workflow_command_errors_are_one_line(env: Path) -> None:
    ingest(env)
    for args, code in (
        (("tickets", "budget", "1", "--hours", "5"), 2),  # a question, not development
        (("tickets", "budget", "9", "--hours", "5"), 3),
        (("tickets", "deadline", "1", "--date", "next friday"), 2),
        (("tickets", "deadline", "1", "--date", "2030-01-01"), 2),  # no approved budget
        (("tickets", "merge", "1", "1"), 2),
        (("tickets", "merge", "1", "7"), 3),
        (("tickets", "log-time", "1", "0"), 2),
        (("peak", "maybe"), 2),
    ):
        got, out, err = run(*args)
        assert got == code, (args, got, out, err)
        assert err.startswith("mailgate: ") and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
