"""Stage 8, apply: carry out a ``Disposition`` — the only stage that writes.

Everything for one mail happens in the caller's transaction: the raw-mail record, the
ticket or message (or the suspension), audit events and notifications. Either all of it
is committed or none of it, which is what lets the listener answer 250 only afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session

from mailgate.actions import AgentActions, TicketChanges
from mailgate.attachments import has_too_large, too_large_context
from mailgate.config import AttachmentSettings
from mailgate.decide import AgentReply, Disposition, NewTicket, Reply, Suspend
from mailgate.delivery_failures import find_returned_mail, record_delivery_failure
from mailgate.errors import IdentityNotConfirmed
from mailgate.header_values import without_controls
from mailgate.holds import CONFIRM_IDENTITY_COMMAND
from mailgate.language import Detected, choose_language
from mailgate.notifications import Notifier
from mailgate.threader import TICKET_TAG
from mailgate.trust import TrustKeeper
from mailgate.values import (
    Arrival,
    AuthResult,
    Command,
    Instructions,
    ParsedMail,
    ScreenResult,
    Sender,
    SenderKind,
    ThreadDecision,
    Verdict,
)
from mailgate.workflow import Workflow
from store.enums import Direction, ParticipantRole, RawOutcome
from store.errors import IllegalTransition, InvalidInput
from store.models import Ticket
from store.participants import participant_emails
from store.plain import savepoint
from store.raw import BlobRef
from store.tickets import (
    NewAttachment,
    NewMessage,
    NewRaw,
    add_participant,
    audit,
    open_ticket,
    record_raw,
    record_raw_with_message,
    suspend,
    thread_ids,
)
from store.tickets import NewTicket as NewTicketValues  # the disposition has the short name
from store.timelog import log_time

HEADERS_OF_RECORD = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Auto-Submitted",
    "Precedence",
    "Content-Language",
    "User-Agent",
    "X-Mailer",
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one accepted mail."""

    kind: str  # "ticket_created" | "message_added" | "suspended" | "duplicate"
    raw_id: int
    ticket_id: int | None = None
    message_id: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MailFacts:
    """Everything the earlier stages found out about one mail."""

    arrival: Arrival
    raw: BlobRef
    mail: ParsedMail
    attachments: tuple[NewAttachment, ...]
    dedupe_key: str
    screened: ScreenResult
    auth: AuthResult
    sender: Sender
    thread: ThreadDecision
    instructions: Instructions
    flags: tuple[str, ...] = field(default_factory=tuple)
    detected: Detected | None = None  # the language found in prepare (None: not looked)


