"""Confirmation by mail: one-time tokens in a signed reply address (a real store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session

from mailgate.addresses import OurAddresses
from mailgate.confirmation import Confirmations
from store.db import Database
from store.tickets import NewTicket, open_ticket

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
OURS = OurAddresses.of(["support@example.com"])
CONFIRMATIONS = Confirmations(b"server secret", OURS, "support@example.com", timedelta(hours=72))
MARIA = "maria@nodkim.example"


@pytest.fixture
def session(sqlite_url: str) -> Iterator[Session]:
    """A session on a migrated SQLite store holding ticket #1."""
    db = Database(sqlite_url)
    db.upgrade()
    with db.write() as s:
        open_ticket(s, NewTicket("Cont bancar", MARIA), actor=MARIA, now=NOW)
        yield s
        s.rollback()
    db.dispose()


def test_a_token_confirms_its_ticket_once_and_only_from_its_address(session: Session) -> None:
    address = CONFIRMATIONS.issue(session, 1, MARIA, NOW)
    assert address is not None and address.startswith("support+confirm-1-")
    assert OURS.is_ours(address)
    assert CONFIRMATIONS.issue(session, 1, MARIA, NOW) is None  # one open at a time
    other = CONFIRMATIONS.redeem(session, (address,), "eve@evil.example", raw_id=None, now=NOW)
    assert other is not None and other.ticket_id is None and "not by maria" in other.detail
    done = CONFIRMATIONS.redeem(session, (address,), "MARIA@nodkim.example", raw_id=None, now=NOW)
    assert done is not None and done.ticket_id == 1
    again = CONFIRMATIONS.redeem(session, (address,), MARIA, raw_id=None, now=NOW)
    assert again is not None and again.ticket_id is None and "already used" in again.detail
    assert CONFIRMATIONS.issue(session, 1, MARIA, NOW) is not None  # a new request, a new one


def test_an_expired_token_confirms_nothing(session: Session) -> None:
    address = CONFIRMATIONS.issue(session, 1, MARIA, NOW)
    assert address is not None
    late = NOW + timedelta(hours=72)
    result = CONFIRMATIONS.redeem(session, (address,), MARIA, raw_id=None, now=late)
    assert result is not None and result.ticket_id is None and "expired" in result.detail


def test_a_token_with_a_wrong_mac_is_refused_before_the_store_is_asked(session: Session) -> None:
    address = CONFIRMATIONS.issue(session, 1, MARIA, NOW)
    assert address is not None
    local, domain = address.split("@")
    forged = local[:-16] + "0" * 16 + "@" + domain
    result = CONFIRMATIONS.redeem(session, (forged,), MARIA, raw_id=None, now=NOW)
    assert result is not None and result.ticket_id is None and "forged" in result.detail
    other_server = Confirmations(b"another secret", OURS, "support@example.com", timedelta(hours=1))
    result = other_server.redeem(session, (address,), MARIA, raw_id=None, now=NOW)
    assert result is not None and result.ticket_id is None


def test_mail_without_a_token_is_not_a_confirmation(session: Session) -> None:
    for recipients in (
        (),
        ("support@example.com",),
        ("support+1@example.com",),
        ("x+confirm-1-a-b@else.example",),
    ):
        assert CONFIRMATIONS.redeem(session, recipients, MARIA, raw_id=None, now=NOW) is None
