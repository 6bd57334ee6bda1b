"""HTML bodies as readable plain text, for ``parse`` (body_text) and ``quoting`` (replies).

A small converter on the stdlib's HTMLParser rather than html2text: it is several times
faster on mail-sized HTML, never raises on broken markup, and lets the reply extractor
drop quoted history by element (Gmail's ``gmail_quote``, Thunderbird's ``cite``
blockquotes, Outlook's ``divRplyFwdMsg``) before any text is produced.
Paragraphs, line breaks, lists and links stay readable; scripts, styles, hidden
elements and tracking pixels are dropped; ``<blockquote>`` becomes ``> `` lines.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

MAX_HTML_CHARS = 512 * 1024
_DATA_URI = re.compile(r"data:[\w/+.-]{1,100};base64,[A-Za-z0-9+/=\s]{64,}")
_LONGEST_LABEL_PARTS = 40
_LONGEST_SHOWN_TARGET = 100
_SKIPPED = frozenset(
    {
        "script",
        "style",
        "head",
        "title",
        "template",
        "noscript",
        "svg",
        "object",
        "iframe",
        "xml",
        "select",
        "canvas",
        "audio",
        "video",
        "map",
    }
)
_PARAGRAPH = frozenset(
    {
        "p",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "table",
        "pre",
        "dl",
        "blockquote",
        "address",
        "figure",
        "fieldset",
        "form",
        "center",
    }
)
_LINE = frozenset(
    {
        "div",
        "li",
        "tr",
        "dt",
        "dd",
        "section",
        "article",
        "header",
        "footer",
        "main",
        "nav",
        "aside",
        "caption",
        "tbody",
        "thead",
        "tfoot",
        "hr",
        "summary",
        "details",
        "legend",
    }
)
_CELL = frozenset({"td", "th"})
_VOID = frozenset(
    {
        "br",
        "hr",
        "img",
        "input",
        "meta",
        "link",
        "area",
        "base",
        "col",
        "embed",
        "param",
        "source",
        "track",
        "wbr",
        "basefont",
        "frame",
        "keygen",
        "spacer",
    }
)
# Hidden elements; newsletters also hide their "preheader" (the inbox preview line) by
# collapsing it: no height and overflow hidden, or full transparency.
_HIDDEN_STYLE = re.compile(
    r"display\s*:\s*none|visibility\s*:\s*hidden|mso-hide\s*:\s*all"
    r"|opacity\s*:\s*0(?:\.0*)?\s*(?:[;!]|$)"
    r"|max-height\s*:\s*0(?:px)?\s*[;!][^\"]*overflow\s*:\s*hidden"
    r"|overflow\s*:\s*hidden[^\"]*max-height\s*:\s*0(?:px)?\s*(?:[;!]|$)",
    re.I,
)
_TINY = re.compile(r"^\s*[01](?:\.0*)?\s*(?:px)?\s*$")
_TINY_STYLE = re.compile(r"(?:^|;)\s*(?:width|height)\s*:\s*[01](?:\.0*)?px", re.I)
_WHITESPACE = re.compile(r"[ \t\n\r\f\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060\ufeff\u034f\u00ad]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUNS = re.compile(r"\n(?:[ \t>]*\n){2,}")

# Elements that hold quoted history in replies, by the marks mail clients give them.
_QUOTE_CLASSES = frozenset(
    {"gmail_quote", "yahoo_quoted", "moz-cite-prefix", "gmail_attr", "protonmail_quote"}
)
# Elements after which everything is quoted history (Outlook's reply headers).
_CUT_IDS = frozenset(
    {
        "divrplyfwdmsg",
        "olk_src_body_section",
        "stopspelling",
        "appendonsend",
        "mail-editor-reference-message-container",
    }
)


def html_to_text(html: str, *, drop_quotes: bool = False) -> str:
    """Readable text of an HTML body; with ``drop_quotes``, without quoted history.

    Only the first ``MAX_HTML_CHARS`` are read, once inline ``data:`` images are taken
    out: the stdlib parser costs some microseconds per tag, and text past that point
    of an HTML mail is newsletter boilerplate, not a merchant's words.
    """
    html = without_unclosable_markup(_DATA_URI.sub("", html)[:MAX_HTML_CHARS])
    writer = _TextWriter(drop_quotes=drop_quotes)
    try:
        writer.feed(html)
        writer.close()
    except (AssertionError, ValueError, IndexError):  # pragma: no cover - HTMLParser is lenient
        pass  # keep what was read before the parser gave up
    return writer.text()


def without_unclosable_markup(html: str) -> str:
    """``html`` with markup that nothing after it can close written out as text, as the
    stdlib parser reads it in the end: from its ``<`` to the next ``>`` (or the next
    ``<``), taken as it stands.

    The parser (Python 3.11) looks for the end of such markup all the way to the end of
    the text, gives up, and goes on one character or one ``<`` later: time in the square
    of the length. Unclosed tags after the last ``>`` ("<b x=" 20,000 times, 100 KB: 41 s)
    and comments or marked sections after the last end of their kind ("<!--a>" again and
    again) did that. What can be closed stays as it was: the parser finds its end once.
    """
    openers = sorted(
        {
            # an opener at p is closed by an end that starts at p + len(opener) or later
            *_starts(_COMMENT_OPEN, html, _last_start(_COMMENT_CLOSE, html) - 3),
            *_starts(_SECTION_OPEN, html, _last_start(_SECTION_CLOSE, html) - 2),
            *_starts(_CDATA_OPEN, html, _last_start(_CDATA_CLOSE, html) - 2),  # needs "]]>"
            *_starts(_TAG_OPEN, html, html.rfind(">") + 1),  # anything after the last ">"
        }
    )
    if not openers:
        return html  # the usual case, at the cost of a few searches in C
    out, i = [], 0
    for start in openers:
        if start < i:
            continue  # inside the text an earlier one was read as
        gt = html.find(">", start + 1)
        lt = html.find("<", start + 1)
        end = gt + 1 if gt >= 0 else (lt if lt >= 0 else start + 1)
        out += [html[i:start], html[start:end].replace("<", "&lt;")]
        i = end
    out.append(html[i:])
    return "".join(out)


_COMMENT_CLOSE = re.compile(r"--\s*>")  # the stdlib parser's ends of a comment,
_SECTION_CLOSE = re.compile(r"]\s*>")  # of an Office section ("<![if …]>"),
_CDATA_CLOSE = re.compile(r"]\s*]\s*>")  # and of the sections it reads as CDATA
_TAG_OPEN = re.compile("<")
_COMMENT_OPEN = re.compile("<!--")
_SECTION_OPEN = re.compile(r"<!\[")
_CDATA_OPEN = re.compile(r"<!\[(?=(?i:temp|cdata|ignore|include|rcdata)(?![-_.a-zA-Z0-9]))")


def _last_start(close: re.Pattern[str], html: str) -> int:
    """Where the last ``close`` in ``html`` starts (-1: none)."""
    last = -1
    for match in close.finditer(html):
        last = match.start()
    return last


def _starts(opener: re.Pattern[str], html: str, since: int) -> list[int]:
    return [match.start() for match in opener.finditer(html, max(0, since))]


def has_quote_markup(html: str) -> bool:
    """Whether ``html`` carries element-level quote marks that ``drop_quotes`` would use."""
    lowered = html.lower()  # substring tests run in C; a case-blind regex would not
    return any(mark in lowered for mark in _QUOTE_MARKS)


_QUOTE_MARKS = (
    "gmail_quote", "yahoo_quoted", "moz-cite-prefix", "protonmail_quote", "<blockquote",
    "divrplyfwdmsg",
    "olk_src_body_section", "stopspelling", "appendonsend",
    "mail-editor-reference-message-container",
)  # fmt: skip


def _bare(link: str) -> str:
    link = link.lower().strip().rstrip("/")
    for prefix in ("mailto:", "https://", "http://", "www."):
        link = link.removeprefix(prefix)
    return link


class _TextWriter(HTMLParser):
    def __init__(self, *, drop_quotes: bool) -> None:
        super().__init__(convert_charrefs=True)
        self._drop_quotes = drop_quotes
        self._parts: list[str] = []
        self._newlines = 0  # line breaks owed before the next text
        self._space = False  # a collapsed space owed before the next text
        self._at_start = True
        self._quote_depth = 0
        self._line_depth = 0  # quote depth of the last line written
        self._pre_depth = 0
        self._lists: list[list[int]] = []  # per open list: [is_ordered, counter]
        self._links: list[tuple[str, int]] = []
        self._last_target = ""  # the link target written last
        # Per open <p>: the line breaks it ends with, and the output length when it opened.
        self._paragraphs: list[tuple[int, int]] = []  # (href, index in _parts where it began)
        self._skip_tag: str | None = None
        self._skip_depth = 0
        self._stopped = False

    # -- the parser's callbacks ------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._stopped:
            return
        if self._skip_tag is not None:
            if self._skip_tag == "head" and tag == "body":  # a head never closed
                self._skip_tag = None
            elif tag == self._skip_tag and tag not in _VOID:
                self._skip_depth += 1
                return
            else:
                return
        attributes = {name: value or "" for name, value in attrs}
        if self._drop_quotes and self._is_cut(tag, attributes):
            self._stopped = True
            return
        if tag in _SKIPPED or (tag not in _VOID and self._is_hidden(tag, attributes)):
            self._skip_tag, self._skip_depth = tag, 1
            return
        self._open(tag, attributes)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._stopped:
            return
        if self._skip_tag is not None:
            if tag == self._skip_tag:
                self._skip_depth -= 1
                if self._skip_depth <= 0:
                    self._skip_tag = None
            return
        self._close(tag)

    def handle_data(self, data: str) -> None:
        if self._stopped or self._skip_tag is not None or not data:
            return
        data = _INVISIBLE.sub("", data)
        if self._pre_depth:
            self._write_pre(data)
            return
        if data[:1].isspace() or data[:1] == "\u00a0":
            self._space = True
        words = _WHITESPACE.sub(" ", data).strip()
        if words:
            self._write(words)
            self._space = data[-1:].isspace() or data[-1:] == "\u00a0"

    # -- structure -------------------------------------------------------------------------

    def _open(self, tag: str, attributes: dict[str, str]) -> None:
        if tag == "br":
            self._break_line()
        elif tag == "hr":
            self._block(1)
            self._write("________________________________")
            self._block(1)
        elif tag == "img":
            self._image(attributes)
        elif tag == "li":
            self._list_item()
        elif tag in ("ul", "ol"):
            self._block(2 if not self._lists else 1)
            self._lists.append([tag == "ol", 0])
        elif tag == "blockquote":
            self._block(2)
            self._quote_depth += 1
        elif tag == "pre":
            self._block(2)
            self._pre_depth += 1
        elif tag == "a":
            self._links.append((attributes.get("href", "").strip(), len(self._parts)))
        elif tag == "p":
            # Outlook writes every line as <p class=MsoNormal> with no margin: a line,
            # not a paragraph (its blank lines are explicit empty paragraphs).
            spacing = 1 if "msonormal" in attributes.get("class", "").lower() else 2
            self._block(spacing)
            self._paragraphs.append((spacing, len(self._parts)))
        elif tag in _PARAGRAPH:
            self._block(2)
        elif tag in _LINE:
            self._block(1)
        elif tag in _CELL:
            self._space = True

    def _close(self, tag: str) -> None:
        if tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self._block(2 if not self._lists else 1)
        elif tag == "blockquote":
            self._block(2)
            self._quote_depth = max(0, self._quote_depth - 1)
        elif tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
            self._block(2)
        elif tag == "a":
            self._end_link()
        elif tag == "p":
            spacing, opened_at = self._paragraphs.pop() if self._paragraphs else (2, -1)
            if spacing == 1 and opened_at == len(self._parts):
                self._break_line()  # Outlook's empty paragraph: a blank line
            else:
                self._block(spacing)
        elif tag in _PARAGRAPH:
            self._block(2)
        elif tag in _LINE:
            self._block(1)
        elif tag in _CELL:
            self._space = True

    def _is_hidden(self, tag: str, attributes: dict[str, str]) -> bool:
        if "hidden" in attributes:
            return True
        if self._drop_quotes and self._is_quote(tag, attributes):
            return True
        style = attributes.get("style", "")
        return bool(style) and _HIDDEN_STYLE.search(style) is not None

    @staticmethod
    def _is_quote(tag: str, attributes: dict[str, str]) -> bool:
        classes = set(attributes.get("class", "").lower().split())
        if classes & _QUOTE_CLASSES:
            return True
        return tag == "blockquote" and attributes.get("type", "").lower() == "cite"

    @staticmethod
    def _is_cut(tag: str, attributes: dict[str, str]) -> bool:
        element_id = attributes.get("id", "").lower()
        if element_id in _CUT_IDS or element_id.startswith("x_divrplyfwdmsg"):
            return True
        return "outlookmessageheader" in attributes.get("class", "").lower()

    def _image(self, attributes: dict[str, str]) -> None:
        width, height = attributes.get("width", ""), attributes.get("height", "")
        style = attributes.get("style", "")
        if _TINY.match(width) or _TINY.match(height) or _TINY_STYLE.search(style):
            return  # a tracking pixel
        alt = _WHITESPACE.sub(" ", attributes.get("alt", "")).strip()
        if alt:
            self._space = True
            self._write(f"[{alt}]")
            self._space = True

    def _list_item(self) -> None:
        self._block(1)
        if not self._lists:
            self._write("- ")
            return
        current = self._lists[-1]
        current[1] += 1
        marker = f"{current[1]}. " if current[0] else "- "
        self._write("  " * (len(self._lists) - 1) + marker)
        self._space = False

    def _end_link(self) -> None:
        if not self._links:
            return
        href, start = self._links.pop()
        if len(self._parts) - start > _LONGEST_LABEL_PARTS:
            return  # a link around a whole block: its address adds nothing readable
        label = "".join(self._parts[start:]).strip()
        if href.lower().startswith("mailto:"):
            target = href[7:].split("?")[0]
        elif href.lower().startswith(("http://", "https://")):
            target = href
        else:
            return
        # Only words need their target spelled out; a label that is itself an address
        # or URL already says where it goes. A long target is a tracking redirect, noise
        # no reader sees, and one target is not repeated for the image and words it wraps.
        is_words = bool(label) and (" " in label or "." not in label)
        if (
            is_words
            and _bare(label) != _bare(target)
            and len(target) <= _LONGEST_SHOWN_TARGET
            and target != self._last_target
        ):
            self._write(f" ({target})")
            self._last_target = target

    # -- output ----------------------------------------------------------------------------

    def _block(self, newlines: int) -> None:
        if not self._at_start:
            self._newlines = max(self._newlines, newlines)
        self._space = False

    def _break_line(self) -> None:
        if not self._at_start:
            self._newlines = min(self._newlines + 1, 2)
        self._space = False

    def _write(self, text: str) -> None:
        if self._newlines:
            # A blank line between a quote and what follows belongs to the outer level.
            blank = ("> " * min(self._quote_depth, self._line_depth)).rstrip()
            prefix = "> " * self._quote_depth
            self._parts.append(("\n" + blank) * (self._newlines - 1) + "\n" + prefix)
            self._newlines = 0
        elif self._at_start and self._quote_depth:
            self._parts.append("> " * self._quote_depth)
        elif self._space and not text.startswith(" "):
            self._parts.append(" ")
        self._space = False
        self._at_start = False
        self._line_depth = self._quote_depth
        self._parts.append(text)

    def _write_pre(self, data: str) -> None:
        lines = data.replace("\r\n", "\n").split("\n")
        for index, line in enumerate(lines):
            if index:
                self._newlines += 1
            if line:
                self._space = False
                self._write(line)

    def text(self) -> str:
        joined = "".join(self._parts)
        joined = _TRAILING_SPACE.sub("\n", joined)
        return _BLANK_RUNS.sub("\n\n", joined).strip()
