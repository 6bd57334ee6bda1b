"""Stage 7, interpret: what the mail asks for — agent commands, triage, confidentiality.

Commands are honoured only from a verified agent; anyone else's ``#`` lines stay text,
except a merchant's own few (``#solved``, ``#approve``, ``#reject`` and their one-word
replies, read by ``mailgate/merchant_intent.py``). Confidential requests
(``mailgate.confidential``) are looked for in merchants' mail only: an agent writing about
a password is answering, not asking.
"""

from __future__ import annotations

from mailgate.commands import AGENT_COMMANDS, check_commands, extract_commands
from mailgate.confidential import ConfidentialRules, detect_confidential
from mailgate.merchant_intent import MerchantPhrases, default_phrases, merchant_commands
from mailgate.triage import TriageRules, triage
from mailgate.values import Command, Instructions, ParsedMail, Sender, SenderKind


def interpret(
    mail: ParsedMail,
    sender: Sender,
    rules: TriageRules,
    confidential_rules: ConfidentialRules | None = None,
    phrases: MerchantPhrases | None = None,
) -> Instructions:
    suggestion = triage(mail.subject, mail.reply_text or mail.body_text, rules)
    if sender.kind is SenderKind.AGENT and sender.verified:
        block = extract_commands(mail.reply_text)
        if block.commands:
            return Instructions(
                commands=block.commands,
                body_text=block.text,
                reply_text=block.text,
                triage=suggestion,
                errors=check_commands(block.commands, AGENT_COMMANDS),
            )
    secret = None
    merchant: tuple[Command, ...] = ()
    if sender.kind is not SenderKind.AGENT:  # an unauthenticated agent commands nothing
        text = mail.reply_text or mail.body_text
        secret = detect_confidential(
            mail.subject, text, confidential_rules or ConfidentialRules.load()
        )
        merchant = merchant_commands(mail.reply_text, phrases or default_phrases())
    return Instructions(
        commands=merchant,
        body_text=mail.body_text,
        reply_text=mail.reply_text,
        triage=suggestion,
        confidential=secret is not None,
        confidential_reason=secret or "",
    )
