"""The MIME tree of a mail read into text bodies and attachments (for ``parse``).

Which part is the body follows what a mail client shows: the text/plain and text/html
parts that are not attachments, the plain and HTML versions of a multipart/alternative,
the root of a multipart/related (its other parts are inline images, kept with their
Content-ID). Everything else is an attachment, forwarded mail (message/rfc822) as an
``.eml`` file. Broken structure is read as far as it goes and noted as a defect.
"""

from __future__ import annotations

import binascii
import email
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.errors import MessageError
from email.message import Message
from email.utils import collapse_rfc2231_value

from mailgate.charsets import decode_text, normalize_charset
from mailgate.filenames import fallback_name, safe_filename
from mailgate.header_values import decode_header_value, unicode_value
from mailgate.mime_reader import MAX_DEPTH, SetAside
from mailgate.values import ParsedAttachment

MAX_PARTS = 2000

# A delimiter line followed by a header line; searched in "\n" + body, since a pattern
# starting with a literal is found in C while "^" makes the engine try every position.
_BOUNDARY_LINE = re.compile(r"\n--([^\s]{1,200}?)[ \t]*\r?\n(?=[\w-]{1,60}:)")
# Text parts that are files, not renderings of the body, even inside an alternative.
_TEXT_ATTACHMENTS = frozenset({"text/calendar", "text/x-vcard", "text/vcard", "text/csv"})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEADER_LINE = re.compile(r"[\w-]{1,60}:")
_LEADING_BLANK_LINES = re.compile(r"^(?:[ \t]*\n)+")
_META_CHARSET = re.compile(
    rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.I
)


@dataclass(slots=True)
class MailParts:
    """What the MIME tree holds, in document order."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[ParsedAttachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    taken_names: set[str] = field(default_factory=set)
    parts_read: int = 0
    set_aside: SetAside = field(default_factory=SetAside)  # bodies the reader kept out
    # HTML bodies that are not a version of a plain one (a text/html part beside a
    # text/plain one in a multipart/mixed): (how many plain bodies came before, HTML).
    # A client shows both, one after the other.
    loose_html: list[tuple[int, str]] = field(default_factory=list)
    # Text a client shows although it is a named file: inline text/plain parts with a
    # filename ("msg.txt"); used as the body when the mail has no other.
    inline_text: list[str] = field(default_factory=list)
    in_alternative: int = 0  # depth of multipart/alternative being read


def read_parts(message: Message, set_aside: SetAside | None = None) -> MailParts:
    """The text bodies and attachments of ``message``; ``set_aside`` holds the base64
    bodies ``mime_reader`` replaced by markers before parsing."""
    parts = MailParts(set_aside=set_aside or SetAside())
    _read(message, parts, depth=0)
    if message.get_content_type() == "message/rfc822" and not (parts.plain or parts.html):
        _read_wrapped_text(message, parts)
    return parts


def _read_wrapped_text(message: Message, parts: MailParts) -> None:
    """The text of a mail that is nothing but another mail (a whole-message forward):
    clients show the wrapped mail's text, so it is the body too, besides the ``.eml``."""
    payload = _undecoded_body(message)
    inner = payload[0] if isinstance(payload, list) and payload else None
    if not isinstance(inner, Message):
        return
    wrapped = MailParts(set_aside=parts.set_aside, parts_read=parts.parts_read)
    _read(inner, wrapped, depth=1)
    parts.plain.extend(wrapped.plain)
    parts.html.extend(wrapped.html)
    parts.loose_html.extend(wrapped.loose_html)


def _read(part: Message, parts: MailParts, depth: int) -> None:
    parts.parts_read += 1
    if parts.parts_read > MAX_PARTS:
        _note(parts, "too-many-parts")
        return
    _note_defects(part, parts)
    content_type = _type_of(part)
    if content_type.startswith("message/") or not part.is_multipart():
        headers = _MimeHeaders.of(part, content_type)
        if content_type.startswith("multipart/") or _hides_parts(part, headers):
            _read_broken_multipart(part, parts, depth)
        elif headers.is_body_text:
            _read_body_text(part, headers, parts)
        else:
            _read_attachment(part, headers, parts)
        return
    if depth >= MAX_DEPTH:
        _note(parts, "nesting-too-deep")
        return
    children = [child for child in part.get_payload() if isinstance(child, Message)]
    if content_type == "multipart/alternative":
        _read_alternatives(children, parts, depth)
    elif content_type == "multipart/related":
        _read_related(part, children, parts, depth)
    else:
        for child in children:
            _read(child, parts, depth + 1)
    for recovered in _parts_in_epilogue(part):
        _note(parts, "parts-recovered-from-epilogue")
        _read(recovered, parts, depth + 1)