@dataclass(frozen=True, slots=True)
class Applier:
    notifier: Notifier
    actions: AgentActions
    default_sector: str
    workflow: Workflow
    attachment_limits: AttachmentSettings = field(default_factory=AttachmentSettings)
    trust: TrustKeeper | None = None
    copied_per_ticket: int = 48  # ``[limits] copied_per_ticket``

    def apply(
        self,
        session: Session,
        disposition: Disposition,
        facts: MailFacts,
        now: datetime,
        shop_locale: str | None,
    ) -> Outcome:
        match disposition:
            case Suspend(reason, detail, ticket_id):
                return self._suspend(session, facts, Suspend(reason, detail, ticket_id), now)
            case NewTicket(thread):
                return self._new_ticket(session, facts, thread, now, shop_locale)
            case Reply(ticket_id, thread):
                return self._reply(session, facts, ticket_id, thread, now)
            case AgentReply(ticket_id, thread):
                return self._agent_reply(session, facts, ticket_id, thread, now)
        raise AssertionError(f"unknown disposition {disposition!r}")

    # --- the four outcomes ----------------------------------------------------------
    def _suspend(self, session: Session, facts: MailFacts, held: Suspend, now: datetime) -> Outcome:
        reason, detail, ticket_id = held.reason, held.detail, held.ticket_id
        returned = None
        if reason == Verdict.BOUNCE.value and ticket_id is None:
            # One of our own mails came back: the bounce belongs to that mail's ticket.
            returned = find_returned_mail(session, facts.mail, self.notifier.composer)
            ticket_id = returned.ticket_id if returned is not None else None
        raw_id = record_raw(session, _raw_of(facts), RawOutcome.SUSPENDED, ticket_id=ticket_id)
        row = suspend(
            session,
            raw_id=raw_id,
            reason=reason,
            detail=detail,
            from_address=facts.mail.from_address,
            subject=facts.mail.subject,
            now=now,
            ticket_id=ticket_id,
        )
        if returned is not None:
            assert row.id is not None
            record_delivery_failure(session, returned, reason=detail, suspended_id=row.id, now=now)
        if returned is not None and self.trust is not None:
            self.trust.after_bounce(session, returned, detail, raw_id, now)
        return Outcome("suspended", raw_id, ticket_id, reason=reason)

    def _new_ticket(
        self,
        session: Session,
        facts: MailFacts,
        thread: ThreadDecision,
        now: datetime,
        shop_locale: str | None,
    ) -> Outcome:
        mail, sender, triage = facts.mail, facts.sender, facts.instructions.triage
        assert sender.address is not None
        language = choose_language(
            shop_locale=shop_locale,
            content_language=mail.content_language,
            subject=mail.subject,
            text=mail.reply_text or mail.body_text,
            detected=facts.detected,
        )
        ticket = open_ticket(
            session,
            NewTicketValues(
                subject=subject_for_new_ticket(mail.subject),
                requester=sender.address,
                requester_name=sender.name,
                shop_id=sender.shop_id,
                verified=sender.verified,
                verified_by=sender.verified_by,
                confidential=facts.instructions.confidential,
                type=triage.type or "question",
                # Every new ticket waits in the triage queue; the rules only suggest a sector.
                sector=self.default_sector,
                suggested_sector=triage.sector,
                priority=triage.priority or "normal",
                language=language.language,
                follow_up_of=thread.follow_up_of,
            ),
            actor=sender.address,
            now=now,
            notes=[
                ("gateway", "language", language.describe()),
                *([("triage", "triage", "; ".join(triage.reasons))] if triage.reasons else []),
            ],
            before_insert=lambda opened: self.workflow.start_clock(session, opened, now=now),
        )
        assert ticket.id is not None
        copied = self._add_copied(session, ticket, mail, now)
        inbound = inbound_message(facts, thread)
        raw_id, message_id = record_raw_with_message(
            session, _raw_of(facts), ticket, inbound, now=now
        )
        held = self.trust is not None and self.trust.after_new_ticket(
            session, ticket, facts, raw_id, now
        )
        if not held:  # a held request gets the identity notice instead (no echo of it)
            self.notifier.to_merchants(
                session,
                ticket,
                "ack",
                now=now,
                extra={
                    "follow_up_of": thread.follow_up_of,
                    "peak": self.workflow.is_peak(session),
                    **too_large_context(facts.attachments, self.attachment_limits),
                },
                # What the store would answer for a ticket whose only message is this one
                # (``_add_copied`` never adds the requester).
                merchants=(ticket.requester, tuple(copied)),
                thread=(inbound.message_id, (inbound.message_id,) if inbound.message_id else ()),
            )
        self.workflow.ticket_opened(session, ticket, mail.reply_text or mail.body_text, now=now)
        return Outcome("ticket_created", raw_id, ticket.id, message_id)

    def _reply(
        self,
        session: Session,
        facts: MailFacts,
        ticket_id: int,
        thread: ThreadDecision,
        now: datetime,
    ) -> Outcome:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None and ticket.id is not None
        sender = facts.sender
        raw_id, message_id = record_raw_with_message(
            session, _raw_of(facts), ticket, inbound_message(facts, thread), now=now
        )
        if sender.kind is not SenderKind.AGENT:
            # A colleague of the requester who writes in hears the answer too (as Zendesk
            # adds an end user who replies as a CC); only the shop's users may write in.
            self._add_copied(session, ticket, facts.mail, now, writer=sender.address)
            if has_too_large(facts.attachments):
                self._tell_attachments_too_large(session, ticket, facts, now)
            if self.trust is not None:
                self.trust.after_reply(session, ticket, facts, raw_id, now)
            self.workflow.merchant_wrote(
                session,
                ticket,
                facts.instructions.commands,
                facts.mail.reply_text or facts.mail.body_text,
                sender=sender.address or "",
                now=now,
                forged=facts.auth.dmarc == "fail",
            )
        return Outcome("message_added", raw_id, ticket.id, message_id)

    def _agent_reply(
        self,
        session: Session,
        facts: MailFacts,
        ticket_id: int,
        thread: ThreadDecision,
        now: datetime,
    ) -> Outcome:
        sender, instructions = facts.sender, facts.instructions
        assert sender.address is not None
        agent = sender.address
        raw_id = record_raw(session, _raw_of(facts), RawOutcome.MESSAGE, ticket_id=ticket_id)
        changes, wants_note = _changes_from(instructions.commands)
        evidence = thread.evidence
        errors = instructions.errors
        if not errors:
            try:
                # A refused command undoes the others and the relay: all or nothing.
                with savepoint(session):  # the rows held for the batch are written first
                    done = self.actions.update(
                        session,
                        ticket_id,
                        changes,
                        actor=agent,
                        now=now,
                        notify=not instructions.reply_text.strip() or wants_note,
                    )
                    _log_minutes(session, ticket_id, instructions.commands, agent, now)
                    text = instructions.reply_text.strip()
                    if wants_note or not text:
                        body = text or "Commands: " + "; ".join(done or ["(no change)"])
                        message_id = self.actions.note(
                            session,
                            ticket_id,
                            body,
                            agent=agent,
                            now=now,
                            raw_id=raw_id,
                            threaded_by=thread.by.value,
                            evidence=evidence,
                        )
                    else:
                        try:
                            message_id = self.actions.reply(
                                session,
                                ticket_id,
                                text,
                                agent=agent,
                                now=now,
                                raw_id=raw_id,
                                threaded_by=thread.by.value,
                                evidence=evidence,
                                confirm_identity=any(
                                    c.name == CONFIRM_IDENTITY_COMMAND
                                    for c in instructions.commands
                                ),
                            )
                        except IdentityNotConfirmed as refused:
                            # Kept for the agent, never relayed: the sender is not verified.
                            message_id = self.actions.note(
                                session,
                                ticket_id,
                                f"Not sent to the merchant: {refused}\n\n{text}",
                                agent=agent,
                                now=now,
                                raw_id=raw_id,
                                threaded_by=thread.by.value,
                                evidence=evidence,
                            )
                            return Outcome(
                                "message_added", raw_id, ticket_id, message_id, reason="held"
                            )
                return Outcome("message_added", raw_id, ticket_id, message_id)
            except (InvalidInput, IllegalTransition) as exc:
                errors = (str(exc),)
        # Bad commands are never relayed: keep the mail as a note, and tell the agent why.
        text = "Commands not understood: " + "; ".join(errors)
        message_id = self.actions.note(
            session,
            ticket_id,
            f"{text}\n\n{instructions.body_text}",
            agent=agent,
            now=now,
            raw_id=raw_id,
            threaded_by=thread.by.value,
            evidence=evidence,
        )
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        self.workflow.notices.command_error(session, ticket, agent, errors, now=now)
        return Outcome("message_added", raw_id, ticket_id, message_id, reason="bad_command")

    def _tell_attachments_too_large(
        self, session: Session, ticket: Ticket, facts: MailFacts, now: datetime
    ) -> None:
        # Told at once, and only the sender: they can send a link today instead of
        # waiting for an agent to ask for a file that never arrived.
        assert ticket.id is not None and facts.sender.address is not None
        in_reply_to, references = thread_ids(session, ticket.id)
        self.notifier.enqueue(
            session,
            ticket,
            "attachments_too_large",
            to=(facts.sender.address,),
            now=now,
            extra=too_large_context(facts.attachments, self.attachment_limits),
            in_reply_to=in_reply_to,
            references=references,
        )

    def _add_copied(
        self,
        session: Session,
        ticket: Ticket,
        mail: ParsedMail,
        now: datetime,
        *,
        writer: str | None = None,
    ) -> list[str]:
        """Add the mail's Cc addresses, and its ``writer`` (not ours, not the requester),
        to the ticket; returns those added.

        A ticket keeps at most ``copied_per_ticket`` of them (Zendesk: 48). Each is written
        to about the ticket from then on, so without a cap one mail with thousands of Cc
        addresses would have the acknowledgement sent to all of them. Those left out are
        counted in the ticket's history."""
        assert ticket.id is not None
        ours, requester = self.notifier.ours, ticket.requester.lower()
        wanted = [
            address
            for address in dict.fromkeys(a.lower() for a in (writer, *mail.cc) if a)
            if address != requester and not ours.is_ours(address)
        ]
        if not wanted:
            return []
        present = participant_emails(session, ticket.id, ParticipantRole.CC.value)
        new = [address for address in wanted if address not in present]
        room = max(0, self.copied_per_ticket - len(present))
        cc = ParticipantRole.CC
        added = [a for a in new[:room] if add_participant(session, ticket.id, a, cc)]
        if len(new) > room:
            left_out = new[room:]
            audit(
                session,
                ticket.id,
                actor="gateway",
                action="copied_limit",
                now=now,
                detail=f"{len(left_out)} copied addresses not added, a ticket keeps at most "
                f"{self.copied_per_ticket}: {', '.join(left_out[:3])}"
                + (", …" if len(left_out) > 3 else ""),
            )
        return added


