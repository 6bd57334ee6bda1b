"""Mail to agents, so they can work the queue from their own mail client.

Agents subscribed to a ticket's sector (and its assignee) hear of each new ticket and each
merchant reply; SLA breaches go to the assignee, else to the sector's agents; an agent
whose mail could not be applied gets the reason back. Every mail carries ``Reply-To:
support+ID@…``, so an answer from the agent's mail client threads back into the ticket
(stage 6) and is relayed to the merchant from the support address (stage 8). Agent mail
is rendered in English, whatever the merchant's language.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel import Session

from mailgate.notifications import Notifier
from store.development import budget_of
from store.directory import sector_agents
from store.lookups import active_agents
from store.models import Ticket
from store.sla import Phase
from store.tickets import thread_ids

AGENT_LANGUAGE = "en"
# The templates of these mails exist in templates/en/ only (with the _agent_*.inc.j2 pieces
# they include): agents share the platform's language, merchants' languages do not apply.
AGENT_KINDS = (
    "agent_new_ticket",
    "agent_merchant_reply",
    "agent_sla_breach",
    "agent_command_error",
)


@dataclass(frozen=True, slots=True)
class AgentNotices:
    notifier: Notifier
    timezone: str = "UTC"

    def new_ticket(self, session: Session, ticket: Ticket, text: str, *, now: datetime) -> int:
        """Tell the sector's agents about a new ticket; returns how many mails were queued."""
        return self._to_each(
            session, ticket, "agent_new_ticket", self._watchers(session, ticket), now=now, text=text
        )

    def merchant_reply(
        self, session: Session, ticket: Ticket, text: str, *, event: str, now: datetime
    ) -> int:
        """Tell the sector's agents what the merchant wrote (``event``: reply, solved,
        approved, rejected)."""
        return self._to_each(
            session,
            ticket,
            "agent_merchant_reply",
            self._watchers(session, ticket),
            now=now,
            text=text,
            event=event,
        )

    def sla_breach(self, session: Session, ticket: Ticket, phase: Phase, *, now: datetime) -> int:
        """Warn the assignee, or the sector's agents when nobody (or no active agent) is
        assigned."""
        assignee = _active_assignee(session, ticket)
        agents = (assignee,) if assignee else sector_agents(session, ticket.sector)
        return self._to_each(
            session, ticket, "agent_sla_breach", agents, now=now, text="", phase=phase.value
        )

    def command_error(
        self,
        session: Session,
        ticket: Ticket,
        agent: str,
        errors: tuple[str, ...],
        *,
        now: datetime,
    ) -> int:
        """Tell ``agent`` why their mail was kept as a note instead of being relayed."""
        return self._to_each(
            session, ticket, "agent_command_error", (agent,), now=now, text="", errors=errors
        )

    # --- helpers ----------------------------------------------------------------------
    def _watchers(self, session: Session, ticket: Ticket) -> tuple[str, ...]:
        agents = sector_agents(session, ticket.sector)
        if assignee := _active_assignee(session, ticket):
            agents = (*agents, assignee)
        return tuple(dict.fromkeys(agents))

    def _to_each(
        self,
        session: Session,
        ticket: Ticket,
        kind: str,
        agents: tuple[str, ...],
        *,
        now: datetime,
        text: str,
        **extra: Any,
    ) -> int:
        assert ticket.id is not None
        if not agents:
            return 0
        in_reply_to, references = thread_ids(session, ticket.id)
        reply_address = self._reply_address(ticket.id)
        context = {
            "message": text.strip(),
            "due": self._local(ticket.due_at),
            "reply_address": reply_address,
            "details": self._details(ticket),
            **extra,
        }
        budget = budget_of(ticket)
        if budget is not None:
            context.update(amount=f"{budget.amount:.2f}", currency="EUR")
        sent = 0
        # One mail per agent: each can answer on their own, and no agent list is exposed.
        for agent in agents:
            rendered = self.notifier.enqueue(
                session,
                ticket,
                kind,
                to=(agent,),
                now=now,
                extra=context,
                in_reply_to=in_reply_to,
                references=references,
                reply_to=reply_address,
                language=AGENT_LANGUAGE,
            )
            sent += rendered is not None
        return sent

    def _reply_address(self, ticket_id: int) -> str:
        ours = self.notifier.ours
        base = self.notifier.from_address if ours.is_ours(self.notifier.from_address) else None
        local, _, domain = (base or ours.addresses[0]).partition("@")
        return f"{local}+{ticket_id}@{domain}"

    def _details(self, ticket: Ticket) -> dict[str, Any]:
        return {
            "verified": ticket.verified,
            "assignee": ticket.assignee or "",
            "suggested_sector": ticket.suggested_sector
            if ticket.suggested_sector and ticket.suggested_sector != ticket.sector
            else "",
        }

    def _local(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        return moment.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m-%d %H:%M %Z")


def _active_assignee(session: Session, ticket: Ticket) -> str | None:
    """The ticket's assignee if an active agent: an agent who has left, or an address
    that never was an agent's, is sent nothing about the ticket."""
    assignee = ticket.assignee
    return assignee if assignee and assignee in active_agents(session) else None