def _parts_in_epilogue(part: Message) -> list[Message]:
    """Parts after the closing boundary, where a nested multipart reusing its parent's
    boundary pushes them (mail-parser recovers them the same way)."""
    epilogue, boundary = part.epilogue, part.get_boundary()
    if not epilogue or not boundary or f"--{boundary}" not in epilogue:
        return []
    delimiter = re.compile(rf"^--{re.escape(boundary)}(?:--)?[ \t]*\r?$", re.M)
    found = []
    for chunk in delimiter.split(epilogue):
        section = chunk.lstrip("\r\n")
        if _HEADER_LINE.match(section):
            found.append(email.message_from_string(section))
    return found


def _hides_parts(part: Message, headers: _MimeHeaders) -> bool:
    """A single part declared with a boundary whose body really is multipart."""
    boundary = headers.params.get("boundary", "")
    if not boundary:
        return False
    body = _undecoded_body(part)
    return isinstance(body, str) and f"--{boundary}" in body


def _read_alternatives(children: list[Message], parts: MailParts, depth: int) -> None:
    # Versions of one body: the first plain and the first HTML version are the body;
    # a second rendering of the same text is not an attachment; a calendar invite is.
    seen: set[str] = set()
    parts.in_alternative += 1
    try:
        _read_versions(children, parts, depth, seen)
    finally:
        parts.in_alternative -= 1


def _read_versions(children: list[Message], parts: MailParts, depth: int, seen: set[str]) -> None:
    for child in children:
        content_type = _type_of(child)
        if content_type.startswith("text/"):
            headers = _MimeHeaders.of(child, content_type)
            if headers.is_body_text:
                if content_type in seen:
                    continue
                seen.add(content_type)
            elif headers.filename is None and content_type not in _TEXT_ATTACHMENTS:
                continue  # text/enriched and the like: another rendering of the body
        _read(child, parts, depth + 1)


def _read_related(part: Message, children: list[Message], parts: MailParts, depth: int) -> None:
    start = _content_id(_param(part, "start"))
    root = next((c for c in children if start and _content_id(c.get("Content-ID")) == start), None)
    root = root or (children[0] if children else None)
    for child in children:
        if child is root:
            _read(child, parts, depth + 1)
        else:
            content_type = _type_of(child)
            _read_attachment(child, _MimeHeaders.of(child, content_type), parts, inline=True)


def _read_broken_multipart(part: Message, parts: MailParts, depth: int) -> None:
    """A multipart whose boundary never appears: find the one the body really uses."""
    _note(parts, "multipart-without-parts")
    body = _undecoded_body(part)
    if not isinstance(body, str) or depth >= MAX_DEPTH:
        return
    match = _BOUNDARY_LINE.search("\n" + body)
    if match is not None:
        boundary = match[1].replace('"', "")
        rebuilt = email.message_from_string(
            f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n{body}'
        )
        if rebuilt.is_multipart() and rebuilt.get_payload():
            _note(parts, "boundary-recovered")
            _read(rebuilt, parts, depth + 1)
            return
    text = decode_text(_payload_bytes(part, parts.set_aside), _param(part, "charset") or None).text
    if text.strip():
        parts.plain.append(_clean_text(text))


def _read_body_text(part: Message, headers: _MimeHeaders, parts: MailParts) -> None:
    payload = _payload_bytes(part, parts.set_aside)
    declared = headers.params.get("charset") or None
    if declared is None and headers.content_type == "text/html":
        # As browsers do: an HTML part without a MIME charset may name one in <meta>.
        meta = _META_CHARSET.search(payload[:4096])
        declared = meta[1].decode("ascii") if meta else None
    decoded = decode_text(payload, declared)
    if decoded.guessed:
        _note(parts, f"charset-guessed:{decoded.charset}")
    if decoded.replaced:
        _note(parts, "undecodable-bytes-replaced")
    if declared and normalize_charset(declared) is None:
        _note(parts, "unknown-charset")
    if headers.content_type == "text/html":
        parts.html.append(decoded.text.replace("\x00", ""))
        if not parts.in_alternative:
            parts.loose_html.append((len(parts.plain), parts.html[-1]))
        return
    text = decoded.text.replace("\r\n", "\n").replace("\r", "\n")
    if headers.params.get("format", "").lower() == "flowed":
        text = unflow(text, delete_space=headers.params.get("delsp", "").lower() == "yes")
    parts.plain.append(_clean_text(text))


