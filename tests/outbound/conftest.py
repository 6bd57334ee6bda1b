"""Fixtures for the outbound tests: real SMTP relays on loopback, a certificate, a clock.

The helpers behind them (handler, controller, certificate maker) are in
``outbound_support.py``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from outbound_support import (
    Certificate,
    Clock,
    LoopbackController,
    Relay,
    RelayFactory,
    RelayHandler,
    make_certificate,
)


@pytest.fixture
def start_relay() -> Iterator[RelayFactory]:
    """Starts real SMTP relays on 127.0.0.1 (port 0 unless given); stops them at the end."""
    started: list[LoopbackController] = []

    def start(*, port: int = 0, handler: RelayHandler | None = None, **smtp_kwargs: Any) -> Relay:
        handler = handler or RelayHandler()
        controller = LoopbackController(
            handler, hostname="127.0.0.1", port=port, ready_timeout=10, **smtp_kwargs
        )
        controller.start()
        started.append(controller)
        return Relay(handler, controller)

    yield start
    for controller in started:
        if controller._thread is not None:
            controller.stop()


@pytest.fixture
def free_port() -> int:
    """A port on 127.0.0.1 where nobody listens (yet): a relay that is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost, made for this run."""
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def clock() -> Clock:
    """A hand-moved clock starting on Black Friday 2025, 09:00 UTC."""
    return Clock()
