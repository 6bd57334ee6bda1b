"""``mailgate health``: is this gateway ready to take mail? For load balancers and systemd.

Ready means: the store answers and its schema is at the newest migration (a gateway
must not take mail into a schema it does not know), the raw-mail and attachment
folders can be written (when blobs are kept as files), and, when asked, the SMTP
listener answers its greeting. The check changes nothing: no migration, no folder made.
"""

from __future__ import annotations

import os
import smtplib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from mailgate.config import Settings
from store.migrate import current_revision, head_revision

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104


@dataclass(frozen=True, slots=True)
class HealthReport:
    ok: bool
    line: str  # one line: what is fine, or what is not


def check_health(settings: Settings, *, smtp: bool = False, timeout: float = 5.0) -> HealthReport:
    """Run every check; the report's line names the problems, or what was checked."""
    problems: list[str] = []
    checked: list[str] = []
    _check_store(settings.store.url, timeout, problems, checked)
    if settings.store.blobs == "files":
        for name, folder in (
            ("raw", settings.store.raw),
            ("attachments", settings.store.attachments),
        ):
            problem = _unwritable(Path(folder))
            if problem:
                problems.append(f"{name} folder {folder} {problem}")
        if not problems:
            checked.append("folders writable")
    if smtp:
        _check_listener(settings, timeout, problems, checked)
    if problems:
        return HealthReport(False, "unhealthy: " + "; ".join(problems))
    return HealthReport(True, "ok: " + ", ".join(checked))


def _check_store(url: str, timeout: float, problems: list[str], checked: list[str]) -> None:
    shown = sa.make_url(url).render_as_string(hide_password=True)
    database = sa.make_url(url).database
    if url.startswith("sqlite") and database and not Path(database).exists():
        problems.append(f"store {shown} does not exist (run: mailgate db upgrade)")
        return
    connect_args = {} if url.startswith("sqlite") else {"connect_timeout": max(1, int(timeout))}
    engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            current = current_revision(connection)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        problems.append(f"store {shown} unreachable: {reason}")
        return
    finally:
        engine.dispose()
    head = head_revision()
    if current != head:
        problems.append(f"schema of {shown} is at {current or 'nothing'}, the code needs {head}")
    else:
        checked.append(f"store at schema {head}")


def _unwritable(folder: Path) -> str | None:
    """Why ``folder`` cannot take files, or None. A missing folder is fine when it can be
    made (the gateway makes it on its first mail)."""
    if not folder.exists():
        parent = next((p for p in folder.parents if p.exists()), None)
        if parent is None or not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            return "does not exist and cannot be created"
        return None
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".health-"):
            pass
    except OSError as exc:
        return f"is not writable ({exc.strerror})"
    return None


def _check_listener(
    settings: Settings, timeout: float, problems: list[str], checked: list[str]
) -> None:
    host = _WILDCARDS.get(settings.smtp.host, settings.smtp.host)
    where = f"{host}:{settings.smtp.port}"
    try:
        with smtplib.SMTP(timeout=timeout) as client:
            code, _ = client.connect(host, settings.smtp.port)
            if code != 220:
                problems.append(f"SMTP listener {where} greets with {code}, not 220")
                return
            client.noop()
    except (OSError, smtplib.SMTPException) as exc:
        problems.append(f"SMTP listener {where} not accepting: {exc}")
        return
    checked.append(f"SMTP {where} accepting")