def _read_attachment(
    part: Message, headers: _MimeHeaders, parts: MailParts, *, inline: bool = False
) -> None:
    content_type, disposition = headers.content_type, headers.disposition
    content_id = _content_id(part.get("Content-ID"))
    if content_type == "message/rfc822":
        content, name = _forwarded_mail(part, headers.filename, parts.set_aside)
    else:
        content, name = _payload_bytes(part, parts.set_aside), headers.filename
    filename = safe_filename(name, fallback_name(content_type), parts.taken_names)
    if content_type == "text/plain" and disposition != "attachment" and not inline:
        shown = decode_text(content, headers.params.get("charset")).text
        parts.inline_text.append(_clean_text(shown))
    parts.attachments.append(
        ParsedAttachment(
            filename=filename,
            content_type=content_type,
            content=content,
            content_id=content_id,
            inline=disposition == "inline"
            or (inline and disposition != "attachment")
            or (content_id is not None and disposition is None),
        )
    )


def _forwarded_mail(
    part: Message, filename: str | None, set_aside: SetAside
) -> tuple[bytes, str | None]:
    """The bytes of an attached mail, and the name it is offered under (ends in .eml)."""
    payload = _undecoded_body(part)
    inner = payload[0] if isinstance(payload, list) and payload else None
    if isinstance(inner, Message):
        content = _flattened(inner, set_aside)
        raw_subject = next((v for k, v in inner.raw_items() if k.lower() == "subject"), "")
        subject = decode_header_value(str(raw_subject))
    else:
        content, subject = _payload_bytes(part, set_aside), ""
    name = filename or (subject[:120] or None)
    if name and not name.lower().endswith(".eml"):
        name += ".eml"
    return content, name


def _payload_bytes(part: Message, set_aside: SetAside) -> bytes:
    """The decoded body of a leaf part (transfer encoding undone, set-aside bodies back)."""
    fast = _base64_payload(part, set_aside)
    if fast is not None:
        return fast
    payload = part.get_payload(decode=True)
    if isinstance(payload, bytes):
        return set_aside.restored(payload)
    raw = _undecoded_body(part)
    if isinstance(raw, str):
        return set_aside.restored(raw.encode("utf-8", "surrogateescape"))
    if isinstance(raw, list):  # message/* parsed into parts: give back their text
        return b"".join(_flattened(child, set_aside) for child in raw)
    return b""


def _base64_payload(part: Message, set_aside: SetAside) -> bytes | None:
    """A base64 body decoded in one C call, from the raw bytes when it was set aside;
    None to let the stdlib do it (it checks, encodes, splits and joins the body first)."""
    if str(part.get("Content-Transfer-Encoding", "")).strip().lower() != "base64":
        return None
    body = _undecoded_body(part)
    if not isinstance(body, str) or not body.isascii():
        return None
    try:
        found = set_aside.decoded(body) if set_aside else None
        return found if found is not None else binascii.a2b_base64(body)
    except binascii.Error:
        return None  # bad padding and the like: the stdlib's decoder repairs those


def _undecoded_body(part: Message) -> str | list[Message] | None:
    """The body as the parser stored it. ``get_payload()`` decodes 8-bit text with the
    declared charset, and a charset label such as "utf-8\\0" makes that raise."""
    try:
        body = part.get_payload()
    except (LookupError, UnicodeError, ValueError, TypeError):
        data = part.get_payload(decode=True)
        return data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else None
    if isinstance(body, list):
        return [child for child in body if isinstance(child, Message)]
    return body if isinstance(body, str) else None


def _flattened(message: Message, set_aside: SetAside) -> bytes:
    """``message`` as bytes again (a forwarded mail's ``.eml``), set-aside bodies back."""
    # Regenerating a broken message can fail in many ways (a charset that refuses its
    # bytes, a header that looks like two): then its headers and body are given as read.
    try:
        return set_aside.restored(message.as_bytes())
    except (LookupError, UnicodeError, ValueError, TypeError, MessageError):
        pass
    head = "".join(f"{name}: {value}\n" for name, value in message.raw_items())
    body = _undecoded_body(message)
    if isinstance(body, list):
        return (
            head.encode("utf-8", "surrogateescape")
            + b"\n"
            + b"".join(_flattened(child, set_aside) for child in body)
        )
    return set_aside.restored((head + "\n" + (body or "")).encode("utf-8", "surrogateescape"))


