"""The new part of a reply: quoted history, attribution lines and signatures removed.

Part of the ``parse`` stage (``parse_mail`` fills ``ParsedMail.reply_text`` with
``extract_reply``). The text is split into fragments the way GitHub's email_reply_parser
does (quoted, headers, signature; read bottom-up, so the reply is what stays visible
above the history), with our own line classification: attribution lines and Outlook
header blocks in English, Romanian, Dutch, Portuguese and Polish (plus the languages
mail-parser-reply knows), forward separators, and signatures judged by what they open.
mail-parser-reply's own splitter is not used: it strips every line's indentation, reads
"Thanks," as the start of a signature and runs whole-text regexes that take a
millisecond per mail. Everything here is line-by-line and linear in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailgate import reply_markers as markers
from mailgate.html_text import has_quote_markup, html_to_text
from mailgate.signatures import without_closing_signature

_WRAPPED_ATTRIBUTION_LINES = 3
_WRAPPED_FIELD_LINES = 2
# Lines by kind: quoted; needing a closer look (blank, rules and "--" delimiters,
# ending in a colon, in a header block); everything else is plain reply text.
_PLAIN, _QUOTED, _SPECIAL = 0, 1, 2
_SPECIAL_ENDINGS = frozenset(": \t")
_COLON_AT_END = re.compile(r":[ \t]*(?=\n|\Z)")
_RUNS = re.compile(rb"\x00+|\x01+|\x02+")
_RULE_STARTS = frozenset({"__", "--", " _", " -"})
_SHORT_SIGNATURE_LINES = 6
_SIGNATURE_LINE_LENGTH = 80


@dataclass(slots=True)
class Fragment:
    """Consecutive lines that are all reply, all quoted, all header or one signature."""

    lines: list[str]  # top to bottom once the split is finished
    quoted: bool
    headers: bool
    signature: bool = False
    hidden: bool = False

    @property
    def content(self) -> str:
        return "\n".join(self.lines).strip()


def _opens_signature(fragment: Fragment) -> bool:
    """Whether a fragment (lines still bottom-up) is a signature, judged by its top line."""
    top = fragment.lines[-1].strip()
    if top[:1] not in ("-", "_"):
        return markers.is_device_signature(top)
    if markers.is_strong_delimiter(top):
        return True
    if not markers.is_weak_delimiter(top):
        return False
    filled = 0
    for line in reversed(fragment.lines):  # top down, stopping as soon as it is too long
        if not line.strip():
            continue
        filled += 1
        if filled > _SHORT_SIGNATURE_LINES or len(line) > _SIGNATURE_LINE_LENGTH:
            return False
    return True


def split_fragments(text: str) -> list[Fragment]:
    """The text as fragments, top to bottom, each flagged quoted/headers/signature/hidden.

    Lines are read bottom-up, as email_reply_parser does: a quoted fragment takes in
    the blank lines and the attribution line above it; a blank line (or an Outlook rule)
    above a block that opens like a signature makes that block a signature.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = _join_wrapped_attributions(text)
    if len(lines) != text.count("\n") + 1:
        text = "\n".join(lines)
    header_lines = _header_block_lines(text, lines)
    # Most lines are plain reply text or plain quoted text; only the others need a
    # closer look, and runs of one kind are taken in one step. The kind test is cheap
    # and a little wide (a line ending in a space is looked at closely for nothing):
    # this keeps a 5 KB mail well under a millisecond.
    kinds = bytearray(
        _QUOTED
        if line[:1] == ">"
        else _SPECIAL
        if (not line or line[-1:] in _SPECIAL_ENDINGS or line[:2] in _RULE_STARTS)
        else _PLAIN
        for line in lines
    )
    for index in header_lines:
        kinds[index] = _SPECIAL
    reader = _BottomUpReader()
    runs = list(_RUNS.finditer(kinds))
    for run in reversed(runs):
        start, end = run.span()
        kind = kinds[start]
        if kind == _PLAIN:
            reader.read_plain(lines[start:end])
        elif kind == _QUOTED:
            reader.read_quoted(lines[start:end])
        else:
            for index in range(end - 1, start - 1, -1):
                reader.read(lines[index], header=index in header_lines)
    return reader.finished()


