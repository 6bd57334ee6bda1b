"""Full-text search of tickets (``tickets list --search TEXT``): subjects and message text.

The search documents are kept by the database itself (triggers of migration 0002), so
this module only asks. A ticket matches when every word of the search text occurs in
its subject or in one of its messages, ignoring case and accents ("plata" finds "plată",
"blad" finds "błąd"). Words match by stem where the database can stem:

- PostgreSQL: each ticket is indexed in its own language (English, Romanian, Dutch,
  Portuguese; Polish unstemmed), and the search text is read in every language at once,
  so "plăți" finds "plata" in a Romanian ticket and "payments" finds "payment".
- SQLite (FTS5): the Porter stemmer, which knows English only; other languages match
  word for word.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import Select
from sqlmodel import Session

from store.errors import InvalidInput

# The PostgreSQL text search configurations made by migration 0002, one per language.
CONFIGURATIONS = ("mailgate_en", "mailgate_ro", "mailgate_nl", "mailgate_pt", "mailgate_simple")
# SQLite's tokenizer folds accents but not letters without a Unicode decomposition; the
# triggers replace these in documents, and queries get the same treatment here.
_SQLITE_FOLDS = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "đ": "d", "Đ": "D", "æ": "ae", "Æ": "AE"}
)
_WORD = re.compile(r"\w+")
MAX_WORDS = 16  # a search text is a few words, not a pasted mail

_ticket_search = sa.table(
    "ticket_search", sa.column("ticket_id"), sa.column("rowid"), sa.column("document")
)


def search_words(text: str) -> list[str]:
    """The words of a search text; raises ``InvalidInput`` when there are none."""
    words = _WORD.findall(text)
    if not words:
        raise InvalidInput(f"nothing to search for in {text!r}: give at least one word")
    return words[:MAX_WORDS]


def matching_ticket_ids(session: Session, text: str) -> Select[tuple[int]]:
    """A subquery of the ids of the tickets whose subject or messages hold every word."""
    words = search_words(text)
    if session.get_bind().dialect.name == "postgresql":
        return _postgresql(" ".join(words))
    return _sqlite(words)


def _postgresql(text: str) -> Select[tuple[int]]:
    # One query per language, OR-ed: a ticket is indexed in its own language only, and
    # the searcher's language is unknown.
    query: sa.ColumnElement[Any] = sa.func.plainto_tsquery(
        sa.literal_column(f"'{CONFIGURATIONS[0]}'"), text
    )
    for config in CONFIGURATIONS[1:]:
        query = query.op("||")(sa.func.plainto_tsquery(sa.literal_column(f"'{config}'"), text))
    return sa.select(_ticket_search.c.ticket_id).where(_ticket_search.c.document.op("@@")(query))


def _sqlite(words: list[str]) -> Select[tuple[int]]:
    # Every word quoted: FTS5 then reads it as a plain term (no operators, no syntax
    # errors from what an agent typed), and the terms are AND-ed.
    match = " ".join(f'"{w.translate(_SQLITE_FOLDS)}"' for w in words)
    return (
        sa.select(_ticket_search.c.rowid)
        .where(sa.text("ticket_search MATCH :match"))
        .params(match=match)
    )
