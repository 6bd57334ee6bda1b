"""The values passed between pipeline stages: small, frozen, typed.

Each stage takes some of these and returns one; only ``apply`` writes. Reading a stage's
signature tells what it depends on (see ARCHITECTURE.md §2.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

SourceKind = Literal["smtp", "imap", "pipe", "import", "release"]


@dataclass(frozen=True, slots=True)
class Envelope:
    """The SMTP envelope (or what stands for it: a pipe's sender and recipient)."""

    mail_from: str | None = None
    rcpt_tos: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Source:
    kind: SourceKind
    mailbox: str | None = None


@dataclass(frozen=True, slots=True)
class Arrival:
    """What every way in hands to the pipeline: raw bytes plus the envelope."""

    raw: bytes
    envelope: Envelope
    source: Source
    received_at: datetime


@dataclass(frozen=True, slots=True)
class ParsedAttachment:
    filename: str  # already made safe: no path parts, no control characters, bounded
    content_type: str
    content: bytes
    content_id: str | None = None
    inline: bool = False

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True, slots=True)
class ParsedMail:
    """How Mailgate reads one mail. ``parse_*`` functions build it and never write."""

    message_id: str | None  # without angle brackets
    from_address: str | None  # lower-cased addr-spec, None when unusable
    from_name: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    reply_to: tuple[str, ...]
    subject: str
    date: datetime | None
    in_reply_to: tuple[str, ...]  # Message-IDs without brackets
    references: tuple[str, ...]
    body_text: str  # the whole text (from HTML when that is all there is)
    reply_text: str  # the new part only: no quoted text, no signature
    body_html: str | None
    attachments: tuple[ParsedAttachment, ...]
    headers: tuple[tuple[str, str], ...]  # every header, decoded, in order
    content_digest: str  # sha256 of the content without trace headers (duplicate check)
    from_header_count: int = 1
    defects: tuple[str, ...] = ()
    content_language: str | None = None

    @classmethod
    def unread(cls, *, text: str, content_digest: str, defects: tuple[str, ...]) -> ParsedMail:
        """A mail the parser could not read: no headers, ``text`` as its whole body."""
        return cls(
            message_id=None,
            from_address=None,
            from_name="",
            to=(),
            cc=(),
            reply_to=(),
            subject="",
            date=None,
            in_reply_to=(),
            references=(),
            body_text=text,
            reply_text=text,
            body_html=None,
            attachments=(),
            headers=(),
            content_digest=content_digest,
            from_header_count=0,
            defects=defects,
        )

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        lname = name.lower()
        for key, value in self.headers:
            if key.lower() == lname:
                return value
        return None

    def header_all(self, name: str) -> tuple[str, ...]:
        lname = name.lower()
        return tuple(value for key, value in self.headers if key.lower() == lname)


class Verdict(StrEnum):
    OK = "ok"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    LOOP = "loop"
    BULK = "bulk"


@dataclass(frozen=True, slots=True)
class ScreenResult:
    verdict: Verdict
    reason: str = ""

    @property
    def is_ok(self) -> bool:
        return self.verdict is Verdict.OK


@dataclass(frozen=True, slots=True)
class AuthResult:
    """Whether the mail is authenticated for its From domain, and by which path."""

    verified_domain: str | None = None
    dkim: str = "none"  # pass | fail | none | temperror | permerror
    dmarc: str = "none"  # pass | fail | none (the domain publishes no policy) | temperror
    source: str = "none"  # dkim | trusted_mta | none
    reason: str = ""
    signatures: tuple[str, ...] = ()  # every DKIM signature and what became of it
    # l= of the accepted signature when the body goes on past it: only that much is signed.
    signed_body_length: int | None = None
    relaxed_body: bool = False  # the accepted signature's body canonicalisation

    @property
    def authenticated(self) -> bool:
        return self.verified_domain is not None

    @property
    def publishes_no_authentication(self) -> bool:
        """The From domain has no DMARC policy and the mail no signature of its own: such a
        sender can only be confirmed out of band (``mailgate.confirmation``)."""
        return self.dkim == "none" and self.dmarc == "none"


class SenderKind(StrEnum):
    AGENT = "agent"
    SHOP_USER = "shop_user"
    STRANGER = "stranger"


@dataclass(frozen=True, slots=True)
class Sender:
    kind: SenderKind
    address: str | None
    name: str = ""
    shop_id: int | None = None
    agent_id: int | None = None
    verified: bool = False  # registered AND authenticated for the From domain
    verified_by: str | None = None  # dkim | trusted_mta | confirmed


class ThreadedBy(StrEnum):
    NEW = "new"
    TAG = "tag"
    PLUS = "plus"
    REFERENCE = "reference"
    FOLLOW_UP = "follow_up"
    AGENT = "agent"


@dataclass(frozen=True, slots=True)
class ThreadDecision:
    ticket_id: int | None  # None: a new ticket
    by: ThreadedBy
    evidence: str
    follow_up_of: int | None = None


@dataclass(frozen=True, slots=True)
class Command:
    """One ``#name args`` line from the top of an agent's mail."""

    name: str
    args: tuple[str, ...] = ()
    line: str = ""


@dataclass(frozen=True, slots=True)
class Triage:
    type: str | None = None
    sector: str | None = None
    priority: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Instructions:
    commands: tuple[Command, ...] = ()
    body_text: str = ""  # the text with command lines removed
    reply_text: str = ""
    triage: Triage = field(default_factory=Triage)
    confidential: bool = False
    errors: tuple[str, ...] = ()  # commands that could not be read
    confidential_reason: str = ""  # the rule that matched, e.g. "access: 'password'"