class _BottomUpReader:
    """Collects fragments from lines fed bottom-up, and decides which are hidden."""

    def __init__(self) -> None:
        self.closed: list[Fragment] = []
        self.current: Fragment | None = None
        self.found_visible = False  # reply text seen since the last history header
        self.next_is_quote = False  # whether the next non-blank line below is quoted
        self._shown_from = 0  # closed fragments before this index are all hidden

    def read(self, line: str, *, header: bool) -> None:
        quoted = line[:1] == ">"
        blank = not line.strip()
        attribution = (
            not quoted
            and not blank
            and line.rstrip().endswith(":")
            and (
                markers.is_attribution(line)
                or (self.next_is_quote and markers.looks_like_attribution(line))
            )
        )
        header = header or attribution
        self._close_signature(blank=blank)
        current = self.current
        if current is not None and (
            (current.headers == header and current.quoted == quoted)
            or (current.quoted and (attribution or blank))
        ):
            current.lines.append(line)
        else:
            self._start(Fragment([line], quoted=quoted, headers=header))
        if not blank:
            self.next_is_quote = quoted

    def read_plain(self, run: list[str]) -> None:
        """Lines (top to bottom) that are unquoted, non-blank, no header, no attribution."""
        self._close_signature(blank=False)
        current = self.current
        if current is not None and not current.headers and not current.quoted:
            current.lines.extend(reversed(run))
        else:
            self._start(Fragment(run[::-1], quoted=False, headers=False))
        self.next_is_quote = False

    def read_quoted(self, run: list[str]) -> None:
        """Lines (top to bottom) that are all quoted text (never headers or blank)."""
        self._close_signature(blank=False)
        current = self.current
        if current is not None and current.quoted and not current.headers:
            current.lines.extend(reversed(run))
        else:
            self._start(Fragment(run[::-1], quoted=True, headers=False))
        self.next_is_quote = True

    def finished(self) -> list[Fragment]:
        if self.current is not None:
            self._close(self.current)
            self.current = None
        return self.closed[::-1]

    def _close_signature(self, *, blank: bool) -> None:
        current = self.current
        if current is None or current.headers or current.quoted:
            return
        top = current.lines[-1]
        ruled = top[:2] in _RULE_STARTS and markers.is_long_separator(top)
        if (blank or ruled) and _opens_signature(current):
            current.signature = True
            self._close(current)
            self.current = None

    def _start(self, fragment: Fragment) -> None:
        if self.current is not None:
            self._close(self.current)
        self.current = fragment

    def _close(self, fragment: Fragment) -> None:
        fragment.lines.reverse()
        if fragment.headers:
            # History starts here: everything below it is hidden, and the search for
            # the visible reply starts again above it.
            for other in self.closed[self._shown_from :]:
                other.hidden = True
            self._shown_from = len(self.closed)
            self.found_visible = False
        if not self.found_visible:
            if fragment.quoted or fragment.headers or fragment.signature or not fragment.content:
                fragment.hidden = True
            else:
                self.found_visible = True
        self.closed.append(fragment)


def strip_quotes(text: str) -> str:
    """The text above the quoted history, with quoted blocks removed; signatures stay."""
    return _joined(_reply_fragments(split_fragments(text), keep_signatures=True))


def extract_reply(text: str, html: str | None = None, *, sender: str | None = None) -> str:
    """The new part of a reply: no quoted text, attribution, forwarded mail or signature.

    ``html`` is used when given and the plain ``text`` is only its rendering (an
    HTML-only mail): quoted elements are then dropped by their markup first.
    ``sender`` (display name and/or address) lets a closing such as "Thanks,\\nNoam"
    be recognised as the signature it is.
    """
    if html is not None and (not text.strip() or has_quote_markup(html)):
        text = html_to_text(html, drop_quotes=True)
    reply = _joined(_reply_fragments(split_fragments(text), keep_signatures=False))
    return without_closing_signature(reply, sender)


