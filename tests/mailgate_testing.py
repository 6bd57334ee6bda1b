"""Helpers shared by the pipeline and end-to-end tests: settings in a temp folder, a
gateway with a recording transport and a clock that only moves when told, a listener on
a free loopback port, and a small builder of raw mails."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from mailgate.app import Gateway, build_gateway
from mailgate.clock import ManualClock
from mailgate.config import OutboundSettings, Settings, SmtpSettings, StoreSettings
from mailgate.outbound.transports import RecordingTransport
from mailgate.serve import run_gateway

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC


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
def running_listener(gateway: Gateway) -> Iterator[tuple[str, int]]:
    """Run ``serve``'s loop (listener, dispatcher) in a thread; yields (host, port)."""
    ready = threading.Event()
    bound: list[tuple[str, int]] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def on_ready(host: str, port: int) -> None:
        bound.append((host, port))
        ready.set()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(run_gateway(gateway, stop, ready=on_ready, dispatch_interval=3600))

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
