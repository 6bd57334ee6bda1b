"""Development requests: a paid change goes analysis → budget → approved or rejected →
deadline → delivered.

The budget is hours x the shop's hourly rate, frozen on the ticket when it is proposed (a
later change of the rate does not change a budget the merchant already saw). The steps
move the ticket's status through the one transition table (``store/lifecycle.py``):
proposing waits for the merchant (``pending``), approval opens the ticket again, rejection
closes it, and a deadline puts it on hold with reason ``deadline_set`` until delivery
(``solved``). Each step writes its audit event and settles the SLA clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session

from store.enums import BudgetState, StandbyReason, Status, TicketType
from store.errors import InvalidInput, TicketNotFound
from store.lifecycle import change_status
from store.models import Shop, Ticket
from store.sla import SlaPolicy, settle
from store.tickets import audit

# Which budget step may follow which: the budget's own small table (the status table
# stays the only one for statuses). An approved budget may be replaced when the scope
# changes; a rejected one is final, like the ticket it closed.
BUDGET_MOVES: dict[BudgetState | None, frozenset[BudgetState]] = {
    None: frozenset({BudgetState.PROPOSED}),
    BudgetState.PROPOSED: frozenset(
        {BudgetState.PROPOSED, BudgetState.APPROVED, BudgetState.REJECTED}
    ),
    BudgetState.APPROVED: frozenset({BudgetState.PROPOSED}),
    BudgetState.REJECTED: frozenset(),
}
MAX_BUDGET_HOURS = 10_000.0


@dataclass(frozen=True, slots=True)
class Budget:
    hours: float
    rate: float

    @property
    def amount(self) -> float:
        return round(self.hours * self.rate, 2)


def budget_of(ticket: Ticket) -> Budget | None:
    if ticket.budget_hours is None or ticket.budget_rate is None:
        return None
    return Budget(ticket.budget_hours, ticket.budget_rate)


def propose_budget(
    session: Session, ticket_id: int, hours: float, *, actor: str, now: datetime, sla: SlaPolicy
) -> tuple[Ticket, Budget]:
    """Price a development request and wait for the merchant's answer (``pending``).

    Raises ``InvalidInput`` for a ticket that is not a development request, a shop without
    an hourly rate, or hours out of range; ``IllegalTransition`` from a solved ticket.
    """
    ticket = _ticket(session, ticket_id)
    if ticket.type != TicketType.DEVELOPMENT.value:
        raise InvalidInput(
            f"ticket #{ticket_id} is a {ticket.type}, not a development request "
            "(tickets set --type development first)"
        )
    if not 0 < hours <= MAX_BUDGET_HOURS:
        raise InvalidInput(f"hours must be more than 0 and at most {MAX_BUDGET_HOURS:g}")
    shop = session.get(Shop, ticket.shop_id) if ticket.shop_id is not None else None
    if shop is None:
        raise InvalidInput(f"ticket #{ticket_id} belongs to no shop: there is no rate to use")
    if shop.hourly_rate <= 0:
        raise InvalidInput(f"shop {shop.name!r} has no hourly rate (shops add --rate)")
    _move(ticket, BudgetState.PROPOSED)
    budget = Budget(hours, shop.hourly_rate)
    ticket.budget_hours, ticket.budget_rate = budget.hours, budget.rate
    ticket.deadline = None
    change_status(session, ticket, Status.PENDING, actor=actor, now=now)
    audit(
        session,
        ticket_id,
        actor=actor,
        action="budget",
        now=now,
        field_name="budget_state",
        new=BudgetState.PROPOSED.value,
        detail=f"{hours:g} h x {budget.rate:g}/h = {budget.amount:.2f}",
    )
    settle(session, ticket, now, sla)
    return ticket, budget


def decide_budget(
    session: Session, ticket: Ticket, approved: bool, *, actor: str, now: datetime, sla: SlaPolicy
) -> None:
    """The merchant's answer: approval opens the ticket again, rejection closes it.

    Raises ``InvalidInput`` when no budget is waiting for an answer.
    """
    if ticket.budget_state != BudgetState.PROPOSED.value:
        raise InvalidInput(f"ticket #{ticket.id} has no budget waiting for an answer")
    target = BudgetState.APPROVED if approved else BudgetState.REJECTED
    old = _move(ticket, target)
    change_status(session, ticket, Status.OPEN if approved else Status.CLOSED, actor=actor, now=now)
    audit(
        session,
        ticket.id,
        actor=actor,
        action="budget",
        now=now,
        field_name="budget_state",
        old=old,
        new=target.value,
    )
    settle(session, ticket, now, sla)


def set_deadline(
    session: Session, ticket_id: int, day: date, *, actor: str, now: datetime, sla: SlaPolicy
) -> Ticket:
    """Promise delivery by ``day``: the ticket waits on hold with reason ``deadline_set``.

    Raises ``InvalidInput`` before approval or for a day already past (in the calendar's
    time zone).
    """
    ticket = _ticket(session, ticket_id)
    if ticket.budget_state != BudgetState.APPROVED.value:
        raise InvalidInput(f"ticket #{ticket_id} has no approved budget; a deadline follows one")
    if day < sla.calendar.local_date(now):
        raise InvalidInput(f"the deadline {day.isoformat()} is in the past")
    old = ticket.deadline
    ticket.deadline = day
    change_status(
        session, ticket, Status.ON_HOLD, actor=actor, now=now, reason=StandbyReason.DEADLINE_SET
    )
    audit(
        session,
        ticket_id,
        actor=actor,
        action="deadline",
        now=now,
        field_name="deadline",
        old=old.isoformat() if old else None,
        new=day.isoformat(),
    )
    settle(session, ticket, now, sla)
    return ticket


def _move(ticket: Ticket, target: BudgetState) -> str | None:
    current = BudgetState(ticket.budget_state) if ticket.budget_state else None
    if target not in BUDGET_MOVES[current]:
        raise InvalidInput(
            f"ticket #{ticket.id}: the budget is {current.value if current else 'not set'}; "
            f"it cannot become {target.value}"
        )
    ticket.budget_state = target.value
    return current.value if current else None


def _ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketNotFound(ticket_id)
    return ticket