def _line_indexes(pattern: re.Pattern[str], text: str) -> list[int]:
    """Indexes of the lines of ``text`` holding a match of ``pattern``.

    Patterns here start with a literal so the regex engine can skip ahead in C; one
    that must look at a line's start matches the newline before it, on ``"\n" + text``.
    """
    indexes: list[int] = []
    line, counted_to = 0, 0
    for match in pattern.finditer(text):
        start = match.start()
        line += text.count("\n", counted_to, start)
        counted_to = start
        if not indexes or indexes[-1] != line:
            indexes.append(line)
    return indexes


def _reply_fragments(fragments: list[Fragment], *, keep_signatures: bool) -> list[Fragment]:
    kept: list[Fragment] = []
    for fragment in fragments:
        if fragment.headers:
            break  # everything from the first header on is history
        if fragment.quoted or (fragment.signature and not keep_signatures):
            continue
        kept.append(fragment)
    return kept


def _joined(fragments: list[Fragment]) -> str:
    return "\n".join("\n".join(fragment.lines) for fragment in fragments).strip()


def _join_wrapped_attributions(text: str) -> list[str]:
    """The lines of ``text``, with an attribution a client wrapped over several lines
    joined into one ("On …, Bob\n<b@x.com>\nwrote:", "pt., 8 lis 2024 Jan <j@x.pl>\nnapisał(a):").

    Read upwards from each line ending in a colon, taking in the line above while the
    attribution is incomplete: no evidence yet, an unclosed ``<…>``, or a start that
    continues something ("<addr> wrote:", a lone "wrote:").
    """
    lines = text.split("\n")
    spans: dict[int, int] = {}
    for end in _line_indexes(_COLON_AT_END, text):
        start = _wrapped_attribution_start(lines, end)
        if start is not None and start < end:
            spans[start] = end - start + 1
    if not spans:
        return lines
    joined: list[str] = []
    index = 0
    while index < len(lines):
        span = spans.get(index, 0)
        if span:
            joined.append(" ".join(part.strip() for part in lines[index : index + span]))
            index += span
        else:
            joined.append(lines[index])
            index += 1
    return joined


def _wrapped_attribution_start(lines: list[str], end: int) -> int | None:
    if lines[end][:1] == ">":
        return None
    start, candidate = end, lines[end].strip()
    while not markers.is_attribution(candidate) or _is_incomplete(candidate):
        above = start - 1
        if end - above >= _WRAPPED_ATTRIBUTION_LINES or above < 0:
            return None
        line = lines[above].strip()
        if not line or line[:1] == ">" or line.endswith((".", "!", "?")):
            return None
        start, candidate = above, f"{line} {candidate}"
    return start


def _is_incomplete(candidate: str) -> bool:
    return (
        candidate.startswith("<")
        or candidate.count("<") != candidate.count(">")
        or candidate.count('"') % 2 == 1
        or markers.starts_with_closer(candidate)
    )


def _header_block_lines(text: str, lines: list[str]) -> set[int]:
    """Indexes of lines in quoted-message header blocks and history separators.

    A block is consecutive field lines ("From:", "Van:", "Od:" …, wrapped values
    allowed) naming a From-like field and at least one other: a lone "To: all staff"
    in a reply is text, not history. Blocks are grown up and down from their From line.
    """
    marked = {
        index
        for index in _line_indexes(markers.SEPARATOR_LINE, "\n" + text)
        if markers.is_history_separator(lines[index])
    }
    for anchor in _line_indexes(markers.FROM_FIELD_LINE, "\n" + text):
        if anchor in marked:
            continue
        first = _block_edge(lines, anchor, step=-1)
        last = _block_edge(lines, anchor, step=1)
        fields = {
            found[0] for line in lines[first : last + 1] if (found := markers.field_name(line))
        }
        if len(fields) >= 2:
            marked.update(range(first, last + 1))
    return marked


def _block_edge(lines: list[str], anchor: int, *, step: int) -> int:
    """The last line, going ``step`` from ``anchor``, of a block of header fields (at
    most two wrapped lines between fields, no blank line)."""
    edge = index = anchor
    wrapped = 0
    while 0 <= index + step < len(lines) and lines[index + step].strip():
        index += step
        if markers.field_name(lines[index]) is not None:
            edge, wrapped = index, 0
        else:
            wrapped += 1
            if wrapped > _WRAPPED_FIELD_LINES:
                break
            if step == 1:
                edge = index  # a wrapped value belongs to the field above it
    return edge
