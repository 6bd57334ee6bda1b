"""``mailgate health``: readiness for a load balancer or systemd — exit 0 and one line
when the gateway can take mail, exit 1 and the reason otherwise. It changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from mailgate_testing import make_gateway, make_settings, running_listener
from typer.testing import CliRunner

from cli.main import app
from mailgate.config import SmtpSettings, StoreSettings
from mailgate.health import check_health
from store.db import Database
from store.migrate import alembic_config, head_revision


def _health(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *args: str, **env: str
) -> tuple[int, str]:
    values = {
        "MAILGATE_STORE_URL": f"sqlite:///{tmp_path}/mailgate.db",
        "MAILGATE_STORE_RAW": str(tmp_path / "raw"),
        "MAILGATE_STORE_ATTACHMENTS": str(tmp_path / "attachments"),
        **env,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["health", *args], catch_exceptions=False)
    return result.exit_code, (result.stdout + result.stderr).strip()


def test_ready_store_answers_ok(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store_url: str
) -> None:
    db = Database(store_url)
    db.upgrade()
    db.dispose()
    code, line = _health(monkeypatch, tmp_path, MAILGATE_STORE_URL=store_url)
    assert code == 0
    assert line == f"ok: store at schema {head_revision()}, folders writable"


def test_missing_store_is_not_ready_and_not_created(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, line = _health(monkeypatch, tmp_path)
    assert code == 1
    assert line.startswith("mailgate: unhealthy: store sqlite:///") and "does not exist" in line
    assert not (tmp_path / "mailgate.db").exists()


def test_store_behind_the_code_is_not_ready(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/mailgate.db")
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
    engine.dispose()
    code, line = _health(monkeypatch, tmp_path)
    assert code == 1
    assert f"is at 0001, the code needs {head_revision()}" in line


def test_unreachable_store_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, line = _health(
        monkeypatch, tmp_path, MAILGATE_STORE_URL="postgresql+psycopg://nobody@127.0.0.1:1/x"
    )
    assert code == 1
    assert line.startswith("mailgate: unhealthy: store postgresql+psycopg://nobody@127.0.0.1:1/x")
    assert "unreachable" in line and len(line.splitlines()) == 1


def test_folder_that_cannot_be_made_is_not_ready(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store_url: str
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    db = Database(store_url)
    db.upgrade()
    db.dispose()
    code, line = _health(
        monkeypatch,
        tmp_path,
        MAILGATE_STORE_URL=store_url,
        MAILGATE_STORE_RAW=str(tmp_path / "a-file" / "raw"),
    )
    assert code == 1
    assert "raw folder" in line and "cannot be created" in line


def test_listener_check_needs_a_listener(tmp_path: Path, store_url: str) -> None:
    settings = make_settings(tmp_path, store_url)
    gateway, _, _ = make_gateway(settings)  # upgrades the store
    try:
        with running_listener(gateway) as (host, port):
            listening = settings.model_copy(update={"smtp": SmtpSettings(host=host, port=port)})
            report = check_health(listening, smtp=True)
            assert report.ok, report.line
            assert report.line.endswith(f"SMTP {host}:{port} accepting")
        report = check_health(listening, smtp=True)
        assert not report.ok
        assert f"SMTP listener {host}:{port} not accepting" in report.line
    finally:
        gateway.close()


def test_database_blobs_need_no_folders(tmp_path: Path, store_url: str) -> None:
    settings = make_settings(
        tmp_path,
        store_url,
        store=StoreSettings(url=store_url, raw="/proc/no-such/raw", blobs="database"),
    )
    gateway, _, _ = make_gateway(settings)
    gateway.close()
    report = check_health(settings)
    assert report.ok and report.line == f"ok: store at schema {head_revision()}"
