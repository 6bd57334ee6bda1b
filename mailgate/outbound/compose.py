"""Stage 8 (apply) helper: turn a decided ``Notification`` into a ready-to-send mail.

``Composer.render`` picks the template (override folder, then built-in; the language, then
``en``), renders the subject, the text and the optional HTML part with Jinja2, and builds
the MIME message with every header DESIGN.md promises (``[#ID]`` tag, our signed
Message-ID, thread headers, ``Auto-Submitted``, ``X-Mailgate-Ticket``). The result goes
into the outbox in the pipeline's transaction; the dispatcher sends it later.

Template variables (also in ``templates/README.md``); every one is always defined, so a
template may test it with ``{% if %}`` even under ``StrictUndefined``:

``ticket``
    a mapping with ``id, subject, status, status_text, priority, type, sector, requester,
    requester_name, shop`` (missing keys default to ``""``; ``id`` to the notification's
    ticket; ``status_text`` is derived from ``status`` in the template's language).
``message``
    the text of an agent's reply (``agent_reply``), else ``""``.
``old_status``, ``new_status``, ``old_status_text``, ``new_status_text``
    for ``status_changed`` (the ``*_text`` ones are derived when not given).
``support_address``
    the bare address of the configured From.
``peak``
    ``True`` during a sales campaign (peak mode): answers are slower than usual.
``follow_up_of``
    the number of the closed ticket a new ticket follows up (``ack``), else ``""``.
``standby_reason``, ``standby_since``
    why a ticket is on hold and since when (``standby_reminder``).
``hours``, ``rate``, ``amount``, ``currency``, ``approved``, ``deadline``
    a development request's budget and deadline (``budget_*``, ``deadline_set``).
``event``, ``errors``, ``phase``, ``due``, ``reply_address``, ``details``
    for the mails to agents (``agent_*``).
``too_large``, ``attachment_limits``
    attachments of the merchant's mail that were over a size limit (``filename``,
    ``size`` in bytes) and the limits (``file``, ``mail``, in bytes); show sizes with the
    ``megabytes`` filter, which writes them the way the template's language does.

Any other key of ``Notification.context`` is passed through as given.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.resources
import logging
import math
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

import mailgate
from mailgate.config import OutboundSettings
from mailgate.errors import ConfigError
from mailgate.outbound.mime import address_list, clean_header_text, encode_subject, write_mail

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "en"
MAX_REFERENCES = 20
MAX_SUBJECT_CHARS = 250

# Words for ticket statuses, one dict per language. A language without an entry falls back
# to English, and an unknown status to its own name, so a new status never breaks a mail.
STATUS_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "new": "received",
        "open": "in progress",
        "pending": "waiting for your answer",
        "on_hold": "on hold",
        "solved": "solved",
        "closed": "closed",
    },
    "ro": {
        "new": "înregistrat",
        "open": "în lucru",
        "pending": "așteaptă răspunsul dumneavoastră",
        "on_hold": "în așteptare",
        "solved": "rezolvat",
        "closed": "închis",
    },
    "nl": {
        "new": "ontvangen",
        "open": "in behandeling",
        "pending": "wacht op uw reactie",
        "on_hold": "in de wacht",
        "solved": "opgelost",
        "closed": "gesloten",
    },
    # Words that read naturally in Portugal and in Brazil alike.
    "pt": {
        "new": "recebido",
        "open": "em andamento",
        "pending": "à espera da sua resposta",
        "on_hold": "em espera",
        "solved": "resolvido",
        "closed": "encerrado",
    },
    # Neuter forms: they describe "zgłoszenie" (the ticket).
    "pl": {
        "new": "przyjęte",
        "open": "w realizacji",
        "pending": "oczekuje na Państwa odpowiedź",
        "on_hold": "wstrzymane",
        "solved": "rozwiązane",
        "closed": "zamknięte",
    },
}

# Languages that write "10,5 MB" rather than "10.5 MB".
_DECIMAL_COMMA = frozenset({"ro", "nl", "pt", "pl"})

_TICKET_KEYS = (
    "subject",
    "status",
    "status_text",
    "priority",
    "type",
    "sector",
    "requester",
    "requester_name",
    "shop",
)

# One RFC 5321 addr-spec, ASCII only: dot-atom local part (no quoted strings, no comments,
# no source routes) at a host name. Anything looser is how "a@b.com, c@d.com" or
# "a@b.com>\r\nBcc:" would slip a second recipient in.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_NAME_ADDR = re.compile(r"^(?P<name>.*?)\s*<(?P<addr>[^<>]*)>\s*$", re.DOTALL)

# A msg-id we will write into In-Reply-To/References: printable ASCII, no brackets or
# spaces, one "@". Anything else is dropped rather than repaired.
_MSG_ID = re.compile(r"[!-;=?-~]{1,900}@[!-;=?-~]{1,255}")
_OUR_ID = re.compile(r"mg\.(?P<ticket>\d{1,18})\.(?P<nonce>[0-9a-f]{12})\.(?P<mac>[0-9a-f]{16})@.+")
_LANG = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{2,8})?")
_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}")
_MAX_REMEMBERED = 1000  # template paths kept per composer: languages x kinds, with room


@dataclass(frozen=True, slots=True)
class Notification:
    """A notification decided by the pipeline or the scheduler, not yet rendered."""

    kind: str  # template name: "ack", "agent_reply", "status_changed", ...
    ticket_id: int
    language: str  # "en", "ro", ...; lookup falls back to "en"
    to: tuple[str, ...]  # "addr" or "Name <addr>"
    cc: tuple[str, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)  # template variables
    in_reply_to: str | None = None  # Message-ID (no brackets) of the mail we answer
    references: tuple[str, ...] = ()
    auto_submitted: bool = True  # automatic answers carry Auto-Submitted: auto-replied
    reply_to: str | None = None


@dataclass(frozen=True, slots=True)
class RenderedMail:
    """A mail ready for the outbox: envelope plus the exact bytes to hand to the relay."""

    message_id: str  # without brackets
    mail_from: str  # envelope sender (bare address)
    recipients: tuple[str, ...]  # envelope recipients: To and Cc, deduplicated
    subject: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class _Rendered:
    language: str
    subject: str
    text: str
    html: str | None


def status_text(status: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """The words for a ticket status in ``lang`` (English, then the bare name, as fallback)."""
    for words in (STATUS_TEXT.get(lang, {}), STATUS_TEXT[DEFAULT_LANGUAGE]):
        if status in words:
            return words[status]
    return status.replace("_", " ")


def megabytes(size: int, lang: str = DEFAULT_LANGUAGE) -> str:
    """A byte count as a reader says it: ``10 MB``, ``10.5 MB`` (``10,5 MB`` in ``ro``...).

    Rounded up, so a file just over a 10 MB limit never reads as "10 MB".
    """
    tenths = max(1, math.ceil(size * 10 / 1_048_576))
    whole, tenth = divmod(tenths, 10)
    if not tenth:
        return f"{whole} MB"
    return f"{whole}{',' if lang in _DECIMAL_COMMA else '.'}{tenth} MB"


def builtin_templates_dir() -> Path:
    """The templates shipped with Mailgate: inside the wheel, or at the top of a checkout."""
    packaged = importlib.resources.files("mailgate") / "templates"
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    return Path(mailgate.__file__).resolve().parent.parent / "templates"


def parse_address(value: str) -> Address:
    """One ``addr`` or ``Name <addr>`` as an ``Address``; raises ``ValueError`` if invalid."""
    match = _NAME_ADDR.match(value)
    name, spec = (match["name"], match["addr"]) if match else ("", value)
    name = clean_header_text(name)
    if len(name) >= 2 and name[0] == name[-1] == '"':
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\").strip()
    local, domain = _split_addr_spec(spec.strip())
    return Address(display_name=name, username=local, domain=domain)


def _split_addr_spec(spec: str) -> tuple[str, str]:
    local, at, domain = spec.rpartition("@")
    if not at or not _LOCAL.fullmatch(local) or len(local) > 64 or "=?" in local:
        # "=?…?=" is atext, but readers decode it as an encoded word: the To line would
        # show one address while the relay delivers to another.
        raise ValueError(f"not a valid e-mail address: {spec!r}")
    try:
        # International domains travel as punycode: we never assume SMTPUTF8 at the relay.
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise ValueError(f"not a valid e-mail domain: {spec!r}") from exc
    labels = ascii_domain.split(".")
    if not all(_LABEL.fullmatch(label) for label in labels) or len(ascii_domain) > 253:
        raise ValueError(f"not a valid e-mail domain: {spec!r}")
    return local, ascii_domain


def clean_message_id(value: str) -> str | None:
    """A Message-ID without brackets if it is safe to write into a header, else None."""
    candidate = value.strip().removeprefix("<").removesuffix(">")
    return candidate if _MSG_ID.fullmatch(candidate) else None


class Composer:
    """Renders notifications into mails; owns our Message-IDs and their signatures."""

    def __init__(
        self,
        settings: OutboundSettings,
        secret: bytes,
        clock: Callable[[], datetime],
        override_dir: Path | None = None,
    ) -> None:
        if not secret:
            # An empty key would let anyone forge "our" Message-IDs, and with them threading.
            raise ConfigError(f"no server secret: set {settings.secret_env}")
        try:
            self._from = parse_address(settings.from_)
        except ValueError as exc:
            raise ConfigError(f"bad outbound.from: {exc}") from exc
        self._secret = secret
        self._clock = clock
        self._domain = (settings.message_id_domain or self._from.domain).lower()
        if not all(_LABEL.fullmatch(label) for label in self._domain.split(".")):
            raise ConfigError(f"bad outbound.message_id_domain: {self._domain!r}")
        self._roots = tuple(r for r in (override_dir, builtin_templates_dir()) if r is not None)
        self._environments: dict[Path, jinja2.Environment] = {}
        # The paths to look at, built once: which of them exist is still asked on every
        # render (an admin's new template counts at once), but joining ``Path``s for each
        # cost a tenth of an acknowledgement's rendering.
        self._candidates: dict[str, tuple[tuple[Path, str], ...]] = {}
        self._files: dict[tuple[Path, str], tuple[Path, Path]] = {}

    # -- Message-IDs -------------------------------------------------------------------

    def new_message_id(self, ticket_id: int) -> str:
        """A fresh ``mg.<ticket>.<nonce>.<hmac>@<domain>``, without brackets."""
        nonce = secrets.token_hex(6)
        return f"mg.{ticket_id}.{nonce}.{self._mac(ticket_id, nonce)}@{self._domain}"

    def is_our_message_id(self, message_id: str) -> int | None:
        """The ticket id signed into ``message_id`` when its HMAC checks out, else None.

        The domain is not part of the check, so IDs stay valid after a domain change.
        """
        match = _OUR_ID.fullmatch(message_id.strip().removeprefix("<").removesuffix(">"))
        if match is None:
            return None
        ticket_id = int(match["ticket"])
        expected = self._mac(ticket_id, match["nonce"])
        return ticket_id if hmac.compare_digest(expected, match["mac"]) else None

    def _mac(self, ticket_id: int, nonce: str) -> str:
        digest = hmac.new(self._secret, f"{ticket_id}.{nonce}".encode(), hashlib.sha256)
        return digest.hexdigest()[:16]

    # -- rendering ---------------------------------------------------------------------

    def render(self, n: Notification) -> RenderedMail:
        """Render ``n`` into a complete mail.

        Raises ``ValueError`` when no To address is valid, or an unknown ``kind``; a
        broken override template falls back to the built-in one instead of raising.
        """
        to = _addresses(n.to, what="To")
        if not to:
            raise ValueError(f"notification {n.kind} for #{n.ticket_id} has no valid To")
        taken = {a.addr_spec.lower() for a in to}
        cc = [a for a in _addresses(n.cc, what="Cc") if a.addr_spec.lower() not in taken]
        reply_to = _addresses((n.reply_to,), what="Reply-To") if n.reply_to else []
        rendered = self._render_templates(n)
        message_id = self.new_message_id(n.ticket_id)

        headers = [
            ("From", address_list([self._from], name="From")),
            ("To", address_list(to, name="To")),
        ]
        if cc:
            headers.append(("Cc", address_list(cc, name="Cc")))
        if reply_to:
            headers.append(("Reply-To", address_list(reply_to, name="Reply-To")))
        headers.append(("Subject", encode_subject(rendered.subject)))
        headers.append(("Date", format_datetime(self._now())))
        headers.append(("Message-ID", f"<{message_id}>"))
        headers.extend(_thread_headers(n.in_reply_to, n.references))
        if n.auto_submitted:
            headers.append(("Auto-Submitted", "auto-replied"))
            # Asks Exchange/Outlook not to answer an automatic mail with another one.
            headers.append(("X-Auto-Response-Suppress", "All"))
        headers.append(("X-Mailgate-Ticket", str(n.ticket_id)))

        recipients = tuple(dict.fromkeys(a.addr_spec for a in [*to, *cc]))
        return RenderedMail(
            message_id=message_id,
            mail_from=self._from.addr_spec,
            recipients=recipients,
            subject=rendered.subject,
            raw=write_mail(headers, rendered.text, rendered.html, rendered.language),
        )

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        return now

    def _render_templates(self, n: Notification) -> _Rendered:
        if not _KIND.fullmatch(n.kind):
            # The kind becomes part of a file name: no "../" or odd characters.
            raise ValueError(f"bad notification kind: {n.kind!r}")
        folders = self._folders(n.language)
        last_error: Exception | None = None
        for folder, lang in folders:
            if not self._template_files(folder, n.kind)[0].is_file():
                continue
            try:
                return self._render_in(folder, lang, n)
            except Exception as exc:
                # A notification is never lost to a template bug: an admin's broken
                # override gives way to the next folder in line, and the error is logged.
                # Any exception counts: a template can raise TypeError as well as
                # TemplateError, and none of them says anything about the next folder.
                log.exception("template %s/%s failed; trying the next folder", folder, n.kind)
                last_error = exc
        if last_error is not None:
            raise last_error
        raise ValueError(f"no template for notification kind {n.kind!r}")

    def _folders(self, language: str) -> list[tuple[Path, str]]:
        """Where to look, in order: override/<lang>, built-in/<lang>, override/en, built-in/en."""
        lang = language.strip().lower().replace("_", "-")
        candidates = self._candidates.get(lang)
        if candidates is None:
            candidates = self._candidate_folders(lang)
            if len(self._candidates) < _MAX_REMEMBERED:
                self._candidates[lang] = candidates
        return [f for f in candidates if f[0].is_dir()]

    def _candidate_folders(self, lang: str) -> tuple[tuple[Path, str], ...]:
        langs = [lang] if _LANG.fullmatch(lang) else []  # never a path from outside
        if "-" in lang and _LANG.fullmatch(lang):
            langs.append(lang.split("-", maxsplit=1)[0])  # "pt-br" -> also "pt"
        langs.append(DEFAULT_LANGUAGE)
        return tuple((root / code, code) for code in dict.fromkeys(langs) for root in self._roots)

    def _template_files(self, folder: Path, kind: str) -> tuple[Path, Path]:
        """The text and the HTML template of ``kind`` in ``folder`` (which may not exist)."""
        files = self._files.get((folder, kind))
        if files is None:
            files = (folder / f"{kind}.txt.j2", folder / f"{kind}.html.j2")
            if len(self._files) < _MAX_REMEMBERED:
                self._files[folder, kind] = files
        return files

    def _render_in(self, folder: Path, lang: str, n: Notification) -> _Rendered:
        env = self._environment(folder, lang)
        variables = _variables(n, lang, self._from.addr_spec)
        text_template = env.get_template(f"{n.kind}.txt.j2")
        context = text_template.new_context(dict(variables))
        subject = "".join(text_template.blocks["subject"](context))
        body = "".join(text_template.blocks["body"](context))
        html = None
        if self._template_files(folder, n.kind)[1].is_file():
            html = env.get_template(f"{n.kind}.html.j2").render(variables)
        return _Rendered(
            language=lang,
            subject=_subject_with_tag(subject, n.ticket_id),
            text=_tidy_body(body),
            html=html,
        )

    def _environment(self, folder: Path, lang: str) -> jinja2.Environment:
        env = self._environments.get(folder)
        if env is None:
            # Sandboxed: templates are configuration an admin edits, not code to trust.
            env = SandboxedEnvironment(
                loader=jinja2.FileSystemLoader(folder),
                undefined=jinja2.StrictUndefined,
                autoescape=jinja2.select_autoescape(
                    enabled_extensions=("html.j2",), default_for_string=False, default=False
                ),
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=True,
            )
            env.filters["megabytes"] = functools.partial(megabytes, lang=lang)
            self._environments[folder] = env
        return env


def _variables(n: Notification, lang: str, support_address: str) -> dict[str, Any]:
    given = dict(n.context)
    ticket: dict[str, Any] = dict.fromkeys(_TICKET_KEYS, "")
    ticket["id"] = n.ticket_id
    ticket.update(given.pop("ticket", None) or {})
    for key in _TICKET_KEYS:  # "None" must never be printed to a merchant
        if ticket[key] is None:
            ticket[key] = ""
    # A subject is one line wherever a template shows it (body included); so is a name,
    # which a sender can fill with encoded line breaks ("Eve=0D=0ABcc: …").
    ticket["subject"] = clean_header_text(str(ticket["subject"]))
    ticket["requester_name"] = clean_header_text(str(ticket["requester_name"]))
    if not ticket["status_text"] and ticket["status"]:
        ticket["status_text"] = status_text(str(ticket["status"]), lang)
    variables: dict[str, Any] = {
        "message": "",
        "old_status": "",
        "new_status": "",
        "old_status_text": "",
        "new_status_text": "",
        "support_address": support_address,
        "peak": False,
        "follow_up_of": "",
        "standby_reason": "",
        "standby_since": "",
        "hours": "",
        "rate": "",
        "amount": "",
        "currency": "",
        "approved": False,
        "deadline": "",
        "event": "",
        "errors": (),
        "phase": "",
        "due": "",
        "reply_address": "",
        "details": {},
        "too_large": [],
        "attachment_limits": {"file": 0, "mail": 0},
    }
    variables.update(given)
    variables["ticket"] = ticket
    for key in ("old_status", "new_status"):
        if variables[key] and not variables[f"{key}_text"]:
            variables[f"{key}_text"] = status_text(str(variables[key]), lang)
    return variables


def _subject_with_tag(rendered: str, ticket_id: int) -> str:
    subject = clean_header_text(rendered)[:MAX_SUBJECT_CHARS].strip()
    tag = f"[#{ticket_id}]"
    # The tag is how a reply finds its ticket (DESIGN.md, thread stage): never omit it.
    return subject if tag in subject else f"{tag} {subject}".strip()


def _tidy_body(body: str) -> str:
    lines = body.replace("\r\n", "\n").replace("\r", "\n").strip("\n").split("\n")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _addresses(values: Iterable[str | None], *, what: str) -> list[Address]:
    result: dict[str, Address] = {}  # by lower-case addr-spec: each address once
    for value in values:
        if not value:
            continue
        try:
            address = parse_address(value)
        except ValueError as exc:
            # One bad copied address must not cost the requester the notification.
            log.warning("dropping %s address: %s", what, exc)
            continue
        result.setdefault(address.addr_spec.lower(), address)
    return list(result.values())


def _thread_headers(in_reply_to: str | None, refs: Iterable[str]) -> list[tuple[str, str]]:
    parent = clean_message_id(in_reply_to) if in_reply_to else None
    chain = [c for c in (clean_message_id(r) for r in refs) if c]
    if parent:
        chain.append(parent)
    chain = list(dict.fromkeys(chain))
    if len(chain) > MAX_REFERENCES:
        # Keep the thread's root and the newest ones (RFC 5322 §3.6.4 suggests the same).
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    headers = [("In-Reply-To", f"<{parent}>")] if parent else []
    if chain:
        # One msg-id per line, never encoded or split: a client matches them byte for byte.
        headers.append(("References", "\r\n ".join(f"<{c}>" for c in chain)))
    return headers
