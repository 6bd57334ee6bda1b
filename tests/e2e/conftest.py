"""Fixtures for the pipeline and end-to-end tests."""

from __future__ import annotations

import os
import smtplib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dovecot import DOVECOT, Dovecot, ImapAccount
from mailgate_testing import make_gateway, make_settings, running_listener
from outbound.outbound_support import make_certificate

from mailgate.app import Gateway
from mailgate.apply import Outcome
from mailgate.clock import ManualClock
from mailgate.config import Settings
from mailgate.outbound.transports import RecordingTransport
from mailgate.values import Arrival, Envelope, Source


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Settings:
    """Settings for a gateway whose files live in tmp_path, on SQLite or PostgreSQL."""
    return make_settings(tmp_path, store_url)


@pytest.fixture
def world(settings: Settings) -> Iterator[tuple[Gateway, ManualClock, RecordingTransport]]:
    """A gateway with a controllable clock and a transport that records what it sends."""
    gateway, clock, transport = make_gateway(settings)
    yield gateway, clock, transport
    gateway.close()


@pytest.fixture
def gateway(world: tuple[Gateway, ManualClock, RecordingTransport]) -> Gateway:
    """The gateway of ``world``."""
    return world[0]


@pytest.fixture
def clock(world: tuple[Gateway, ManualClock, RecordingTransport]) -> ManualClock:
    """The clock of ``world``: it moves only when a test advances it."""
    return world[1]


@pytest.fixture
def sent(world: tuple[Gateway, ManualClock, RecordingTransport]) -> RecordingTransport:
    """The transport of ``world``: ``.sent`` lists what the dispatcher handed over."""
    return world[2]


Deliver = Callable[[bytes], Outcome | str]


@pytest.fixture(params=["pipeline", "smtp"])
def deliver(request: pytest.FixtureRequest, gateway: Gateway) -> Iterator[Callable[..., object]]:
    """Hand a raw mail to Mailgate in-process, or through the real SMTP listener.

    Returns a function ``deliver(raw, mail_from=..., rcpt=...)``; the conversation tests
    run once each way (Salmon's RouterConversation / TestConversation pair)."""
    if request.param == "pipeline":

        def in_process(
            raw: bytes,
            mail_from: str = "ana@magazin.ro",
            rcpt: tuple[str, ...] = ("support@localhost",),
        ) -> object:
            return gateway.pipeline.process(
                Arrival(raw, Envelope(mail_from, rcpt), Source("pipe"), gateway.clock())
            )

        yield in_process
        return
    with running_listener(gateway) as (host, port):

        def over_smtp(
            raw: bytes,
            mail_from: str = "ana@magazin.ro",
            rcpt: tuple[str, ...] = ("support@localhost",),
        ) -> object:
            with smtplib.SMTP(host, port, timeout=30) as client:
                client.sendmail(mail_from, list(rcpt), raw)
            return "250"

        yield over_smtp


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """A private Dovecot on 127.0.0.1 for this test session (one per xdist worker).

    Skipped when ``/usr/sbin/dovecot`` is missing, unless ``MAILGATE_REQUIRE_DOVECOT=1``
    (set by .ci/run), which turns the skip into a failure. See ``dovecot.py``."""
    if not DOVECOT.exists():
        message = f"{DOVECOT} missing: apt-get install dovecot-imapd (scripts/setup --test)"
        if os.environ.get("MAILGATE_REQUIRE_DOVECOT") == "1":
            pytest.fail(message)
        pytest.skip(message)
    certificate = make_certificate(tmp_path_factory.mktemp("dovecot-tls"))
    server = Dovecot(certificate.certfile, certificate.keyfile).start()
    yield server
    server.remove()


@pytest.fixture
def imap_account(dovecot: Dovecot) -> ImapAccount:
    """A fresh user on the private Dovecot: an empty INBOX and an empty ``Processed``."""
    return dovecot.add_account()
