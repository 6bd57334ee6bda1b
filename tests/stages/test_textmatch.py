"""Keyword folding: the fast ``fold`` gives exactly what the plain definition gives."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from mailgate.textmatch import first_keyword, fold

_EXTRA = str.maketrans({"ł": "l", "Ł": "l", "ø": "o", "ß": "ss", "đ": "d", "æ": "ae"})


def plain_fold(text: str) -> str:
    """The definition: extra letters, case-fold, NFKD, and no combining marks."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_EXTRA).casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@settings(max_examples=500)
@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=200))
def test_fold_is_the_plain_definition(text: str) -> None:
    assert fold(text) == plain_fold(text)


@settings(max_examples=200)
@given(
    st.text(alphabet=st.characters(max_codepoint=0xFFFF, exclude_categories=["Cs"]), max_size=200)
)
def test_fold_is_the_plain_definition_in_the_basic_plane(text: str) -> None:
    assert fold(text) == plain_fold(text)


def test_our_languages_fold_to_plain_letters() -> None:
    assert fold("Plată eșuată, BŁĄD płatności, Ünïcödé, Straße, ﬁşier") == (
        "plata esuata, blad platnosci, unicode, strasse, fisier"
    )
    assert first_keyword(fold("Clienții nu pot plăti"), ("plati",)) == "plati"
