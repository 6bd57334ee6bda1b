"""Keyword matching that forgives case and accents ("plata" finds "plată", "błąd" "blad")."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Letters that NFKD does not decompose but writers of our languages often type without.
_EXTRA_FOLDS = (("ł", "l"), ("Ł", "l"), ("ø", "o"), ("ß", "ss"), ("đ", "d"), ("æ", "ae"))
_BMP = 0x10000


def _marks_pattern() -> re.Pattern[str]:
    """Every combining mark of the Basic Multilingual Plane, as one character class."""
    marks = [c for c in range(_BMP) if unicodedata.combining(chr(c))]
    ranges: list[tuple[int, int]] = []
    for c in marks:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1] = (ranges[-1][0], c)
        else:
            ranges.append((c, c))
    return re.compile("[" + "".join(f"\\u{a:04x}-\\u{b:04x}" for a, b in ranges) + "]")


# A mail's text is thousands of characters: C-level replaces and one regex, not a Python
# test per character (three times faster on a merchant's mail).
_MARKS = _marks_pattern()
_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")


def fold(text: str) -> str:
    """Lower-case ``text`` and strip diacritics."""
    for letter, plain in _EXTRA_FOLDS:
        if letter in text:
            text = text.replace(letter, plain)
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    if decomposed.isascii():
        return decomposed
    if not _BEYOND_BMP.search(decomposed):
        return _MARKS.sub("", decomposed)
    return "".join(c for c in decomposed if not unicodedata.combining(c))  # rare: beyond BMP


@lru_cache(maxsize=64)
def keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    """One regex matching any of ``keywords`` as whole words or phrases, after folding."""
    alternatives = sorted(
        {re.escape(fold(k)) for k in keywords if k.strip()}, key=len, reverse=True
    )
    if not alternatives:
        return re.compile(r"(?!x)x")
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)")


def first_keyword(folded_text: str, keywords: tuple[str, ...]) -> str | None:
    match = keyword_pattern(keywords).search(folded_text)
    return match.group(0) if match else None