def _log_minutes(
    session: Session, ticket_id: int, commands: tuple[Command, ...], agent: str, now: datetime
) -> None:
    for command in commands:
        if command.name == "time":
            log_time(session, ticket_id, int(command.args[0]), agent=agent, now=now)


def _changes_from(commands: tuple[Command, ...]) -> tuple[TicketChanges, bool]:
    values: dict[str, str | None] = {}
    wants_note = False
    for command in commands:
        if command.name == "note":
            wants_note = True
        elif command.name == "status":
            values["status"] = command.args[0]
            values["reason"] = command.args[1] if len(command.args) > 1 else None
        elif command.name in {"priority", "type", "sector", "assign"}:
            values["assignee" if command.name == "assign" else command.name] = command.args[0]
    return TicketChanges(**values), wants_note


def new_raw(arrival: Arrival, raw: BlobRef, message_id: str | None, dedupe_key: str) -> NewRaw:
    """The raw-mail record of one arrival (the envelope's addresses without control
    characters: a NUL from a pipe's arguments or an SMTP client would make PostgreSQL
    refuse the row)."""
    envelope = arrival.envelope
    return NewRaw(
        sha256=raw.sha256,
        size=raw.size,
        received_at=arrival.received_at,
        source=arrival.source.kind,
        mailbox=arrival.source.mailbox,
        mail_from=None if envelope.mail_from is None else without_controls(envelope.mail_from),
        rcpt_tos=tuple(without_controls(address) for address in envelope.rcpt_tos),
        message_id=message_id,
        dedupe_key=dedupe_key,
    )


