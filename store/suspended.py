"""Suspended mails: accepted and kept, but not (yet) a ticket message.

Agents list them, release them (the mail then goes through the pipeline again, without
the screen that stopped it) or delete them (hidden from the list; the raw mail stays).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from store.enums import SuspendedState
from store.errors import InvalidInput, RecordNotFound
from store.models import RawMail, SuspendedMail


def list_suspended(
    session: Session,
    *,
    state: str | None = SuspendedState.SUSPENDED.value,
    reason: str | None = None,
    limit: int = 100,
) -> list[SuspendedMail]:
    stmt = select(SuspendedMail)
    if state:
        stmt = stmt.where(SuspendedMail.state == state)
    if reason:
        stmt = stmt.where(SuspendedMail.reason == reason)
    return list(session.exec(stmt.order_by(col(SuspendedMail.id).desc()).limit(limit)))


def get_suspended(session: Session, suspended_id: int) -> tuple[SuspendedMail, RawMail]:
    row = session.get(SuspendedMail, suspended_id)
    if row is None:
        raise RecordNotFound(f"no suspended mail {suspended_id}")
    raw = session.get(RawMail, row.raw_id)
    assert raw is not None
    return row, raw


def mark_released(session: Session, suspended_id: int, *, actor: str, now: datetime) -> RawMail:
    """Mark released and free the delivery's dedupe key so the mail can be taken again."""
    row, raw = get_suspended(session, suspended_id)
    if row.state != SuspendedState.SUSPENDED.value:
        raise InvalidInput(f"suspended mail {suspended_id} is already {row.state}")
    row.state = SuspendedState.RELEASED.value
    row.resolved_at = now
    row.resolved_by = actor
    raw.dedupe_key = None
    session.add(row)
    session.add(raw)
    session.flush()
    return raw


def mark_deleted(session: Session, suspended_id: int, *, actor: str, now: datetime) -> None:
    row, _ = get_suspended(session, suspended_id)
    if row.state != SuspendedState.SUSPENDED.value:
        raise InvalidInput(f"suspended mail {suspended_id} is already {row.state}")
    row.state = SuspendedState.DELETED.value
    row.resolved_at = now
    row.resolved_by = actor
    session.add(row)
