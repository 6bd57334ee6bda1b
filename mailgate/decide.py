"""The decision: from the stage results to one ``Disposition`` — what ``apply`` will do.

Pure and total: every combination of inputs maps to exactly one disposition, and the
mapping reads top to bottom like the product rules in DESIGN.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailgate.values import (
    Instructions,
    ScreenResult,
    Sender,
    SenderKind,
    ThreadDecision,
)


@dataclass(frozen=True, slots=True)
class NewTicket:
    """Open a ticket (a follow-up when ``thread.follow_up_of`` is set)."""

    thread: ThreadDecision


@dataclass(frozen=True, slots=True)
class Reply:
    """A requester or other participant writes into an existing ticket."""

    ticket_id: int
    thread: ThreadDecision


@dataclass(frozen=True, slots=True)
class AgentReply:
    """A verified agent answers from their mail client: commands, then a relay or a note."""

    ticket_id: int
    thread: ThreadDecision


@dataclass(frozen=True, slots=True)
class Suspend:
    """Keep the mail, but not as a ticket message (listed by ``suspended list``)."""

    reason: str
    detail: str
    ticket_id: int | None = None


Disposition = NewTicket | Reply | AgentReply | Suspend


def decide(
    screened: ScreenResult, sender: Sender, thread: ThreadDecision, instructions: Instructions
) -> Disposition:
    if not screened.is_ok:
        return Suspend(screened.verdict.value, screened.reason)
    if sender.address is None:
        return Suspend("unusable_sender", "no readable From address to answer to")
    if thread.ticket_id is not None:
        if sender.kind is SenderKind.AGENT and sender.verified:
            return AgentReply(thread.ticket_id, thread)
        return Reply(thread.ticket_id, thread)
    return NewTicket(thread)
