"""Stage 7, interpret: what the mail asks for — agent commands, triage, confidentiality.

Commands are honoured only from a verified agent; anyone else's ``#`` lines stay text,
except a merchant's own few (``#solved``, ``#approve``, ``#reject`` and their one-word
replies, read by ``mailgate/merchant_intent.py``). Confidential requests
(``mailgate.confidential``) are looked for in merchants' mail only: an agent writing about
a password is answering, not asking.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailgate.commands import AGENT_COMMANDS, CommandBlock, check_commands, extract_commands
from mailgate.confidential import ConfidentialRules, detect_confidential
from mailgate.merchant_intent import MerchantPhrases, default_phrases, merchant_commands
from mailgate.triage import TriageRules, triage
from mailgate.values import Command, Instructions, ParsedMail, Sender, SenderKind, Triage


@dataclass(frozen=True, slots=True)
class Reading:
    """What a mail's words say, whoever sent it. It needs no store, so the prepare half
    reads it (``mailgate.preparer``), off the writer's thread; ``interpret`` then keeps
    what the sender may ask for."""

    triage: Triage
    agent_commands: CommandBlock  # the leading ``#`` lines, honoured from an agent only
    agent_errors: tuple[str, ...]  # those of them that could not be read
    secret: str | None  # the confidential rule that matched (merchants' mail only)
    merchant_commands: tuple[Command, ...]


@dataclass(frozen=True, slots=True)
class WordReader:
    """The rules a ``Reading`` is made with."""

    rules: TriageRules
    confidential_rules: ConfidentialRules | None = None
    phrases: MerchantPhrases | None = None

    def read(self, mail: ParsedMail) -> Reading:
        text = mail.reply_text or mail.body_text
        block = extract_commands(mail.reply_text)
        return Reading(
            triage=triage(mail.subject, text, self.rules),
            agent_commands=block,
            agent_errors=check_commands(block.commands, AGENT_COMMANDS) if block.commands else (),
            secret=detect_confidential(
                mail.subject, text, self.confidential_rules or ConfidentialRules.load()
            ),
            merchant_commands=merchant_commands(mail.reply_text, self.phrases or default_phrases()),
        )


def interpret(
    mail: ParsedMail,
    sender: Sender,
    rules: TriageRules,
    confidential_rules: ConfidentialRules | None = None,
    phrases: MerchantPhrases | None = None,
) -> Instructions:
    """Read ``mail`` and keep what ``sender`` may ask for (``instructions_for``)."""
    reading = WordReader(rules, confidential_rules, phrases).read(mail)
    return instructions_for(reading, mail, sender)


def instructions_for(reading: Reading, mail: ParsedMail, sender: Sender) -> Instructions:
    """What ``mail``, read as ``reading``, asks for, coming from ``sender``."""
    block = reading.agent_commands
    if sender.kind is SenderKind.AGENT and sender.verified and block.commands:
        return Instructions(
            commands=block.commands,
            body_text=block.text,
            reply_text=block.text,
            triage=reading.triage,
            errors=reading.agent_errors,
        )
    secret = None
    merchant: tuple[Command, ...] = ()
    if sender.kind is not SenderKind.AGENT:  # an unauthenticated agent commands nothing
        secret = reading.secret
        merchant = reading.merchant_commands
    return Instructions(
        commands=merchant,
        body_text=mail.body_text,
        reply_text=mail.reply_text,
        triage=reading.triage,
        confidential=secret is not None,
        confidential_reason=secret or "",
    )
