"""Signatures at the end of a reply: a phone's "Sent from…" line, a legal disclaimer and
the sender's sign-off.

Part of the ``parse`` stage, used by ``quoting.extract_reply`` once quoted history and
"-- " signature blocks are gone. Only the closing lines are looked at. A sign-off
("Thanks,\nNoam", "Gina X / gina@… / phone") is removed only when it names the sender:
without the sender, "Thanks,\nAlex" is just how the reply ends.
"""

from __future__ import annotations

import re
import unicodedata

from mailgate import reply_markers as markers

_SIGNATURE_LINE_LENGTH = 80
_NAME_SIGNATURE_LINES = 8
_NAME_SIGNATURE_PARAGRAPHS = 3
_VALEDICTION_LENGTH = 30
_NAME_LINE_SLACK = 25  # what a name line may hold besides the name ("Me", a title)
_TAIL_LINES = 24  # a closing paragraph, a rule and a phone's "Sent from" fit in this
# From the start of a run only: tried at each character of a long run without "@", the
# search took time in the square of the run's length (a 20,000-letter display name: 2 s).
_ADDRESS = re.compile(r"(?<![^\s<>\"'])[^\s<>\"']+@[^\s<>\"']+")
_LOCAL_PART_SEPARATORS = re.compile(r"[._+\-\d]+")
# Letters NFKD does not split into a base letter and a mark.
_UNDECOMPOSED = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ß": "ss", "æ": "ae", "œ": "oe"})
# Address words that are roles, not names: "info@", "office@", "contact@" sign nothing.
_ROLE_WORDS = frozenset(
    {
        "info",
        "office",
        "contact",
        "sales",
        "support",
        "admin",
        "shop",
        "mail",
        "hello",
        "orders",
        "comenzi",
        "kontakt",
        "biuro",
        "sklep",
        "loja",
        "geral",
        "noreply",
    }
)
_DISCLAIMER_LENGTH = 2000
# A legal disclaimer says the mail is confidential and who it is meant for, in one
# paragraph: "This e-mail is confidential … intended recipient", "Acest mesaj este
# confidențial … destinatarului", "Dit bericht is vertrouwelijk … geadresseerde",
# "Esta mensagem é confidencial … destinatário", "Ta wiadomość jest poufna … adresata".
_CONFIDENTIAL = re.compile(
    r"confiden[tț]i|vertrouwelijk|confidencial|poufn|privileged|vertraulich", re.I
)
# …and says what to do with it when received in error: a merchant's own sentence about
# a "confidential" parcel and its "recipient" says none of this.
_WHAT_TO_DO = re.compile(
    r"notify|delete|destroy|intended|error|mistake|unauthori[sz]ed|prohibited|"
    r"[șşs]terge|gre[șşs]eal|interzis|verwijder|vergissing|abusievelijk|"
    r"engano|apag|elimin|usu[ńn]|omy[łl]k|b[łl][ęe]d|zabronion|l[öo]sch|irrt[üu]m",
    re.I,
)
_MEANT_FOR = re.compile(
    r"recipient|addressee|destinatar|expeditor|geadresseerde|afzender|bestemd|"
    r"destinat[áa]rio|remetente|adresat|nadawc|empf[äa]nger",
    re.I,
)


def without_closing_signature(reply: str, sender: str | None) -> str:
    """``reply`` without its closing signature; ``sender`` is "Name address" if known."""
    lines = reply.rsplit("\n", _TAIL_LINES)
    head = lines.pop(0) if len(lines) > _TAIL_LINES else None
    lines = _without_trailing_signature(lines, sender, text_above=bool(head and head.strip()))
    if head is not None:
        lines.insert(0, head)
    return "\n".join(lines).strip()


def _without_trailing_signature(
    lines: list[str], sender: str | None, *, text_above: bool
) -> list[str]:
    lines = _trimmed(lines)
    if lines and markers.is_sent_from(lines[-1]) and (len(lines) > 1 or text_above):
        lines = _trimmed(lines[:-1])
    lines = _without_disclaimer(lines, text_above=text_above)
    if sender:
        lines = _without_name_signature(lines, sender, text_above=text_above)
    return lines


