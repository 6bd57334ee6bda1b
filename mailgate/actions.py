"""What agents do to tickets — reply, note, change fields — from the CLI or by mail.

One implementation for both ways in: the CLI calls these in a fresh transaction, the
pipeline's apply stage calls them inside the transaction of the agent's mail. Each
action writes the ticket change, its audit events and the merchant's notification
together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from mailgate.header_values import without_controls
from mailgate.holds import require_identity
from mailgate.notifications import Notifier
from store.directory import agent_named
from store.enums import Direction, ParticipantRole, Priority, Status, TicketType
from store.errors import InvalidInput, TicketNotFound
from store.lifecycle import change_status, parse_standby_reason, parse_status
from store.models import Ticket
from store.sla import SlaPolicy, settle
from store.tickets import NewMessage, add_message, add_participant, audit, set_field

# ``#assign none`` (``--assignee none``) leaves a ticket to its sector again.
UNASSIGNED = frozenset({"none", "nobody", "-"})
ASSIGNEE_LENGTH = 320  # the column's length: an address's longest

# Agent-made changes the merchant hears about; new → open is internal triage.
_NOTIFIED_STATUSES = frozenset({Status.PENDING, Status.ON_HOLD, Status.SOLVED, Status.CLOSED})


@dataclass(frozen=True, slots=True)
class TicketChanges:
    status: str | None = None
    reason: str | None = None
    type: str | None = None
    sector: str | None = None
    priority: str | None = None
    assignee: str | None = None


@dataclass(frozen=True, slots=True)
class AgentActions:
    notifier: Notifier
    sectors: tuple[str, ...]
    sla: SlaPolicy

    def reply(
        self,
        session: Session,
        ticket_id: int,
        text: str,
        *,
        agent: str,
        now: datetime,
        status: str | None = None,
        reason: str | None = None,
        raw_id: int | None = None,
        threaded_by: str = "agent",
        evidence: str = "",
        confirm_identity: bool = False,
    ) -> int:
        """Answer the merchant: an outgoing message and its mail, and an optional status;
        returns the message's id.

        Raises ``IdentityNotConfirmed`` for a held ticket (a confidential request from an
        unverified sender) unless ``confirm_identity``, which is audited.
        """
        ticket = _ticket(session, ticket_id)
        require_identity(session, ticket, agent=agent, confirmed=confirm_identity, now=now)
        text = without_controls(text)  # a NUL from a binary --file: PostgreSQL refuses it
        if not text.strip():
            raise InvalidInput("the reply is empty")
        if ticket.status == Status.CLOSED.value:
            raise InvalidInput(f"ticket #{ticket_id} is closed; a merchant reply opens a follow-up")
        add_participant(session, ticket_id, agent, ParticipantRole.AGENT)
        target = (
            parse_status(status)
            if status
            else (Status.OPEN if ticket.status == Status.NEW.value else None)
        )
        if target is not None:
            change_status(
                session,
                ticket,
                target,
                actor=agent,
                now=now,
                reason=parse_standby_reason(reason) if reason else None,
            )
        rendered = self.notifier.to_merchants(
            session,
            ticket,
            "agent_reply",
            now=now,
            auto_submitted=False,
            extra={"message": text.strip()},
        )
        if ticket.first_response_at is None:
            ticket.first_response_at = now
        settle(session, ticket, now, self.sla)  # first response and status move the clock
        message_id = add_message(
            session,
            ticket,
            NewMessage(
                direction=Direction.OUT,
                body_text=text.strip(),
                reply_text=text.strip(),
                message_id=rendered.message_id if rendered else None,
                from_address=self.notifier.from_address,
                subject=ticket.subject,
                to=rendered.recipients if rendered else (),
                date=now,
                author=agent,
                threaded_by=threaded_by,
                thread_evidence=evidence,
            ),
            raw_id=raw_id,
            now=now,
        )
        audit(
            session, ticket_id, actor=agent, action="reply", now=now, detail=f"message {message_id}"
        )
        return message_id

    def note(
        self,
        session: Session,
        ticket_id: int,
        text: str,
        *,
        agent: str,
        now: datetime,
        raw_id: int | None = None,
        threaded_by: str = "agent",
        evidence: str = "",
    ) -> int:
        """An internal note: stored on the ticket, never mailed to the merchant; returns
        the message's id."""
        ticket = _ticket(session, ticket_id)
        text = without_controls(text)
        if not text.strip():
            raise InvalidInput("the note is empty")
        message_id = add_message(
            session,
            ticket,
            NewMessage(
                direction=Direction.NOTE,
                body_text=text.strip(),
                reply_text=text.strip(),
                from_address=agent,
                author=agent,
                date=now,
                subject=ticket.subject,
                threaded_by=threaded_by,
                thread_evidence=evidence,
            ),
            raw_id=raw_id,
            now=now,
        )
        audit(
            session, ticket_id, actor=agent, action="note", now=now, detail=f"message {message_id}"
        )
        return message_id

    def update(
        self,
        session: Session,
        ticket_id: int,
        changes: TicketChanges,
        *,
        actor: str,
        now: datetime,
        notify: bool = True,
    ) -> list[str]:
        """Apply ``changes``; returns what changed, e.g. ``["status: open -> pending"]``."""
        ticket = _ticket(session, ticket_id)
        done: list[str] = []
        for name, value in (
            ("type", _checked(changes.type, {t.value for t in TicketType}, "type")),
            ("sector", _checked(changes.sector, set(self.sectors), "sector")),
            ("priority", _checked(changes.priority, {p.value for p in Priority}, "priority")),
        ):
            if value is not None:
                old = getattr(ticket, name)
                if set_field(session, ticket, name, value, actor=actor, now=now):
                    done.append(f"{name}: {old} -> {value}")
        if changes.assignee and changes.assignee.strip():
            assignee, remark = _assignee(session, changes.assignee)
            old = ticket.assignee
            if set_field(session, ticket, "assignee", assignee, actor=actor, now=now):
                done.append(f"assignee: {old} -> {assignee}{remark}")
        if changes.status or changes.reason:
            target = parse_status(changes.status) if changes.status else Status(ticket.status)
            reason = parse_standby_reason(changes.reason) if changes.reason else None
            old = ticket.status
            if change_status(session, ticket, target, actor=actor, now=now, reason=reason):
                done.append(f"status: {old} -> {target.value}")
                if notify and target in _NOTIFIED_STATUSES:
                    self.notifier.to_merchants(
                        session,
                        ticket,
                        "status_changed",
                        now=now,
                        extra={
                            "old_status": old,
                            "new_status": target.value,
                            "standby_reason": ticket.standby_reason,
                        },
                    )
        if done:
            settle(session, ticket, now, self.sla)
        return done


def _ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id)
    if ticket is None:
        raise TicketNotFound(ticket_id)
    return ticket


def _assignee(session: Session, who: str) -> tuple[str | None, str]:
    """Who ``who`` assigns a ticket to (None: nobody), and a remark for the changes made.

    A name or address of an active agent gives that agent's address: the assignee hears
    of the merchant's replies and of SLA breaches. Anything else is kept as written, but
    such an assignee is sent nothing (``AgentNotices``), and the remark says so."""
    wanted = without_controls(who).strip().lower()
    if wanted in UNASSIGNED:
        return None, ""
    if len(wanted) > ASSIGNEE_LENGTH:
        raise InvalidInput(f"an assignee is at most {ASSIGNEE_LENGTH} characters")
    agent = agent_named(session, wanted)
    if agent is not None:
        return agent, ""
    return wanted, " (not an active agent: sent no mail)"


def _checked(value: str | None, allowed: set[str], what: str) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if value not in allowed:
        raise InvalidInput(f"unknown {what} {value!r} (one of: {', '.join(sorted(allowed))})")
    return value
