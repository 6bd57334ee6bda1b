"""``mailgate parse``: run the reading stages on a mail and say what they found, storing
nothing. The fields are the ones the pipeline records, so what a user sees here is what
the pipeline used.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import Any

from mailgate.attachments import assess_attachments
from mailgate.auth import authenticate
from mailgate.config import Settings
from mailgate.language import choose_language
from mailgate.parse import parse_mail
from mailgate.screen import OwnMail, screen
from mailgate.triage import TriageRules, triage
from mailgate.values import Envelope


def explain_mail(raw: bytes, settings: Settings) -> dict[str, Any]:
    mail = parse_mail(raw)
    from_address = parseaddr(settings.outbound.from_)[1].lower()
    own = OwnMail(
        addresses=tuple(
            dict.fromkeys((*(a.lower() for a in settings.smtp.addresses), from_address))
        ),
        message_id_domain=settings.outbound.message_id_domain or from_address.rpartition("@")[2],
    )
    screened = screen(mail, Envelope(), own)
    auth = authenticate(raw, mail, settings.auth)
    language = choose_language(
        shop_locale=None,  # the sender's shop is not looked up: parse reads no store
        content_language=mail.content_language,
        subject=mail.subject,
        text=mail.reply_text or mail.body_text,
    )
    suggestion = triage(mail.subject, mail.reply_text or mail.body_text, TriageRules.load())
    return {
        "from_address": mail.from_address,
        "from_name": mail.from_name,
        "to": list(mail.to),
        "cc": list(mail.cc),
        "subject": mail.subject,
        "date": mail.date.isoformat() if mail.date else None,
        "message_id": mail.message_id,
        "in_reply_to": list(mail.in_reply_to),
        "references": list(mail.references),
        "body_text": mail.body_text,
        "reply_text": mail.reply_text,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "inline": a.inline,
                "status": a.status.value,  # what the pipeline would do under these limits
                "detected_type": a.detected_type,
            }
            for a in assess_attachments(mail.attachments, settings.attachments)
        ],
        "screen": {"verdict": screened.verdict.value, "reason": screened.reason},
        "auth": {
            "verified_domain": auth.verified_domain,
            "dkim": auth.dkim,
            "dmarc": auth.dmarc,
            "source": auth.source,
            "reason": auth.reason,
        },
        "language": {"code": language.language, "source": language.source},
        "triage": {
            "type": suggestion.type,
            "sector": suggestion.sector,
            "priority": suggestion.priority,
            "reasons": list(suggestion.reasons),
        },
        "defects": list(mail.defects),
    }
