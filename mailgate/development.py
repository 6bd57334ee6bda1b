"""Development requests as the merchant sees them: the budget mailed for approval, the
answer confirmed, the deadline announced.

The steps and their rules are ``store/development.py``; this module adds the mails, in
the caller's transaction (the CLI's, or the pipeline's for a merchant's answer by mail).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session

from mailgate.notifications import Notifier
from store import development
from store.development import Budget
from store.enums import BudgetState
from store.models import Ticket
from store.sla import SlaPolicy

CURRENCY = "EUR"  # shop rates are EUR per hour (``shops add --rate``)


@dataclass(frozen=True, slots=True)
class DevelopmentActions:
    notifier: Notifier
    sla: SlaPolicy

    def propose_budget(
        self, session: Session, ticket_id: int, hours: float, *, agent: str, now: datetime
    ) -> Budget:
        """Mail the merchant hours x the shop's rate for approval; the ticket waits."""
        ticket, budget = development.propose_budget(
            session, ticket_id, hours, actor=agent, now=now, sla=self.sla
        )
        self.notifier.to_merchants(
            session, ticket, "budget_proposal", now=now, extra=_money(budget)
        )
        return budget

    def answer_budget(
        self, session: Session, ticket: Ticket, approved: bool, *, actor: str, now: datetime
    ) -> bool:
        """Apply the merchant's approval or rejection; False when no budget awaits one."""
        budget = development.budget_of(ticket)
        if budget is None or ticket.budget_state != BudgetState.PROPOSED.value:
            return False
        development.decide_budget(session, ticket, approved, actor=actor, now=now, sla=self.sla)
        self.notifier.to_merchants(
            session,
            ticket,
            "budget_decided",
            now=now,
            extra={**_money(budget), "approved": approved},
        )
        return True

    def set_deadline(
        self, session: Session, ticket_id: int, day: date, *, agent: str, now: datetime
    ) -> Ticket:
        """Promise delivery by ``day`` and tell the merchant."""
        ticket = development.set_deadline(
            session, ticket_id, day, actor=agent, now=now, sla=self.sla
        )
        self.notifier.to_merchants(
            session, ticket, "deadline_set", now=now, extra={"deadline": day.isoformat()}
        )
        return ticket


def _money(budget: Budget) -> dict[str, str]:
    return {
        "hours": f"{budget.hours:g}",
        "rate": f"{budget.rate:.2f}",
        "amount": f"{budget.amount:.2f}",
        "currency": CURRENCY,
    }