def subject_for_new_ticket(subject: str) -> str:
    """The subject without other tickets' ``[#N]`` tags (a new ticket has its own number)."""
    cleaned = " ".join(TICKET_TAG.sub(" ", subject).split())
    return cleaned or "(no subject)"


def _raw_of(facts: MailFacts) -> NewRaw:
    return new_raw(facts.arrival, facts.raw, facts.mail.message_id, facts.dedupe_key)


def inbound_message(facts: MailFacts, thread: ThreadDecision) -> NewMessage:
    mail, auth = facts.mail, facts.auth
    first: dict[str, str] = {}  # one pass over the headers, not one per header of record
    for key, value in mail.headers:
        first.setdefault(key.lower(), value)
    headers = {name: first[name.lower()] for name in HEADERS_OF_RECORD if first.get(name.lower())}
    return NewMessage(
        direction=Direction.IN,
        body_text=mail.body_text,
        reply_text=mail.reply_text,
        message_id=mail.message_id,
        in_reply_to=mail.in_reply_to,
        references=mail.references,
        from_address=mail.from_address,
        from_name=mail.from_name,
        to=mail.to,
        cc=mail.cc,
        subject=mail.subject,
        date=mail.date,
        threaded_by=thread.by.value,
        thread_evidence=thread.evidence,
        screen_verdict=facts.screened.verdict.value,
        screen_reason=facts.screened.reason,
        auth_json=json.dumps(
            {
                "verified_domain": auth.verified_domain,
                "dkim": auth.dkim,
                "dmarc": auth.dmarc,
                "source": auth.source,
                "sender_verified": facts.sender.verified,
                "reason": auth.reason,
                "signatures": list(auth.signatures),
            }
        ),
        flags=facts.flags,
        headers_json=json.dumps(headers, ensure_ascii=False),
        attachments=facts.attachments,
    )
