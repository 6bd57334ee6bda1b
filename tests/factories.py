"""Build values for stage tests without going through MIME (the parser has its own tests)."""

from __future__ import annotations

from typing import Any

from mailgate.values import ParsedMail


def parsed_mail(**fields: Any) -> ParsedMail:
    """A ``ParsedMail`` with plain defaults; pass only the fields a test is about."""
    values: dict[str, Any] = {
        "message_id": "m1@shop.example",
        "from_address": "ana@shop.example",
        "from_name": "Ana",
        "to": ("support@localhost",),
        "cc": (),
        "reply_to": (),
        "subject": "Question",
        "date": None,
        "in_reply_to": (),
        "references": (),
        "body_text": "Hello",
        "reply_text": "Hello",
        "body_html": None,
        "attachments": (),
        "headers": (),
        "content_digest": "0" * 64,
    }
    values.update(fields)
    return ParsedMail(**values)
