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

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlalchemy.dialects.postgresql import TSQUERY
from sqlalchemy.sql import Select
from sqlmodel import Session, col

from store.errors import InvalidInput
from store.models import Ticket

# The PostgreSQL text search configurations made by migration 0002, one per language.
CONFIGURATIONS = ("mailgate_en", "mailgate_ro", "mailgate_nl", "mailgate_pt", "mailgate_simple")
# SQLite's tokenizer folds accents but not letters without a Unicode decomposition; the
# triggers replace these in documents, and queries get the same treatment here.
_SQLITE_FOLDS = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "đ": "d", "Đ": "D", "æ": "ae", "Æ": "AE"}
)
_WORD = re.compile(r"[^\W_]+")  # letters and digits: "_" alone is no word to search
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


def search_condition(session: Session, text: str, *, walk_queue: bool) -> ColumnElement[bool]:
    """The WHERE term of ``--search TEXT``; raises ``InvalidInput`` for text without words.

    ``walk_queue``: the list's order has an index over the tickets it shows (the backlog
    queue), so the few tickets wanted can be found by walking that index and checking
    each against the matches, stopping at the limit. PostgreSQL chooses that plan itself
    when a word is common (it knows how common from its statistics); SQLite cannot know,
    and would look every match up, which costs ~3 µs per match: 0.7 s for a word in a
    quarter of a million tickets. On SQLite the walk is therefore asked for, by hiding
    the id from its rowid lookup (``id + 0``).
    """
    ids = matching_ticket_ids(session, text)
    if walk_queue and session.get_bind().dialect.name == "sqlite":
        return (col(Ticket.id) + 0).in_(ids)
    return col(Ticket.id).in_(ids)


def matching_ticket_ids(session: Session, text: str) -> Select[tuple[int]]:
    """A subquery of the ids of the tickets whose subject or messages hold every word."""
    words = search_words(text)
    if session.get_bind().dialect.name == "postgresql":
        return _postgresql(session, " ".join(words))
    return _sqlite(words)


def _postgresql(session: Session, text: str) -> Select[tuple[int]]:
    # A ticket is indexed in its own language only, and the searcher's language is
    # unknown: the query is the words read in every language, OR-ed. It is built here
    # and handed over as a constant, without the branches that come out the same, so
    # the planner can estimate how many tickets match (from the lexeme statistics of
    # ticket_search) and choose between the full-text index (rare words) and walking the
    # queue in order (common words).
    readings = session.execute(
        sa.text(
            "SELECT DISTINCT plainto_tsquery(config::regconfig, :text)::text"
            " FROM unnest(CAST(:configs AS text[])) AS config"
        ),
        {"text": text, "configs": list(CONFIGURATIONS)},
    ).scalars()
    query = " | ".join(f"({r})" for r in sorted(readings) if r)
    if not query:  # no language kept a word of it (an empty tsquery would be an error)
        return sa.select(_ticket_search.c.ticket_id).where(sa.false())
    return sa.select(_ticket_search.c.ticket_id).where(
        _ticket_search.c.document.op("@@")(sa.cast(sa.literal(query), TSQUERY))
    )


def _sqlite(words: list[str]) -> Select[tuple[int]]:
    # Every word quoted: FTS5 then reads it as a plain term (no operators, no syntax
    # errors from what an agent typed), and the terms are AND-ed.
    match = " ".join(f'"{w.translate(_SQLITE_FOLDS)}"' for w in words)
    return (
        sa.select(_ticket_search.c.rowid)
        .where(sa.text("ticket_search MATCH :match"))
        .params(match=match)
    )
