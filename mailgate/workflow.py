"""The workflow around the pipeline's writes: what a new ticket or a merchant's reply
sets in motion (the SLA clock, the agents' mail, a merchant marking their ticket solved
or answering a budget).

Used by the apply stage (stage 8) inside the mail's transaction; built once in
``app.py`` with the SLA policy, the agents' notices and the development actions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from mailgate.agent_notices import AgentNotices
from mailgate.development import DevelopmentActions
from mailgate.values import Command
from store.enums import Status
from store.lifecycle import ALLOWED, REOPENED_BY_MERCHANT, change_status
from store.models import Ticket
from store.sla import SlaPolicy, peak_mode, settle, settle_ticket
from store.tickets import audit


@dataclass(frozen=True, slots=True)
class Workflow:
    sla: SlaPolicy
    notices: AgentNotices
    development: DevelopmentActions

    def is_peak(self, session: Session) -> bool:
        """Peak mode (a sales campaign): acknowledgements say answers are slower."""
        return peak_mode(session)

    def start_clock(self, session: Session, ticket: Ticket, *, now: datetime) -> None:
        """Start the SLA clock of a ticket being opened, before its row is written: its
        deadline goes in with the row (one ``INSERT``, no ``UPDATE`` after it)."""
        settle_ticket(ticket, now, self.sla, peak=peak_mode(session))

    def ticket_opened(self, session: Session, ticket: Ticket, text: str, *, now: datetime) -> None:
        """Tell a new ticket's sector's agents (its clock was started by ``start_clock``)."""
        self.notices.new_ticket(session, ticket, text, now=now)

    def merchant_wrote(
        self,
        session: Session,
        ticket: Ticket,
        commands: tuple[Command, ...],
        text: str,
        *,
        sender: str,
        now: datetime,
        forged: bool = False,
    ) -> str:
        """Apply a merchant's reply to ``ticket``; returns what it was (``reply``,
        ``solved``, ``approved``, ``rejected``, ``refused``) after telling the sector's agents.

        "Solved" and budget answers take the place of the usual reopening of a pending or
        solved ticket: a merchant confirming the solution must not reopen it. A mail its
        From domain disowns (``forged``: DMARC fail) decides nothing: its commands are noted
        for the agents, who confirm with the merchant another way.
        """
        actor = f"merchant:{sender}"
        event = "reply"
        if forged and commands:
            names = ", ".join(f"#{command.name}" for command in commands)
            audit(
                session,
                ticket.id,
                actor=actor,
                action="merchant_command_refused",
                now=now,
                detail=f"{names} not applied: the mail fails DMARC for its From domain",
            )
            commands, event = (), "refused"
        for command in commands:
            if command.name == "solved" and _may_be_solved(ticket):
                change_status(session, ticket, Status.SOLVED, actor=actor, now=now)
                event = "solved"
            elif command.name in {"approve", "reject"}:
                approved = command.name == "approve"
                if self.development.answer_budget(session, ticket, approved, actor=actor, now=now):
                    event = "approved" if approved else "rejected"
        if event in {"reply", "refused"} and Status(ticket.status) in REOPENED_BY_MERCHANT:
            change_status(session, ticket, Status.OPEN, actor=actor, now=now)
        settle(session, ticket, now, self.sla)
        self.notices.merchant_reply(session, ticket, text, event=event, now=now)
        return event


def _may_be_solved(ticket: Ticket) -> bool:
    current = Status(ticket.status)
    return current is Status.SOLVED or Status.SOLVED in ALLOWED[current]
