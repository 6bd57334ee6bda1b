"""Keyword matching that forgives case and accents ("plata" finds "plată", "błąd" "blad")."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Letters that NFKD does not decompose but writers of our languages often type without.
_EXTRA_FOLDS = str.maketrans({"ł": "l", "Ł": "l", "ø": "o", "ß": "ss", "đ": "d", "æ": "ae"})


def fold(text: str) -> str:
    """Lower-case ``text`` and strip diacritics."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_EXTRA_FOLDS).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


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
