"""How a ticket's status may change: the one transition table, enforced in one place.

Every change goes through ``change_status``, which checks the table, fills the time
stamps (solved, closed, status since), and writes the audit event. ``closed`` is final: a
reply to a closed ticket becomes a follow-up ticket (decided by the threading stage, not
here). The SLA clock follows the status: callers settle it afterwards (``store.sla.settle``).
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session

from store.durations import clear_resolution, solved
from store.enums import StandbyReason, Status
from store.errors import IllegalTransition, InvalidInput
from store.models import Ticket
from store.tickets import audit

ALLOWED: dict[Status, frozenset[Status]] = {
    Status.NEW: frozenset(
        {Status.OPEN, Status.PENDING, Status.ON_HOLD, Status.SOLVED, Status.CLOSED}
    ),
    Status.OPEN: frozenset({Status.PENDING, Status.ON_HOLD, Status.SOLVED, Status.CLOSED}),
    Status.PENDING: frozenset({Status.OPEN, Status.ON_HOLD, Status.SOLVED, Status.CLOSED}),
    Status.ON_HOLD: frozenset({Status.OPEN, Status.PENDING, Status.SOLVED, Status.CLOSED}),
    Status.SOLVED: frozenset({Status.OPEN, Status.CLOSED}),
    Status.CLOSED: frozenset(),
}

# A merchant's reply sets these back to open (DESIGN.md); on_hold waits for its reason.
REOPENED_BY_MERCHANT = frozenset({Status.PENDING, Status.SOLVED})


def parse_status(value: str) -> Status:
    try:
        return Status(value.strip().lower().replace("-", "_"))
    except ValueError:
        names = ", ".join(s.value for s in Status)
        raise InvalidInput(f"unknown status {value!r} (one of: {names})") from None


def parse_standby_reason(value: str) -> StandbyReason:
    try:
        return StandbyReason(value.strip().lower().replace("-", "_"))
    except ValueError:
        names = ", ".join(r.value for r in StandbyReason)
        raise InvalidInput(f"unknown stand-by reason {value!r} (one of: {names})") from None


def change_status(
    session: Session,
    ticket: Ticket,
    target: Status,
    *,
    actor: str,
    now: datetime,
    reason: StandbyReason | None = None,
) -> bool:
    """Move ``ticket`` to ``target``; returns False when it already is there.

    Raises ``IllegalTransition`` for a move the table forbids, or ``on_hold`` without reason.
    """
    assert ticket.id is not None
    current = Status(ticket.status)
    if current is target and (
        target is not Status.ON_HOLD or reason is None or reason.value == ticket.standby_reason
    ):
        return False
    if current is not target and target not in ALLOWED[current]:
        why = (
            "closed tickets are final; a reply opens a follow-up"
            if current is Status.CLOSED
            else ""
        )
        raise IllegalTransition(ticket.id, current.value, target.value, why)
    if target is Status.ON_HOLD and reason is None:
        raise IllegalTransition(ticket.id, current.value, target.value, "on_hold needs a reason")
    old_reason = ticket.standby_reason
    ticket.status = target.value
    ticket.standby_reason = reason.value if target is Status.ON_HOLD and reason else None
    ticket.updated_at = now
    ticket.status_since = now
    if target is Status.ON_HOLD:
        ticket.standby_reminded_at = None  # a new stand-by: reminders count from now
    if target is Status.SOLVED:
        solved(ticket, now)  # solved_at and the wall-clock resolution (store/durations.py)
    elif target is Status.CLOSED:
        ticket.closed_at = now
    elif target is Status.OPEN:
        ticket.solved_at = None
        clear_resolution(ticket)
    session.add(ticket)
    detail = f"reason: {ticket.standby_reason}" if ticket.standby_reason else ""
    if current is target:
        detail = f"reason: {old_reason} -> {ticket.standby_reason}"
    audit(
        session,
        ticket.id,
        actor=actor,
        action="status",
        now=now,
        field_name="status",
        old=current.value,
        new=target.value,
        detail=detail,
    )
    return True