@dataclass(frozen=True, slots=True)
class _MimeHeaders:
    """What a leaf part's MIME headers say, read once: the stdlib parses the parameters
    again on every ``get_param`` call, and that was a third of the time on a plain mail."""

    content_type: str
    disposition: str | None = None
    params: dict[str, str] = field(default_factory=dict)  # of Content-Type, names lower-case
    filename: str | None = None

    @classmethod
    def of(cls, part: Message, content_type: str) -> _MimeHeaders:
        view = _header_view(part)
        try:
            type_params = _params(view.get_params())
            disposition_params = _params(view.get_params(header="content-disposition"))
        except (LookupError, UnicodeError, ValueError, TypeError, IndexError):
            return cls(content_type)
        disposition = next(iter(disposition_params), None)
        name = disposition_params.get("filename") or type_params.get("name") or ""
        return cls(content_type, disposition, type_params, name.strip() or None)

    @property
    def is_body_text(self) -> bool:
        return (
            self.content_type in ("text/plain", "text/html")
            and self.disposition != "attachment"
            and self.filename is None
        )


def _params(pairs: Iterable[tuple[str, object]] | None) -> dict[str, str]:
    """Parameters by lower-case name, RFC 2231 values decoded; the first pair is the
    header's own value (its type or disposition), kept as a key. An RFC 2231 value wins
    over a plain one of the same name (RFC 6266: it is the one written for clients that
    read it; the plain one is the ASCII fallback)."""
    found: dict[str, str] = {}
    extended: set[str] = set()
    for name, value in pairs or ():
        key = name.strip().lower()
        if isinstance(value, tuple):
            if key not in extended:
                found[key] = _rfc2231_text(value)
                extended.add(key)
        else:
            found.setdefault(key, value if isinstance(value, str) else "")
    return found


def _rfc2231_text(value: tuple[str | None, str | None, str]) -> str:
    """An RFC 2231 value's text, read like a body: the declared charset when it fits,
    else the charset its bytes show (UTF-8 sent as ``iso-8859-1''``, no charset at all)."""
    charset, _, text = value
    try:
        data = text.encode("latin-1")  # the stdlib keeps decoded %XX bytes as Latin-1
    except UnicodeEncodeError:
        return collapse_rfc2231_value(value)
    return decode_text(data, charset or None).text


def _header_view(part: Message) -> Message:
    """``part`` itself, or when its MIME headers carry raw 8-bit bytes a header-only copy
    with those bytes read as text: the stdlib would turn them into U+FFFD."""
    raw = [
        (name, value)
        for name, value in part.raw_items()
        if name.lower() in ("content-type", "content-disposition")
    ]
    if all(isinstance(value, str) and value.isascii() for _, value in raw):
        return part
    view = Message()
    for name, value in raw:
        view[name] = unicode_value(str(value))
    return view


def _param(part: Message, name: str) -> str:
    """A Content-Type parameter of a multipart as text ("" when absent)."""
    value = part.get_param(name)
    if isinstance(value, tuple):
        value = collapse_rfc2231_value(value)
    return value if isinstance(value, str) else ""


def _type_of(part: Message) -> str:
    """The part's content type, as the stdlib reads it, without control characters: a
    NUL in it would make PostgreSQL refuse the attachment's row."""
    return _CONTROL.sub("", part.get_content_type())


def _content_id(raw: object) -> str | None:
    if not raw:
        return None
    value = decode_header_value(str(raw)).strip().strip("<>").strip()
    return value or None


def _clean_text(text: str) -> str:
    """Body text without control characters (NUL breaks PostgreSQL) or edge blank lines."""
    return _LEADING_BLANK_LINES.sub("", _CONTROL.sub("", text)).rstrip()


def unflow(text: str, *, delete_space: bool) -> str:
    """RFC 3676 format=flowed text as the paragraphs its writer typed."""
    lines: list[str] = []
    pending: str | None = None
    pending_depth = 0
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        if pending is not None and depth == pending_depth:
            content = pending + content
        elif pending is not None:
            lines.append(_quoted(pending, pending_depth))
        pending = None
        if content.endswith(" ") and content != "-- ":
            pending = content[:-1] if delete_space else content
            pending_depth = depth
            continue
        lines.append(_quoted(content, depth))
    if pending is not None:
        lines.append(_quoted(pending, pending_depth))
    return "\n".join(lines)


def _quoted(content: str, depth: int) -> str:
    return ">" * depth + (" " if depth and content else "") + content


def _note_defects(part: Message, parts: MailParts) -> None:
    for defect in getattr(part, "defects", ()):
        name = type(defect).__name__.removesuffix("Defect")
        _note(parts, re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower())


def _note(parts: MailParts, defect: str) -> None:
    if defect not in parts.defects:
        parts.defects.append(defect)
