"""Several gateways, one IMAP mailbox: one of them polls it at a time (its lock), and
another takes over when that one stops — on a real Dovecot, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from dovecot import ImapAccount
from mailgate_testing import raw_mail
from sqlmodel import select

from mailgate.app import Gateway
from mailgate.sources.imap import LOCK_RETRY_SECONDS, Backoff, ImapPoller, PollerHooks
from store.locks import LockKeeper
from store.models import Ticket


def _wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not done within {timeout} s"
        time.sleep(0.05)


def _subjects(gateway: Gateway) -> set[str]:
    with gateway.db.read() as session:
        return set(session.exec(select(Ticket.subject)))


@pytest.mark.slow
def test_one_gateway_polls_a_mailbox_and_another_takes_over(
    gateway: Gateway, imap_account: ImapAccount
) -> None:
    settings = imap_account.settings("shared", idle=False, poll_interval=0.2)
    fetched: dict[str, list[int]] = {"A": [], "B": []}
    keepers = {name: LockKeeper(gateway.db) for name in fetched}  # one per gateway
    stops = {name: threading.Event() for name in fetched}
    pollers = {
        name: ImapPoller(
            settings,
            gateway.pipeline,
            gateway.db,
            gateway.clock,
            hooks=PollerHooks(after_fetch=fetched[name].append),
            backoff=Backoff(base=0.05, cap=0.2),
            locks=keepers[name],
        )
        for name in fetched
    }
    threads = {
        name: threading.Thread(target=poller.run, args=(stops[name],), daemon=True)
        for name, poller in pollers.items()
    }
    try:
        threads["A"].start()
        _wait_until(lambda: keepers["A"].holds("imap:shared"), 10)
        threads["B"].start()
        for i in range(3):
            imap_account.append(raw_mail(subject=f"First {i}", message_id=f"<first{i}@m.ro>"))
        _wait_until(lambda: len(_subjects(gateway)) == 3, 20)
        assert len(fetched["A"]) == 3 and fetched["B"] == []  # B waited for the lock

        stops["A"].set()  # gateway A stops: its poller lets the mailbox go
        threads["A"].join(30)
        for i in range(2):
            imap_account.append(raw_mail(subject=f"Later {i}", message_id=f"<later{i}@m.ro>"))
        _wait_until(lambda: len(_subjects(gateway)) == 5, LOCK_RETRY_SECONDS + 20)
        assert len(fetched["A"]) == 3 and len(fetched["B"]) == 2
        assert keepers["B"].holds("imap:shared")
        assert imap_account.count() == 0 and imap_account.count("Processed") == 5
    finally:
        for name, stop in stops.items():
            stop.set()
            threads[name].join(30)
            keepers[name].close()
