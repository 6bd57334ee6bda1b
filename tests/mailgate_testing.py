"""Helpers shared by the pipeline and end-to-end tests: settings in a temp folder, a
gateway with a recording transport and a clock that only moves when told, a listener on
a free loopback port, a small builder of raw mails, real mails damaged at random, and the
text a store holds."""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import sqlalchemy as sa

from mailgate.app import Gateway, build_gateway
from mailgate.clock import ManualClock
from mailgate.config import AuthSettings, OutboundSettings, Settings, SmtpSettings, StoreSettings
from mailgate.outbound.transports import RecordingTransport
from mailgate.serve import run_gateway

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
DNS_ENV = "MAILGATE_AUTH_DNS_RESOLVER"  # set by tests/conftest.py to the loopback server


def make_settings(tmp_path: Path, store_url: str, **sections: object) -> Settings:
    values: dict[str, object] = {
        "store": StoreSettings(
            url=store_url, raw=str(tmp_path / "raw"), attachments=str(tmp_path / "attachments")
        ),
        "smtp": SmtpSettings(host="127.0.0.1", port=0, addresses=("support@localhost",)),
        "outbound": OutboundSettings(
            transport=f"maildir:{tmp_path}/outbound", **{"from": "Support <support@localhost>"}
        ),
    }
    values.update(sections)
    # Every look-up goes to the run's loopback DNS server (tests/conftest.py), even when
    # a test brings its own [auth] section: no test may ask public DNS.
    given = values.get("auth")
    auth = given if isinstance(given, AuthSettings) else AuthSettings()
    loopback = os.environ.get(DNS_ENV)
    if loopback and auth.dns_resolver is None:
        values["auth"] = auth.model_copy(update={"dns_resolver": loopback})
    return Settings(**values)  # type: ignore[arg-type]


def make_gateway(settings: Settings) -> tuple[Gateway, ManualClock, RecordingTransport]:
    clock = ManualClock(START)
    transport = RecordingTransport()
    return build_gateway(settings, clock=clock, transport=transport), clock, transport


def raw_mail(
    *,
    sender: str = "Ana Pop <ana@magazin.ro>",
    to: str = "support@localhost",
    subject: str = "Plata nu merge",
    body: str = "Bună ziua,\nClienții nu pot plăti cu cardul.\nMulțumesc,\nAna",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    headers: dict[str, str] | None = None,
    cc: str | None = None,
) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(START)
    msg["Message-ID"] = message_id or make_msgid(domain="magazin.ro")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return bytes(msg)


@contextmanager
def running_listener(
    gateway: Gateway, *, schedule_interval: float = 3600
) -> Iterator[tuple[str, int]]:
    """Run ``serve``'s loop (listener, dispatcher, scheduler) in a thread; yields (host, port).

    The dispatcher and the scheduler run once at start, then every hour (tests call
    ``run_once`` themselves) unless ``schedule_interval`` says otherwise."""
    ready = threading.Event()
    bound: list[tuple[str, int]] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def on_ready(host: str, port: int) -> None:
        bound.append((host, port))
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(
            run_gateway(
                gateway,
                stop,
                ready=on_ready,
                dispatch_interval=3600,
                schedule_interval=schedule_interval,
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("listener did not start")
    try:
        yield bound[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def write_config(tmp_path: Path, store_url: str, *sections: str, smtp_port: int = 0) -> Path:
    """A ``mailgate.toml`` in tmp_path for subprocess and CLI tests: the store, a listener
    port, a maildir for outbound mail, then ``sections`` (e.g. ``[[imap]]`` tables)."""
    config = tmp_path / "mailgate.toml"
    config.write_text(
        f'[store]\nurl = "{store_url}"\nraw = "{tmp_path}/raw"\n'
        f'attachments = "{tmp_path}/attachments"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
        f'[outbound]\ntransport = "maildir:{tmp_path}/outbound"\n\n' + "\n".join(sections)
    )
    return config


# What damage inserts: MIME syntax, line breaks, 8-bit and control bytes; and, into header
# lines, control characters alone (a NUL in a Message-ID, an address, a content type).
DAMAGE_INSERTS = (
    b"\x00", b"\n", b"\r\n", b"--", b"=?", b"?=", b"\xff", b";", b'"', b"\n\n", b"<", b"[#1]"
)  # fmt: skip
HEADER_INSERTS = (b"\x00", b"\x00\x01", b"\x7f", b"\x1b")


def damaged(raw: bytes, rng: random.Random, times: int) -> bytes:
    """``raw`` with ``times`` random changes: a byte replaced, bytes inserted, a stretch
    cut out, the end cut off, or a control character put into a header line."""
    mail = bytearray(raw)
    for _ in range(times):
        position = rng.randrange(len(mail) + 1)
        kind = rng.randrange(5)
        if kind == 0 and mail:
            mail[min(position, len(mail) - 1)] = rng.randrange(256)
        elif kind == 1:
            mail[position:position] = rng.choice(DAMAGE_INSERTS)
        elif kind == 2:
            del mail[position : position + rng.randrange(1, 40)]
        elif kind == 3:
            del mail[position:]
        else:
            end = mail.find(b"\n\n")
            starts = [0] + [i + 1 for i in range(end if end >= 0 else len(mail)) if mail[i] == 10]
            start = rng.choice(starts)
            stop = mail.find(b"\n", start)
            at = rng.randint(start, stop if stop >= 0 else len(mail))
            mail[at:at] = rng.choice(HEADER_INSERTS)
    return bytes(mail)


_STORED_TEXT = (
    "SELECT message_id, mail_from, rcpt_tos FROM raw_mails",
    "SELECT message_id, in_reply_to, reference_ids, from_address, to_addresses, subject,"
    " body_text, thread_evidence, screen_reason FROM messages",
    "SELECT filename, content_type, content_id FROM attachments",
    "SELECT requester, subject FROM tickets",
    "SELECT from_address, subject, detail FROM suspended_mails",
)


def stored_text(gateway: Gateway) -> list[str]:
    """Every text value of the columns a mail's headers and words are written to."""
    with gateway.db.engine.connect() as connection:
        rows = [row for query in _STORED_TEXT for row in connection.execute(sa.text(query))]
    return [value for row in rows for value in row if isinstance(value, str)]


def empty_store(url: str) -> None:
    """Empty every table of the PostgreSQL store at ``url`` (its schema stays)."""
    from sqlmodel import SQLModel

    import store.models  # noqa: F401

    engine = sa.create_engine(url)
    # duration_buckets holds the fixed ranges written by revision 0005, not data.
    tables = [t.name for t in SQLModel.metadata.sorted_tables if t.name != "duration_buckets"]
    names = ", ".join(f'"{name}"' for name in tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    engine.dispose()
