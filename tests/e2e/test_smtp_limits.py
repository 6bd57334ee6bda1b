"""Per-connection limits of the SMTP listener, checked with raw sockets on loopback:
command line length, clients at once, MAIL commands per connection, idle time, and the
age of a connection (a slow client that keeps the idle timer happy is still closed)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mailgate_testing import make_gateway, make_settings, running_listener

from mailgate.config import SmtpSettings
from mailgate.sources import replies


class Client:
    """A line-by-line SMTP client that shows exactly what the server said."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.lines = self.sock.makefile("rb")

    def read(self) -> str:
        """One reply (the last line of a multi-line one); "" when the server hung up."""
        while True:
            line = self.lines.readline().decode()
            if line[3:4] != "-":
                return line.strip()

    def say(self, command: str) -> str:
        self.sock.sendall(command.encode() + b"\r\n")
        return self.read()

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[str, int]]:
    """A listener with small limits: 2 clients, 2 mails a connection, 1 s idle, 2 s age."""
    settings = make_settings(
        tmp_path,
        sqlite_url,
        smtp=SmtpSettings(
            port=0,
            addresses=("support@localhost",),
            max_connections=2,
            max_messages_per_connection=2,
            timeout=1.0,
            max_session_seconds=2.0,
        ),
    )
    gateway, _, _ = make_gateway(settings)
    with running_listener(gateway) as address:
        yield address
    gateway.close()


def test_reply_constants_for_the_limits() -> None:
    assert replies.COMMAND_TOO_LONG.startswith("500 5.5.2")
    assert replies.TOO_MANY_CONNECTIONS.startswith("421 4.3.2")
    assert replies.SESSION_TOO_LONG.startswith("421 4.4.2")


def test_a_command_line_over_512_bytes_is_refused(listener: tuple[str, int]) -> None:
    client = Client(*listener)
    try:
        assert client.read().startswith("220")
        assert client.say("EHLO client.example").startswith("250")
        assert client.say("MAIL FROM:<" + "a" * 600 + "@example.com>") == replies.COMMAND_TOO_LONG
        assert client.say("NOOP").startswith("250")  # the session goes on
    finally:
        client.close()


def test_clients_over_the_limit_are_told_to_come_back(listener: tuple[str, int]) -> None:
    first, second = Client(*listener), Client(*listener)
    try:
        assert first.read().startswith("220") and second.read().startswith("220")
        third = Client(*listener)
        assert third.read() == replies.TOO_MANY_CONNECTIONS
        assert third.read() == ""  # and the connection is closed
        third.close()
        first.say("QUIT")
        first.close()
        time.sleep(0.2)
        fourth = Client(*listener)  # a slot is free again
        assert fourth.read().startswith("220")
        fourth.close()
    finally:
        second.close()


def test_mail_commands_per_connection_are_limited(listener: tuple[str, int]) -> None:
    client = Client(*listener)
    try:
        client.read()
        client.say("EHLO client.example")
        for _ in range(2):
            assert client.say("MAIL FROM:<ana@magazin.ro>").startswith("250")
            assert client.say("RSET").startswith("250")
        assert client.say("MAIL FROM:<ana@magazin.ro>") == "421 4.7.0 MAIL sent too many times"
        assert client.read() == ""
    finally:
        client.close()


def test_an_idle_client_is_dropped(listener: tuple[str, int]) -> None:
    client = Client(*listener)
    try:
        assert client.read().startswith("220")
        time.sleep(1.5)
        assert client.read() == ""
    finally:
        client.close()


def test_a_slow_client_is_closed_when_its_connection_is_too_old(
    listener: tuple[str, int],
) -> None:
    """One command just before each idle timeout would keep a connection for ever."""
    client = Client(*listener)
    try:
        client.read()
        started = time.monotonic()
        answer = ""
        while time.monotonic() - started < 5:
            time.sleep(0.6)
            answer = client.say("NOOP")
            if not answer.startswith("250"):
                break
        assert answer == replies.SESSION_TOO_LONG
        assert 1.9 < time.monotonic() - started < 3.5
        assert client.read() == ""
    finally:
        client.close()
