"""Turning the bytes of a mail into text the way a human reader would (used by ``parse``).

Declared charsets are often missing or wrong: Romanian and Polish mail written in
windows-1250 or ISO-8859-2/-16 but labelled Latin-1, UTF-8 labelled Latin-1, no label at
all. ``decode_text`` reads UTF-8 first when the bytes are valid UTF-8, keeps the declared
charset when its reading looks like text, and otherwise picks the candidate whose reading
has the most plausible letters. Bytes nothing can read become U+FFFD; it never raises.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from functools import lru_cache

# Python's codec registry also holds codecs that are not text encodings, or that
# interpret escape sequences: a sender must not be able to select them by name.
_REFUSED_CODECS = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "mbcs", "oem"}
)

# Names seen in the wild that Python does not know, or knows as something narrower.
_ALIASES = {
    # WHATWG: browsers read every Latin-1 label as windows-1252, whose 0x80-0x9F
    # block holds the curly quotes and dashes that Latin-1 leaves as controls.
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "iso-8859-8-i": "iso-8859-8",
    "windows-874": "cp874",
    "x-mac-roman": "mac-roman",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "utf8": "utf-8",
    "unicode-1-1-utf-8": "utf-8",
}

# Charsets that are not supersets of ASCII: their bytes must not be read any other way.
_NOT_ASCII_COMPATIBLE = frozenset(
    {"utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "utf-7", "hz"}
)

# Labels a guess may overrule when their reading looks wrong: the single-byte Latin
# charsets (misapplied to each other all the time) and UTF-8 whose bytes are broken.
_LATIN_FAMILY = frozenset(
    {
        "cp1252",
        "cp1250",
        "iso8859-2",
        "iso8859-15",
        "iso8859-16",
        "iso8859-3",
        "iso8859-4",
        "iso8859-9",
        "iso8859-10",
        "iso8859-13",
        "iso8859-14",
        "cp1257",
        "cp1254",
        "utf-8",
    }
)
# The charsets our merchants' mail really comes in, tried in this order (a tie goes to
# the earlier one): windows-1250 before the ISO sets, as Windows clients write most of it.
_GUESSES = ("cp1252", "cp1250", "iso8859-2", "iso8859-16")

_UTF8_BOM = b"\xef\xbb\xbf"
_ISO_NUMBER = re.compile(r"^(?:iso)?[-_ ]?8859[-_ ]?")
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")
_NON_ASCII_BYTES = re.compile(rb"[\x80-\xff]+")
_SAMPLE_LIMIT = 8192
_SAMPLE_RUNS = 300


@dataclass(frozen=True, slots=True)
class DecodedText:
    """Text plus how it was read: ``charset`` used, and whether it was a guess."""

    text: str
    charset: str
    guessed: bool = False
    replaced: bool = False  # some bytes could not be read and became U+FFFD


def normalize_charset(declared: str | None) -> str | None:
    """Python codec name for a declared charset label, or None when unknown or refused."""
    if not declared:
        return None
    return _lookup(declared)


@lru_cache(maxsize=256)
def _lookup(declared: str) -> str | None:
    label = declared.strip().strip("\"'").split(";")[0].strip().lower()
    if not label or len(label) > 40:
        return None
    label = _ALIASES.get(label, label)
    info = None
    # Labels written loosely: "latin-2", "cp-1250", "8859-2", "x-windows-1250".
    for candidate in dict.fromkeys(
        (
            label,
            label.removeprefix("x-"),
            label.replace("-", ""),
            _ISO_NUMBER.sub(r"iso8859-", label),
        )
    ):
        try:
            info = codecs.lookup(_ALIASES.get(candidate, candidate))
            break
        except (LookupError, ValueError):
            continue
    if info is None:
        return None
    if info.name in _REFUSED_CODECS or not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def decode_text(data: bytes, declared: str | None = None) -> DecodedText:
    """Read ``data`` as text; ``declared`` is the sender's charset label, if any."""
    if not data:
        return DecodedText("", "utf-8")
    codec = normalize_charset(declared)
    if codec == "ascii":
        codec = None  # the default label: it says nothing about 8-bit bytes
    for read in (_read_with_bom, _read_wide, _read_seven_bit, _read_utf8):
        found = read(data, codec)
        if found is not None:
            return found
    if codec is not None and codec not in _LATIN_FAMILY:
        # Cyrillic, CJK, Greek…: the Latin guesses cannot do better than the label.
        text = data.decode(codec, "replace")
        return DecodedText(text, codec, replaced="\ufffd" in text)
    return _guess_latin(data, codec)


def _read_with_bom(data: bytes, codec: str | None) -> DecodedText | None:
    return _decode_utf8(data[len(_UTF8_BOM) :]) if data.startswith(_UTF8_BOM) else None


def _read_wide(data: bytes, codec: str | None) -> DecodedText | None:
    """UTF-16 and the like: their bytes must not be read any other way."""
    if codec not in _NOT_ASCII_COMPATIBLE:
        return None
    try:
        return DecodedText(data.decode(codec), codec)
    except UnicodeError:
        return None  # mislabelled: read it like any other bytes


def _read_seven_bit(data: bytes, codec: str | None) -> DecodedText | None:
    if not data.isascii():
        return None
    if codec is not None and codec.startswith("iso2022"):  # 7-bit, but not ASCII text
        text = data.decode(codec, "replace")
        return DecodedText(text, codec, replaced="\ufffd" in text)
    return DecodedText(data.decode("ascii"), "ascii")


def _read_utf8(data: bytes, codec: str | None) -> DecodedText | None:
    """UTF-8 when the bytes are UTF-8, whatever the label says: Latin text is almost
    never valid UTF-8 by chance, while UTF-8 labelled Latin-1 is common."""
    try:
        return DecodedText(data.decode("utf-8"), "utf-8")
    except UnicodeDecodeError:
        return _decode_mostly_utf8(data)