def _without_disclaimer(lines: list[str], *, text_above: bool) -> list[str]:
    """Drop a closing legal disclaimer paragraph (never the reply's only paragraph)."""
    start = _last_paragraph_start(lines)
    if not (start or text_above):
        return lines
    paragraph = " ".join(lines[start:])
    if (
        len(paragraph) <= _DISCLAIMER_LENGTH
        and _CONFIDENTIAL.search(paragraph) is not None
        and _MEANT_FOR.search(paragraph) is not None
        and _WHAT_TO_DO.search(paragraph) is not None
    ):
        return _trimmed(lines[:start])
    return lines


def _trimmed(lines: list[str]) -> list[str]:
    end = len(lines)
    while end and (not lines[end - 1].strip() or markers.is_separator(lines[end - 1])):
        end -= 1
    return lines[:end]


def _without_name_signature(lines: list[str], sender: str, *, text_above: bool) -> list[str]:
    """Drop the closing paragraphs that sign with the sender's name or address."""
    names = _sender_names(sender)
    dropped = False
    for _ in range(_NAME_SIGNATURE_PARAGRAPHS):
        start = _last_paragraph_start(lines)
        if not (start or text_above) or not _signs_with(lines[start:], names):
            break
        lines, dropped = _trimmed(lines[:start]), True
    if dropped:
        # "Thanks," left alone once the name under it is gone is part of the signature.
        start = _last_paragraph_start(lines)
        closing = lines[start:]
        if (start or text_above) and len(closing) == 1 and markers.is_valediction(closing[0]):
            lines = _trimmed(lines[:start])
    return lines


def _last_paragraph_start(lines: list[str]) -> int:
    start = len(lines)
    while start and lines[start - 1].strip():
        start -= 1
    return start


def _signs_with(paragraph: list[str], names: list[str]) -> bool:
    """A short closing paragraph whose name line ("Gina X", "Noam") is the sender's,
    under nothing longer than a valediction ("Thank you,")."""
    if not paragraph or len(paragraph) > _NAME_SIGNATURE_LINES:
        return False
    if any(len(line) > _SIGNATURE_LINE_LENGTH for line in paragraph):
        return False
    for position, line in enumerate(paragraph):
        if _is_name_line(line, names):
            return all(len(text.strip()) <= _VALEDICTION_LENGTH for text in paragraph[:position])
    return False


def _sender_names(sender: str) -> list[str]:
    """The ways a sender signs: address, full name, each name word of three letters or
    more, and the name words of the address ("stefan.turcanu@…" signs "Ștefan Țurcanu").
    Folded (see ``_folded``), so "Stefan" in a display name matches "Ștefan" signed."""
    addresses = [address.lower() for address in _ADDRESS.findall(sender)]
    names = list(addresses)
    display = re.sub(r"<[^>]*>|[\"']", " ", _ADDRESS.sub(" ", sender))
    display = _folded(" ".join(display.split()))
    if display:
        names.append(display)
        names.extend(word for word in display.split() if len(word) >= 3)
    for address in addresses:
        words = [w for w in _LOCAL_PART_SEPARATORS.split(address.split("@")[0]) if w]
        if len(words) > 1:
            names.append(" ".join(words))
        names.extend(word for word in words if len(word) >= 3 and word not in _ROLE_WORDS)
    return list(dict.fromkeys(names))


def _folded(text: str) -> str:
    """Lower case without diacritics: "Ștefan Țurcanu" → "stefan turcanu", "Łukasz" →
    "lukasz" (people type their own name either way)."""
    text = text.lower().translate(_UNDECOMPOSED)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def _is_name_line(line: str, names: list[str]) -> bool:
    text = _folded(line.strip())
    if not text or not names:
        return False
    for name in names:
        position = text.find(name)
        if position < 0:
            continue
        # The name must be most of the line ("Gina X", "Me John Doe"), not a word in a
        # sentence that happens to mention it.
        if len(text) - len(name) <= _NAME_LINE_SLACK and _whole_word(text, position, len(name)):
            return True
    return False


def _whole_word(text: str, position: int, length: int) -> bool:
    before = text[position - 1] if position > 0 else " "
    after = text[position + length] if position + length < len(text) else " "
    return not before.isalnum() and not after.isalnum()