def _decode_utf8(data: bytes) -> DecodedText:
    text = data.decode("utf-8", "replace")
    return DecodedText(text, "utf-8", replaced="\ufffd" in text)


def _decode_mostly_utf8(data: bytes) -> DecodedText | None:
    """UTF-8 with a few broken sequences (a truncated forward, a bad paste) is still UTF-8."""
    text = data.decode("utf-8", "replace")
    broken = text.count("\ufffd")
    readable = len(text) - len(_NON_ASCII_RUN.sub("", text)) - broken
    if readable > 0 and broken * 2 <= readable:
        return DecodedText(text, "utf-8", replaced=True)
    return None


def _guess_latin(data: bytes, declared: str | None) -> DecodedText:
    first = declared if declared in _LATIN_FAMILY and declared != "utf-8" else None
    sample = _sample(data)
    chosen = first
    if first is None or _has_misread(sample.decode(first, "replace")):
        candidates = ([first] if first else []) + [c for c in _GUESSES if c != first]
        best_score = float("-inf")
        for codec in candidates:
            # The sender's own label wins a tie: it is evidence too.
            score = _plausibility(sample.decode(codec, "replace")) + (codec == first)
            if score > best_score:
                chosen, best_score = codec, score
    codec = chosen or "cp1252"
    text = data.decode(codec, "replace")
    return DecodedText(text, codec, guessed=codec != first, replaced="\ufffd" in text)


def _sample(data: bytes) -> bytes:
    """The non-ASCII bytes of ``data`` with a little context: enough to judge a charset
    by, and bounded, so a large body is not scored character by character."""
    if len(data) <= _SAMPLE_LIMIT:
        return data
    pieces = []
    for count, match in enumerate(_NON_ASCII_BYTES.finditer(data)):
        if count >= _SAMPLE_RUNS:
            break
        start, end = match.span()
        pieces.append(data[max(0, start - 3) : end + 3])
    return b" ".join(pieces)


# Letters of the languages we serve (ro, pl, pt, nl, en) and their close neighbours.
_OUR_LETTERS = frozenset(
    "ăâîșțşţĂÂÎȘȚŞŢąćęłńóśźżĄĆĘŁŃÓŚŹŻãõçáéíóúàâêôÃÕÇÁÉÍÓÚÀÂÊÔëïöüèÉËÏÖÜÈäßñùûœÄÑÙÛŒ"
)
# Letters that exist in these charsets but almost never in our merchants' mail: their
# presence means the bytes were read with the wrong table (Romanian ş/ţ as º/þ …).
_UNLIKELY_LETTERS = frozenset("þðÞÐæÆŸıĸ")
# Symbols that show up inside words only when a letter was misread.
_MISREAD_SYMBOLS = frozenset("ºª³²¹±¶¼½¾¤¦¨¯´¸×÷¬µ¢¥")  # noqa: RUF001 - look-alikes on purpose
# Spacing accents never stand alone in text: they are Polish and Czech letters misread.
_SPACING_ACCENTS = frozenset("ˇ˘˛˝˙")  # noqa: RUF001 - these look-alikes are the point
_ORDINALS = frozenset("ºª")  # "Nº 12", "1ª vez": after a digit or an N they are right
# (º, ª, µ and the spacing accents count as letters to Python: they are scored as symbols.)
_SCORED_AS_SYMBOLS = _MISREAD_SYMBOLS | _SPACING_ACCENTS | _ORDINALS
_TYPOGRAPHY = frozenset("“”„‘’‚«»–—…•€°§©®™·\u00a0¡¿£")  # noqa: RUF001


def _char_score(char: str, before: str, after: str) -> float:
    """How plausible ``char`` is, between ``before`` and ``after``, in our merchants' mail."""
    if char in _SCORED_AS_SYMBOLS or not char.isalpha():
        return _symbol_score(char, before, after)
    if char in _UNLIKELY_LETTERS:
        return -2.0
    near_letter = before.isalpha() or after.isalpha()
    if not near_letter and (before.isdigit() or after.isdigit()):
        return -1.0  # "Ł50" is "£50" read with the wrong table
    weight = 2.0 if char in _OUR_LETTERS else 1.0
    if char.isupper():
        weight /= 2  # capitals are rarer, and most misreadings of symbols land on them
    return weight + (0.5 if near_letter else 0.0)


def _symbol_score(char: str, before: str, after: str) -> float:
    if char == "\ufffd" or "\x80" <= char <= "\x9f":
        return -5.0
    if char in _SPACING_ACCENTS:
        return -3.0
    if char in _ORDINALS and (before.isdigit() or before in "Nn") and not after.isalpha():
        return 0.5
    if char == "£" and after.isalpha() and after.islower():
        return -2.0  # "£ukasz": Polish Ł read with the wrong table; a pound sign leads digits
    if char in _MISREAD_SYMBOLS:
        return -3.0 if before.isalpha() and after.isalpha() else -0.5
    return 0.5 if char in _TYPOGRAPHY else 0.0


def _scored_chars(text: str) -> list[float]:
    scores = []
    for match in _NON_ASCII_RUN.finditer(text):
        start, end = match.span()
        for index in range(start, end):
            before = text[index - 1] if index > 0 else " "
            after = text[index + 1] if index + 1 < len(text) else " "
            scores.append(_char_score(text[index], before, after))
    return scores


def _plausibility(text: str) -> float:
    return sum(_scored_chars(text))


def _has_misread(text: str) -> bool:
    return any(score <= -2.0 for score in _scored_chars(text))
